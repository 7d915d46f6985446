#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cli/output/devices.hpp"
#include "cli/output/runs_table.hpp"

using namespace linewire::cli;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

const char* kInfo =
    R"({"device":"pi-1","version":"0.1.0","runs":{"active":1,"max":32},"groups":["kitchen"],)"
    R"("commands":{"uptime":{},"count":{}}})";

}  // namespace

TEST_CASE("devices from retained status and info") {
  DeviceDirectory d("site/lw");
  CHECK(d.add("site/lw/pi-1/status", "online"));
  CHECK(d.add("site/lw/pi-1/info", kInfo));
  CHECK(d.add("site/lw/pi-2/status", "offline"));
  CHECK_FALSE(d.add("site/lw/pi-1/run/r1/state", "{}"));
  CHECK_FALSE(d.add("site/lw/_client/status", "online"));  // not a device name
  CHECK_FALSE(d.add("other/pi-3/status", "online"));
  CHECK_FALSE(d.add("site/lwx/pi-3/status", "online"));

  auto all = d.devices();
  REQUIRE(all.size() == 2);
  CHECK(all[0].name == "pi-1");
  CHECK(all[0].online());
  CHECK(all[0].version() == "0.1.0");
  CHECK(all[0].in_group("kitchen"));
  CHECK_FALSE(all[0].in_group("garage"));
  CHECK(d.online() == std::vector<std::string>{"pi-1"});
  CHECK(d.online_in_group("kitchen") == std::vector<std::string>{"pi-1"});
  CHECK(d.online_in_group("garage").empty());

  // A cleared retained message forgets; a device with nothing left is gone.
  d.add("site/lw/pi-2/status", "");
  CHECK(d.devices().size() == 1);
  CHECK(d.find("pi-2") == nullptr);
}

TEST_CASE("bad info is no info") {
  DeviceDirectory d("lw");
  d.add("lw/pi/status", "online");
  d.add("lw/pi/info", "{not json");
  CHECK(d.find("pi")->info.is_null());
  CHECK_FALSE(d.find("pi")->in_group("x"));
}

TEST_CASE("the ls table") {
  DeviceDirectory d("lw");
  d.add("lw/pi-1/status", "online");
  d.add("lw/pi-1/info", kInfo);
  d.add("lw/old/status", "offline");
  d.add("lw/old/info", kInfo);
  CHECK(format_devices(d.devices(), false) ==
        "NAME  STATUS   VERSION  RUNS  COMMANDS\n"
        "old   offline  0.1.0    -     count,uptime\n"
        "pi-1  online   0.1.0    1/32  count,uptime\n");
  // Colour only when asked, and never in the widths.
  auto coloured = format_devices(d.devices(), true);
  CHECK(coloured.find("\x1b[32monline\x1b[0m   0.1.0") != std::string::npos);
}

TEST_CASE("ls --json: info documents with device and status") {
  DeviceDirectory d("lw");
  d.add("lw/pi-1/status", "online");
  d.add("lw/pi-1/info", kInfo);
  d.add("lw/bare/info", R"({"version":"0.0.9"})");
  auto doc = devices_json(d.devices());
  REQUIRE(doc.size() == 2);
  CHECK(doc[0]["device"] == "bare");
  CHECK(doc[0]["status"].is_null());
  CHECK(doc[1]["device"] == "pi-1");
  CHECK(doc[1]["status"] == "online");
  CHECK(doc[1]["runs"]["max"] == 32);
}

TEST_CASE("timestamps and durations") {
  auto t = parse_timestamp("2026-11-22T23:00:00.123Z");
  REQUIRE(t);
  auto ms = std::chrono::duration_cast<milliseconds>(t->time_since_epoch()).count();
  CHECK(ms == 1795388400123LL);
  CHECK(parse_timestamp("2026-11-22T23:00:00Z"));
  CHECK(parse_timestamp("2026-11-22T23:00:00.5Z"));
  CHECK_FALSE(parse_timestamp("2026-11-22 23:00:00Z"));
  CHECK_FALSE(parse_timestamp("2026-11-22T23:00:00+01:00"));
  CHECK_FALSE(parse_timestamp("2026-13-22T23:00:00Z"));
  CHECK_FALSE(parse_timestamp(""));

  CHECK(format_duration(milliseconds(850)) == "850ms");
  CHECK(format_duration(milliseconds(5012)) == "5.0s");
  CHECK(format_duration(milliseconds(185'000)) == "3m05s");
  CHECK(format_duration(milliseconds(7'620'000)) == "2h07m");
  CHECK(format_duration(milliseconds(273'600'000)) == "3d04h");
  CHECK(format_duration(milliseconds(-5)) == "0ms");
}

TEST_CASE("runs: newest first, one line each") {
  std::vector<json> states = {
      json{{"run", "a"},
           {"command", "count"},
           {"state", "exited"},
           {"exit_code", 0},
           {"started", "2026-11-22T23:00:00.000Z"},
           {"duration_ms", 5012}},
      json{{"run", "b"},
           {"command", "count"},
           {"state", "killed"},
           {"signal", "TERM"},
           {"started", "2026-11-22T23:05:00.000Z"},
           {"duration_ms", 400}},
      json{{"run", "c"},
           {"command", "tail"},
           {"state", "running"},
           {"started", "2026-11-22T23:10:00.000Z"}},
      json{{"not", "a state"}},
  };
  auto sorted = newest_first(states);
  REQUIRE(sorted.size() == 3);
  CHECK(sorted[0]["run"] == "c");
  CHECK(sorted[2]["run"] == "a");
  auto now = *parse_timestamp("2026-11-22T23:11:30.000Z");
  CHECK(format_runs(sorted, now, false) ==
        "RUN  COMMAND  STATE    EXIT  STARTED               DURATION\n"
        "c    tail     running  -     2026-11-22T23:10:00Z  1m30s\n"
        "b    count    killed   TERM  2026-11-22T23:05:00Z  400ms\n"
        "a    count    exited   0     2026-11-22T23:00:00Z  5.0s\n");
}
