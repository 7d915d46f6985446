// Supervision of a launched child (SPEC §5.1, §5.2): its pipes read concurrently, stdin
// written in order, the process reaped through a pidfd (Boost.Process v2's process
// handle: no process-wide SIGCHLD handler), the linger after its exit, signals to its
// group, and flow control. All of it asynchronous on the agent's io_context.
#include <signal.h>
#include <sys/syscall.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/readable_pipe.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/writable_pipe.hpp>
#include <boost/asio/write.hpp>
// error.hpp first: in 1.81, including exit_code.hpp (via process_handle.hpp) before it
// breaks the header-only build (impl/error.ipp then misses detail::still_active).
#include <boost/process/v2/error.hpp>
#include <boost/process/v2/process_handle.hpp>
#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <utility>

#include "agent/process_detail.hpp"

namespace linewire::agent::detail {
namespace {

namespace asio = boost::asio;
namespace bp = boost::process::v2;

using boost::system::error_code;

// Typed on the io_context's executor rather than any_io_executor: no type erasure on
// every operation (and GCC 12's -Wnull-dereference trips over any_io_executor's
// comparison when inlined at -O2).
using Executor = asio::io_context::executor_type;
using ReadablePipe = asio::basic_readable_pipe<Executor>;
using WritablePipe = asio::basic_writable_pipe<Executor>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;
using WaitHandle = bp::basic_process_handle<Executor>;

constexpr std::size_t kReadChunk = 16 * 1024;
// How long the pipes may stay open after the process exited before its group is killed;
// the same again after that kill before we stop waiting for them (see on_linger).
constexpr auto kLinger = std::chrono::seconds(1);

// The state of one child, shared between the public handle and the pending asynchronous
// operations: each handler holds a shared_ptr, so the object outlives the handle until
// the child is reaped and no handler can touch freed memory.
class Child : public std::enable_shared_from_this<Child> {
 public:
  Child(asio::io_context& io, pid_t pid, Process::Callbacks callbacks)
      : io_(io),
        pid_(pid),
        callbacks_(std::move(callbacks)),
        stdin_(io.get_executor()),
        stdout_(io, &Process::Callbacks::on_stdout),
        stderr_(io, &Process::Callbacks::on_stderr),
        linger_(io.get_executor()) {}

  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Only when the io_context goes away with the wait still pending (its handlers are
  // destroyed, not run): the child must not outlive us as a zombie.
  ~Child() {
    if (started_ && !reaped_) {
      ::kill(-pid_, SIGKILL);
      reap_now(pid_);
    }
  }

  // Takes over the parent's ends of the pipes and the pidfd, and starts reading and
  // waiting. On failure the caller calls abandon().
  std::error_code start(UniqueFd in, UniqueFd out, UniqueFd err, UniqueFd pidfd) {
    error_code ec;
    stdin_.assign(in.get(), ec);
    if (ec) return ec;
    in.release();
    stdout_.pipe.assign(out.get(), ec);
    if (ec) return ec;
    out.release();
    stderr_.pipe.assign(err.get(), ec);
    if (ec) return ec;
    err.release();
    try {
      wait_.emplace(io_.get_executor(), pid_, pidfd.get());
    } catch (const boost::system::system_error& e) {
      return e.code();
    }
    pidfd.release();
    started_ = true;

    wait_->async_wait([self = shared_from_this()](const error_code& wait_ec, int status) {
      self->on_reaped(wait_ec, status);
    });
    read_more(stdout_);
    read_more(stderr_);
    return {};
  }

  // start() failed: the child runs but nothing watches it.
  void abandon() {
    ::kill(-pid_, SIGKILL);
    reap_now(pid_);
    reaped_ = true;
  }

  // The public handle is gone: kill what still runs, stop all I/O, call back no more. The
  // pending wait keeps this object alive until the reap.
  void detach() {
    detached_ = true;
    if (callback_depth_ == 0) callbacks_ = {};
    // Before on_exit the group may still have members: the child, or after its reap the
    // descendants that hold the pipes (the group ID cannot be reused while they live).
    if (!finished_) ::kill(-pid_, SIGKILL);
    linger_.cancel();
    close_stdin_now();
    close_output(stdout_);
    close_output(stderr_);
  }

  pid_t pid() const { return pid_; }
  bool running() const { return !reaped_; }

  bool signal_group(int sig) {
    // After the reap the group ID may already belong to someone else.
    if (reaped_) return false;
    return ::kill(-pid_, sig) == 0;
  }

  void write_stdin(std::string data) {
    if (stdin_closing_ || !stdin_.is_open() || data.empty()) return;
    stdin_queue_.push_back(std::move(data));
    write_next();
  }

  void close_stdin() {
    stdin_closing_ = true;
    write_next();
  }

  void pause_output() {
    paused_ = true;
    paused_since_linger_ = true;
  }

  void resume_output() {
    if (!paused_) return;
    paused_ = false;
    read_more(stdout_);
    read_more(stderr_);
  }

 private:
  using Sink = std::function<void(std::string_view)> Process::Callbacks::*;

  struct Output {
    Output(asio::io_context& io, Sink s) : pipe(io.get_executor()), sink(s) {}
    ReadablePipe pipe;
    Sink sink;
    bool reading = false;
    bool eof = false;
    std::array<char, kReadChunk> buffer;  // reused by every read
  };

  // The owner may destroy the Process from inside any callback. The callbacks are then
  // released only once the outermost one has returned: destroying a std::function while
  // it runs is undefined.
  template <typename Fn, typename Arg>
  void notify(const Fn& fn, Arg arg) {
    if (detached_ || !fn) return;
    struct Depth {
      Child& child;
      explicit Depth(Child& c) : child(c) { ++child.callback_depth_; }
      ~Depth() {
        if (--child.callback_depth_ == 0 && child.detached_) child.callbacks_ = {};
      }
      Depth(const Depth&) = delete;
      Depth& operator=(const Depth&) = delete;
    } depth(*this);
    fn(arg);
  }

  // One read in flight per stream, both streams always: draining one before the other
  // would hang on a child that fills the other pipe first.
  void read_more(Output& out) {
    if (out.reading || out.eof || paused_ || detached_) return;
    out.reading = true;
    out.pipe.async_read_some(asio::buffer(out.buffer), [self = shared_from_this(), &out](
                                                           const error_code& ec, std::size_t n) {
      self->on_read(out, ec, n);
    });
  }

  void on_read(Output& out, const error_code& ec, std::size_t n) {
    out.reading = false;
    if (n > 0) {
      bytes_read_ += n;
      notify(callbacks_.*out.sink, std::string_view(out.buffer.data(), n));
    }
    if (ec) {
      // End of file, or the pipe was closed by detach() or on_linger(), or a read error:
      // all of them end the stream. A pseudo-terminal's master (`tty`) has no end of
      // file: once every descriptor of its slave is closed, reads give EIO, but only
      // after everything written before the close has been read (Linux flushes the
      // pending input first), so EIO is its end of file and loses nothing.
      out.eof = true;
      error_code ignored;
      out.pipe.close(ignored);
      maybe_finish();
      return;
    }
    read_more(out);
  }

  // Closes our end of an output pipe; a pending read completes as aborted and marks the
  // end of file then.
  void close_output(Output& out) {
    error_code ignored;
    out.pipe.close(ignored);
    if (!out.reading) out.eof = true;
  }

  void on_reaped(const error_code& ec, int status) {
    reaped_ = true;
    // An error (ECHILD) means someone else reaped it, for example because the agent set
    // SIGCHLD to SIG_IGN: the status is lost, exit_ stays {-1, 0}.
    if (!ec) {
      if (WIFEXITED(status)) {
        exit_.exit_code = WEXITSTATUS(status);
      } else if (WIFSIGNALED(status)) {
        exit_.signal = WTERMSIG(status);
      }
    }
    // Close the pidfd now rather than with the handle; not from inside the handle's own
    // completion, though.
    asio::post(io_, [self = shared_from_this()] { self->wait_.reset(); });
    if (!stdout_.eof || !stderr_.eof) {
      bytes_at_linger_ = bytes_read_;
      paused_since_linger_ = paused_;
      arm_linger();
    }
    maybe_finish();
  }

  void arm_linger() {
    if (detached_ || finished_) return;
    linger_.expires_after(kLinger);
    linger_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->on_linger();
    });
  }

