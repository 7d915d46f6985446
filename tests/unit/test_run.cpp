// Run (SPEC §4, §5) against a fake process: the spec it launches, lines cut and numbered,
// max_output, the kill ladder, signals, stdin, overflow: drop. The io_context runs only
// in bounded steps (fake_process.hpp).
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/run.hpp"
#include "fake_process.hpp"

using namespace linewire;
using namespace linewire::agent;
using namespace linewire::test;
using namespace std::chrono_literals;

namespace {

// The agent's side of one run, recorded.
class Host final : public RunHost {
 public:
  struct Line {
    Stream stream;
    std::string text;
    std::uint64_t seq;
    bool operator==(const Line&) const = default;
  };

  void on_run_line(Run&, Stream stream, std::string_view line, std::uint64_t seq) override {
    lines.push_back({stream, std::string(line), seq});
  }
  void on_run_output(Run&) override { ++outputs; }
  bool output_congested() const override { return congested; }
  void on_run_finished(Run& run) override {
    ++finished;
    lines_at_finish = lines.size();
    final_record = run.record();
  }

  std::vector<Line> lines;
  int outputs = 0;
  bool congested = false;
  int finished = 0;
  std::size_t lines_at_finish = 0;
  std::optional<RunRecord> final_record;
};

config::Command command(std::string name = "count") {
  config::Command c;
  c.name = name;
  c.exec = {"/opt/" + name, "--flag"};
  c.kill_grace = 50ms;
  return c;
}

struct Fixture {
  boost::asio::io_context io;
  FakeLauncher launcher;
  Host host;
  config::Limits limits;
  RunOrigin origin;
  std::unique_ptr<Run> run;

  std::optional<Error> try_start(const config::Command& c, std::vector<std::string> args = {},
                                 std::optional<std::string> stdin_text = std::nullopt,
                                 std::optional<config::Duration> timeout = std::nullopt) {
    run = std::make_unique<Run>(io, host, launcher, c, limits, "r1", origin);
    return run->start("dev1", std::move(args), std::move(stdin_text), timeout);
  }

  FakeChild& start(const config::Command& c, std::vector<std::string> args = {},
                   std::optional<std::string> stdin_text = std::nullopt,
                   std::optional<config::Duration> timeout = std::nullopt) {
    auto error = try_start(c, std::move(args), std::move(stdin_text), timeout);
    INFO((error ? error->message : ""));
    REQUIRE_FALSE(error);
    REQUIRE(launcher.children.size() == 1);
    return launcher.last();
  }

  bool finish(std::chrono::milliseconds limit = 2000ms) {
    return run_until(
        io, [&] { return host.finished > 0; }, limit);
  }
};

bool has_env(const ProcessSpec& spec, const std::string& entry) {
  for (const auto& e : spec.env)
    if (e == entry) return true;
  return false;
}

}  // namespace

TEST_CASE("a run launches exec and its args with a clean environment", "[run]") {
  Fixture f;
  ::setenv("LINEWIRE_TEST_SECRET", "agent-only", 1);
  auto c = command();
  c.cwd = "/srv/count";
  c.env = {{"FOO", "bar"}, {"LANG", "C.UTF-8"}};
  f.origin.transport = "websocket";
  f.origin.env = {{"QUERY_STRING", "n=3"}};
  FakeChild& child = f.start(c, {"3", "x y"});
  ::unsetenv("LINEWIRE_TEST_SECRET");

  CHECK(child.spec.executable == "/opt/count");
  CHECK(child.spec.args == std::vector<std::string>{"--flag", "3", "x y"});
  CHECK(child.spec.cwd == "/srv/count");
  CHECK_FALSE(child.spec.uid);
  CHECK_FALSE(child.spec.gid);
  CHECK(has_env(child.spec, "FOO=bar"));
  CHECK(has_env(child.spec, "LANG=C.UTF-8"));
  CHECK(has_env(child.spec, "QUERY_STRING=n=3"));
  CHECK(has_env(child.spec, "LINEWIRE_DEVICE=dev1"));
  CHECK(has_env(child.spec, "LINEWIRE_COMMAND=count"));
  CHECK(has_env(child.spec, "LINEWIRE_RUN=r1"));
  CHECK(has_env(child.spec, "LINEWIRE_TRANSPORT=websocket"));
  for (const auto& e : child.spec.env) {
    INFO(e);
    CHECK(e.find("LINEWIRE_TEST_SECRET") == std::string::npos);
  }
  bool has_path = false;
  for (const auto& e : child.spec.env) has_path = has_path || e.starts_with("PATH=");
  CHECK(has_path);

  CHECK(f.run->record().pid == child.pid);
  CHECK(f.run->record().phase == RunPhase::running);
  CHECK(f.run->record().args == std::vector<std::string>{"3", "x y"});
  CHECK(f.run->record().transport == "websocket");
  CHECK_FALSE(f.run->finished());
}

