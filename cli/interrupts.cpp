// Signal handlers that only count SIGINT, SIGTERM and SIGHUP: see interrupts.hpp.
#include "cli/interrupts.hpp"

#include <atomic>
#include <csignal>

namespace linewire::cli {

namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
std::atomic<int> arrived[3];
int taken[3];

extern "C" void on_signal(int sig) {
  for (int i = 0; i < 3; ++i)
    if (kSignals[i] == sig) arrived[i].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : kSignals) sigaction(sig, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

std::optional<int> take_interrupt() {
  for (int i = 0; i < 3; ++i) {
    if (arrived[i].load(std::memory_order_relaxed) > taken[i]) {
      ++taken[i];
      return kSignals[i];
    }
  }
  return std::nullopt;
}

}  // namespace linewire::cli
