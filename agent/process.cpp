// Child processes of runs (SPEC §5): own process group, stdio on pipes, reaped
// asynchronously on the agent's io_context. Two halves: process_launch.cpp starts the
// child, process_child.cpp supervises it; process_detail.hpp is what passes between them.
//
// The launch is ours (posix_spawn, or fork/exec for a user switch) rather than Boost.Process
// v2's default_launcher, which in Boost
// 1.81 (1) leaves every descriptor between 3 and its error pipe open in the child
// (close_all compares a whitelist entry with itself), so sockets and other children's
// pipes leak into every child; (2) ends a child whose exec failed with exit(), running
// the agent's atexit handlers and flushing a second copy of its stdio buffers, and never
// reaps it; (3) calls io_context::notify_fork in the child, which rebuilds the epoll set
// (one epoll_ctl per registered descriptor, under Asio's locks) only to exec right after.
// Boost.Process v2 still does the waiting: its process handle waits on a pidfd, so the
// agent needs no process-wide SIGCHLD handler.
#include "agent/process.hpp"

#include <utility>

#include "agent/process_detail.hpp"

namespace linewire::agent {

std::unique_ptr<Process> Process::spawn(boost::asio::io_context& io, const ProcessSpec& spec,
                                        Callbacks callbacks, std::error_code& ec) {
  ec.clear();
  detail::Launched launched;
  if ((ec = detail::launch(spec, launched))) return nullptr;
  return detail::supervise(io, std::move(launched), std::move(callbacks), ec);
}

namespace {

class SystemLauncher final : public ProcessLauncher {
 public:
  std::unique_ptr<Process> launch(boost::asio::io_context& io, const ProcessSpec& spec,
                                  Process::Callbacks callbacks, std::error_code& ec) override {
    return Process::spawn(io, spec, std::move(callbacks), ec);
  }
};

}  // namespace

ProcessLauncher& system_launcher() {
  static SystemLauncher launcher;
  return launcher;
}

}  // namespace linewire::agent
