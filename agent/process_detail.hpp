// Private to agent/process*.cpp: what the launch (process_launch.cpp) hands over to the
// supervision of a child (process_child.cpp). No Asio here either; not included outside
// agent/.
#pragma once

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <system_error>
#include <utility>

#include "agent/process.hpp"

namespace linewire::agent::detail {

inline std::error_code errno_code(int err) { return {err, std::system_category()}; }

// Owns one file descriptor, so that every early return closes what it opened.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Waits for a child that is known to be exiting (exec failed, or it was just killed).
inline void reap_now(pid_t pid) {
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

// A child that has exec'd, in its own process group, and the parent's ends of its pipes
// (O_CLOEXEC; the child's ends are already closed here).
struct Launched {
  pid_t pid = -1;
  UniqueFd stdin_write;
  UniqueFd stdout_read;  // with `tty`, the pseudo-terminal's master
  UniqueFd stderr_read;
};

// process_launch.cpp: the spawn plan (executable, user and group, pipes, posix_spawn or
// fork/exec). On failure nothing is left behind: no child, no descriptor.
std::error_code launch(const ProcessSpec& spec, Launched& launched);

// process_child.cpp: reads, writes, waits for and reaps a launched child on `io`. On
// failure returns nullptr and sets `ec`, the child killed and reaped.
std::unique_ptr<Process> supervise(boost::asio::io_context& io, Launched launched,
                                   Process::Callbacks callbacks, std::error_code& ec);

}  // namespace linewire::agent::detail
