// SPEC §6: a refused connection is logged with the reason in words and what to change.
#include <catch2/catch.hpp>

#include "protocol/connack.hpp"
#include "protocol/tcp_nodelay.hpp"

using linewire::protocol::connack_refusal;
using linewire::protocol::describe;
using linewire::protocol::Side;

TEST_CASE("CONNACK codes of both protocol versions read as words", "[connack]") {
  // MQTT 3.1.1 return codes 1..5 and their MQTT 5 reason codes mean the same.
  const std::pair<int, int> same[] = {{1, 0x84}, {2, 0x85}, {3, 0x88}, {4, 0x86}, {5, 0x87}};
  for (auto [v311, v5] : same) {
    auto a = connack_refusal(v311);
    auto b = connack_refusal(v5);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->reason == b->reason);
  }
  CHECK(connack_refusal(5)->reason == "not authorized");
  CHECK(connack_refusal(0x87)->hint.find("broker.password_file") != std::string::npos);
  CHECK(connack_refusal(0x87, Side::client)->hint.find("--password-file") != std::string::npos);
  CHECK(connack_refusal(0x86)->reason == "bad user name or password");
  CHECK(connack_refusal(0x8A)->reason == "banned");
  CHECK(connack_refusal(0x9F)->reason == "connection rate exceeded");
}

TEST_CASE("only an unsupported version lets `auto` fall back to 3.1.1", "[connack]") {
  CHECK(connack_refusal(1)->unsupported_version);  // a 3.1.1 broker answering a v5 CONNECT
  CHECK(connack_refusal(0x84)->unsupported_version);
  CHECK(connack_refusal(0x84)->hint.find("broker.protocol") != std::string::npos);
  for (int code : {2, 3, 4, 5, 0x80, 0x85, 0x86, 0x87, 0x88, 0x8A})
    CHECK_FALSE(connack_refusal(code)->unsupported_version);
}

TEST_CASE("codes that are not a CONNACK's have no refusal", "[connack]") {
  for (int code : {0, -1, -3, 6, 0x7F, 0x8B, 0x100}) CHECK_FALSE(connack_refusal(code));
}

TEST_CASE("the log line says refused, why, and what to change", "[connack]") {
  CHECK(describe(*connack_refusal(0x84)) ==
        "refused by the broker: unsupported protocol version (the broker does not speak this "
        "MQTT version: set broker.protocol to 3.1.1 or auto)");
  CHECK(describe(*connack_refusal(3)) == "refused by the broker: server unavailable");
}

// The broker socket is found by its peer port (protocol/tcp_nodelay.cpp): the URL's, or
// the scheme's usual one.
TEST_CASE("a broker URL's port, given or the scheme's", "[connack]") {
  using linewire::protocol::url_port;
  CHECK(url_port("mqtt://localhost:1884") == 1884);
  CHECK(url_port("tcp://10.0.0.2") == 1883);
  CHECK(url_port("mqtts://broker.example") == 8883);
  CHECK(url_port("ssl://broker.example:8884") == 8884);
  CHECK(url_port("ws://host:9001/mqtt") == 9001);
  CHECK(url_port("wss://host/mqtt") == 443);
  CHECK(url_port("mqtt://[::1]:1885") == 1885);
  CHECK(url_port("mqtt://[::1]") == 1883);
  CHECK(url_port("localhost") == 1883);
}