TEST_CASE("PYTHONUNBUFFERED=1 and, with tty, TERM=dumb; env overrides both", "[run]") {
  SECTION("pipes") {
    Fixture f;
    FakeChild& child = f.start(command());
    CHECK_FALSE(child.spec.tty);
    CHECK(has_env(child.spec, "PYTHONUNBUFFERED=1"));
    for (const auto& e : child.spec.env) CHECK_FALSE(e.starts_with("TERM="));
  }
  SECTION("tty") {
    Fixture f;
    auto c = command();
    c.tty = true;
    FakeChild& child = f.start(c);
    CHECK(child.spec.tty);
    CHECK(has_env(child.spec, "TERM=dumb"));
    CHECK(has_env(child.spec, "PYTHONUNBUFFERED=1"));
  }
  SECTION("tty, env sets both") {
    Fixture f;
    auto c = command();
    c.tty = true;
    c.env = {{"TERM", "xterm-256color"}, {"PYTHONUNBUFFERED", ""}};
    FakeChild& child = f.start(c);
    CHECK(has_env(child.spec, "TERM=xterm-256color"));
    CHECK(has_env(child.spec, "PYTHONUNBUFFERED="));
    CHECK_FALSE(has_env(child.spec, "TERM=dumb"));
    CHECK_FALSE(has_env(child.spec, "PYTHONUNBUFFERED=1"));
  }
}

TEST_CASE("user and group become ids, an unknown one fails without a launch", "[run]") {
  Fixture f;
  auto c = command();
  SECTION("user: its uid and primary group") {
    c.user = "nobody";
    FakeChild& child = f.start(c);
    CHECK(child.spec.uid == uid_t(65534));
    CHECK(child.spec.gid == gid_t(65534));
  }
  SECTION("group overrides the user's") {
    c.user = "nobody";
    c.group = "root";
    FakeChild& child = f.start(c);
    CHECK(child.spec.uid == uid_t(65534));
    CHECK(child.spec.gid == gid_t(0));
  }
  SECTION("an unknown user") {
    c.user = "linewire-no-such-user";
    auto error = f.try_start(c);
    REQUIRE(error);
    CHECK(error->code == ErrorCode::spawn_failed);
    CHECK(error->message == "no user 'linewire-no-such-user'");
    CHECK(f.launcher.specs.empty());
    CHECK(f.run->record().phase == RunPhase::failed);
    CHECK(f.run->record().error == error->message);
  }
  SECTION("an unknown group") {
    c.group = "linewire-no-such-group";
    auto error = f.try_start(c);
    REQUIRE(error);
    CHECK(error->code == ErrorCode::spawn_failed);
    CHECK(f.launcher.specs.empty());
  }
}

TEST_CASE("a launch error fails the run and is not reported as finished", "[run]") {
  Fixture f;
  f.launcher.fail_next(std::make_error_code(std::errc::no_such_file_or_directory));
  auto error = f.try_start(command());
  REQUIRE(error);
  CHECK(error->code == ErrorCode::spawn_failed);
  CHECK(error->message.starts_with("cannot start /opt/count: "));
  CHECK(error->message.find("No such file") != std::string::npos);
  CHECK(f.launcher.specs.size() == 1);
  const RunRecord& r = f.run->record();
  CHECK(r.phase == RunPhase::failed);
  CHECK(r.error == error->message);
  CHECK(r.pid == 0);
  CHECK(r.ended >= r.started);
  run_for(f.io, 20ms);
  CHECK(f.host.finished == 0);  // the caller publishes the failed state
}

