// The transport-free core of linewired: the command table, the runs, their limits and
// queues, and the documents transports publish (SPEC §3–§6). Lives on one io_context;
// transports call it from that thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/history.hpp"
#include "agent/metrics.hpp"
#include "agent/process.hpp"
#include "agent/run.hpp"
#include "agent/schedule.hpp"
#include "agent/services.hpp"
#include "agent/state_file.hpp"
#include "agent/throttle.hpp"
#include "config/config.hpp"
#include "protocol/request.hpp"

namespace boost::asio {
class io_context;
}

namespace linewire::agent {

// What a transport hears from the agent. The MQTT transport publishes all of it.
class AgentObserver {
 public:
  virtual void on_line(const Run& run, Stream stream, std::string_view line, std::uint64_t seq) = 0;
  // A run's state document; `final` for the last one. For a final state, every line
  // of the run was passed to on_line before.
  virtual void on_state(const Run& run, const std::string& document, bool final) = 0;
  virtual void on_running(const std::string& command, bool running) = 0;
  // The final state of a run that has no Run (any more): one a previous agent process
  // left behind (`lost`), or a queued start dropped before it ran (`failed`).
  virtual void on_record_final(const RunRecord& record, const std::string& document) = 0;
  virtual void on_info(const std::string& document) = 0;
  // The retained state of this finished run is past keep_runs: clear it.
  virtual void on_forget(const std::string& run) = 0;
  // A reload took effect: subscriptions, info and command topics may have changed.
  virtual void on_reconfigured(const config::Config& previous) = 0;
  // Output waiting for the broker is over limits.buffer: runs should pause.
  virtual bool congested() const = 0;

 protected:
  ~AgentObserver() = default;
};

struct Started {
  std::string run;
  int pid = 0;  // 0 until the process runs (queued or replacing)
  bool queued = false;
  std::string replaces;  // on_busy: replace — the run killed to make room
};

class Agent final : private RunHost {
 public:
  // `launcher` starts the runs' processes: the real one unless a unit test fakes it.
  Agent(boost::asio::io_context& io, config::Config config, std::string version,
        ProcessLauncher& launcher = system_launcher());
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  void set_observer(AgentObserver* observer) { observer_ = observer; }

  const config::Config& config() const { return config_; }
  const std::string& version() const { return version_; }

  // The command `name` as a transport may serve it (its `transports` list), or nullptr:
  // a command a transport does not serve does not exist for it (unknown_command).
  const config::Command* find_command(const std::string& name, std::string_view transport) const;

  // SPEC §3, from `shutting_down` on; `command` is one of config().commands, found with
  // find_command. The overload by name looks it up for origin.transport first.
  std::variant<Started, Error> start(const config::Command& command, StartRequest request,
                                     RunOrigin origin);
  std::variant<Started, Error> start(const std::string& command, StartRequest request,
                                     RunOrigin origin);
  // Stops every run of the command (and drops queued starts of it).
  std::optional<Error> stop(const config::Command& command);
  std::optional<Error> write_stdin(const std::string& run, std::string_view line);
  std::optional<Error> close_stdin(const std::string& run);
  std::optional<Error> signal(const std::string& run, std::string_view name);

  // Runs the previous agent left running (state_dir) are published as `lost` and
  // their process groups killed if still alive; keep_runs goes on from its list.
  void recover();

  // Starts every `mode: service` command (SPEC §5); once, when the agent is up.
  void start_services();
  // Starts the `every` timers (SPEC §5); once, when the agent is up. A reload follows them.
  void start_schedule();

  // SIGHUP (SPEC §6): added, removed and changed commands take effect, runs in
  // progress go on with the command they started with. Device, prefix and broker
  // need a restart: a config changing them is refused. Returns why it was refused,
  // or nothing when it applied.
  std::optional<std::string> reload(config::Config next);

  // The output queue drained below its low mark: paused runs read again.
  void resume_output();

