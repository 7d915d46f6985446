#include <catch2/catch.hpp>
#include <csignal>

#include "protocol/names.hpp"

using namespace linewire::protocol;

TEST_CASE("names follow SPEC §1") {
  CHECK(valid_name("pi-7"));
  CHECK(valid_name("A"));
  CHECK(valid_name("count_2.x-y"));
  CHECK(valid_name(std::string(64, 'a')));
  CHECK_FALSE(valid_name(std::string(65, 'a')));
  CHECK_FALSE(valid_name(""));
  CHECK_FALSE(valid_name(".hidden"));
  CHECK_FALSE(valid_name("-x"));
  CHECK_FALSE(valid_name("_x"));
  CHECK_FALSE(valid_name("a/b"));
  CHECK_FALSE(valid_name("a+"));
  CHECK_FALSE(valid_name("#"));
  CHECK_FALSE(valid_name(std::string("a\0b", 3)));
  CHECK_FALSE(valid_name("a b"));
  CHECK_FALSE(valid_name("caf\xc3\xa9"));
}

TEST_CASE("signal names") {
  CHECK(parse_signal("TERM") == SIGTERM);
  CHECK(parse_signal("SIGKILL") == SIGKILL);
  CHECK(parse_signal("CONT") == SIGCONT);
  CHECK_FALSE(parse_signal("SEGV"));
  CHECK_FALSE(parse_signal("term"));
  CHECK_FALSE(parse_signal(""));
  CHECK(signal_name(SIGTERM) == "TERM");
  CHECK(signal_name(SIGSEGV) == "SEGV");
}

TEST_CASE("topics are built and parsed") {
  Topics t("site-a/linewire", "pi-1");
  CHECK(t.status() == "site-a/linewire/pi-1/status");
  CHECK(t.command("count", "last") == "site-a/linewire/pi-1/cmd/count/last");
  CHECK(t.run("r1", "out") == "site-a/linewire/pi-1/run/r1/out");
  CHECK(t.group_filter("kitchen") == "site-a/linewire/_group/kitchen/cmd/+/start");
  CHECK(t.device_filter("run", "in") == "site-a/linewire/pi-1/run/+/in");

  auto start = t.parse("site-a/linewire/pi-1/cmd/count/start");
  REQUIRE(start);
  CHECK(start->kind == RequestKind::start);
  CHECK(start->name == "count");

  auto sig = t.parse("site-a/linewire/pi-1/run/r-9/signal");
  REQUIRE(sig);
  CHECK(sig->kind == RequestKind::signal);
  CHECK(sig->name == "r-9");

  auto group = t.parse("site-a/linewire/_group/kitchen/cmd/uptime/start");
  REQUIRE(group);
  CHECK(group->kind == RequestKind::group_start);
  CHECK(group->group == "kitchen");
  CHECK(group->name == "uptime");

  CHECK_FALSE(t.parse("site-a/linewire/pi-2/cmd/count/start"));
  CHECK_FALSE(t.parse("site-a/linewire/pi-1/run/r1/out"));
  CHECK_FALSE(t.parse("site-a/linewire/pi-1/cmd/count/start/extra"));
  CHECK_FALSE(t.parse("site-a/linewirex/pi-1/cmd/count/start"));
  CHECK_FALSE(t.parse("other/pi-1/cmd/count/start"));
  CHECK_FALSE(t.parse("site-a/linewire/pi-1/cmd/count/start/"));
  CHECK_FALSE(t.parse("site-a/linewire/_group/kitchen/cmd/uptime/start/"));
}