TEST_CASE("output is cut into lines and numbered per stream", "[run]") {
  Fixture f;
  FakeChild& child = f.start(command());
  child.out("a\nb");
  child.out("c\r\n");
  child.err("e1\ne2\n");
  child.out("\nlast");
  settle(f.io);
  using L = Host::Line;
  CHECK(f.host.lines == std::vector<L>{{Stream::out, "a", 1},
                                       {Stream::out, "bc", 2},
                                       {Stream::err, "e1", 1},
                                       {Stream::err, "e2", 2},
                                       {Stream::out, "", 3}});
  CHECK(f.host.outputs == 4);  // once per chunk, after its lines
  child.exit(0);
  REQUIRE(f.finish());
  // The unterminated last line comes out at the end, before the final state.
  REQUIRE(f.host.lines.size() == 6);
  CHECK(f.host.lines.back() == L{Stream::out, "last", 4});
  CHECK(f.host.lines_at_finish == 6);
  CHECK(f.host.finished == 1);
  const RunRecord& r = *f.host.final_record;
  CHECK(r.phase == RunPhase::exited);
  CHECK(r.exit_code == 0);
  CHECK(r.lines == 4);
  CHECK(r.err_lines == 2);
  CHECK(r.dropped == 0);
  CHECK(r.reason.empty());
  CHECK(r.signal.empty());
}

TEST_CASE("lines longer than max_line leave in pieces", "[run]") {
  Fixture f;
  f.limits.max_line = 4;
  FakeChild& child = f.start(command());
  child.out("abcdefghij\n");
  child.exit(0);
  REQUIRE(f.finish());
  REQUIRE(f.host.lines.size() == 3);
  CHECK(f.host.lines[0].text == "abcd");
  CHECK(f.host.lines[1].text == "efgh");
  CHECK(f.host.lines[2].text == "ij");
  CHECK(f.host.lines[2].seq == 3);
}

TEST_CASE("stderr: log and discard keep its lines from the host", "[run]") {
  Fixture f;
  auto c = command();
  c.stderr_mode = GENERATE(config::StderrMode::log, config::StderrMode::discard);
  FakeChild& child = f.start(c);
  child.err("secret\n");
  child.out("public\n");
  child.exit(1);
  REQUIRE(f.finish());
  REQUIRE(f.host.lines.size() == 1);
  CHECK(f.host.lines[0].stream == Stream::out);
  CHECK(f.host.final_record->err_lines == 0);
  CHECK(f.host.final_record->exit_code == 1);
}

TEST_CASE("max_output drops the lines past it and marks the run truncated", "[run]") {
  Fixture f;
  auto c = command();
  c.max_output = 10;
  FakeChild& child = f.start(c);
  child.out("12345\n");
  child.err("678\n");
  child.out("9\n");     // 9 bytes so far
  child.err("ab\n");    // 11: dropped
  child.out("cd\nef");  // dropped, the unterminated one too
  child.out("\n");      // "ef" ends: dropped (a line past the limit, however short)
  child.out("g\n");     // 1 byte would still fit, but past max_output every line goes
  child.exit(0);
  REQUIRE(f.finish());
  std::vector<std::string> texts;
  for (const auto& l : f.host.lines) texts.push_back(l.text);
  CHECK(texts == std::vector<std::string>{"12345", "678", "9"});
  CHECK(f.host.lines[2].seq == 2);
  const RunRecord& r = *f.host.final_record;
  CHECK(r.truncated);
  CHECK(r.lines == 5);  // printed, dropped ones included
  CHECK(r.err_lines == 2);
  CHECK(r.dropped == 4);
  CHECK(r.phase == RunPhase::exited);
}

