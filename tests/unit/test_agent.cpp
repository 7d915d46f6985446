// Agent (SPEC §3–§6) against fake processes: admission and its refusals, on_busy queue
// and replace, timeouts and the kill ladder, stop, signal and stdin requests, lines and
// final states as an AgentObserver sees them, spawn failures and shutdown. The
// io_context runs only in bounded steps (fake_process.hpp).
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "agent/agent.hpp"
#include "fake_process.hpp"

using namespace linewire;
using namespace linewire::agent;
using namespace linewire::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// Everything the agent tells its transport, in order.
class Observer final : public AgentObserver {
 public:
  struct Event {
    std::string kind;  // line, state, running, record, info, forget, reconfigured
    std::string name;  // the run (line, state, record, forget) or command (running)
    Stream stream = Stream::out;
    std::string text;  // line: the line; running: ON/OFF
    std::uint64_t seq = 0;
    json doc;  // state, record
    bool final = false;
  };

  void on_line(const Run& run, Stream stream, std::string_view line, std::uint64_t seq) override {
    events.push_back({"line", run.id(), stream, std::string(line), seq, {}, false});
  }
  void on_state(const Run& run, const std::string& document, bool final) override {
    events.push_back({"state", run.id(), Stream::out, {}, 0, json::parse(document), final});
  }
  void on_running(const std::string& command, bool running) override {
    events.push_back({"running", command, Stream::out, running ? "ON" : "OFF", 0, {}, false});
  }
  void on_record_final(const RunRecord& record, const std::string& document) override {
    events.push_back({"record", record.run, Stream::out, {}, 0, json::parse(document), true});
  }
  void on_info(const std::string& document) override {
    events.push_back({"info", {}, Stream::out, {}, 0, json::parse(document), false});
  }
  void on_forget(const std::string& run) override {
    events.push_back({"forget", run, Stream::out, {}, 0, {}, false});
  }
  void on_reconfigured(const config::Config&) override {
    events.push_back({"reconfigured", {}, Stream::out, {}, 0, {}, false});
  }
  bool congested() const override { return congested_; }

  // The run's state documents (on_state and on_record_final), in order.
  std::vector<json> states(const std::string& run) const {
    std::vector<json> out;
    for (const auto& e : events)
      if ((e.kind == "state" || e.kind == "record") && e.name == run) out.push_back(e.doc);
    return out;
  }
  // The run's final state; null when there is none (yet).
  json final_state(const std::string& run) const {
    for (const auto& e : events)
      if ((e.kind == "state" || e.kind == "record") && e.name == run && e.final) return e.doc;
    return nullptr;
  }
  // Where the first event of this kind for this name is; -1 when there is none.
  int index(const std::string& kind, const std::string& name, bool final = false) const {
    for (std::size_t i = 0; i < events.size(); ++i) {
      const auto& e = events[i];
      if (e.kind == kind && e.name == name && (kind != "state" || e.final == final))
        return static_cast<int>(i);
    }
    return -1;
  }
  std::vector<std::string> lines(const std::string& run, Stream stream) const {
    std::vector<std::string> out;
    for (const auto& e : events)
      if (e.kind == "line" && e.name == run && e.stream == stream) out.push_back(e.text);
    return out;
  }
  std::vector<std::string> running_changes(const std::string& command) const {
    std::vector<std::string> out;
    for (const auto& e : events)
      if (e.kind == "running" && e.name == command) out.push_back(e.text);
    return out;
  }
  int count(const std::string& kind) const {
    int n = 0;
    for (const auto& e : events) n += e.kind == kind;
    return n;
  }

  std::vector<Event> events;
  bool congested_ = false;
};

config::Command command(std::string name) {
  config::Command c;
  c.name = std::move(name);
  c.exec = {"/opt/" + c.name};
  c.kill_grace = 50ms;
  return c;
}

config::Config make_config(std::vector<config::Command> commands) {
  config::Config c;
  c.device = "dev1";
  c.state_dir = "";  // no state file: nothing outside the test is read or killed
  c.commands = std::move(commands);
  return c;
}

StartRequest with_id(std::string id) {
  StartRequest r;
  r.id = std::move(id);
  return r;
}

