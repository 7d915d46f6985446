// The child-process runner against real children (/bin/sh and coreutils). Every wait is
// bounded: the io_context runs in short slices until a condition holds or a deadline
// passes.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/process.hpp"

using namespace linewire::agent;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// The agent ignores SIGPIPE (main); so does this test binary, or a write to a child
// that closed its stdin would kill it.
const bool sigpipe_ignored = [] {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  return ::sigaction(SIGPIPE, &ignore, nullptr) == 0;
}();

struct Captured {
  std::string out;
  std::string err;
  std::optional<ProcessExit> exit;
  int exits = 0;
  std::size_t bytes_at_exit = 0;  // on_exit must come after the last byte
};

Process::Callbacks capture(Captured& c) {
  Process::Callbacks cb;
  cb.on_stdout = [&c](std::string_view s) { c.out.append(s); };
  cb.on_stderr = [&c](std::string_view s) { c.err.append(s); };
  cb.on_exit = [&c](ProcessExit e) {
    c.exit = e;
    ++c.exits;
    c.bytes_at_exit = c.out.size() + c.err.size();
  };
  return cb;
}

ProcessSpec command(std::string executable, std::vector<std::string> args = {}) {
  ProcessSpec spec;
  spec.executable = std::move(executable);
  spec.args = std::move(args);
  spec.env = {"PATH=/usr/bin:/bin"};
  return spec;
}

ProcessSpec shell(std::string script) { return command("/bin/sh", {"-c", std::move(script)}); }

// The same with stdout on a pseudo-terminal (`tty: true`).
ProcessSpec with_tty(ProcessSpec spec) {
  spec.tty = true;
  return spec;
}

// Runs the io_context in slices until done() or the deadline; false on timeout.
template <typename Done>
bool run_until(boost::asio::io_context& io, Done done, Clock::duration limit = 10s) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    io.restart();
    io.run_for(10ms);
    if (io.stopped() && !done()) std::this_thread::sleep_for(1ms);  // out of work
  }
  return true;
}

void run_for(boost::asio::io_context& io, Clock::duration d) {
  io.restart();
  io.run_for(d);
}

std::unique_ptr<Process> start(boost::asio::io_context& io, const ProcessSpec& spec, Captured& c) {
  std::error_code ec;
  auto p = Process::spawn(io, spec, capture(c), ec);
  INFO(spec.executable << ": " << ec.message());
  REQUIRE(p);
  REQUIRE_FALSE(ec);
  return p;
}

// Runs a command to its end.
Captured run(const ProcessSpec& spec, Clock::duration limit = 10s) {
  boost::asio::io_context io;
  Captured c;
  auto p = start(io, spec, c);
  const pid_t pid = p->pid();
  REQUIRE(run_until(
      io, [&] { return c.exit.has_value(); }, limit));
  CHECK_FALSE(p->running());
  // Reaped by the runner: nothing left for anyone to wait for.
  errno = 0;
  CHECK(::waitpid(pid, nullptr, WNOHANG) == -1);
  CHECK(errno == ECHILD);
  return c;
}

int count_open_fds() {
  int n = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  REQUIRE(dir);
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n - 1;  // the directory's own descriptor
}

struct ProcStat {
  char state;
  pid_t pgrp;
};

// State and process group of a process, from /proc/PID/stat; nullopt if it is gone.
std::optional<ProcStat> proc_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  ProcStat st{};
  pid_t ppid = 0;
  rest >> st.state >> ppid >> st.pgrp;
  return st;
}

// Gone or a zombie (an orphaned descendant is reaped by PID 1, whenever that gets to it).
bool dead(pid_t pid) {
  auto st = proc_stat(pid);
  return !st || st->state == 'Z';
}

bool group_has_live_members(pid_t pgid) {
  DIR* dir = ::opendir("/proc");
  REQUIRE(dir);
  bool found = false;
  while (const dirent* e = ::readdir(dir)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    auto st = proc_stat(pid);
    if (st && st->pgrp == pgid && st->state != 'Z') found = true;
  }
  ::closedir(dir);
  return found;
}

