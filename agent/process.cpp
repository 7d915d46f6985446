// Child processes of runs (SPEC §5): own process group, stdio on pipes, reaped
// asynchronously on the agent's io_context.
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

#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <utility>

namespace linewire::agent {
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

std::error_code errno_code(int err) { return {err, std::system_category()}; }

// Owns one file descriptor, so that every early return of spawn() closes what it opened.
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

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

// O_CLOEXEC on both ends: a child started meanwhile by another thread must not inherit
// them; the child's ends lose it through dup2 onto 0, 1 and 2.
std::error_code make_pipe(Pipe& pipe) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno_code(errno);
  pipe.read.reset(fds[0]);
  pipe.write.reset(fds[1]);
  return {};
}

// Waits for a child that is known to be exiting (exec failed, or it was just killed).
void reap_now(pid_t pid) {
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

// The PATH a bare name is looked up in: the child's own, else the agent's.
std::string search_path(const std::vector<std::string>& env) {
  for (const auto& entry : env) {
    if (entry.starts_with("PATH=")) return entry.substr(5);
  }
  if (const char* path = std::getenv("PATH")) return path;
  return "/usr/local/bin:/usr/bin:/bin";
}

// execvp's search, done before fork because the child may not allocate, and with the
// child's PATH rather than the agent's. Relative PATH entries (and an empty one, meaning
// ".") are relative to the child's working directory, so they are checked there.
std::error_code resolve_executable(const ProcessSpec& spec, std::string& resolved) {
  const std::string& name = spec.executable;
  if (name.empty()) return errno_code(ENOENT);
  if (name.find('/') != std::string::npos) {
    resolved = name;
    return {};
  }
  const std::string path = search_path(spec.env);
  bool denied = false;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t end = path.find(':', begin);
    std::string dir = path.substr(begin, end == std::string::npos ? end : end - begin);
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    const std::string probe =
        candidate.front() != '/' && !spec.cwd.empty() ? spec.cwd + "/" + candidate : candidate;
    struct stat st {};
    if (::stat(probe.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::faccessat(AT_FDCWD, probe.c_str(), X_OK, AT_EACCESS) == 0) {
        resolved = std::move(candidate);
        return {};
      }
      denied = true;  // like execvp: EACCES if something was found but not executable
    }
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return errno_code(denied ? EACCES : ENOENT);
}

// What the child switches to; computed before fork (getpwuid_r and getgrouplist read
// files and allocate, which the child must not do).
struct Credentials {
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  bool set_groups = false;
  // False when the "switch" is to the agent's own ids: an unprivileged agent may do
  // that, and its setgroups fails with EPERM, which is then harmless.
  bool groups_required = false;
  std::vector<gid_t> groups;
};

std::error_code plan_credentials(const ProcessSpec& spec, Credentials& creds) {
  creds.uid = spec.uid;
  creds.gid = spec.gid;
  if (!spec.uid && !spec.gid) return {};

  std::optional<std::string> user;
  if (spec.uid) {
    std::vector<char> buffer(4096);
    for (;;) {
      struct passwd pw {};
      struct passwd* found = nullptr;
      const int rc = ::getpwuid_r(*spec.uid, &pw, buffer.data(), buffer.size(), &found);
      if (rc == ERANGE && buffer.size() < (1u << 20)) {
        buffer.resize(buffer.size() * 2);
        continue;
      }
      if (found) {
        user = found->pw_name;
        if (!creds.gid) creds.gid = found->pw_gid;
      }
      break;
    }
    // Switching the user but not the group would leave the child in the agent's group.
    if (!creds.gid) return errno_code(EINVAL);
  }

  // Supplementary groups: the user's own (like login, su or systemd's User=), so that a
  // user in "dialout" can open a serial port; the agent's must not reach the child.
  creds.set_groups = true;
  const bool same_uid = !creds.uid || (*creds.uid == ::getuid() && *creds.uid == ::geteuid());
  const bool same_gid = *creds.gid == ::getgid() && *creds.gid == ::getegid();
  creds.groups_required = !(same_uid && same_gid);
  if (!user) {
    creds.groups = {*creds.gid};
    return {};
  }
  int count = 32;
  for (;;) {
    creds.groups.resize(static_cast<std::size_t>(count));
    const int previous = count;
    if (::getgrouplist(user->c_str(), *creds.gid, creds.groups.data(), &count) >= 0) {
      creds.groups.resize(static_cast<std::size_t>(count));
      return {};
    }
    if (count <= previous) count = previous * 2;  // some NSS modules leave it unchanged
    if (count > 65536) return errno_code(E2BIG);
  }
}

// Everything the child needs, prepared before fork: between fork and exec only
// async-signal-safe calls are allowed (other threads of the agent may have held locks,
// malloc's included, at the moment of the fork).
struct ChildPlan {
  const char* executable;
  char* const* argv;
  char* const* envp;
  const char* cwd;  // nullptr: inherit
  const Credentials* creds;
  std::array<int, 3> stdio;  // becomes 0, 1, 2
  int report_fd;             // gets errno if anything fails before exec
};

// Tells the parent why and ends the child: _exit, not exit, so that none of the agent's
// atexit handlers run and its stdio buffers are not flushed a second time.
[[noreturn]] void child_fail(int report_fd) noexcept {
  const int err = errno;
  while (::write(report_fd, &err, sizeof err) < 0 && errno == EINTR) {
  }
  ::_exit(127);
}

void close_fd_range(unsigned first, unsigned last) noexcept {
  if (first > last || ::close_range(first, last, 0) == 0) return;
  // Kernels before 5.9: one close() per possible descriptor.
  unsigned limit = 65536;
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    limit = static_cast<unsigned>(std::min<rlim_t>(rl.rlim_cur, 1u << 20));
  }
  for (unsigned fd = first; fd <= last && fd < limit; ++fd) ::close(static_cast<int>(fd));
}

