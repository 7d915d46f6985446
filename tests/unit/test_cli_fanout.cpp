#include <catch2/catch.hpp>

#include "cli/output/json_report.hpp"
#include "cli/run/fanout.hpp"
#include "cli/run/offline_grace.hpp"
#include "cli/run/targets.hpp"

using namespace linewire::cli;

namespace {

Outcome exited(int code) { return Outcome{code, {}}; }

}  // namespace

TEST_CASE("fan-out: all ok") {
  Fanout f;
  f.expect("a");
  f.expect("b");
  CHECK_FALSE(f.done());
  CHECK(f.replied("a"));
  CHECK_FALSE(f.replied("a"));  // a duplicate reply changes nothing
  CHECK(f.replied("b"));
  CHECK(f.running() == std::vector<std::string>{"a", "b"});
  CHECK(f.finished("a", exited(0)));
  CHECK_FALSE(f.done());
  CHECK(f.finished("b", exited(0)));
  CHECK(f.done());
  CHECK(f.exit_status() == 0);
  CHECK(f.summary() ==
        std::vector<std::string>{"ok: a, b", "2 targeted: 2 ok, 0 failed, 0 offline, 0 no answer"});
}

TEST_CASE("fan-out: the highest status wins, silence is 255") {
  Fanout f;
  for (auto d : {"a", "b", "c", "d"}) f.expect(d);
  f.replied("a");
  f.finished("a", exited(3));
  f.refused("b", "busy", "full");
  f.replied("c");
  f.finished("c", Outcome{143, "killed by TERM (signal)"});
  CHECK_FALSE(f.done());
  CHECK(f.waiting_for_replies());
  f.reply_window_over();
  CHECK(f.done());
  CHECK(f.exit_status() == 255);
  CHECK(f.find("d")->phase == Fanout::Phase::no_answer);
  CHECK(f.summary() ==
        std::vector<std::string>{
            "failed: a (exit 3), b (refused: busy: full), c (killed by TERM (signal))",
            "no answer: d", "4 targeted: 0 ok, 3 failed, 0 offline, 1 no answer"});
}

TEST_CASE("fan-out: a device outside the expected set that answers is followed") {
  Fanout f;
  f.expect("a");
  f.replied("a");
  f.replied("z");
  f.finished("a", exited(0));
  CHECK_FALSE(f.done());
  f.finished("z", exited(1));
  CHECK(f.done());
  CHECK(f.exit_status() == 1);
}

TEST_CASE("fan-out: with nobody expected, wait for the window") {
  Fanout f;
  CHECK_FALSE(f.done());
  f.replied("x");
  f.finished("x", exited(0));
  CHECK_FALSE(f.done());  // others in the group may still answer
  f.reply_window_over();
  CHECK(f.done());
  CHECK(f.exit_status() == 0);
  Fanout none;
  none.reply_window_over();
  CHECK(none.done());
  CHECK(none.exit_status() == 255);
  CHECK(none.summary().front() == "no device answered");
}

TEST_CASE("fan-out: a final state before the reply is an answer") {
  Fanout f;
  f.expect("a");
  CHECK(f.finished("a", exited(2)));
  CHECK_FALSE(f.replied("a"));
  CHECK(f.done());
  CHECK(f.exit_status() == 2);
}

TEST_CASE("fan-out: offline mid-run, timeouts, giving up") {
  Fanout f;
  for (auto d : {"a", "b", "c"}) f.expect(d);
  f.replied("a");
  f.replied("b");
  CHECK(f.went_offline("a"));
  CHECK(f.find("a")->status == 255);
  f.timed_out();
  f.finished("b", Outcome{143, "killed by TERM (signal)"});
  CHECK(f.find("b")->status == 124);  // killed because its time was up
  f.abandon(124, "timed out");
  CHECK(f.find("c")->phase == Fanout::Phase::no_answer);
  CHECK(f.find("c")->status == 255);
  CHECK(f.done());
  CHECK(f.exit_status() == 255);
  CHECK_FALSE(f.went_offline("b"));  // already done
}

TEST_CASE("fan-out: offline members are targeted, not run, and count 255") {
  Fanout f;
  f.expect("a");
  f.offline("b");
  f.skip("c");  // --online / --all: left out on purpose
  CHECK_FALSE(f.done());
  f.replied("a");
  f.finished("a", exited(0));
  CHECK(f.done());
  CHECK(f.exit_status() == 255);
  auto c = f.counts();
  CHECK(c.targeted == 2);
  CHECK(c.ok == 1);
  CHECK(c.offline == 1);
  CHECK(c.skipped == 1);
  CHECK(f.summary() ==
        std::vector<std::string>{
            "ok: a", "offline, not run: b", "skipped 1 offline: c",
            "2 targeted: 1 ok, 0 failed, 1 offline, 0 no answer (1 offline skipped)"});
}