// Polls a condition that another process's death makes true (SIGKILL is delivered
// asynchronously: a killed process may still show as running for a moment).
template <typename Cond>
bool eventually(Cond cond, Clock::duration limit = 2s) {
  const auto deadline = Clock::now() + limit;
  while (!cond()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// No zombie among our children: waitpid(-1) finds nothing to reap.
bool no_zombie_children() {
  errno = 0;
  const pid_t r = ::waitpid(-1, nullptr, WNOHANG);
  return r == 0 || (r == -1 && errno == ECHILD);
}

}  // namespace

TEST_CASE("stdout and stderr are captured completely and separately", "[process]") {
  REQUIRE(sigpipe_ignored);
  auto c = run(shell("echo out; echo err >&2; echo out2; printf 'no newline' >&2"));
  CHECK(c.out == "out\nout2\n");
  CHECK(c.err == "err\nno newline");
  CHECK(c.exits == 1);
  CHECK(c.exit->exit_code == 0);
  CHECK(c.exit->signal == 0);
}

TEST_CASE("the exit code is reported", "[process]") {
  auto c = run(shell("exit 3"));
  CHECK(c.exit->exit_code == 3);
  CHECK(c.exit->signal == 0);
}

TEST_CASE("a signal that ended the process is reported", "[process]") {
  SECTION("TERM from the child itself") {
    auto c = run(shell("kill -TERM $$"));
    CHECK(c.exit->signal == 15);
    CHECK(c.exit->exit_code == -1);
  }
  SECTION("KILL through signal_group") {
    boost::asio::io_context io;
    Captured c;
    auto p = start(io, command("/bin/sleep", {"30"}), c);
    CHECK(p->running());
    CHECK(p->signal_group(SIGKILL));
    REQUIRE(run_until(io, [&] { return c.exit.has_value(); }));
    CHECK(c.exit->signal == 9);
    CHECK_FALSE(p->running());
    CHECK_FALSE(p->signal_group(SIGTERM));  // already reaped
  }
}

TEST_CASE("the child gets its own process group, default signals and an empty mask", "[process]") {
  SECTION("process group") {
    boost::asio::io_context io;
    Captured c;
    auto p = start(io, command("/bin/cat", {"/proc/self/stat"}), c);
    REQUIRE(run_until(io, [&] { return c.exit.has_value(); }));
    std::istringstream rest(c.out.substr(c.out.rfind(')') + 2));
    char state = 0;
    pid_t ppid = 0, pgrp = 0;
    rest >> state >> ppid >> pgrp;
    CHECK(pgrp == p->pid());
    CHECK(ppid == ::getpid());
  }
  SECTION("signals") {
    // The agent ignores SIGPIPE and may block signals; none of it may reach the child.
    sigset_t usr1, previous;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    REQUIRE(::pthread_sigmask(SIG_BLOCK, &usr1, &previous) == 0);
    auto c = run(command("/bin/grep", {"-E", "^Sig(Blk|Ign)", "/proc/self/status"}));
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    CHECK(c.out == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
  }
}

TEST_CASE("stdin is written in order and close_stdin ends it", "[process]") {
  boost::asio::io_context io;
  Captured c;
  auto p = start(io, command("/bin/cat"), c);
  p->write_stdin("one\n");
  p->write_stdin("");
  p->write_stdin("two\n");
  REQUIRE(run_until(io, [&] { return c.out == "one\ntwo\n"; }));
  CHECK(p->running());  // cat waits for more
  p->write_stdin(std::string(200000, 'x'));
  p->close_stdin();
  p->write_stdin("ignored after close\n");
  REQUIRE(run_until(io, [&] { return c.exit.has_value(); }));
  CHECK(c.out == "one\ntwo\n" + std::string(200000, 'x'));
  CHECK(c.exit->exit_code == 0);
}

TEST_CASE("a child that closed its stdin does not break the writer", "[process]") {
  boost::asio::io_context io;
  Captured c;
  auto p = start(io, shell("exec 0<&-; sleep 0.2; echo done"), c);
  p->write_stdin(std::string(1 << 20, 'x'));  // more than a pipe holds: EPIPE
  p->write_stdin("more\n");
  REQUIRE(run_until(io, [&] { return c.exit.has_value(); }));
  p->write_stdin("after the end\n");
  p->close_stdin();
  CHECK(c.out == "done\n");
  CHECK(c.exit->exit_code == 0);
}

TEST_CASE("large output is delivered exactly", "[process]") {
  auto c = run(command("/usr/bin/head", {"-c", "5000000", "/dev/zero"}));
  CHECK(c.out.size() == 5000000);
  CHECK(c.out.find_first_not_of('\0') == std::string::npos);
  CHECK(c.bytes_at_exit == 5000000);
  CHECK(c.exit->exit_code == 0);
}

TEST_CASE("a full stderr pipe does not stall stdout", "[process]") {
  // Writes far more than a pipe holds to stderr before and after stdout: a reader that
  // drained one stream before the other would hang.
  auto c =
      run(shell("head -c 3000000 /dev/zero >&2; head -c 2000000 /dev/zero;"
                " head -c 1000000 /dev/zero >&2; i=0; while [ $i -lt 50 ]; do"
                " head -c 70000 /dev/zero; head -c 70000 /dev/zero >&2; i=$((i+1)); done"));
  CHECK(c.err.size() == 4000000 + 50 * 70000);
  CHECK(c.out.size() == 2000000 + 50 * 70000);
  CHECK(c.bytes_at_exit == c.out.size() + c.err.size());
  CHECK(c.exit->exit_code == 0);
}

TEST_CASE("a descendant holding the pipes is killed 1 s after the exit", "[process]") {
  boost::asio::io_context io;
  Captured c;
  const auto started = Clock::now();
  auto p = start(io, shell("sleep 30 & echo hi"), c);
  const pid_t pgid = p->pid();
  REQUIRE(run_until(
      io, [&] { return c.exit.has_value(); }, 5s));
  const auto took = Clock::now() - started;
  CHECK(took >= 900ms);
  CHECK(took < 2500ms);
  CHECK(c.out == "hi\n");
  CHECK(c.exit->exit_code == 0);
  CHECK(c.exits == 1);
  // The kill went out before the pipes closed; the sleep is dead or a zombie of PID 1.
  CHECK(eventually([&] { return !group_has_live_members(pgid); }));
}

TEST_CASE("a holder that left the group does not keep the run open", "[process]") {
  // setsid puts the sleep out of reach of the group kill; the runner stops waiting for
  // the pipes once they have been idle for a second after that kill.
  boost::asio::io_context io;
  Captured c;
  const auto started = Clock::now();
  auto p = start(io, shell("setsid sleep 30 & echo $!"), c);
  REQUIRE(run_until(
      io, [&] { return c.exit.has_value(); }, 6s));
  const auto took = Clock::now() - started;
  CHECK(took >= 1900ms);
  CHECK(took < 3500ms);
  CHECK(c.exit->exit_code == 0);
  REQUIRE(c.out.find('\n') != std::string::npos);
  const pid_t escaped = static_cast<pid_t>(std::stoi(c.out));
  CHECK_FALSE(dead(escaped));
  ::kill(escaped, SIGKILL);
}

TEST_CASE("output paused past the linger period is not lost", "[process]") {
  // The child exits with its output still in the pipe, which an escaped descendant keeps
  // open; while paused the runner must not give up on the pipe.
  boost::asio::io_context io;
  Captured c;
  auto p = start(io, shell("setsid sleep 30 & echo $!; head -c 60000 /dev/zero"), c);
  p->pause_output();
  run_for(io, 2500ms);
  CHECK_FALSE(p->running());
  CHECK_FALSE(c.exit);
  p->resume_output();
  REQUIRE(run_until(
      io, [&] { return c.exit.has_value(); }, 5s));
  const auto newline = c.out.find('\n');
  REQUIRE(newline != std::string::npos);
  CHECK(c.out.size() == newline + 1 + 60000);
  ::kill(static_cast<pid_t>(std::stoi(c.out)), SIGKILL);
}

TEST_CASE("signal_group reaches a grandchild", "[process]") {
  boost::asio::io_context io;
  Captured c;
  auto p = start(io, shell("sleep 30 & echo $!; wait"), c);
  REQUIRE(run_until(io, [&] { return c.out.find('\n') != std::string::npos; }));
  const pid_t grandchild = static_cast<pid_t>(std::stoi(c.out));
  auto st = proc_stat(grandchild);
  REQUIRE(st);
  CHECK(st->pgrp == p->pid());
  CHECK(p->signal_group(SIGTERM));
  REQUIRE(run_until(io, [&] { return c.exit.has_value(); }));
  CHECK(c.exit->signal == SIGTERM);
  CHECK(eventually([&] { return dead(grandchild); }));
}

TEST_CASE("the environment is exactly the one given", "[process]") {
  SECTION("absolute path") {
    auto spec = command("/usr/bin/env");
    spec.env = {"A=1", "B=two words", "EMPTY="};
    CHECK(run(spec).out == "A=1\nB=two words\nEMPTY=\n");
  }
  SECTION("with tty too (TERM is the Run's business)") {
    auto spec = with_tty(command("/usr/bin/env"));
    spec.env = {"A=1"};
    CHECK(run(spec).out == "A=1\n");
  }
  SECTION("empty environment, executable found in the agent's PATH") {
    auto spec = command("env");
    spec.env.clear();
    CHECK(run(spec).out.empty());
  }
  SECTION("a bare name is looked up in the child's PATH") {
    auto spec = command("env");
    spec.env = {"PATH=/nonexistent:/usr/bin", "X=y"};
    CHECK(run(spec).out == "PATH=/nonexistent:/usr/bin\nX=y\n");

    spec.env = {"PATH=/nonexistent"};
    boost::asio::io_context io;
    std::error_code ec;
    CHECK_FALSE(Process::spawn(io, spec, {}, ec));
    CHECK(ec == std::errc::no_such_file_or_directory);
  }
}

TEST_CASE("the working directory is set", "[process]") {
  SECTION("pwd") {
    auto spec = command("/bin/pwd");
    spec.cwd = "/";
    CHECK(run(spec).out == "/\n");
  }
  SECTION("a relative executable is relative to it") {
    auto spec = command("./true");
    spec.cwd = "/usr/bin";
    CHECK(run(spec).exit->exit_code == 0);
  }
}

TEST_CASE("a failed spawn returns an error and leaves nothing behind", "[process]") {
  char dir_template[] = "/tmp/linewire-process-XXXXXX";
  REQUIRE(::mkdtemp(dir_template));
  const std::string dir = dir_template;
  const std::string not_executable = dir + "/data";
  std::ofstream(not_executable) << "#!/bin/sh\n";
  const std::string locked = dir + "/locked";
  REQUIRE(::mkdir(locked.c_str(), 0700) == 0);

  struct Case {
    std::string name;
    ProcessSpec spec;
    std::errc expected;
  };
  std::vector<Case> cases;
  cases.push_back(
      {"missing file", command("/nonexistent/program"), std::errc::no_such_file_or_directory});
  cases.push_back({"missing in PATH", command("linewire-no-such-program"),
                   std::errc::no_such_file_or_directory});
  cases.push_back({"not executable", command(not_executable), std::errc::permission_denied});
  auto bad_cwd = command("/bin/true");
  bad_cwd.cwd = dir + "/missing";
  cases.push_back({"missing cwd", bad_cwd, std::errc::no_such_file_or_directory});
  cases.push_back({"missing cwd, tty", with_tty(bad_cwd), std::errc::no_such_file_or_directory});
  if (::geteuid() == 0) {
    // The user switch works, but then the directory is closed to that user.
    auto as_nobody = command("/bin/true");
    as_nobody.uid = 65534;
    as_nobody.gid = 65534;
    as_nobody.cwd = locked;
    cases.push_back({"cwd closed to the user", as_nobody, std::errc::permission_denied});
    cases.push_back(
        {"cwd closed to the user, tty (fork)", with_tty(as_nobody), std::errc::permission_denied});
  } else {
    auto as_root = command("/bin/true");
    as_root.uid = 0;
    cases.push_back({"setuid refused", as_root, std::errc::operation_not_permitted});
  }

  boost::asio::io_context io;
  const int fds_before = count_open_fds();
  for (const auto& c : cases) {
    INFO(c.name);
    std::error_code ec;
    bool called = false;
    Process::Callbacks cb;
    cb.on_exit = [&](ProcessExit) { called = true; };
    CHECK_FALSE(Process::spawn(io, c.spec, cb, ec));
    CHECK(ec == c.expected);
    CHECK(no_zombie_children());
    CHECK(count_open_fds() == fds_before);
    io.restart();
    io.poll();
    CHECK_FALSE(called);
  }
  ::rmdir(locked.c_str());
  ::unlink(not_executable.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("the child inherits no descriptor but stdin, stdout and stderr", "[process]") {
  const int stray = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  REQUIRE(stray >= 0);
  auto c = run(command("/bin/ls", {"/proc/self/fd"}));
  // With tty, neither the master nor a second copy of the slave reaches it. (-1: on a
  // terminal ls lists in columns.)
  auto t = run(with_tty(command("/bin/ls", {"-1", "/proc/self/fd"})));
  ::close(stray);
  CHECK(c.out == "0\n1\n2\n3\n");  // 3 is ls's own directory
  CHECK(t.out == "0\n1\n2\n3\n");
}

TEST_CASE("200 spawns leak no descriptor and leave no zombie", "[process]") {
  boost::asio::io_context io;
  {
    // Asio opens its reactor's descriptors (epoll, eventfd, timerfd) on first use.
    Captured c;
    auto warm_up = start(io, command("/bin/true"), c);
    REQUIRE(run_until(io, [&] { return c.exit.has_value(); }));
  }
  run_for(io, 20ms);
  const int fds_before = count_open_fds();
  int finished = 0;
  for (int batch = 0; batch < 4; ++batch) {
    std::vector<std::unique_ptr<Process>> procs;
    std::vector<pid_t> pids;
    int exits = 0;
    for (int i = 0; i < 50; ++i) {
      Process::Callbacks cb;
      cb.on_exit = [&](ProcessExit e) {
        ++exits;
        if (e.exit_code == 0) ++finished;
      };
      std::error_code ec;
      // Half of each kind on a pseudo-terminal (`tty`): its master and slave must go too.
      auto spec = i % 2 ? command("/bin/true") : shell("echo x; echo y >&2");
      spec.tty = i % 4 < 2;
      auto p = Process::spawn(io, spec, std::move(cb), ec);
      REQUIRE(p);
      pids.push_back(p->pid());
      procs.push_back(std::move(p));
    }
    REQUIRE(run_until(io, [&] { return exits == 50; }));
    procs.clear();
    for (pid_t pid : pids) {
      errno = 0;
      CHECK(::waitpid(pid, nullptr, WNOHANG) == -1);
      CHECK(errno == ECHILD);
    }
  }
  run_for(io, 20ms);  // lets the posted pidfd releases run
  CHECK(finished == 200);
  CHECK(count_open_fds() == fds_before);
  CHECK(no_zombie_children());
}

TEST_CASE("pause_output makes the child block until resume", "[process]") {
  boost::asio::io_context io;
  Captured c;
  auto p = start(io, shell("yes | head -c 10000000"), c);
  p->pause_output();
  run_for(io, 300ms);
  // At most the reads already in flight (16 KiB per stream) got through.
  CHECK(c.out.size() <= 2 * 16 * 1024);
  CHECK(p->running());
  CHECK_FALSE(c.exit);
  p->resume_output();
  REQUIRE(run_until(io, [&] { return c.exit.has_value(); }));
  CHECK(c.out.size() == 10000000);
  CHECK(c.out.substr(0, 6) == "y\ny\ny\n");
  CHECK(c.exit->exit_code == 0);
}

TEST_CASE("destroying a running Process kills and still reaps it", "[process]") {
  boost::asio::io_context io;
  SECTION("plain") {
    Captured c;
    auto p = start(io, shell("sleep 30 & sleep 30"), c);
    const pid_t pid = p->pid();
    run_for(io, 50ms);
    p.reset();
    REQUIRE(run_until(
        io, [&] { return !proc_stat(pid); }, 2s));  // reaped, not a zombie
    CHECK(eventually([&] { return !group_has_live_members(pid); }));
    CHECK_FALSE(c.exit);
  }
  SECTION("from inside on_stdout") {
    std::unique_ptr<Process> p;
    int chunks = 0;
    Process::Callbacks cb;
    cb.on_stdout = [&](std::string_view) {
      ++chunks;
      p.reset();
    };
    cb.on_exit = [&](ProcessExit) { FAIL("on_exit after destruction"); };
    std::error_code ec;
    p = Process::spawn(io, command("/usr/bin/head", {"-c", "10000000", "/dev/zero"}), cb, ec);
    REQUIRE(p);
    const pid_t pid = p->pid();
    REQUIRE(run_until(
        io, [&] { return !proc_stat(pid); }, 2s));
    CHECK(chunks == 1);
  }
  SECTION("from inside on_exit") {
    std::unique_ptr<Process> p;
    int exits = 0;
    Process::Callbacks cb;
    cb.on_exit = [&](ProcessExit) {
      ++exits;
      p.reset();
    };
    std::error_code ec;
    p = Process::spawn(io, shell("echo bye"), cb, ec);
    REQUIRE(p);
    REQUIRE(run_until(io, [&] { return exits == 1; }));
    run_for(io, 20ms);
    CHECK(exits == 1);
    CHECK_FALSE(p);
  }
}

TEST_CASE("the child runs as the given user", "[process]") {
  if (::geteuid() != 0) {
    // Unprivileged, the only possible "switch" is to the agent's own ids.
    auto spec = shell("id -u");
    spec.uid = ::geteuid();
    spec.gid = ::getegid();
    CHECK(run(spec).out == std::to_string(::geteuid()) + "\n");
    return;
  }
  auto spec = shell("id -u; id -g; id -G");
  spec.uid = 65534;
  spec.gid = 65534;
  auto c = run(spec);
  CHECK(c.out == "65534\n65534\n65534\n");

  spec.gid.reset();  // the user's primary group
  CHECK(run(spec).out == "65534\n65534\n65534\n");
}

// ---------------------------------------------------------------------------------- tty

namespace {

// Session and controlling terminal (tty_nr) from a /proc/PID/stat line.
std::pair<long, long> session_and_tty(const std::string& stat_line) {
  std::istringstream rest(stat_line.substr(stat_line.rfind(')') + 2));
  char state = 0;
  long ppid = 0, pgrp = 0, session = 0, tty_nr = 0;
  rest >> state >> ppid >> pgrp >> session >> tty_nr;
  return {session, tty_nr};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("with tty, stdout is a raw 80x24 terminal and stdin and stderr stay pipes",
          "[process][tty]") {
  const std::string probe =
      "for f in 0 1 2; do stat -L -c %F /proc/self/fd/$f; done;"
      " [ -t 1 ] && echo 'stdout is a terminal'; [ -t 2 ] || echo 'stderr is not' >&2;"
      " [ -t 1 ] && stty -a <&1";
  SECTION("tty") {
    auto c = run(with_tty(shell(probe)));
    INFO(c.out);
    CHECK(c.out.starts_with("fifo\ncharacter special file\nfifo\nstdout is a terminal\n"));
    CHECK(c.err == "stderr is not\n");
    CHECK(c.out.find("rows 24; columns 80;") != std::string::npos);
    std::istringstream words(c.out);
    std::set<std::string> settings{std::istream_iterator<std::string>(words), {}};
    // -opost: no output processing at all (stty still lists onlcr, which then does nothing).
    for (const char* flag : {"-opost", "-echo", "-icanon", "-isig", "-ixon"}) {
      INFO(flag);
      CHECK(settings.count(flag) == 1);
    }
    CHECK(c.out.find('\r') == std::string::npos);
  }
  SECTION("pipes") {
    auto c = run(shell(probe));
    CHECK(c.out == "fifo\nfifo\nfifo\n");
    CHECK(c.err == "stderr is not\n");
  }
}

TEST_CASE("with tty, bytes pass unchanged: no \\r added, none taken", "[process][tty]") {
  CHECK(run(with_tty(command("/usr/bin/printf", {"a\\nb\\r\\n\\nc"}))).out == "a\nb\r\n\nc");
  // Every byte value, control characters (^C, ^D, ^S, ^Q, DEL, ...) included.
  auto c = run(with_tty(command("/usr/bin/perl", {"-e", "print map { chr } 0..255"})));
  REQUIRE(c.out.size() == 256);
  for (int i = 0; i < 256; ++i) CHECK(static_cast<unsigned char>(c.out[i]) == i);
}

TEST_CASE("with tty the terminal is not the child's controlling terminal", "[process][tty]") {
  // process_launch.cpp says why: the child stays in the agent's session and keeps the
  // agent's controlling terminal, if any; it gets its own process group all the same.
  boost::asio::io_context io;
  Captured c;
  auto p = start(io, with_tty(command("/bin/cat", {"/proc/self/stat"})), c);
  REQUIRE(run_until(io, [&] { return c.exit.has_value(); }));
  CHECK(session_and_tty(c.out) == session_and_tty(read_file("/proc/self/stat")));
  std::istringstream rest(c.out.substr(c.out.rfind(')') + 2));
  char state = 0;
  pid_t ppid = 0, pgrp = 0;
  rest >> state >> ppid >> pgrp;
  CHECK(pgrp == p->pid());
}

TEST_CASE("with tty a program that buffers a pipe prints each line as it prints it",
          "[process][tty]") {
  // Perl (perl-base is Essential in Debian) and C stdio (GNU sed) both buffer stdout on a
  // pipe and write it by line on a terminal. Each copies its stdin to its stdout and runs
  // until stdin closes, so a line seen before that was written when it was printed.
  const auto argv =
      GENERATE(std::vector<std::string>{"-ne", "print"}, std::vector<std::string>{"-e", ""});
  const std::string program = argv.front() == "-ne" ? "/usr/bin/perl" : "/bin/sed";
  INFO(program);
  boost::asio::io_context io;
  Captured live, buffered;
  auto p_live = start(io, with_tty(command(program, argv)), live);
  auto p_buffered = start(io, command(program, argv), buffered);
  for (const char* line : {"one\n", "two\n"}) {
    p_live->write_stdin(line);
    p_buffered->write_stdin(line);
  }
  REQUIRE(run_until(io, [&] { return live.out == "one\ntwo\n"; }));
  // The control: the same program on a pipe has written nothing yet.
  run_for(io, 300ms);
  CHECK(buffered.out.empty());
  CHECK_FALSE(live.exit);
  CHECK_FALSE(buffered.exit);
  p_live->close_stdin();
  p_buffered->close_stdin();
  REQUIRE(run_until(io, [&] { return live.exit && buffered.exit; }));
  CHECK(live.out == "one\ntwo\n");
  CHECK(buffered.out == "one\ntwo\n");
}

TEST_CASE("with tty nothing written right before the exit is lost", "[process][tty]") {
  SECTION("much output") {
    // Far more than the terminal buffers: the child is still writing, then exits.
    auto c = run(with_tty(command("/usr/bin/head", {"-c", "3000000", "/dev/zero"})));
    CHECK(c.out.size() == 3000000);
    CHECK(c.out.find_first_not_of('\0') == std::string::npos);
    CHECK(c.bytes_at_exit == 3000000);
  }
  SECTION("a last line without newline, again and again") {
    // The master reads EIO once the slave is closed: only after the last bytes.
    for (int i = 0; i < 50; ++i) {
      auto c = run(with_tty(command("/usr/bin/printf", {"first\\nlast"})));
      REQUIRE(c.out == "first\nlast");
    }
  }
}

TEST_CASE("with tty a descendant holding the terminal is killed 1 s after the exit",
          "[process][tty]") {
  boost::asio::io_context io;
  Captured c;
  const auto started = Clock::now();
  auto p = start(io, with_tty(shell("sleep 30 & echo hi")), c);
  const pid_t pgid = p->pid();
  REQUIRE(run_until(
      io, [&] { return c.exit.has_value(); }, 5s));
  const auto took = Clock::now() - started;
  CHECK(took >= 900ms);
  CHECK(took < 2500ms);
  CHECK(c.out == "hi\n");
  CHECK(c.exit->exit_code == 0);
  CHECK(eventually([&] { return !group_has_live_members(pgid); }));
}

TEST_CASE("with tty pause_output makes the child block until resume", "[process][tty]") {
  boost::asio::io_context io;
  Captured c;
  auto p = start(io, with_tty(shell("yes | head -c 3000000")), c);
  p->pause_output();
  run_for(io, 300ms);
  CHECK(c.out.size() <= 16 * 1024);
  CHECK(p->running());
  CHECK_FALSE(c.exit);
  p->resume_output();
  REQUIRE(run_until(io, [&] { return c.exit.has_value(); }));
  CHECK(c.out.size() == 3000000);
  CHECK(c.out.substr(0, 6) == "y\ny\ny\n");
}
