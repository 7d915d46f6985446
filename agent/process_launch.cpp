// The launch of a run's child (SPEC §5.1): the spawn plan, made before the child exists
// (executable found in the child's PATH, user and groups looked up, pipes or the
// pseudo-terminal opened), then
// glibc's posix_spawn, or fork and exec for a user or group switch. process.cpp says why
// the launch is ours and not Boost.Process's default_launcher.
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "agent/process_detail.hpp"

namespace linewire::agent::detail {
namespace {

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

// stdout on a pseudo-terminal (`tty: true`, SPEC §5): `read` is the master, which the
// agent reads like the stdout pipe; `write` is the slave, which becomes the child's fd 1
// and nothing else (stdin and stderr stay pipes). Both O_CLOEXEC, like the pipes.
//
// The slave is deliberately NOT the child's controlling terminal (no setsid, no
// TIOCSCTTY), and O_NOCTTY keeps it from becoming the agent's (systemd starts the agent
// as a session leader without one, and such a process acquires the first terminal it
// opens without O_NOCTTY). isatty(1) is true without it, which is all that makes C
// stdio, Perl and the like write line by line. With it, the run would need a session of
// its own: no posix_spawn (which cannot make a terminal controlling), a SIGHUP to what
// the program left running when it exits (the session leader's exit hangs the terminal
// up), SIGTTOU/SIGTTIN stops of job control, and /dev/tty opening this terminal, whose
// input nobody writes: a program asking for a password there (ssh, sudo) would wait
// forever. Without it the run stays one process group in the agent's session, killed
// and recovered after a crash exactly like a run on pipes, and /dev/tty is not this
// terminal (under systemd, with no controlling terminal, opening it fails with ENXIO).
std::error_code make_pty(Pipe& pty) {
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (master.get() < 0) return errno_code(errno);
  if (::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0) return errno_code(errno);
  int slave = -1;
#ifdef TIOCGPTPEER
  // Linux 4.13: the slave opened through the master, with no lookup by name in /dev/pts
  // (which, in a container, may be another devpts instance than the master's).
  slave = ::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
#endif
  if (slave < 0) {
    std::array<char, 128> name{};
    if (const int rc = ::ptsname_r(master.get(), name.data(), name.size()); rc != 0)
      return errno_code(rc);
    slave = ::open(name.data(), O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) return errno_code(errno);
  }
  pty.write.reset(slave);
  // Raw: cfmakeraw turns OPOST off (no \n -> \r\n: the lines read like a pipe's) and
  // ECHO, ICANON, ISIG and IXON (nothing is typed into it anyway: stdin is a pipe). The
  // master side's own settings are raw on Linux and cannot be changed (termios calls on
  // the master act on the slave).
  struct termios mode {};
  if (::tcgetattr(slave, &mode) != 0) return errno_code(errno);
  ::cfmakeraw(&mode);
  mode.c_oflag &= ~static_cast<tcflag_t>(OPOST);
  if (::tcsetattr(slave, TCSANOW, &mode) != 0) return errno_code(errno);
  // 80x24 (SPEC §5) rather than a new terminal's 0x0.
  struct winsize size {};
  size.ws_row = 24;
  size.ws_col = 80;
  if (::ioctl(slave, TIOCSWINSZ, &size) != 0) return errno_code(errno);
  pty.read = std::move(master);
  return {};
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

// The user's entry, read once: its name (for getgrouplist) and its primary group.
struct UserEntry {
  std::string name;
  gid_t gid = 0;
};

std::optional<UserEntry> lookup_user(uid_t uid) {
  std::vector<char> buffer(4096);
  for (;;) {
    struct passwd pw {};
    struct passwd* found = nullptr;
    const int rc = ::getpwuid_r(uid, &pw, buffer.data(), buffer.size(), &found);
    if (rc == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (!found) return std::nullopt;
    return UserEntry{found->pw_name, found->pw_gid};
  }
}

// The supplementary groups of `user` with `gid` among them.
std::error_code user_groups(const std::string& user, gid_t gid, std::vector<gid_t>& groups) {
  int count = 32;
  for (;;) {
    groups.resize(static_cast<std::size_t>(count));
    const int previous = count;
    if (::getgrouplist(user.c_str(), gid, groups.data(), &count) >= 0) {
      groups.resize(static_cast<std::size_t>(count));
      return {};
    }
    if (count <= previous) count = previous * 2;  // some NSS modules leave it unchanged
    if (count > 65536) return errno_code(E2BIG);
  }
}

std::error_code plan_credentials(const ProcessSpec& spec, Credentials& creds) {
  creds.uid = spec.uid;
  creds.gid = spec.gid;
  if (!spec.uid && !spec.gid) return {};

  std::optional<UserEntry> user;
  if (spec.uid) {
    user = lookup_user(*spec.uid);
    if (user && !creds.gid) creds.gid = user->gid;
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
  return user_groups(user->name, *creds.gid, creds.groups);
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

std::error_code launch(const ProcessSpec& spec, Launched& launched) {
  std::error_code ec;
  std::string executable;
  if ((ec = resolve_executable(spec, executable))) return ec;
  Credentials creds;
  if ((ec = plan_credentials(spec, creds))) return ec;

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
  for (Pipe* pipe : {&in, &err}) {
    if ((ec = make_pipe(*pipe))) return ec;
  }
  if ((ec = spec.tty ? make_pty(out) : make_pipe(out))) return ec;
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
  if (pid < 0) return ec;
  // Both launches return after the child's exec, its own group already set; setting it
  // here too (EACCES once it has exec'd) covers an emulator that does not wait for the
  // exec (qemu-user runs CLONE_VFORK as a plain fork), so that signal_group() right
  // after spawn() still reaches it.
  ::setpgid(pid, pid);
  // Our copies of the child's ends must go, or the pipes would never reach end of file
  // (nor the pseudo-terminal's master its EIO).
  in.read.reset();
  out.write.reset();
  err.write.reset();

  launched.pid = pid;
  launched.stdin_write = std::move(in.write);
  launched.stdout_read = std::move(out.read);
  launched.stderr_read = std::move(err.read);
  return {};
}

}  // namespace linewire::agent::detail