[[noreturn]] void exec_child(ChildPlan plan) noexcept {
  // Dispositions back to default before unblocking (spawn blocked everything across the
  // fork): a handler of the agent's (Asio's signal_set) must not run here, where it would
  // write into the pipe it shares with the agent, and an ignored SIGPIPE would survive
  // exec. A signal that arrived meanwhile is delivered now, with its default action.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &default_action, nullptr);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (::setpgid(0, 0) != 0) child_fail(plan.report_fd);

  // dup2 onto 0-2 below would clobber a source that already sits there (the agent started
  // with a closed stdio descriptor), or leave it FD_CLOEXEC, so move low ones up first.
  auto lift = [&plan](int& fd) {
    if (fd < 3 && (fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) child_fail(plan.report_fd);
  };
  lift(plan.report_fd);
  for (int& fd : plan.stdio) lift(fd);
  for (int target = 0; target < 3; ++target) {
    if (::dup2(plan.stdio[static_cast<std::size_t>(target)], target) < 0) {
      child_fail(plan.report_fd);
    }
  }
  // The agent's descriptors without O_CLOEXEC (Asio opens sockets without it) must not
  // reach the child. The report pipe stays: it has O_CLOEXEC and tells the parent that
  // exec succeeded by closing.
  const auto report = static_cast<unsigned>(plan.report_fd);
  close_fd_range(3, report - 1);
  close_fd_range(report + 1, ~0u);

  // Group before user: once the uid is switched, the right to change groups is gone.
  const Credentials& creds = *plan.creds;
  if (creds.set_groups && ::setgroups(creds.groups.size(), creds.groups.data()) != 0 &&
      creds.groups_required) {
    child_fail(plan.report_fd);
  }
  if (creds.gid && ::setgid(*creds.gid) != 0) child_fail(plan.report_fd);
  if (creds.uid && ::setuid(*creds.uid) != 0) child_fail(plan.report_fd);
  // After the switch, so that the directory is entered with the child's own rights.
  if (plan.cwd && ::chdir(plan.cwd) != 0) child_fail(plan.report_fd);

  ::execve(plan.executable, plan.argv, plan.envp);
  child_fail(plan.report_fd);
}

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
      // all of them end the stream.
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

// glibc's sigfillset leaves out its internal signals (32 and 33: thread cancellation and
// the set*id broadcast), and glibc 2.36's posix_spawn then sets them to SIG_IGN in the
// child, an ignore that survives exec (the unit test reads SigIgn 0x180000000). With their
// bits set by hand in the "set to default" mask they get SIG_DFL, as after exec_child.
// sigset_t is glibc's bit array there: signal n is bit n - 1.
void add_libc_internal_signals(sigset_t& set) {
  constexpr int kBits = 8 * sizeof set.__val[0];
  for (int sig = 32; sig < SIGRTMIN; ++sig)
    set.__val[(sig - 1) / kBits] |= 1UL << ((sig - 1) % kBits);
}

// The child through glibc's posix_spawn: clone(CLONE_VM | CLONE_VFORK) under the hood, so
// no page tables are copied and the parent takes no copy-on-write faults afterwards.
// fork() of the agent cost ~9 ms per run on a 2-vCPU VM (perf: page-table copies, the
// faults that follow, TLB flushes: bench/README.md, "Fleet"), and the io_context waits
// for it. The child does what exec_child does: own group, default dispositions, empty
// mask, the pipes on 0-2, nothing else open, the run's folder. Exec errors come back as
// posix_spawn's result; glibc reaps a child whose exec failed.
pid_t posix_spawn_exec(const ChildPlan& plan, std::error_code& ec) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attr);
  for (int target = 0; target < 3; ++target)
    ::posix_spawn_file_actions_adddup2(&actions, plan.stdio[static_cast<std::size_t>(target)],
                                       target);
  ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (plan.cwd) ::posix_spawn_file_actions_addchdir_np(&actions, plan.cwd);
  sigset_t all, none;
  ::sigfillset(&all);
  add_libc_internal_signals(all);
  ::sigemptyset(&none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setpgroup(&attr, 0);
  ::posix_spawnattr_setflags(
      &attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, plan.executable, &actions, &attr, plan.argv, plan.envp);
  ::posix_spawnattr_destroy(&attr);
  ::posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ec = errno_code(rc);
    return -1;
  }
  return pid;
}

