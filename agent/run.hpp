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

#include "agent/documents.hpp"
#include "agent/line_splitter.hpp"
#include "agent/request.hpp"
#include "config/config.hpp"

namespace boost::asio {
class io_context;
}

namespace linewire::agent {

class Process;
class ProcessLauncher;
class Run;

enum class Stream { out, err };

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
  std::size_t held_bytes_ = 0;
  std::unique_ptr<Timers> timers_;
  std::unique_ptr<Process> process_;
};

}  // namespace linewire::agent
