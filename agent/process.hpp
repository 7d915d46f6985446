// A child process in its own process group with its stdin, stdout and stderr on
// pipes (stdout on a pseudo-terminal with `tty`), driven by the agent's io_context
// (SPEC §5). Boost.Process v2 and Asio stay
// inside process.cpp so that this header is cheap to include.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace linewire::agent {

struct ProcessSpec {
  std::string executable;         // absolute or relative path (relative to cwd)
  std::vector<std::string> args;  // argv[1..]; argv[0] is the executable
  std::vector<std::string> env;   // "NAME=value", the whole environment
  std::string cwd;                // empty: inherit
  std::optional<uid_t> uid;       // switch to this user in the child
  std::optional<gid_t> gid;
  // stdout on the slave side of a pseudo-terminal (raw: no \n -> \r\n, no echo; 80x24)
  // instead of a pipe, so that programs that buffer a pipe (C stdio, Perl, ...) write
  // each line as they print it. stdin and stderr stay pipes. Not the child's
  // controlling terminal (process_launch.cpp says why).
  bool tty = false;
};

struct ProcessExit {
  int exit_code = -1;  // >= 0 when the process exited
  int signal = 0;      // > 0 when a signal ended it
};

class Process {
 public:
  struct Callbacks {
    // Raw bytes as read from the pipes; the chunk is only valid during the call.
    std::function<void(std::string_view)> on_stdout;
    std::function<void(std::string_view)> on_stderr;
    // Exactly once, after the process was reaped and both output pipes reached end
    // of file (every byte was delivered to on_stdout/on_stderr first). If the pipes
    // are still open 1 s after the process exited (a descendant holds them), the
    // process group is sent SIGKILL so that they close.
    std::function<void(ProcessExit)> on_exit;
  };

  // Starts the process. On failure returns nullptr and sets `ec` (e.g. ENOENT).
  static std::unique_ptr<Process> spawn(boost::asio::io_context& io, const ProcessSpec& spec,
                                        Callbacks callbacks, std::error_code& ec);

  virtual ~Process() = default;
  virtual pid_t pid() const = 0;
  // Queues bytes for stdin; written in order. Ignored once stdin is closed.
  virtual void write_stdin(std::string data) = 0;
  // Closes stdin after every queued write has been written.
  virtual void close_stdin() = 0;
  // Sends `sig` to the process group. False if the process is already reaped.
  virtual bool signal_group(int sig) = 0;
  // Flow control: stop/resume reading stdout and stderr (the child blocks on write
  // once the pipe is full).
  virtual void pause_output() = 0;
  virtual void resume_output() = 0;
  virtual bool running() const = 0;

  // Destroying a Process whose child still runs sends SIGKILL to its group; the child
  // is still reaped (no zombie) as long as the io_context runs.
};

// What starts processes for runs: the real one (posix_spawn, Process::spawn) in the
// agent, a fake in the unit tests of Run and Agent (tests/unit/fake_process.hpp).
class ProcessLauncher {
 public:
  virtual std::unique_ptr<Process> launch(boost::asio::io_context& io, const ProcessSpec& spec,
                                          Process::Callbacks callbacks, std::error_code& ec) = 0;

 protected:
  ~ProcessLauncher() = default;
};

// Process::spawn behind the seam; one for the whole program.
ProcessLauncher& system_launcher();

}  // namespace linewire::agent
