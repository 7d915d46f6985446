// A fake child process for the unit tests of Run and Agent: a FakeLauncher given to them
// in place of system_launcher() records every ProcessSpec and hands out FakeProcesses,
// which the test drives (output, exit) and inspects (signals, stdin, pauses). Like the
// real one, a FakeProcess calls back from the io_context, never from inside a call made
// to it: what the test makes it do is posted, and happens when the test runs the
// io_context (settle, run_for).
#pragma once

#include <spdlog/spdlog.h>
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "agent/process.hpp"

namespace linewire::test {

using agent::Process;
using agent::ProcessExit;
using agent::ProcessLauncher;
using agent::ProcessSpec;

// The agent logs every start and end at info: not in the test output.
inline const bool kQuietLogs = [] {
  spdlog::set_level(spdlog::level::err);
  return true;
}();

// One fake child: what the test sees of it and drives it with. Shared by the FakeProcess
// (owned by the Run, gone when the Run is) and the FakeLauncher (owned by the test), so
// that a test can still look at a child after its Run was destroyed.
class FakeChild : public std::enable_shared_from_this<FakeChild> {
 public:
  FakeChild(boost::asio::io_context& io, ProcessSpec launched, pid_t id,
            Process::Callbacks callbacks)
      : spec(std::move(launched)), pid(id), io_(io), callbacks_(std::move(callbacks)) {}

  // --- what the Run did to it
  const ProcessSpec spec;
  const pid_t pid;
  std::vector<int> signals;         // signal_group() while it ran, in order
  std::vector<std::string> writes;  // write_stdin() before close_stdin()
  bool stdin_closed = false;
  bool paused = false;
  int pauses = 0;
  int resumes = 0;
  bool destroyed = false;          // the Process handle is gone
  bool killed_on_destroy = false;  // ... while the child still ran (SIGKILL, like the real one)

  // --- how it behaves: these signals end it (posted, as the kernel would), others do
  // nothing unless the test makes it exit.
  std::set<int> dies_on;

  // --- what the test makes it do; each is posted and runs with the io_context.
  void out(std::string chunk) { post_output(&Process::Callbacks::on_stdout, std::move(chunk)); }
  void err(std::string chunk) { post_output(&Process::Callbacks::on_stderr, std::move(chunk)); }
  // Ends it with an exit code or by a signal: on_exit once, after every chunk posted
  // before. A second end (say KILL after TERM was already fatal) is ignored.
  void exit(int code) { end(ProcessExit{code, 0}); }
  void die(int sig) { end(ProcessExit{-1, sig}); }

  bool reaped() const { return reaped_; }
  bool ending() const { return ending_; }
  std::string stdin_data() const {
    std::string all;
    for (const auto& w : writes) all += w;
    return all;
  }
  // The signals sent to it, as their numbers, ignoring SIGCONT (a kill sends TERM + CONT).
  std::vector<int> signals_but_cont() const {
    std::vector<int> out;
    for (int s : signals)
      if (s != SIGCONT) out.push_back(s);
    return out;
  }

 private:
  friend class FakeProcess;

  void post_output(std::function<void(std::string_view)> Process::Callbacks::*sink,
                   std::string chunk) {
    boost::asio::post(io_, [self = shared_from_this(), sink, chunk = std::move(chunk)] {
      if (self->destroyed || self->reaped_) return;
      if (self->callbacks_.*sink) (self->callbacks_.*sink)(chunk);
    });
  }

  void end(ProcessExit exit) {
    if (ending_) return;
    ending_ = true;
    boost::asio::post(io_, [self = shared_from_this(), exit] {
      self->reaped_ = true;
      if (self->destroyed || !self->callbacks_.on_exit) return;
      // A copy: the owner may destroy the FakeProcess from inside on_exit.
      auto on_exit = self->callbacks_.on_exit;
      on_exit(exit);
    });
  }

  boost::asio::io_context& io_;
  Process::Callbacks callbacks_;
  bool ending_ = false;
  bool reaped_ = false;
};

// What the Run holds: every call goes to the shared FakeChild.
class FakeProcess final : public Process {
 public:
  explicit FakeProcess(std::shared_ptr<FakeChild> child) : child_(std::move(child)) {}
  FakeProcess(const FakeProcess&) = delete;
  FakeProcess& operator=(const FakeProcess&) = delete;
  ~FakeProcess() override {
    child_->destroyed = true;
    if (!child_->reaped_) child_->killed_on_destroy = true;
  }

  pid_t pid() const override { return child_->pid; }
  // Like the real one: ignored once stdin is closed or the child has ended.
  void write_stdin(std::string data) override {
    if (!child_->stdin_closed && !child_->reaped_ && !data.empty())
      child_->writes.push_back(std::move(data));
  }
  void close_stdin() override { child_->stdin_closed = true; }
  bool signal_group(int sig) override {
    if (child_->reaped_) return false;
    child_->signals.push_back(sig);
    if (child_->dies_on.count(sig)) child_->die(sig);
    return true;
  }
  void pause_output() override {
    child_->paused = true;
    ++child_->pauses;
  }
  void resume_output() override {
    child_->paused = false;
    ++child_->resumes;
  }
  bool running() const override { return !child_->reaped_; }

 private:
  std::shared_ptr<FakeChild> child_;
};

class FakeLauncher final : public ProcessLauncher {
 public:
  std::unique_ptr<Process> launch(boost::asio::io_context& io, const ProcessSpec& spec,
                                  Process::Callbacks callbacks, std::error_code& ec) override {
    specs.push_back(spec);
    if (fail_with_) {
      ec = *std::exchange(fail_with_, std::nullopt);
      return nullptr;
    }
    ec.clear();
    auto child = std::make_shared<FakeChild>(io, spec, next_pid_++, std::move(callbacks));
    child->dies_on = dies_on;
    children.push_back(child);
    return std::make_unique<FakeProcess>(std::move(child));
  }

  // The next launch fails with `ec` (and launches nothing).
  void fail_next(std::error_code ec) { fail_with_ = ec; }

  // The newest child; the test must have made one.
  FakeChild& last() { return *children.back(); }
  FakeChild& child(std::size_t i) { return *children.at(i); }

  std::vector<ProcessSpec> specs;                    // every launch asked for, failed ones too
  std::vector<std::shared_ptr<FakeChild>> children;  // every child handed out, in order
  std::set<int> dies_on;                             // given to each new child

 private:
  std::optional<std::error_code> fail_with_;
  // Above the largest pid_max Linux allows (4194304), so that no real process is ever
  // meant (the agent reads /proc/{pid}/stat for its state file).
  pid_t next_pid_ = 1 << 24;
};

// The io_context in bounded steps: whatever is ready now (settle), everything due within
// `d` (run_for), or until a condition holds (run_until).
inline void settle(boost::asio::io_context& io) {
  io.restart();
  io.poll();
}

// Time passes even when nothing is due (run_for alone returns at once without work).
inline void run_for(boost::asio::io_context& io, std::chrono::steady_clock::duration d) {
  const auto deadline = std::chrono::steady_clock::now() + d;
  io.restart();
  io.run_until(deadline);
  std::this_thread::sleep_until(deadline);
  settle(io);
}

// Runs the io_context in short slices until done() or `limit`; false on timeout.
template <typename Done>
bool run_until(boost::asio::io_context& io, Done done,
               std::chrono::steady_clock::duration limit = std::chrono::seconds(2)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  settle(io);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.restart();
    io.run_for(std::chrono::milliseconds(5));
    if (io.stopped()) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // no work
  }
  return true;
}

}  // namespace linewire::test
