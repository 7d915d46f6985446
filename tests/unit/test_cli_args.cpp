#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/argv.hpp"
#include "cli/broker/ids.hpp"
#include "cli/broker/options.hpp"
#include "cli/broker/payloads.hpp"
#include "protocol/broker_login.hpp"

using namespace linewire::cli;
using nlohmann::json;
using Args = std::vector<std::string>;

namespace {

// The options of `linewire` and `run` as main() declares them.
std::optional<bool> takes_value(std::string_view o) {
  for (auto v : {"--broker", "--prefix", "--timeout", "--id", "--group", "--wait", "--protocol"})
    if (o == v) return true;
  for (auto f : {"--all", "--no-stdin", "-h", "--help", "--json"})
    if (o == f) return false;
  return std::nullopt;
}

}  // namespace

TEST_CASE("the remote command keeps its own flags") {
  CHECK(protect_remote_args({"run", "pi-7", "df", "-h"}, takes_value) ==
        Args{"run", "--", "pi-7", "df", "-h"});
  CHECK(protect_remote_args({"--broker", "mqtt://b", "run", "--timeout", "5", "pi", "ls", "-l"},
                            takes_value) ==
        Args{"--broker", "mqtt://b", "run", "--timeout", "5", "--", "pi", "ls", "-l"});
  CHECK(protect_remote_args({"run", "--timeout=5", "--all", "uptime", "--help"}, takes_value) ==
        Args{"run", "--timeout=5", "--all", "--", "uptime", "--help"});
  CHECK(protect_remote_args({"run", "--group", "kitchen", "df", "-h"}, takes_value) ==
        Args{"run", "--group", "kitchen", "--", "df", "-h"});
}

TEST_CASE("nothing to protect") {
  CHECK(protect_remote_args({"run", "--", "pi", "x"}, takes_value) == Args{"run", "--", "pi", "x"});
  CHECK(protect_remote_args({"ls", "--json"}, takes_value) == Args{"ls", "--json"});
  CHECK(protect_remote_args({"kill", "pi", "r1", "KILL"}, takes_value) ==
        Args{"kill", "pi", "r1", "KILL"});
  CHECK(protect_remote_args({"run", "--help"}, takes_value) == Args{"run", "--help"});
  CHECK(protect_remote_args({}, takes_value).empty());
}

TEST_CASE("broker: flag, else environment, else the default") {
  CHECK(choose_broker("mqtt://a:1", "mqtt://b:2") == "mqtt://a:1");
  CHECK(choose_broker("", "mqtt://b:2") == "mqtt://b:2");
  CHECK(choose_broker("", "") == "mqtt://localhost:1883");
  CHECK(choose_broker("", nullptr) == "mqtt://localhost:1883");
}

TEST_CASE("broker addresses get a scheme and a port") {
  CHECK(normalize_url("mqtt://broker.lan") == "mqtt://broker.lan:1883");
  CHECK(normalize_url("mqtts://broker.lan") == "mqtts://broker.lan:8883");
  CHECK(normalize_url("broker.lan") == "mqtt://broker.lan:1883");
  CHECK(normalize_url("broker.lan:1884") == "mqtt://broker.lan:1884");
  CHECK(normalize_url("ws://h/mqtt") == "ws://h:80/mqtt");
  CHECK(normalize_url("wss://h:9443/mqtt") == "wss://h:9443/mqtt");
  CHECK(normalize_url("mqtt://[::1]") == "mqtt://[::1]:1883");
  CHECK(normalize_url("mqtt://[::1]:1884") == "mqtt://[::1]:1884");
  CHECK_FALSE(normalize_url("mqtt://h:"));
  CHECK_FALSE(normalize_url("mqtt://h:x1"));
  CHECK_FALSE(normalize_url("mqtt://:1883"));
  CHECK_FALSE(normalize_url("mqtt://[::1]x"));
  CHECK_FALSE(normalize_url("http://h"));
  CHECK_FALSE(normalize_url("mqtt://"));
  CHECK_FALSE(normalize_url(""));
}

TEST_CASE("TLS when the scheme or a certificate says so") {
  BrokerOptions b;
  b.url = "mqtt://h:1883";
  CHECK_FALSE(b.tls());
  b.ca_file = "ca.crt";
  CHECK(b.tls());
  b = {};
  b.url = "mqtts://h:8883";
  CHECK(b.tls());
}

TEST_CASE("password file: its first line") {
  // A unique path: ctest may run several test processes at once.
  std::string path = (std::filesystem::temp_directory_path() /
                      ("linewire-test-password-" + std::to_string(::getpid())))
                         .string();
  {
    std::ofstream f(path);
    f << "s3cret\r\nnext line\n";
  }
  CHECK(linewire::protocol::read_password_file(path) == "s3cret");
  std::remove(path.c_str());
  CHECK_THROWS(linewire::protocol::read_password_file("/nonexistent/linewire-password"));
}

TEST_CASE("start requests") {
  StartFields f;
  CHECK(json::parse(start_payload(f)) == json::object());
  f.id = "r1";
  f.args = {"5", "-h"};
  f.timeout_s = 1.5;
  CHECK(json::parse(start_payload(f)) ==
        json{{"id", "r1"}, {"args", {"5", "-h"}}, {"timeout", 1.5}});
  f.reply_to = "lw/_client/c/reply";
  f.correlation = "abc";
  auto doc = json::parse(start_payload(f));
  CHECK(doc["reply_to"] == "lw/_client/c/reply");
  CHECK(doc["correlation"] == "abc");
  f.args = {"caf\xe9"};  // not UTF-8: replaced, never a throw
  CHECK_NOTHROW(start_payload(f));
}

TEST_CASE("run ids are valid names that sort by time") {
  auto a = new_run_id();
  CHECK(a.size() == 22);
  CHECK(a[8] == '-');
  CHECK(random_hex(16).size() == 16);
  CHECK(random_hex(16) != random_hex(16));
}

TEST_CASE("replies") {
  auto ok = parse_reply(R"({"ok":true,"device":"pi","run":"r1","command":"c","pid":4})");
  REQUIRE(ok);
  CHECK(ok->ok);
  CHECK(ok->device == "pi");
  CHECK(ok->run == "r1");
  CHECK_FALSE(ok->queued);
  auto no = parse_reply(
      R"({"ok":false,"device":"pi","error":{"code":"busy","message":"full"},"correlation":"x"})");
  REQUIRE(no);
  CHECK_FALSE(no->ok);
  CHECK(no->code == "busy");
  CHECK(no->message == "full");
  CHECK(no->correlation == "x");
  CHECK(parse_reply(R"({"ok":true,"queued":true})")->queued);
  CHECK(parse_reply(R"({"ok":false})")->code == "refused");
  CHECK_FALSE(parse_reply("online"));
  CHECK_FALSE(parse_reply("[]"));
  CHECK_FALSE(parse_reply(R"({"ok":"yes"})"));
}
