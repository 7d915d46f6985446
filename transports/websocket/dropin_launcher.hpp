// What websocketd's drop-in flags ask of a run's process beyond a configured command:
// --dir and --cgidir run a different program per request, and --binary and CGI want
// stdout's bytes as they come, not cut into lines, and stdin bytes without a newline.
//
// The agent's Run knows one program per command and splits stdout into lines (SPEC
// §2). Rather than a second process supervisor here, drop-in mode gives its Agent this
// launcher (the ProcessLauncher seam unit tests use for fakes): a connection says what
// the launch of its run should change (`expect`, keyed by the run id it asks the agent
// for), and gets a ProcessLink to the process. The run stays an ordinary run: limits,
// the kill ladder, --closems, shutdown and stderr logging are the agent's as always.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "agent/process.hpp"

namespace linewire::websocket {

// How one run's launch differs from its command's.
struct LaunchChange {
  std::string executable;  // empty: the command's own
  std::string cwd;         // empty: the command's own
  // Raw output: stdout's bytes go to the link's consumer (set_output), never to the Run.
  bool raw_stdout = false;
};

// A connection's handle on its run's process, for raw bytes and raw flow control. Every
// call is a no-op once the process is gone.
class ProcessLink {
 public:
  // Who hears raw stdout (raw_stdout). Cleared by its owner before it goes away.
  void set_output(std::function<void(std::string_view)> consumer) {
    consumer_ = std::move(consumer);
  }
  void write_stdin(std::string bytes);
  // The consumer's own backpressure, beside the agent's: the child's output is read
  // only while neither holds it back.
  void hold_output(bool hold);

 private:
  friend class LinkedProcess;
  friend class DropInLauncher;
  void update();

  agent::Process* process_ = nullptr;  // the real process, while it lives
  std::function<void(std::string_view)> consumer_;
  bool run_paused_ = false;  // the agent paused it (Run::pause_output)
  bool held_ = false;        // the consumer holds it back
  bool paused_ = false;      // what the real process was last told
};

class DropInLauncher final : public agent::ProcessLauncher {
 public:
  // The launch of run `run` (the id its start request names) takes `change`.
  std::shared_ptr<ProcessLink> expect(const std::string& run, LaunchChange change);
  // The start was refused: nothing will be launched for `run`.
  void forget(const std::string& run) { expected_.erase(run); }

  std::unique_ptr<agent::Process> launch(boost::asio::io_context& io,
                                         const agent::ProcessSpec& spec,
                                         agent::Process::Callbacks callbacks,
                                         std::error_code& ec) override;

 private:
  struct Expected {
    LaunchChange change;
    std::shared_ptr<ProcessLink> link;
  };
  std::map<std::string, Expected> expected_;
};

}  // namespace linewire::websocket