// The child through fork and exec_child, for what posix_spawn cannot do. Returns once the
// child has exec'd (its report pipe closes empty) or failed (the pipe carries errno).
pid_t fork_exec(ChildPlan plan, std::error_code& ec) {
  Pipe report;
  if ((ec = make_pipe(report))) return -1;
  plan.report_fd = report.write.get();

  // Every signal blocked across the fork, so that none is handled in the child by the
  // agent's handlers before exec_child has reset them.
  sigset_t all, previous;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  const pid_t pid = ::fork();
  if (pid == 0) exec_child(plan);
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0) {
    ec = errno_code(fork_errno);
    return -1;
  }
  report.write.reset();

  int child_errno = 0;
  ssize_t got;
  while ((got = ::read(report.read.get(), &child_errno, sizeof child_errno)) < 0 &&
         errno == EINTR) {
  }
  if (got != 0) {
    if (got < 0) {
      child_errno = errno;
      ::kill(pid, SIGKILL);
    }
    reap_now(pid);
    ec = errno_code(child_errno);
    return -1;
  }
  return pid;
}

}  // namespace

std::unique_ptr<Process> Process::spawn(asio::io_context& io, const ProcessSpec& spec,
                                        Callbacks callbacks, std::error_code& ec) {
  ec.clear();
  std::string executable;
  if ((ec = resolve_executable(spec, executable))) return nullptr;
  Credentials creds;
  if ((ec = plan_credentials(spec, creds))) return nullptr;

  // execve wants char* const[]; it does not write through them.
  std::vector<char*> argv;
  argv.reserve(spec.args.size() + 2);
  argv.push_back(const_cast<char*>(spec.executable.c_str()));
  for (const auto& arg : spec.args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(spec.env.size() + 1);
  for (const auto& entry : spec.env) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);

  Pipe in, out, err;
  for (Pipe* pipe : {&in, &out, &err}) {
    if ((ec = make_pipe(*pipe))) return nullptr;
  }
  const ChildPlan plan{executable.c_str(),
                       argv.data(),
                       envp.data(),
                       spec.cwd.empty() ? nullptr : spec.cwd.c_str(),
                       &creds,
                       {in.read.get(), out.write.get(), err.write.get()},
                       -1};
  // posix_spawn whenever it can do the whole job; fork for a user or group switch, which
  // posix_spawn cannot do, and for the rare agent started with stdio closed (a pipe end
  // below 3 would be clobbered by the dup2 onto 0-2 before it is read).
  const bool low_fd =
      std::any_of(plan.stdio.begin(), plan.stdio.end(), [](int fd) { return fd < 3; });
  const pid_t pid =
      (creds.uid || creds.gid || low_fd) ? fork_exec(plan, ec) : posix_spawn_exec(plan, ec);
  if (pid < 0) return nullptr;
  // Both launches return after the child's exec, its own group already set; setting it
  // here too (EACCES once it has exec'd) covers an emulator that does not wait for the
  // exec (qemu-user runs CLONE_VFORK as a plain fork), so that signal_group() right
  // after spawn() still reaches it.
  ::setpgid(pid, pid);
  // Our copies of the child's ends must go, or the pipes would never reach end of file.
  in.read.reset();
  out.write.reset();
  err.write.reset();

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
  if ((ec = child->start(std::move(in.write), std::move(out.read), std::move(err.read),
                         std::move(pidfd)))) {
    child->abandon();
    return nullptr;
  }
  return std::make_unique<ChildHandle>(std::move(child));
}

namespace {

class SystemLauncher final : public ProcessLauncher {
 public:
  std::unique_ptr<Process> launch(asio::io_context& io, const ProcessSpec& spec,
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
