#include <catch2/catch.hpp>

#include "cli/run/fanout.hpp"
#include "cli/run/offline_grace.hpp"

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
        std::vector<std::string>{"ok: a, b", "2 devices: 2 ok, 0 failed, 0 no answer"});
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
            "no answer: d", "4 devices: 0 ok, 3 failed, 1 no answer"});
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
