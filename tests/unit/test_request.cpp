#include <catch2/catch.hpp>

#include "protocol/request.hpp"

using namespace linewire::protocol;

TEST_CASE("an empty payload is an empty start request") {
  auto p = parse_start("");
  CHECK_FALSE(p.error);
  CHECK_FALSE(p.request.id);
  CHECK(p.request.args.empty());
  CHECK_FALSE(parse_start("  \n").error);
}

TEST_CASE("every field of a start request is read") {
  auto p = parse_start(R"({"id":"nightly-7","args":["5","x"],"stdin":"a\n","timeout":1.5})");
  REQUIRE_FALSE(p.error);
  CHECK(p.request.id == "nightly-7");
  CHECK(p.request.args == std::vector<std::string>{"5", "x"});
  CHECK(p.request.stdin_text == "a\n");
  CHECK(p.request.timeout == std::chrono::milliseconds(1500));
}

TEST_CASE("malformed requests are bad_request with a reason") {
  for (const char* payload :
       {"nope", "[1,2]", "42", R"({"id":5})", R"({"id":"a/b"})", R"({"id":".x"})",
        R"({"args":"5"})", R"({"args":[5]})", R"({"stdin":1})", R"({"timeout":"3"})",
        R"({"timeout":0})", R"({"timeout":-1})", R"({"tiemout":3})", "{\"id\":\"a\"",
        R"({"reply_to":"a/#"})", R"({"reply_to":5})"}) {
    INFO(payload);
    auto p = parse_start(payload);
    REQUIRE(p.error);
    CHECK(p.error->code == ErrorCode::bad_request);
    CHECK_FALSE(p.error->message.empty());
  }
}

TEST_CASE("JSON followed by a NUL is not a request") {
  auto p = parse_start(std::string_view("{}\0{\"id\":5}", 11));
  REQUIRE(p.error);
  CHECK(p.error->code == ErrorCode::bad_request);
}

TEST_CASE("reply_to and correlation are read even when the request is refused") {
  auto p = parse_start(R"({"reply_to":"lw/_client/c1/reply","correlation":"42","id":7})");
  REQUIRE(p.error);
  CHECK(p.request.reply_to == "lw/_client/c1/reply");
  CHECK(p.request.correlation == "42");
}

TEST_CASE("deeply nested JSON does not crash the parser") {
  std::string deep(60000, '[');
  auto p = parse_start(deep);
  CHECK(p.error);
  std::string closed = std::string(20000, '[') + std::string(20000, ']');
  CHECK(parse_start(closed).error);
}

TEST_CASE("error codes have SPEC §3 names") {
  CHECK(to_string(ErrorCode::bad_request) == "bad_request");
  CHECK(to_string(ErrorCode::args_not_allowed) == "args_not_allowed");
  CHECK(to_string(ErrorCode::unknown_run) == "unknown_run");
  CHECK(to_string(ErrorCode::unauthorized) == "unauthorized");
}

TEST_CASE("a replay request: empty, from, per-stream from, streams") {
  auto p = parse_replay("");
  REQUIRE_FALSE(p.error);
  CHECK(p.request.from_out == 1);
  CHECK(p.request.from_err == 1);
  CHECK(p.request.out);
  CHECK(p.request.err);
  p = parse_replay(R"({"from": 42, "streams": ["err"]})");
  REQUIRE_FALSE(p.error);
  CHECK(p.request.from_out == 42);
  CHECK(p.request.from_err == 42);
  CHECK_FALSE(p.request.out);
  CHECK(p.request.err);
  p = parse_replay(R"({"from": {"out": 7, "err": 3}, "reply_to": "me/r", "correlation": "c1"})");
  REQUIRE_FALSE(p.error);
  CHECK(p.request.from_out == 7);
  CHECK(p.request.from_err == 3);
  CHECK(p.request.reply_to == "me/r");
  CHECK(p.request.correlation == "c1");
  CHECK(parse_replay(R"({"from": 0})").request.from_out == 1);
  CHECK(parse_replay(R"({"from": 18446744073709551615})").request.from_out ==
        18446744073709551615ULL);
}

TEST_CASE("malformed replay requests are bad_request, the reply route still read") {
  for (const char* payload :
       {R"({"from": -1})", R"({"from": 1.5})", R"({"from": "3"})", R"({"from": 1e30})",
        R"({"from": 184467440737095516150})", R"({"from": {"in": 1}})", R"({"from": {"out": -2}})",
        R"({"streams": []})", R"({"streams": ["log"]})", R"({"streams": "out"})", R"({"form": 1})",
        "[1]", "nope"}) {
    INFO(payload);
    auto p = parse_replay(payload);
    REQUIRE(p.error);
    CHECK(p.error->code == ErrorCode::bad_request);
    CHECK_FALSE(p.error->message.empty());
  }
  CHECK(parse_replay(std::string_view("{\"from\":1}\0x", 12)).error);
  auto p = parse_replay(R"({"reply_to": "me/r", "from": -1})");
  REQUIRE(p.error);
  CHECK(p.request.reply_to == "me/r");
}