struct Fixture {
  explicit Fixture(config::Config config)
      : agent(std::make_unique<Agent>(io, std::move(config), "test", launcher)) {
    agent->set_observer(&observer);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  std::variant<Started, Error> try_start(const std::string& name, StartRequest request = {},
                                         std::string transport = "mqtt") {
    RunOrigin origin;
    origin.transport = std::move(transport);
    return agent->start(name, std::move(request), std::move(origin));
  }
  Started start(const std::string& name, StartRequest request = {}) {
    auto result = try_start(name, std::move(request));
    if (auto* e = std::get_if<Error>(&result)) FAIL("refused: " << e->message);
    return std::get<Started>(result);
  }
  Started start(const std::string& name, const std::string& id) { return start(name, with_id(id)); }
  Error refuse(const std::string& name, StartRequest request = {}, std::string transport = "mqtt") {
    auto result = try_start(name, std::move(request), std::move(transport));
    if (std::holds_alternative<Started>(result)) FAIL("started " << std::get<Started>(result).run);
    return std::get<Error>(result);
  }
  std::optional<Error> stop(const std::string& name) {
    const config::Command* c = agent->config().find_command(name);
    REQUIRE(c);
    return agent->stop(*c);
  }
  bool until(const std::function<bool()>& done, std::chrono::milliseconds limit = 2000ms) {
    return run_until(io, done, limit);
  }
  bool ended(const std::string& run) {
    return until([&] { return !observer.final_state(run).is_null(); });
  }
  // The child of the run with this id (by LINEWIRE_RUN in its environment).
  FakeChild* child_of(const std::string& run) {
    for (auto& c : launcher.children)
      for (const auto& e : c->spec.env)
        if (e == "LINEWIRE_RUN=" + run) return c.get();
    return nullptr;
  }
  FakeChild& child(const std::string& run) {
    FakeChild* c = child_of(run);
    INFO("run " << run);
    REQUIRE(c);
    return *c;
  }

  boost::asio::io_context io;
  FakeLauncher launcher;
  Observer observer;
  std::unique_ptr<Agent> agent;  // last: destroyed first
};

}  // namespace

TEST_CASE("a start launches the run and publishes running before the reply", "[agent]") {
  auto count = command("count");
  count.args = config::ArgsRule{"[0-9]+", 2};
  Fixture f(make_config({count}));
  StartRequest request = with_id("r1");
  request.args = {"3"};
  Started s = f.start("count", request);
  CHECK(s.run == "r1");
  CHECK_FALSE(s.queued);
  CHECK(s.replaces.empty());
  REQUIRE(f.launcher.children.size() == 1);
  FakeChild& child = f.launcher.last();
  CHECK(s.pid == child.pid);
  CHECK(child.spec.executable == "/opt/count");
  CHECK(child.spec.args == std::vector<std::string>{"3"});

  auto states = f.observer.states("r1");
  REQUIRE(states.size() == 1);
  CHECK(states[0]["state"] == "running");
  CHECK(states[0]["pid"] == child.pid);
  CHECK(states[0]["command"] == "count");
  CHECK(states[0]["args"] == json::array({"3"}));
  CHECK(states[0]["transport"] == "mqtt");
  CHECK(f.observer.running_changes("count") == std::vector<std::string>{"ON"});
  CHECK(f.observer.index("state", "r1") < f.observer.index("running", "count"));
  CHECK(f.observer.count("info") == 1);
  CHECK(f.agent->has_run("r1"));
  CHECK(f.agent->active_runs() == 1);
  CHECK(f.agent->running("count"));
  REQUIRE(f.agent->command_of_run("r1"));
  CHECK(f.agent->command_of_run("r1")->name == "count");

  SECTION("without an id the agent makes one") {
    Started other = f.start("count");
    CHECK_FALSE(other.run.empty());
    CHECK(other.run != "r1");
    CHECK(f.agent->has_run(other.run));
  }
}

TEST_CASE("max_runs and max_instances make a start busy", "[agent]") {
  auto a = command("a");
  a.max_instances = 1;
  auto config = make_config({a, command("b")});
  config.limits.max_runs = 2;
  Fixture f(config);

  f.start("a", "a1");
  Error e = f.refuse("a", with_id("a2"));
  CHECK(e.code == ErrorCode::busy);
  CHECK(e.message == "'a' is at max_instances (1)");
  f.start("b", "b1");
  e = f.refuse("b", with_id("b2"));
  CHECK(e.code == ErrorCode::busy);
  CHECK(e.message == "dev1 is at max_runs (2)");
  CHECK(f.launcher.children.size() == 2);
  CHECK(f.observer.states("a2").empty());
  CHECK(f.observer.states("b2").empty());

  // A slot frees once a run has ended; a refused id was never taken.
  f.child("a1").exit(0);
  REQUIRE(f.ended("a1"));
  f.start("a", "a2");
  CHECK(f.launcher.children.size() == 3);
}