  // The process exited but its pipes are still open: a descendant holds them. First kill
  // the group so that they close. If they are still open after that, the holder has left
  // the group (setsid); stop waiting once the pipes have been idle for a whole period
  // in which we were reading all along (a pending read would have taken any byte still
  // in the pipe, so closing loses nothing).
  void on_linger() {
    if (detached_ || finished_) return;
    if (!group_killed_) {
      group_killed_ = true;
      ::kill(-pid_, SIGKILL);
    } else if (!paused_since_linger_ && bytes_read_ == bytes_at_linger_) {
      close_output(stdout_);
      close_output(stderr_);
      maybe_finish();
      return;
    }
    bytes_at_linger_ = bytes_read_;
    paused_since_linger_ = paused_;
    arm_linger();
  }

  // on_exit comes once, after the reap and both ends of file, so that every byte has been
  // delivered before it.
  void maybe_finish() {
    if (finished_ || !reaped_ || !stdout_.eof || !stderr_.eof) return;
    finished_ = true;
    linger_.cancel();
    close_stdin_now();
    notify(callbacks_.on_exit, exit_);
  }

  // One write in flight, the rest queued behind it in order.
  void write_next() {
    if (writing_) return;
    if (!stdin_.is_open()) {
      stdin_queue_.clear();
      return;
    }
    if (stdin_queue_.empty()) {
      if (stdin_closing_) close_stdin_now();
      return;
    }
    writing_ = true;
    // SIGPIPE is ignored in the agent (main), so a child that closed its stdin shows up
    // here as EPIPE instead of killing us.
    asio::async_write(
        stdin_, asio::buffer(stdin_queue_.front()),
        [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_written(ec); });
  }