TEST_CASE("a timeout sends TERM and CONT to the group, KILL after kill_grace", "[run]") {
  Fixture f;
  auto c = command();
  c.timeout = 30ms;
  const auto began = std::chrono::steady_clock::now();
  FakeChild& child = f.start(c);
  REQUIRE(run_until(f.io, [&] { return !child.signals.empty(); }));
  CHECK(child.signals == std::vector<int>{SIGTERM, SIGCONT});
  CHECK(std::chrono::steady_clock::now() - began >= 30ms);
  CHECK(f.run->record().reason == "timeout");
  CHECK_FALSE(f.run->finished());

  // It ignores TERM: KILL once kill_grace has passed, not before.
  run_for(f.io, 20ms);
  CHECK(child.signals.size() == 2);
  REQUIRE(run_until(f.io, [&] { return child.signals.size() == 3; }));
  CHECK(child.signals.back() == SIGKILL);
  CHECK(std::chrono::steady_clock::now() - began >= 80ms);
  child.die(SIGKILL);
  REQUIRE(f.finish());
  const RunRecord& r = *f.host.final_record;
  CHECK(r.phase == RunPhase::killed);
  CHECK(r.reason == "timeout");
  CHECK(r.signal == "KILL");
  CHECK_FALSE(r.exit_code);
}

TEST_CASE("a run that ends on TERM gets no KILL", "[run]") {
  Fixture f;
  f.launcher.dies_on = {SIGTERM};
  auto c = command();
  c.timeout = 20ms;
  FakeChild& child = f.start(c);
  REQUIRE(f.finish());
  run_for(f.io, 100ms);  // past kill_grace
  CHECK(child.signals_but_cont() == std::vector<int>{SIGTERM});
  const RunRecord& r = *f.host.final_record;
  CHECK(r.phase == RunPhase::killed);
  CHECK(r.reason == "timeout");
  CHECK(r.signal == "TERM");
}

TEST_CASE("a killed run that catches TERM and exits keeps its reason", "[run]") {
  Fixture f;
  FakeChild& child = f.start(command());
  f.run->kill("stop");
  f.run->kill("timeout");  // the first reason sticks, and TERM goes once
  CHECK(child.signals == std::vector<int>{SIGTERM, SIGCONT});
  child.exit(3);
  REQUIRE(f.finish());
  const RunRecord& r = *f.host.final_record;
  CHECK(r.phase == RunPhase::killed);
  CHECK(r.reason == "stop");
  CHECK(r.signal == "TERM");
  CHECK(r.exit_code == 3);
  run_for(f.io, 80ms);  // kill_grace was cancelled with the end
  CHECK(child.signals.size() == 2);
}

TEST_CASE("the shorter of the request's and the command's timeout applies", "[run]") {
  Fixture f;
  f.launcher.dies_on = {SIGTERM};
  auto c = command();
  std::optional<config::Duration> request;
  SECTION("request shorter") {
    c.timeout = 10s;
    request = 20ms;
  }
  SECTION("command shorter") {
    c.timeout = 20ms;
    request = 10s;
  }
  SECTION("request only") { request = 20ms; }
  f.start(c, {}, std::nullopt, request);
  const auto began = std::chrono::steady_clock::now();
  REQUIRE(f.finish(1000ms));
  CHECK(std::chrono::steady_clock::now() - began < 1000ms);
  CHECK(f.host.final_record->reason == "timeout");
}

TEST_CASE("without a timeout a run is never killed by the agent", "[run]") {
  Fixture f;
  FakeChild& child = f.start(command());
  run_for(f.io, 50ms);
  CHECK(child.signals.empty());
  child.exit(0);
  REQUIRE(f.finish());
  CHECK(f.host.final_record->phase == RunPhase::exited);
}

TEST_CASE("signal sends just that signal, and one that ends the run is reason signal", "[run]") {
  Fixture f;
  FakeChild& child = f.start(command());
  CHECK(f.run->signal(SIGUSR1));
  CHECK(f.run->signal(SIGSTOP));
  CHECK(child.signals == std::vector<int>{SIGUSR1, SIGSTOP});
  CHECK(f.run->record().reason.empty());
  child.die(SIGSEGV);
  REQUIRE(f.finish());
  const RunRecord& r = *f.host.final_record;
  CHECK(r.phase == RunPhase::killed);
  CHECK(r.reason == "signal");
  CHECK(r.signal == "SEGV");
  CHECK_FALSE(f.run->signal(SIGUSR1));  // finished
  CHECK(child.signals.size() == 2);
}