TEST_CASE("fan-out: skipped devices do not change the exit status; nothing run is 255") {
  Fanout f;
  f.expect("a");
  f.skip("b");
  f.replied("a");
  f.finished("a", exited(0));
  CHECK(f.exit_status() == 0);
  Fanout none;
  none.skip("b");
  CHECK(none.exit_status() == 255);
}

TEST_CASE("fan-out: a device asked that goes offline before it answers has failed") {
  Fanout f;
  f.expect("a");
  f.expect("b");
  CHECK(f.went_offline("a"));  // it may have run: not "offline, not run"
  CHECK(f.find("a")->phase == Fanout::Phase::lost);
  CHECK(f.no_answer("b"));
  CHECK(f.done());
  auto c = f.counts();
  CHECK(c.failed == 1);
  CHECK(c.offline == 0);
  CHECK(c.no_answer == 1);
}

TEST_CASE("fan-out: one reported offline that answers after all is followed") {
  Fanout f;
  f.offline("a");
  CHECK(f.replied("a"));
  CHECK_FALSE(f.done());
  f.finished("a", exited(0));
  CHECK(f.exit_status() == 0);
}

TEST_CASE("fan-out: one reported offline whose final state overtakes its reply") {
  Fanout f;
  f.offline("a");
  f.skip("b");
  CHECK(f.finished("a", exited(0)));
  CHECK(f.finished("b", exited(4)));
  CHECK(f.done());
  CHECK(f.exit_status() == 4);
  CHECK(f.counts().ok == 1);
  CHECK(f.counts().skipped == 0);
}

TEST_CASE("fan-out: --batch starts at most N, the next as one finishes") {
  Fanout f;
  for (auto d : {"a", "b", "c", "d", "e"}) f.queue(d);
  CHECK_FALSE(f.done());
  CHECK(f.start_next(2) == std::vector<std::string>{"a", "b"});
  CHECK(f.start_next(2).empty());
  f.replied("a");
  CHECK(f.start_next(2).empty());
  f.finished("a", exited(0));
  CHECK(f.start_next(2) == std::vector<std::string>{"c"});
  f.no_answer("b");
  CHECK(f.start_next(2) == std::vector<std::string>{"d"});
  CHECK(f.active() == 2);
  f.replied("c");
  f.finished("c", exited(0));
  f.replied("d");
  f.finished("d", exited(0));
  CHECK(f.start_next(10) == std::vector<std::string>{"e"});
  f.replied("e");
  f.finished("e", exited(0));
  CHECK(f.done());
  CHECK(f.exit_status() == 255);  // b did not answer
  CHECK(f.counts().no_answer == 1);
}