TEST_CASE("a start's command, arguments and stdin are checked", "[agent]") {
  auto plain = command("plain");
  auto digits = command("digits");
  digits.args = config::ArgsRule{"[0-9]{1,3}", 2};
  auto quiet = command("quiet");
  quiet.stdin_enabled = false;
  auto web = command("web");
  web.mqtt = false;
  web.websocket = true;
  Fixture f(make_config({plain, digits, quiet, web}));

  auto refused = [&](const std::string& name, std::vector<std::string> args) {
    StartRequest r;
    r.args = std::move(args);
    return f.refuse(name, r);
  };
  CHECK(f.refuse("missing").code == ErrorCode::unknown_command);
  CHECK(f.refuse("web").code == ErrorCode::unknown_command);
  CHECK(f.refuse("plain", {}, "websocket").code == ErrorCode::unknown_command);
  CHECK(refused("plain", {"1"}).code == ErrorCode::args_not_allowed);
  CHECK(refused("digits", {"1", "2", "3"}).code == ErrorCode::bad_args);
  Error e = refused("digits", {"12", "1234"});
  CHECK(e.code == ErrorCode::bad_args);
  CHECK(e.message == "argument 2 does not match the pattern '[0-9]{1,3}'");
  CHECK(refused("digits", {"1a"}).code == ErrorCode::bad_args);
  CHECK(refused("digits", {std::string("1\0", 2)}).code == ErrorCode::bad_args);
  StartRequest with_stdin;
  with_stdin.stdin_text = "x\n";
  CHECK(f.refuse("quiet", with_stdin).code == ErrorCode::bad_request);
  CHECK(f.launcher.specs.empty());
  CHECK(f.observer.events.empty());

  // What passes.
  f.start("plain", with_id("p1"));  // no args: fine without an args rule
  StartRequest ok = with_id("d1");
  ok.args = {"7", "123"};
  f.start("digits", ok);
  CHECK(f.child("d1").spec.args == std::vector<std::string>{"7", "123"});
  CHECK(std::holds_alternative<Started>(f.try_start("web", {}, "websocket")));
}

TEST_CASE("an id must be new: running, queued or finished ones are duplicate_id", "[agent]") {
  auto q = command("q");
  q.max_instances = 1;
  q.on_busy = config::OnBusy::queue;
  Fixture f(make_config({q, command("other")}));
  f.start("q", "running");
  CHECK(f.start("q", "queued").queued);
  f.launcher.fail_next(std::make_error_code(std::errc::permission_denied));
  CHECK(f.refuse("other", with_id("failed")).code == ErrorCode::spawn_failed);
  f.start("other", "done");
  f.child("done").exit(0);
  REQUIRE(f.ended("done"));

  for (const char* id : {"running", "queued", "failed", "done"}) {
    INFO(id);
    Error e = f.refuse("other", with_id(id));
    CHECK(e.code == ErrorCode::duplicate_id);
    CHECK(e.message == "run '" + std::string(id) + "' already exists on dev1");
  }
  f.start("other", "fresh");
}

TEST_CASE("on_busy: queue answers queued and starts the run when a slot frees", "[agent]") {
  auto q = command("q");
  q.max_instances = 1;
  q.on_busy = config::OnBusy::queue;
  q.queue_max = 2;
  Fixture f(make_config({q}));

  f.start("q", "r1");
  StartRequest second = with_id("r2");
  second.stdin_text = "hello\n";
  Started s2 = f.start("q", second);
  CHECK(s2.queued);
  CHECK(s2.pid == 0);
  CHECK(f.start("q", "r3").queued);
  Error full = f.refuse("q", with_id("r4"));
  CHECK(full.code == ErrorCode::busy);
  CHECK(full.message == "queue of 'q' is full (2)");
  CHECK(f.launcher.children.size() == 1);
  CHECK(f.observer.states("r2").empty());  // no state until it starts
  CHECK_FALSE(f.agent->has_run("r2"));

  // stdin sent while it waits (a client sends it as soon as it hears "queued") is kept
  // in the run, written when it starts, and `eof` closes stdin right after.
  CHECK_FALSE(f.agent->write_stdin("r2", "more"));
  CHECK_FALSE(f.agent->close_stdin("r2"));
  CHECK(f.agent->write_stdin("r2", "late")->code == ErrorCode::bad_request);

  f.child("r1").exit(0);
  REQUIRE(f.ended("r1"));
  REQUIRE(f.launcher.children.size() == 2);  // r2, in order, and only r2
  FakeChild& c2 = f.child("r2");
  CHECK(c2.writes == std::vector<std::string>{"hello\nmore\n"});
  CHECK(c2.stdin_closed);
  CHECK(f.observer.index("state", "r1", true) < f.observer.index("state", "r2"));
  CHECK(f.observer.states("r2")[0]["state"] == "running");
  CHECK(f.observer.states("r3").empty());

  c2.exit(0);
  REQUIRE(f.ended("r2"));
  CHECK(f.child_of("r3"));
  CHECK(f.launcher.children.size() == 3);
  // A queued run took each freed slot at once: `running` never went OFF in between.
  CHECK(f.observer.running_changes("q") == std::vector<std::string>{"ON"});
}

TEST_CASE("a queued start whose launch fails ends failed", "[agent]") {
  auto q = command("q");
  q.max_instances = 1;
  q.on_busy = config::OnBusy::queue;
  Fixture f(make_config({q}));
  f.start("q", "r1");
  CHECK(f.start("q", "r2").queued);
  f.launcher.fail_next(std::make_error_code(std::errc::no_such_file_or_directory));
  f.child("r1").exit(0);
  REQUIRE(f.ended("r2"));
  json doc = f.observer.final_state("r2");
  CHECK(doc["state"] == "failed");
  CHECK(doc["error"].get<std::string>().starts_with("cannot start /opt/q"));
  CHECK(f.agent->active_runs() == 0);
}