TEST_CASE("stdin: the start's text, then lines, then close", "[run]") {
  Fixture f;
  FakeChild& child = f.start(command(), {}, std::string("first\nsecond"));
  CHECK(child.writes == std::vector<std::string>{"first\nsecond"});
  CHECK_FALSE(f.run->write_line("third"));
  CHECK_FALSE(f.run->write_line(""));
  CHECK(child.stdin_data() == "first\nsecondthird\n\n");
  CHECK_FALSE(child.stdin_closed);
  CHECK_FALSE(f.run->close_stdin());
  CHECK(child.stdin_closed);
  auto late = f.run->write_line("too late");
  REQUIRE(late);
  CHECK(late->code == ErrorCode::bad_request);
  CHECK(late->message == "stdin of run 'r1' is closed");
  CHECK_FALSE(f.run->close_stdin());  // closing twice is fine
  CHECK(child.writes.size() == 3);
}

TEST_CASE("stdin: false gives the child a closed stdin and refuses lines", "[run]") {
  Fixture f;
  auto c = command();
  c.stdin_enabled = false;
  FakeChild& child = f.start(c, {}, std::string("ignored\n"));
  CHECK(child.stdin_closed);
  CHECK(child.writes.empty());
  auto e = f.run->write_line("x");
  REQUIRE(e);
  CHECK(e->code == ErrorCode::bad_request);
  CHECK(e->message == "command 'count' takes no stdin");
}

TEST_CASE("stdin is closed once the run has ended", "[run]") {
  Fixture f;
  FakeChild& child = f.start(command());
  child.exit(0);
  REQUIRE(f.finish());
  auto e = f.run->write_line("x");
  REQUIRE(e);
  CHECK(e->code == ErrorCode::bad_request);
  CHECK(child.writes.empty());
}

TEST_CASE("pause and resume reach the process", "[run]") {
  Fixture f;
  FakeChild& child = f.start(command());
  f.run->pause_output();
  f.run->pause_output();
  CHECK(f.run->paused());
  CHECK(child.paused);
  CHECK(child.pauses == 1);
  f.run->resume_output();
  CHECK_FALSE(f.run->paused());
  CHECK_FALSE(child.paused);
  CHECK(child.resumes == 1);
}

TEST_CASE("overflow: drop holds lines while congested and drops the oldest", "[run]") {
  Fixture f;
  // Each held line costs its bytes + 64; the run's share is buffer / 8 = 200 bytes:
  // three two-byte lines (198) fit, a fourth pushes out the oldest.
  f.limits.buffer = 1600;
  auto c = command();
  c.overflow = config::Overflow::drop;
  FakeChild& child = f.start(c);
  child.out("l1\n");
  settle(f.io);
  CHECK(f.host.lines.size() == 1);
  f.host.congested = true;
  child.out("l2\nl3\nl4\nl5\n");
  settle(f.io);
  CHECK(f.host.lines.size() == 1);
  CHECK_FALSE(child.paused);  // never holds the child up

  SECTION("resumed: held lines go out in order, with their numbers") {
    f.host.congested = false;
    f.run->resume_output();
    REQUIRE(f.host.lines.size() == 4);
    CHECK(f.host.lines[1].text == "l3");
    CHECK(f.host.lines[1].seq == 3);
    CHECK(f.host.lines[3].text == "l5");
    CHECK(f.host.lines[3].seq == 5);
    child.exit(0);
  }
  SECTION("still congested at the end: every held line before the final state") {
    child.out("l6");
    child.exit(0);
  }
  REQUIRE(f.finish());
  CHECK(f.host.lines_at_finish == f.host.lines.size());
  CHECK(f.host.final_record->dropped >= 1);
  CHECK(f.host.final_record->lines == f.host.lines.size() + f.host.final_record->dropped);
}

TEST_CASE("destroying a run destroys its process", "[run]") {
  Fixture f;
  FakeChild& child = f.start(command());
  f.run.reset();
  CHECK(child.destroyed);
  CHECK(child.killed_on_destroy);
  child.out("late\n");
  child.exit(0);
  run_for(f.io, 20ms);
  CHECK(f.host.lines.empty());
  CHECK(f.host.finished == 0);
}