  void on_written(const error_code& ec) {
    writing_ = false;
    if (ec) {
      // EPIPE (the child no longer reads its stdin) or aborted by close: nobody will take
      // the rest.
      close_stdin_now();
      stdin_queue_.clear();
      return;
    }
    stdin_queue_.pop_front();
    write_next();
  }

  void close_stdin_now() {
    stdin_closing_ = true;
    error_code ignored;
    stdin_.close(ignored);
    // A write in flight still owns the front string until its handler runs.
    if (!writing_) stdin_queue_.clear();
  }

  asio::io_context& io_;
  const pid_t pid_;
  Process::Callbacks callbacks_;
  WritablePipe stdin_;
  Output stdout_;
  Output stderr_;
  std::optional<WaitHandle> wait_;
  Timer linger_;
  std::deque<std::string> stdin_queue_;
  ProcessExit exit_;
  std::size_t bytes_read_ = 0;
  std::size_t bytes_at_linger_ = 0;
  int callback_depth_ = 0;
  bool started_ = false;
  bool reaped_ = false;
  bool finished_ = false;  // on_exit was called (or is due to no one)
  bool detached_ = false;
  bool paused_ = false;
  bool writing_ = false;
  bool stdin_closing_ = false;
  bool group_killed_ = false;
  bool paused_since_linger_ = false;  // paused at any time in the current linger period
};

// What the owner holds; destroying it detaches the shared state.
class ChildHandle final : public Process {
 public:
  explicit ChildHandle(std::shared_ptr<Child> child) : child_(std::move(child)) {}
  ChildHandle(const ChildHandle&) = delete;
  ChildHandle& operator=(const ChildHandle&) = delete;
  ~ChildHandle() override { child_->detach(); }

  pid_t pid() const override { return child_->pid(); }
  void write_stdin(std::string data) override { child_->write_stdin(std::move(data)); }
  void close_stdin() override { child_->close_stdin(); }
  bool signal_group(int sig) override { return child_->signal_group(sig); }
  void pause_output() override { child_->pause_output(); }
  void resume_output() override { child_->resume_output(); }
  bool running() const override { return child_->running(); }

 private:
  std::shared_ptr<Child> child_;
};

}  // namespace

std::unique_ptr<Process> supervise(asio::io_context& io, Launched launched,
                                   Process::Callbacks callbacks, std::error_code& ec) {
  const pid_t pid = launched.pid;
  // A pidfd lets Boost.Process wait without SIGCHLD; opening it is race-free because the
  // child cannot be reaped before we wait for it. Needs Linux 5.3.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (pidfd.get() < 0) {
    ec = errno_code(errno);
    ::kill(-pid, SIGKILL);
    reap_now(pid);
    return nullptr;
  }

  auto child = std::make_shared<Child>(io, pid, std::move(callbacks));
  if ((ec = child->start(std::move(launched.stdin_write), std::move(launched.stdout_read),
                         std::move(launched.stderr_read), std::move(pidfd)))) {
    child->abandon();
    return nullptr;
  }
  return std::make_unique<ChildHandle>(std::move(child));
}

}  // namespace linewire::agent::detail