TEST_CASE("stop kills the command's runs and drops its queue", "[agent]") {
  auto q = command("q");
  q.max_instances = 1;
  q.on_busy = config::OnBusy::queue;
  Fixture f(make_config({q, command("other")}));
  f.launcher.dies_on = {SIGTERM};
  f.start("q", "r1");
  CHECK(f.start("q", "r2").queued);
  f.start("other", "o1");

  CHECK_FALSE(f.stop("q"));
  // The queued start ends at once, failed, with why.
  json dropped = f.observer.final_state("r2");
  REQUIRE_FALSE(dropped.is_null());
  CHECK(dropped["state"] == "failed");
  CHECK(dropped["error"] == "stopped while queued");
  CHECK(f.child("r1").signals == std::vector<int>{SIGTERM, SIGCONT});
  REQUIRE(f.ended("r1"));
  json killed = f.observer.final_state("r1");
  CHECK(killed["state"] == "killed");
  CHECK(killed["reason"] == "stop");
  CHECK(killed["signal"] == "TERM");
  run_for(f.io, 20ms);
  CHECK(f.launcher.children.size() == 2);  // r2 never started
  CHECK(f.child("o1").signals.empty());
  CHECK(f.agent->has_run("o1"));
  CHECK(f.observer.running_changes("q") == std::vector<std::string>{"ON", "OFF"});
}

TEST_CASE("on_busy: replace kills the oldest run and starts once it is gone", "[agent]") {
  auto r = command("r");
  r.max_instances = 1;
  r.on_busy = config::OnBusy::replace;
  Fixture f(make_config({r}));
  f.start("r", "old");
  Started s = f.start("r", "new");
  CHECK(s.run == "new");
  CHECK(s.replaces == "old");
  CHECK(s.pid == 0);
  CHECK_FALSE(s.queued);
  FakeChild& old = f.child("old");
  CHECK(old.signals == std::vector<int>{SIGTERM, SIGCONT});

  // It ignores TERM: the new run waits while the old one lives, KILL comes after
  // kill_grace, and only then does the new one start.
  run_for(f.io, 20ms);
  CHECK(f.launcher.children.size() == 1);
  REQUIRE(f.until([&] { return old.signals.size() == 3; }));
  CHECK(old.signals.back() == SIGKILL);
  CHECK(f.launcher.children.size() == 1);
  old.die(SIGKILL);
  REQUIRE(f.ended("old"));
  json final_old = f.observer.final_state("old");
  CHECK(final_old["state"] == "killed");
  CHECK(final_old["reason"] == "replaced");
  CHECK(final_old["signal"] == "KILL");
  REQUIRE(f.child_of("new"));
  CHECK(f.observer.index("state", "old", true) < f.observer.index("state", "new"));
  CHECK(f.agent->has_run("new"));
}

TEST_CASE("on_busy: replace is busy when other commands fill the device", "[agent]") {
  auto r = command("r");
  r.on_busy = config::OnBusy::replace;
  auto config = make_config({r, command("other")});
  config.limits.max_runs = 1;
  Fixture f(config);
  f.start("other", "o1");
  Error e = f.refuse("r", with_id("r1"));
  CHECK(e.code == ErrorCode::busy);
  CHECK(f.child("o1").signals.empty());
}

TEST_CASE("a timeout kills the run: TERM, KILL after kill_grace, reason timeout", "[agent]") {
  Fixture f(make_config({command("slow")}));
  StartRequest request = with_id("t1");
  request.timeout = 20ms;
  const auto began = std::chrono::steady_clock::now();
  f.start("slow", request);
  FakeChild& child = f.child("t1");
  REQUIRE(f.until([&] { return child.signals.size() == 3; }));
  CHECK(child.signals == std::vector<int>{SIGTERM, SIGCONT, SIGKILL});
  CHECK(std::chrono::steady_clock::now() - began >= 70ms);
  child.die(SIGKILL);
  REQUIRE(f.ended("t1"));
  json doc = f.observer.final_state("t1");
  CHECK(doc["state"] == "killed");
  CHECK(doc["reason"] == "timeout");
  CHECK(doc["signal"] == "KILL");
  CHECK_FALSE(doc.contains("exit_code"));
  CHECK(doc["duration_ms"].get<long>() >= 70);
}

TEST_CASE("kill ends a run with the reason given", "[agent]") {
  Fixture f(make_config({command("c")}));
  f.launcher.dies_on = {SIGTERM};
  f.start("c", "k1");
  CHECK(f.agent->kill("k1", "disconnect"));
  CHECK_FALSE(f.agent->kill("nope", "disconnect"));
  REQUIRE(f.ended("k1"));
  CHECK(f.observer.final_state("k1")["reason"] == "disconnect");
  CHECK_FALSE(f.agent->kill("k1", "disconnect"));
}