TEST_CASE("fan-out: a batch bigger than the group starts them all") {
  Fanout f;
  f.queue("a");
  f.queue("b");
  CHECK(f.start_next(50) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("fan-out: --fail-fast stops the rest after the first failure") {
  Fanout f(true);
  for (auto d : {"a", "b", "c", "d"}) f.queue(d);
  CHECK(f.start_next(1) == std::vector<std::string>{"a"});
  f.replied("a");
  f.finished("a", exited(0));
  CHECK(f.start_next(1) == std::vector<std::string>{"b"});
  f.replied("b");
  f.finished("b", exited(3));
  CHECK(f.start_next(1).empty());
  CHECK(f.done());
  CHECK(f.find("c")->phase == Fanout::Phase::not_run);
  CHECK(f.exit_status() == 3);
  auto c = f.counts();
  CHECK(c.targeted == 4);
  CHECK(c.not_run == 2);
  CHECK(f.summary().back() == "4 targeted: 1 ok, 1 failed, 0 offline, 0 no answer, 2 not run");
  CHECK(f.summary()[f.summary().size() - 2] == "not run (--fail-fast): c, d");
}

TEST_CASE("fan-out: without --fail-fast a failure stops nothing; Ctrl-C does") {
  Fanout f;
  for (auto d : {"a", "b", "c"}) f.queue(d);
  f.start_next(1);
  f.replied("a");
  f.finished("a", exited(1));
  CHECK(f.start_next(1) == std::vector<std::string>{"b"});
  f.stop_starting("interrupted");
  CHECK(f.start_next(1).empty());
  CHECK(f.find("c")->phase == Fanout::Phase::not_run);
  CHECK_FALSE(f.done());  // b still runs
  f.replied("b");
  f.finished("b", Outcome{130, "killed by INT"});
  CHECK(f.done());
  CHECK(f.exit_status() == 130);
}

TEST_CASE("json report: lines, non-UTF-8, errors, summary") {
  using nlohmann::json;
  auto l = json::parse(json_line("pi-1", "r1", false, 7, "h\xc3\xa9llo"));
  CHECK(l == json{{"device", "pi-1"},
                  {"run", "r1"},
                  {"stream", "out"},
                  {"seq", 7},
                  {"line", "h\xc3\xa9llo"}});
  auto b = json::parse(json_line("pi-1", "r1", true, std::nullopt, std::string("\xff\xfe a", 4)));
  CHECK(b["stream"] == "err");
  CHECK(b["seq"].is_null());
  CHECK_FALSE(b.contains("line"));
  CHECK(b["line_b64"] == "//4gYQ==");
  CHECK_FALSE(valid_utf8("\xc0\x80"));      // overlong
  CHECK_FALSE(valid_utf8("\xed\xa0\x80"));  // a surrogate
  CHECK_FALSE(valid_utf8("\xe2\x82"));      // cut short
  CHECK(valid_utf8("\xf0\x9f\x98\x80"));
  Fanout f;
  f.expect("a");
  f.refused("a", "busy", "too many runs");
  auto e = json::parse(*json_entry_error(*f.find("a")));
  CHECK(e == json{{"device", "a"}, {"error", {{"code", "busy"}, {"message", "too many runs"}}}});
  auto s = json::parse(json_summary(f.counts(), 255));
  CHECK(s["summary"]["targeted"] == 1);
  CHECK(s["summary"]["failed"] == 1);
  CHECK(s["summary"]["exit_status"] == 255);
  // The documented order, not sorted keys.
  CHECK(json_line("pi-1", "r1", false, 7, "hi") ==
        R"({"device":"pi-1","run":"r1","stream":"out","seq":7,"line":"hi"})");
  CHECK(json_summary(f.counts(), 255) ==
        R"({"summary":{"targeted":1,"ok":0,"failed":1,"offline":0,"no_answer":0,"not_run":0,)"
        R"("skipped":0,"exit_status":255}})");
  CHECK(*json_entry_error(*f.find("a")) ==
        R"({"device":"a","error":{"code":"busy","message":"too many runs"}})");
  CHECK(json_final("a", "r1", json{{"state", "exited"}}) ==
        R"({"device":"a","run":"r1","final":{"state":"exited"}})");
}

TEST_CASE("fan-out targets from the retained status and info") {
  DeviceDirectory dir("lw");
  auto device = [&](const std::string& name, const char* status, const char* info) {
    dir.add("lw/" + name + "/status", status);
    dir.add("lw/" + name + "/info", info);
  };
  device("a", "online", R"({"groups": ["g"]})");
  device("b", "offline", R"({"groups": ["g"]})");
  device("c", "online", R"({"groups": ["h"]})");
  device("d", "online", "not json");
  RunOptions o;
  SECTION("--group: online members asked, offline ones not run, an unreadable info said") {
    o.group = "g";
    Fanout f;
    auto choice = pick_targets(dir, o, f, "mqtt://x", "lw");
    CHECK(choice.go);
    CHECK(f.counts().targeted == 2);
    CHECK(f.counts().offline == 1);
    REQUIRE(choice.notes.size() == 2);
    CHECK(choice.notes[0] == "b: offline, not run");
    CHECK(choice.notes[1].find("d: its retained info is missing or not a JSON object") == 0);
  }
  SECTION("--group --online: offline members skipped") {
    o.group = "g";
    o.online = true;
    Fanout f;
    CHECK(pick_targets(dir, o, f, "mqtt://x", "lw").go);
    CHECK(f.counts().targeted == 1);
    CHECK(f.counts().skipped == 1);
  }
  SECTION("--all: every online device") {
    o.all = true;
    Fanout f;
    CHECK(pick_targets(dir, o, f, "mqtt://x", "lw").go);
    CHECK(f.counts().targeted == 3);
  }
  SECTION("a group nobody lists: nothing to do, said with where it looked") {
    o.group = "nosuch";
    o.batch = 1;  // with --batch, devices whose groups are unknown are not asked either
    Fanout f;
    auto choice = pick_targets(dir, o, f, "mqtt://x", "lw");
    CHECK_FALSE(choice.go);
    CHECK(choice.notes.back() ==
          "no device lists group 'nosuch' in its retained info (4 device(s) seen under lw/ "
          "on mqtt://x)");
  }
}

TEST_CASE("offline grace: a device may come back") {
  using namespace std::chrono_literals;
  OfflineGrace g(10s);
  auto t0 = OfflineGrace::Clock::time_point{} + 100s;
  CHECK_FALSE(g.status("a", "online", t0));
  CHECK_FALSE(g.deadline());
  CHECK(g.status("a", "offline", t0));
  CHECK_FALSE(g.status("a", "offline", t0 + 1s));  // counted from the first
  CHECK(g.offline("a"));
  CHECK(*g.deadline() == t0 + 10s);
  CHECK(g.expired(t0 + 9s).empty());
  g.status("a", "online", t0 + 9s);  // back: nothing expires
  CHECK(g.expired(t0 + 20s).empty());
  CHECK_FALSE(g.offline("a"));

  CHECK(g.status("b", "", t0));  // a cleared status is no better than offline
  g.reconnected(t0 + 5s);        // our own reconnect: the status comes anew
  CHECK(g.expired(t0 + 12s).empty());
  CHECK(g.expired(t0 + 15s) == std::vector<std::string>{"b"});
  CHECK_FALSE(g.offline("b"));
}
