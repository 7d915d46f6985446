// One run of a command (SPEC §4, §5): a child process, its output cut into lines and
// numbered, its kill ladder and timeout, and the record its state documents show.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/documents.hpp"
#include "agent/history.hpp"
#include "agent/line_splitter.hpp"
#include "config/config.hpp"
#include "protocol/request.hpp"

namespace boost::asio {
class io_context;
}

namespace linewire::agent {

// The protocol's request and error values (docs/protocol.md §3) are the agent's words.
using protocol::Error;
using protocol::ErrorCode;
using protocol::StartRequest;

class Process;
class ProcessLauncher;
class Run;

// Where a run started and who may hear about it.
struct RunOrigin {
  std::string transport = "mqtt";
  std::string topic;                       // the request topic, for the audit log
  std::string key;                         // signing key name (SPEC §11), empty when unsigned
  std::map<std::string, std::string> env;  // transport variables (CGI-style for WebSocket)
};

// The agent's side of a run: Run reports to it and asks it about flow control.
class RunHost {
 public:
  virtual void on_run_line(Run& run, Stream stream, std::string_view line, std::uint64_t seq) = 0;
  // After lines of a chunk were handed on: the host may pause the run.
  virtual void on_run_output(Run& run) = 0;
  // Dropping lines instead of blocking (overflow: drop) while the output is congested.
  virtual bool output_congested() const = 0;
  virtual void on_run_finished(Run& run) = 0;

 protected:
  ~RunHost() = default;
};

// A consumer of one run's output beside the agent's observer: a WebSocket client. It
// attaches to the Run and detaches in its own destructor, so a Run never holds a sink
// that is gone.
class RunSink {
 public:
  virtual void on_line(Stream stream, std::string_view line, std::uint64_t seq) = 0;
  // The run ended; every line was passed to on_line before. The sink is detached.
  virtual void on_finished(const RunRecord& record) = 0;
  // Only asked of a run's primary sink (the client that started it): true holds the
  // child back, as websocketd does, until the sink calls Agent::resume_run.
  virtual bool congested() const = 0;

 protected:
  ~RunSink() = default;
};

// A run's life in one object: queued (admitted, its id taken, sinks may attach, no
// process yet), running (its process), finished (its record final, sinks told).
class Run {
 public:
  Run(boost::asio::io_context& io, RunHost& host, ProcessLauncher& launcher,
      const config::Command& command, const config::Limits& limits, std::string id,
      RunOrigin origin);
  ~Run();
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  // Starts the process. On failure the record is `failed` and the error is returned;
  // on_run_finished is not called then (the caller publishes the failed state).
  std::optional<Error> start(const std::string& device, std::vector<std::string> args,
                             std::optional<std::string> stdin_text,
                             std::optional<config::Duration> timeout);

  // Queued (on_busy: queue or replace): the request waits in the Run until
  // start_queued() starts it, with the command as configured by then.
  void queue(StartRequest request);
  bool queued() const { return pending_.has_value(); }
  std::optional<Error> start_queued(const std::string& device, const config::Command& now);
  // A queued run that will never start ends `failed`, with `why`; its sinks are told.
  void drop(std::string why);
  // A queued run cancelled by a signal request ends as if the signal had ended it:
  // `killed`, reason `signal`. Its sinks are told.
  void cancel(int sig);

  // Sinks (SPEC §8's viewers): told every line and the end; a congested primary holds
  // the child back.
  void attach(RunSink& sink, bool primary);
  void detach(RunSink& sink);
  bool primary_congested() const;
  void finish_sinks();
  // The process's start time in clock ticks (crash safety: a reused pid is never
  // killed), 0 before it started.
  std::uint64_t start_ticks() const { return start_ticks_; }

  // TERM to the process group, KILL after kill_grace. The first reason sticks.
  void kill(std::string reason);
  // A signal request: just that signal to the group.
  bool signal(int sig);
  std::optional<Error> write_line(std::string_view line);
  std::optional<Error> close_stdin();

  void pause_output();
  void resume_output();
  bool paused() const { return paused_; }

  const std::string& id() const { return record_.run; }
  const config::Command& command() const { return command_; }
  const RunRecord& record() const { return record_; }
  const RunOrigin& origin() const { return origin_; }
  bool finished() const { return record_.phase != RunPhase::running; }

 private:
  struct Timers;

  void on_output(Stream stream, std::string_view chunk);
  void emit(Stream stream, std::string_view line);
  void deliver(Stream stream, std::string_view line, std::uint64_t seq);
  void on_exit(int exit_code, int sig);
  void send_signal(int sig);
  void hold(Stream stream, std::string_view line, std::uint64_t seq);
  void flush_held(bool all);

  struct Held {
    Stream stream;
    std::uint64_t seq;
    std::string line;
  };
  static constexpr std::size_t kHeldOverhead = 64;  // a held line's own cost

  boost::asio::io_context& io_;
  RunHost& host_;
  ProcessLauncher& launcher_;
  config::Command command_;
  config::Limits limits_;
  RunOrigin origin_;
  RunRecord record_;
  LineSplitter out_split_;
  LineSplitter err_split_;
  std::uint64_t output_bytes_ = 0;  // for max_output
  int last_signal_ = 0;             // the last signal we sent
  bool stdin_open_ = false;
  bool paused_ = false;
  std::deque<Held> held_;  // overflow: drop, while congested
  struct Attached {
    RunSink* sink;
    bool primary;
  };
  std::vector<Attached> sinks_;
  std::optional<StartRequest> pending_;  // queued: what it was asked
  bool pending_eof_ = false;             // queued: `eof` came before the start
  std::uint64_t start_ticks_ = 0;
  std::size_t held_bytes_ = 0;
  std::unique_ptr<Timers> timers_;
  std::unique_ptr<Process> process_;
};

}  // namespace linewire::agent