TEST_CASE("a signal request sends just that signal to the run", "[agent]") {
  Fixture f(make_config({command("c")}));
  f.start("c", "s1");
  FakeChild& child = f.child("s1");
  CHECK_FALSE(f.agent->signal("s1", "HUP"));
  CHECK_FALSE(f.agent->signal("s1", "SIGUSR1"));
  CHECK(child.signals == std::vector<int>{SIGHUP, SIGUSR1});

  Error bad = *f.agent->signal("s1", "NOPE");
  CHECK(bad.code == ErrorCode::bad_request);
  CHECK(f.agent->signal("missing", "TERM")->code == ErrorCode::unknown_run);
  CHECK(child.signals.size() == 2);

  child.die(SIGUSR1);
  REQUIRE(f.ended("s1"));
  json doc = f.observer.final_state("s1");
  CHECK(doc["state"] == "killed");
  CHECK(doc["reason"] == "signal");
  CHECK(doc["signal"] == "USR1");
  CHECK(f.agent->signal("s1", "TERM")->code == ErrorCode::unknown_run);
}

TEST_CASE("stdin requests write lines and close stdin", "[agent]") {
  Fixture f(make_config({command("c")}));
  StartRequest request = with_id("i1");
  request.stdin_text = "first\n";
  f.start("c", request);
  FakeChild& child = f.child("i1");
  CHECK_FALSE(f.agent->write_stdin("i1", "second"));
  CHECK(child.stdin_data() == "first\nsecond\n");
  CHECK(f.agent->write_stdin("missing", "x")->code == ErrorCode::unknown_run);
  CHECK(f.agent->close_stdin("missing")->code == ErrorCode::unknown_run);

  CHECK_FALSE(f.agent->close_stdin("i1"));
  CHECK(child.stdin_closed);
  CHECK(f.agent->write_stdin("i1", "third")->code == ErrorCode::bad_request);
  CHECK(child.writes.size() == 2);

  child.exit(0);
  REQUIRE(f.ended("i1"));
  // eof to a run that has just ended is quiet (it races the run's end); `in` is not.
  CHECK_FALSE(f.agent->close_stdin("i1"));
  CHECK(f.agent->write_stdin("i1", "x")->code == ErrorCode::unknown_run);
}

TEST_CASE("lines reach the observer numbered, the final state after all of them", "[agent]") {
  Fixture f(make_config({command("c")}));
  f.start("c", "l1");
  FakeChild& child = f.child("l1");
  child.out("one\ntw");
  child.err("e1\n");
  child.out("o\r\nthree\n");
  child.err("e2");
  child.out("four");
  child.exit(0);
  REQUIRE(f.ended("l1"));
  CHECK(f.observer.lines("l1", Stream::out) ==
        std::vector<std::string>{"one", "two", "three", "four"});
  CHECK(f.observer.lines("l1", Stream::err) == std::vector<std::string>{"e1", "e2"});
  std::vector<std::uint64_t> out_seq, err_seq;
  int last_line = -1;
  for (std::size_t i = 0; i < f.observer.events.size(); ++i) {
    const auto& e = f.observer.events[i];
    if (e.kind != "line") continue;
    (e.stream == Stream::out ? out_seq : err_seq).push_back(e.seq);
    last_line = static_cast<int>(i);
  }
  CHECK(out_seq == std::vector<std::uint64_t>{1, 2, 3, 4});
  CHECK(err_seq == std::vector<std::uint64_t>{1, 2});
  CHECK(last_line < f.observer.index("state", "l1", true));

  json doc = f.observer.final_state("l1");
  CHECK(doc["state"] == "exited");
  CHECK(doc["exit_code"] == 0);
  CHECK(doc["lines"] == 4);
  CHECK(doc["err_lines"] == 2);
  CHECK(doc["dropped"] == 0);
  CHECK_FALSE(doc.contains("truncated"));
  CHECK(doc["pid"] == child.pid);
  // The command stops running after the final state.
  CHECK(f.observer.running_changes("c") == std::vector<std::string>{"ON", "OFF"});
  int off = -1;
  for (std::size_t i = 0; i < f.observer.events.size(); ++i)
    if (f.observer.events[i].kind == "running") off = static_cast<int>(i);
  CHECK(f.observer.index("state", "l1", true) < off);
  CHECK_FALSE(f.agent->has_run("l1"));
  CHECK(f.agent->active_runs() == 0);
}

TEST_CASE("max_output truncates what the observer hears", "[agent]") {
  auto c = command("c");
  c.max_output = 8;
  Fixture f(make_config({c}));
  f.start("c", "m1");
  FakeChild& child = f.child("m1");
  child.out("1234\n5678\n9\n0\n");
  child.exit(0);
  REQUIRE(f.ended("m1"));
  CHECK(f.observer.lines("m1", Stream::out) == std::vector<std::string>{"1234", "5678"});
  json doc = f.observer.final_state("m1");
  CHECK(doc["truncated"] == true);
  CHECK(doc["lines"] == 4);
  CHECK(doc["dropped"] == 2);
  CHECK(doc["state"] == "exited");
}