  // SIGTERM/SIGINT: refuse new requests, kill every run (reason `shutdown`), and call
  // `done` once every final state was handed to the observer.
  void shutdown(std::function<void()> done);
  bool shutting_down() const { return shutting_down_; }
  // A second SIGTERM: no waiting, but no orphans either — KILL every run's group.
  void kill_now();

  // Attaches a sink to a running or queued run; false when there is no such run.
  bool attach(const std::string& run, RunSink& sink, bool primary);
  void detach(const std::string& run, RunSink& sink);
  bool has_run(const std::string& run) const { return runs_.count(run) > 0; }
  // A primary sink drained its backlog: its run may read again.
  void resume_run(const std::string& run);
  // Ends one run with the kill ladder of SPEC §5; false when it is not running.
  bool kill(const std::string& run, std::string reason);

  // Kept output (SPEC §12), for replays; a run it knows is queued, running or finished
  // with its state still retained.
  const History& history() const { return history_; }
  // The command a known run runs or ran, as configured now (a replay's signature rules);
  // nullptr when the run is unknown or its command gone.
  const config::Command* command_of_known_run(const std::string& run) const;

  Metrics& metrics() { return metrics_; }
  const Metrics& metrics() const { return metrics_; }
  int active(const std::string& command) const { return instances(command); }

  std::string info_document() const;
  std::size_t active_runs() const { return runs_.size(); }
  // The command an active run runs (as it was when it started); nullptr when none.
  const config::Command* command_of_run(const std::string& run) const;
  bool running(const std::string& command) const;

 private:
  void on_run_line(Run& run, Stream stream, std::string_view line, std::uint64_t seq) override;
  void on_run_output(Run& run) override;
  bool output_congested() const override;
  void on_run_finished(Run& run) override;

  std::optional<Error> refuse_if_shutting_down() const;
  std::optional<Error> check_args(const config::Command& command,
                                  const std::vector<std::string>& args) const;
  bool id_taken(const std::string& id) const;
  std::string new_id();
  int instances(const std::string& command) const;
  bool has_capacity(const config::Command& command) const;
  std::unique_ptr<Run> make_run(const config::Command& command, const std::string& id,
                                RunOrigin origin);
  // A new Run's start: launched now, or a failure published as its final state.
  std::variant<Started, Error> launched(std::unique_ptr<Run> run, std::optional<Error> error);
  Run* find_live(const std::string& id) const;  // queued or running
  void start_queued();
  std::optional<Error> start_service(const std::string& name);
  void scheduled(const std::string& name);
  void compile_patterns();
  void save_state() const;
  void remember_finished(const RunRecord& record);
  void forget_past_keep_runs(int previous_keep);
  void keep_restart_only_settings(config::Config& next) const;
  void drop_queued(const std::function<bool(const Run&)>& which, const std::string& why);
  void forget_queued(std::unique_ptr<Run> run);
  void info_changed();
  void running_changed(const std::string& command);
  void publish_info();

  boost::asio::io_context& io_;
  ProcessLauncher& launcher_;
  config::Config config_;
  std::string version_;
  std::string host_;
  std::chrono::system_clock::time_point started_;
  std::map<std::string, std::regex> patterns_;  // command → compiled args.pattern
  AgentObserver* observer_ = nullptr;
  std::map<std::string, std::unique_ptr<Run>> runs_;  // running runs by id
  std::deque<std::unique_ptr<Run>> queue_;            // queued runs, in order (on_busy)
  std::deque<std::string> finished_;                  // newest last, for keep_runs
  std::uint64_t id_counter_ = 0;
  bool shutting_down_ = false;
  bool schedule_started_ = false;  // a reload before start-up ends must not start it
  std::function<void()> shutdown_done_;
  StateFile state_file_;
  std::unique_ptr<Services> services_;
  std::unique_ptr<Schedule> schedule_;
  std::set<std::string> running_published_;  // commands last published `running` ON
  std::unique_ptr<Throttle> info_;           // `info` at most once a second (SPEC §6)
  History history_;
  Metrics metrics_;
};

}  // namespace linewire::agent
