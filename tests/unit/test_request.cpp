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
