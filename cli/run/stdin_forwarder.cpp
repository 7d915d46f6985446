// Local stdin to a run's `in` and `eof`, on a thread of its own: see stdin_forwarder.hpp.
#include "cli/run/stdin_forwarder.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "cli/output/output.hpp"

namespace linewire::cli {

namespace {

// Lines in flight before reading pauses.
constexpr std::size_t kWindow = 64;
constexpr int kTick_ms = 100;

}  // namespace

StdinForwarder::StdinForwarder(Connection& connection, Requester& requester, std::string in_topic,
                               std::string eof_topic)
    : connection_(connection),
      requester_(requester),
      in_topic_(std::move(in_topic)),
      eof_topic_(std::move(eof_topic)) {}

StdinForwarder::~StdinForwarder() {
  try {
    stop();
  } catch (const std::system_error&) {
    // join() failed (cannot happen for a thread of ours); nothing may leave a destructor.
  }
}

void StdinForwarder::start() {
  thread_ = std::thread([this] { loop(); });
}

void StdinForwarder::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

bool StdinForwarder::send_line(std::string_view line) {
  while (!stop_) {
    if (connection_.wait_published(kWindow, Clock::now() + std::chrono::milliseconds(kTick_ms))) {
      requester_.line(in_topic_, line);
      return true;
    }
  }
  return false;
}

void StdinForwarder::loop() {
  try {
    std::string pending;
    char buf[65536];
    while (!stop_) {
      pollfd p{STDIN_FILENO, POLLIN, 0};
      int ready = ::poll(&p, 1, kTick_ms);
      if (ready < 0 && errno != EINTR) break;
      if (ready <= 0) continue;
      ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        break;  // as the end of input
      }
      if (n == 0) break;
      pending.append(buf, static_cast<std::size_t>(n));
      std::size_t start = 0;
      for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1)
        if (!send_line(std::string_view(pending).substr(start, nl - start))) return;
      pending.erase(0, start);
    }
    if (stop_) return;
    // A last line without a newline is still a line (the agent adds the newline).
    if (!pending.empty() && !send_line(pending)) return;
    requester_.eof(eof_topic_);
  } catch (const Failure& e) {
    note(std::string("stdin: ") + e.what());
  }
}

}  // namespace linewire::cli