TEST_CASE("a spawn failure is failed with spawn_failed, and no running state", "[agent]") {
  Fixture f(make_config({command("c")}));
  f.launcher.fail_next(std::make_error_code(std::errc::no_such_file_or_directory));
  Error e = f.refuse("c", with_id("f1"));
  CHECK(e.code == ErrorCode::spawn_failed);
  CHECK(e.message.starts_with("cannot start /opt/c: "));
  REQUIRE(f.observer.events.size() == 1);
  const auto& event = f.observer.events[0];
  CHECK(event.kind == "state");
  CHECK(event.final);
  CHECK(event.doc["state"] == "failed");
  CHECK(event.doc["error"] == e.message);
  CHECK_FALSE(event.doc.contains("pid"));
  CHECK(f.observer.running_changes("c").empty());
  CHECK(f.agent->active_runs() == 0);
  CHECK_FALSE(f.agent->has_run("f1"));
  // The next launch works again.
  f.start("c", "f2");
  CHECK(f.agent->has_run("f2"));
}

TEST_CASE("shutdown kills every run and calls done once all final states are out", "[agent]") {
  auto q = command("q");
  q.max_instances = 2;
  q.on_busy = config::OnBusy::queue;
  Fixture f(make_config({q}));
  f.start("q", "a");
  f.start("q", "b");
  CHECK(f.start("q", "waiting").queued);
  FakeChild& a = f.child("a");
  FakeChild& b = f.child("b");
  a.dies_on = {SIGTERM};  // b ignores TERM

  int done = 0;
  std::size_t events_at_done = 0;
  f.agent->shutdown([&] {
    ++done;
    events_at_done = f.observer.events.size();
  });
  CHECK(f.agent->shutting_down());
  CHECK(f.refuse("q", with_id("late")).code == ErrorCode::shutting_down);
  json dropped = f.observer.final_state("waiting");
  REQUIRE_FALSE(dropped.is_null());
  CHECK(dropped["state"] == "failed");
  CHECK(dropped["error"] == "linewired shut down while it was queued");
  CHECK(a.signals == std::vector<int>{SIGTERM, SIGCONT});
  CHECK(b.signals == std::vector<int>{SIGTERM, SIGCONT});

  REQUIRE(f.ended("a"));
  CHECK(done == 0);  // b is still there
  REQUIRE(f.until([&] { return b.signals.size() == 3; }));
  CHECK(b.signals.back() == SIGKILL);
  CHECK(done == 0);
  b.die(SIGKILL);
  REQUIRE(f.until([&] { return done > 0; }));
  run_for(f.io, 20ms);
  CHECK(done == 1);
  for (const char* id : {"a", "b"}) {
    json doc = f.observer.final_state(id);
    CHECK(doc["state"] == "killed");
    CHECK(doc["reason"] == "shutdown");
  }
  CHECK(f.observer.final_state("b")["signal"] == "KILL");
  // done came after the last final state was handed on.
  CHECK(events_at_done > static_cast<std::size_t>(f.observer.index("state", "b", true)));
  CHECK(f.launcher.children.size() == 2);  // the queued start never ran
  CHECK(f.agent->active_runs() == 0);
}

TEST_CASE("shutdown with no run calls done at once, kill_now sends KILL", "[agent]") {
  Fixture f(make_config({command("c")}));
  SECTION("no run") {
    int done = 0;
    f.agent->shutdown([&] { ++done; });
    CHECK(done == 1);
  }
  SECTION("kill_now") {
    f.start("c", "k");
    int done = 0;
    f.agent->shutdown([&] { ++done; });
    f.agent->kill_now();
    FakeChild& child = f.child("k");
    CHECK(child.signals == std::vector<int>{SIGTERM, SIGCONT, SIGKILL});
    child.die(SIGKILL);
    REQUIRE(f.until([&] { return done == 1; }));
    CHECK(f.observer.final_state("k")["reason"] == "shutdown");
  }
}

TEST_CASE("the observer hears running changes, info and forgotten runs", "[agent]") {
  auto config = make_config({command("c")});
  config.keep_runs = 1;
  Fixture f(config);
  auto last_info = [&] {
    json info;
    for (const auto& e : f.observer.events)
      if (e.kind == "info") info = e.doc;
    return info;
  };
  f.start("c", "x1");
  CHECK(f.observer.running_changes("c") == std::vector<std::string>{"ON"});
  REQUIRE(f.observer.count("info") == 1);
  CHECK(last_info()["device"] == "dev1");
  CHECK(last_info()["runs"]["active"] == 1);
  run_for(f.io, 1050ms);  // a second later, with nothing new: no info
  CHECK(f.observer.count("info") == 1);

  // An end a second after the last info: a new one at once.
  f.child("x1").exit(0);
  REQUIRE(f.ended("x1"));
  CHECK(f.observer.running_changes("c") == std::vector<std::string>{"ON", "OFF"});
  REQUIRE(f.observer.count("info") == 2);
  CHECK(last_info()["runs"]["active"] == 0);
  CHECK(f.observer.count("forget") == 0);

  // Within the second: held back.
  f.start("c", "x2");
  CHECK(f.observer.count("info") == 2);
  f.child("x2").exit(0);
  REQUIRE(f.ended("x2"));
  CHECK(f.observer.running_changes("c") == std::vector<std::string>{"ON", "OFF", "ON", "OFF"});
  // keep_runs 1: x2's end pushes x1's retained state out.
  CHECK(f.observer.index("forget", "x1") > f.observer.index("state", "x2", true));
  CHECK(f.observer.index("forget", "x2") == -1);
}

