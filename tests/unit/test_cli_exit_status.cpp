#include <catch2/catch.hpp>
#include <csignal>
#include <nlohmann/json.hpp>

#include "cli/run/exit_status.hpp"

using namespace linewire::cli;
using nlohmann::json;

TEST_CASE("signal names and numbers") {
  CHECK(signal_number("TERM") == SIGTERM);
  CHECK(signal_number("SIGKILL") == SIGKILL);
  CHECK(signal_number("INT") == SIGINT);
  // Beyond SPEC §2's list: the agent names a crash's signal the way glibc does.
  CHECK(signal_number("SEGV") == SIGSEGV);
  CHECK(signal_number("SIGABRT") == SIGABRT);
  CHECK(signal_number("PIPE") == SIGPIPE);
  CHECK(signal_number("9") == 9);
  CHECK_FALSE(signal_number(""));
  CHECK_FALSE(signal_number("SIG"));
  CHECK_FALSE(signal_number("TERMX"));
  CHECK_FALSE(signal_number("0"));
  CHECK_FALSE(signal_number("999"));
  CHECK_FALSE(signal_number("-1"));
}

TEST_CASE("exited: the remote exit code") {
  auto o = outcome_of(json{{"state", "exited"}, {"exit_code", 3}});
  REQUIRE(o);
  CHECK(o->status == 3);
  CHECK(o->note.empty());
  CHECK(outcome_of(json{{"state", "exited"}, {"exit_code", 0}})->status == 0);
  CHECK(outcome_of(json{{"state", "exited"}, {"exit_code", 255}})->status == 255);
  // Nonsense is linewire's failure, never a made-up success.
  CHECK(outcome_of(json{{"state", "exited"}})->status == kExitFailure);
  CHECK(outcome_of(json{{"state", "exited"}, {"exit_code", 300}})->status == kExitFailure);
  CHECK(outcome_of(json{{"state", "exited"}, {"exit_code", "0"}})->status == kExitFailure);
}

TEST_CASE("killed: 128+N, or 124 when the timeout killed it") {
  auto term = outcome_of(json{{"state", "killed"}, {"signal", "TERM"}, {"reason", "signal"}});
  REQUIRE(term);
  CHECK(term->status == 143);
  CHECK(term->note == "killed by TERM (signal)");
  CHECK(outcome_of(json{{"state", "killed"}, {"signal", "KILL"}, {"reason", "stop"}})->status ==
        137);
  CHECK(outcome_of(json{{"state", "killed"}, {"signal", "INT"}})->status == 130);
  CHECK(outcome_of(json{{"state", "killed"}, {"signal", "SEGV"}, {"reason", "signal"}})->status ==
        128 + SIGSEGV);
  // A run that caught TERM and exited 0 was still killed by its timeout.
  auto timeout = outcome_of(
      json{{"state", "killed"}, {"signal", "TERM"}, {"reason", "timeout"}, {"exit_code", 0}});
  CHECK(timeout->status == kExitTimeout);
  CHECK(outcome_of(json{{"state", "killed"}, {"signal", "WHAT"}})->status == kExitFailure);
}

TEST_CASE("failed and lost: 255 with the reason") {
  auto failed = outcome_of(json{{"state", "failed"}, {"error", "exec: No such file"}});
  CHECK(failed->status == kExitFailure);
  CHECK(failed->note == "failed: exec: No such file");
  auto lost = outcome_of(json{{"state", "lost"}});
  CHECK(lost->status == kExitFailure);
  CHECK(lost->note == "lost");
}

TEST_CASE("not final: no outcome yet") {
  CHECK_FALSE(outcome_of(json{{"state", "running"}}));
  CHECK_FALSE(outcome_of(json::object()));
  CHECK_FALSE(outcome_of(json::array()));
  CHECK_FALSE(outcome_of(json("exited")));
  CHECK(is_final_state("lost"));
  CHECK_FALSE(is_final_state("running"));
}
