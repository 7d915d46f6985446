#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "agent/documents.hpp"

using namespace linewire::agent;
using nlohmann::json;

TEST_CASE("times are ISO 8601 UTC with milliseconds") {
  Clock::time_point t{std::chrono::milliseconds(1795388400123)};
  CHECK(iso8601(t) == "2026-11-22T23:00:00.123Z");
}

TEST_CASE("a running state has the fields of SPEC §4") {
  RunRecord r;
  r.run = "nightly-7";
  r.command = "count";
  r.args = {"5"};
  r.pid = 4242;
  auto doc = json::parse(state_document(r));
  CHECK(doc["state"] == "running");
  CHECK(doc["run"] == "nightly-7");
  CHECK(doc["command"] == "count");
  CHECK(doc["args"] == json::array({"5"}));
  CHECK(doc["pid"] == 4242);
  CHECK(doc["transport"] == "mqtt");
  CHECK(doc.contains("started"));
  CHECK_FALSE(doc.contains("ended"));
  CHECK_FALSE(doc.contains("key"));
}

TEST_CASE("final states carry their outcome") {
  RunRecord r;
  r.run = "r";
  r.command = "c";
  r.started = Clock::time_point{std::chrono::seconds(100)};
  r.ended = r.started + std::chrono::milliseconds(5012);
  r.lines = 5;
  r.phase = RunPhase::exited;
  r.exit_code = 0;
  auto doc = json::parse(state_document(r));
  CHECK(doc["state"] == "exited");
  CHECK(doc["exit_code"] == 0);
  CHECK(doc["duration_ms"] == 5012);
  CHECK(doc["lines"] == 5);
  CHECK(doc["err_lines"] == 0);
  CHECK(doc["dropped"] == 0);
  CHECK_FALSE(doc.contains("truncated"));

  r.phase = RunPhase::killed;
  r.signal = "TERM";
  r.reason = "timeout";
  r.truncated = true;
  r.key = "alice";
  doc = json::parse(state_document(r));
  CHECK(doc["state"] == "killed");
  CHECK(doc["signal"] == "TERM");
  CHECK(doc["reason"] == "timeout");
  CHECK(doc["truncated"] == true);
  CHECK(doc["key"] == "alice");

  // A lost run's counts are unknown (they died with the agent): absent, not 0.
  r.phase = RunPhase::lost;
  r.error = "linewired stopped while the run was running";
  doc = json::parse(state_document(r));
  CHECK(doc["state"] == "lost");
  CHECK(doc["error"] == r.error);
  CHECK_FALSE(doc.contains("lines"));
  CHECK_FALSE(doc.contains("err_lines"));
  CHECK_FALSE(doc.contains("dropped"));
}

TEST_CASE("args that are not UTF-8 do not break the document") {
  RunRecord r;
  r.args = {std::string("\xff\xfe")};
  CHECK_NOTHROW(json::parse(state_document(r)));
}