TEST_CASE("a congested observer pauses block runs, resume_output reads again", "[agent]") {
  auto block = command("block");
  auto drop = command("drop");
  drop.overflow = config::Overflow::drop;
  Fixture f(make_config({block, drop}));
  f.start("block", "b1");
  f.start("drop", "d1");
  FakeChild& b = f.child("b1");
  FakeChild& d = f.child("d1");
  f.observer.congested_ = true;
  b.out("x\n");
  d.out("y\n");
  settle(f.io);
  CHECK(b.paused);
  CHECK_FALSE(d.paused);  // overflow: drop never holds the child up
  CHECK(f.observer.lines("b1", Stream::out) == std::vector<std::string>{"x"});
  CHECK(f.observer.lines("d1", Stream::out).empty());  // held in the run
  f.agent->resume_output();
  CHECK(b.paused);  // still congested
  f.observer.congested_ = false;
  f.agent->resume_output();
  CHECK_FALSE(b.paused);
  CHECK(f.observer.lines("d1", Stream::out) == std::vector<std::string>{"y"});
}

TEST_CASE("a refused start does not cancel a service's pending restart", "[agent]") {
  auto s = command("svc");
  s.mode = config::Mode::service;
  s.restart_delay = 50ms;
  auto other = command("other");
  auto config = make_config({s, other});
  config.limits.max_runs = 1;
  Fixture f(std::move(config));
  f.agent->start_services();
  REQUIRE(f.launcher.children.size() == 1);
  f.launcher.last().exit(1);  // the service waits 50 ms to restart
  REQUIRE(f.until([&] { return f.agent->active_runs() == 0; }));
  f.start("other", "o1");  // the device is full now
  CHECK(f.refuse("svc").code == ErrorCode::busy);
  f.child("o1").exit(0);
  REQUIRE(f.ended("o1"));
  // The restart still comes.
  CHECK(f.until([&] { return f.launcher.children.size() == 3; }));
}

TEST_CASE("a service starts with start_services and restarts after it ends", "[agent]") {
  auto s = command("svc");
  s.mode = config::Mode::service;
  s.restart_delay = 20ms;
  Fixture f(make_config({s}));
  f.agent->start_services();
  REQUIRE(f.launcher.children.size() == 1);
  bool service_env = false;
  for (const auto& e : f.launcher.last().spec.env)
    service_env = service_env || e == "LINEWIRE_TRANSPORT=service";
  CHECK(service_env);
  CHECK(f.refuse("svc").code == ErrorCode::busy);

  f.launcher.last().exit(1);
  REQUIRE(f.until([&] { return f.launcher.children.size() == 2; }));
  // stop keeps it stopped.
  f.launcher.last().dies_on = {SIGTERM};
  CHECK_FALSE(f.stop("svc"));
  REQUIRE(f.until([&] { return f.agent->active_runs() == 0; }));
  run_for(f.io, 60ms);
  CHECK(f.launcher.children.size() == 2);
}

TEST_CASE("after a reload a queued start runs as configured then, or ends failed", "[agent]") {
  auto q = command("q");
  q.max_instances = 1;
  q.on_busy = config::OnBusy::queue;
  Fixture f(make_config({q, command("other")}));
  f.start("q", "r1");
  CHECK(f.start("q", "r2").queued);

  SECTION("changed: the new exec") {
    auto changed = q;
    changed.exec = {"/opt/q-v2", "--new"};
    CHECK_FALSE(f.agent->reload(make_config({changed, command("other")})));
    CHECK(f.observer.count("reconfigured") == 1);
    CHECK(f.child("r1").signals.empty());  // a running run goes on as it started
    f.child("r1").exit(0);
    REQUIRE(f.ended("r1"));
    CHECK(f.child("r2").spec.executable == "/opt/q-v2");
    CHECK(f.child("r2").spec.args == std::vector<std::string>{"--new"});
  }
  SECTION("removed: failed, with why") {
    CHECK_FALSE(f.agent->reload(make_config({command("other")})));
    json doc = f.observer.final_state("r2");
    REQUIRE_FALSE(doc.is_null());
    CHECK(doc["state"] == "failed");
    CHECK(doc["error"] == "its command was removed from the configuration while it was queued");
    CHECK(f.agent->has_run("r1"));
    f.child("r1").exit(0);
    REQUIRE(f.ended("r1"));
    CHECK(f.launcher.children.size() == 1);
  }
  SECTION("a new device name is refused") {
    auto next = make_config({q});
    next.device = "dev2";
    CHECK(f.agent->reload(next));
    CHECK(f.observer.count("reconfigured") == 0);
  }
}

namespace {

class Sink final : public RunSink {
 public:
  void on_line(Stream stream, std::string_view line, std::uint64_t seq) override {
    lines.push_back((stream == Stream::out ? "out " : "err ") + std::string(line) + " " +
                    std::to_string(seq));
  }
  void on_finished(const RunRecord& record) override { finished.push_back(record); }
  bool congested() const override { return congested_; }

  std::vector<std::string> lines;
  std::vector<RunRecord> finished;
  bool congested_ = false;
};

}  // namespace

TEST_CASE("sinks hear a run's lines and its end; a congested primary holds it", "[agent]") {
  auto q = command("q");
  q.max_instances = 1;
  q.on_busy = config::OnBusy::queue;
  Fixture f(make_config({q}));
  f.start("q", "r1");
  CHECK(f.start("q", "r2").queued);
  Sink primary, viewer, dropped_viewer;
  CHECK(f.agent->attach("r2", primary, true));  // queued runs take sinks too
  CHECK(f.agent->attach("r2", viewer, false));
  CHECK_FALSE(f.agent->attach("missing", viewer, false));

  f.child("r1").exit(0);
  REQUIRE(f.ended("r1"));
  FakeChild& child = f.child("r2");
  primary.congested_ = true;
  child.out("a\n");
  settle(f.io);
  CHECK(child.paused);  // the primary holds the child back
  CHECK(primary.lines == std::vector<std::string>{"out a 1"});
  CHECK(viewer.lines == primary.lines);
  primary.congested_ = false;
  f.agent->resume_run("r2");
  CHECK_FALSE(child.paused);

  f.agent->detach("r2", viewer);
  child.err("b\n");
  child.exit(2);
  REQUIRE(f.ended("r2"));
  CHECK(primary.lines == std::vector<std::string>{"out a 1", "err b 1"});
  CHECK(viewer.lines.size() == 1);
  REQUIRE(primary.finished.size() == 1);
  CHECK(primary.finished[0].exit_code == 2);
  CHECK(viewer.finished.empty());

  SECTION("a queued run that is dropped tells its sinks") {
    CHECK(f.start("q", "r3").pid != 0);
    CHECK(f.start("q", "r4").queued);
    CHECK(f.agent->attach("r4", dropped_viewer, false));
    CHECK_FALSE(f.stop("q"));
    REQUIRE(dropped_viewer.finished.size() == 1);
    CHECK(dropped_viewer.finished[0].phase == RunPhase::failed);
  }
}

TEST_CASE("every: ticks start runs of transport schedule, skipped and counted when busy",
          "[agent][schedule]") {
  auto t = command("temp");
  t.every = 50ms;
  t.max_instances = 1;
  t.on_busy = config::OnBusy::queue;  // skipped all the same (SPEC §5)
  Fixture f(make_config({t}));
  const auto started = std::chrono::steady_clock::now();
  f.agent->start_schedule();
  REQUIRE(f.until([&] { return f.launcher.children.size() == 1; }));
  CHECK(std::chrono::steady_clock::now() - started >= 50ms);  // one period after start
  bool schedule_env = false;
  for (const auto& e : f.launcher.last().spec.env)
    schedule_env = schedule_env || e == "LINEWIRE_TRANSPORT=schedule";
  CHECK(schedule_env);
  // The run goes on: the next ticks find temp at max_instances, and nothing queues.
  REQUIRE(f.until([&] { return f.agent->metrics().commands["temp"].schedule_skipped >= 2; }));
  CHECK(f.launcher.children.size() == 1);
  f.launcher.last().exit(0);
  REQUIRE(f.until([&] { return f.launcher.children.size() == 2; }));
  const auto& m = f.agent->metrics().commands["temp"];
  CHECK(m.schedule_ticks >= 3);
  CHECK(m.runs_started == 2);

  SECTION("a reload that removes every stops it") {
    f.launcher.last().exit(0);
    auto plain = command("temp");
    CHECK_FALSE(f.agent->reload(make_config({plain})));
    run_for(f.io, 200ms);
    CHECK(f.launcher.children.size() == 2);
  }
  SECTION("shutdown stops it") {
    f.launcher.last().dies_on = {SIGTERM};
    bool done = false;
    f.agent->shutdown([&] { done = true; });
    REQUIRE(f.until([&] { return done; }));
    run_for(f.io, 200ms);
    CHECK(f.launcher.children.size() == 2);
  }
}

TEST_CASE("every: a tick that finds the device at max_runs is skipped, not queued",
          "[agent][schedule]") {
  auto t = command("temp");
  t.every = 50ms;
  t.on_busy = config::OnBusy::queue;
  auto other = command("other");
  auto cfg = make_config({t, other});
  cfg.limits.max_runs = 1;
  Fixture f(std::move(cfg));
  f.start("other", "o1");
  f.agent->start_schedule();
  REQUIRE(f.until([&] { return f.agent->metrics().commands["temp"].schedule_skipped >= 2; }));
  CHECK(f.launcher.children.size() == 1);
  f.child("o1").exit(0);
  REQUIRE(f.until([&] { return f.launcher.children.size() == 2; }));  // the next tick runs
}
