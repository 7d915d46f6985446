// Loading and validating the configuration (SPEC §7, config/load.hpp).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "config/checks.hpp"
#include "config/load.hpp"

namespace cfg = linewire::config;
using cfg::Duration;
using namespace std::chrono_literals;

namespace {

const std::string kOrigin = "/etc/linewire/linewire.yaml";

cfg::LoadResult load(const std::string& yaml, const std::string& hostname = "testhost") {
  return cfg::load_string(yaml, kOrigin, hostname);
}

// "LINE:COLUMN: MESSAGE" per problem, easy to compare and to read in a failure.
std::vector<std::string> problems(const cfg::LoadResult& result) {
  std::vector<std::string> out;
  for (const auto& p : result.problems)
    out.push_back(std::to_string(p.line) + ":" + std::to_string(p.column) + ": " + p.message);
  return out;
}

// The one problem of a config that should have exactly one.
std::string problem(const std::string& yaml) {
  const auto result = load(yaml);
  const auto all = problems(result);
  INFO(yaml);
  REQUIRE(all.size() == 1);
  CHECK_FALSE(result.config);
  return all[0];
}

// The config of a result that should have no problem (a copy: results are temporaries).
cfg::Config ok(const cfg::LoadResult& result) {
  INFO(Catch::Detail::stringify(problems(result)));
  REQUIRE(result.problems.empty());
  REQUIRE(result.config);
  return *result.config;
}

const std::string kMinimal = "commands: {}\n";

}  // namespace

TEST_CASE("a minimal config takes every default", "[config]") {
  const auto result = load(kMinimal);
  const auto c = ok(result);
  CHECK(c.source == kOrigin);
  CHECK(c.device == "testhost");
  CHECK(c.prefix == "linewire");
  CHECK(c.groups.empty());
  CHECK(c.broker.url == "mqtt://localhost:1883");
  CHECK(c.broker.protocol == cfg::Protocol::v5);
  CHECK_FALSE(c.broker.tls);
  CHECK(c.broker.keepalive == 30s);
  CHECK_FALSE(c.broker.session_expiry);
  CHECK(c.broker.reconnect_min == 1s);
  CHECK(c.broker.reconnect_max == 60s);
  CHECK(c.qos == 1);
  CHECK(c.keep_runs == 100);
  CHECK(c.run_state_ttl == 24h);
  CHECK(c.log_level == "info");
  // Crash safety by default (SPEC §5), in the device's own folder.
  CHECK(c.state_dir == cfg::default_state_dir(std::getenv("STATE_DIRECTORY"),
                                              std::getenv("XDG_STATE_HOME"), std::getenv("HOME"),
                                              ::geteuid() == 0) +
                           "/testhost");
  CHECK(c.limits.max_runs == 32);
  CHECK(c.limits.max_payload == 65536);
  CHECK(c.limits.max_line == 65536);
  CHECK(c.limits.buffer == 8 * 1024 * 1024);
  CHECK(c.commands.empty());
  CHECK(c.websocket.listen.empty());
  CHECK(c.websocket.max_connections == 64);
  CHECK_FALSE(c.homeassistant.discovery);
  CHECK(c.homeassistant.prefix == "homeassistant");
  CHECK(c.auth.keys.empty());
  CHECK_FALSE(c.auth.require);
  CHECK(c.auth.max_skew == 60s);
}

TEST_CASE("a command takes every default", "[config]") {
  const auto c = ok(load("commands:\n  uptime:\n    exec: [uptime]\n"));
  REQUIRE(c.commands.size() == 1);
  const auto& u = c.commands[0];
  CHECK(u.name == "uptime");
  CHECK(u.exec == std::vector<std::string>{"uptime"});  // a bare name stays for PATH
  CHECK(u.cwd.empty());
  CHECK(u.env.empty());
  CHECK_FALSE(u.args);
  CHECK_FALSE(u.timeout);
  CHECK(u.kill_grace == 5s);
  CHECK(u.max_instances == 0);
  CHECK(u.on_busy == cfg::OnBusy::reject);
  CHECK(u.queue_max == 16);
  CHECK_FALSE(u.max_output);
  CHECK(u.user.empty());
  CHECK(u.group.empty());
  CHECK(u.stdin_enabled);
  CHECK_FALSE(u.tty);
  CHECK(u.stderr_mode == cfg::StderrMode::publish);
  CHECK(u.retain_last);
  CHECK(u.overflow == cfg::Overflow::block);
  CHECK(u.mqtt);
  CHECK_FALSE(u.websocket);
  CHECK(u.mode == cfg::Mode::on_demand);
  CHECK(u.restart_delay == 5s);
  CHECK(u.homeassistant.enabled);
  CHECK(u.homeassistant.component.empty());
  CHECK(u.homeassistant.extra.empty());
  CHECK(u.keys.empty());
  CHECK_FALSE(u.unsigned_ok);
  CHECK(c.find_command("uptime") == &u);
  CHECK(c.find_command("nope") == nullptr);
}

TEST_CASE("every key, read into the structs", "[config]") {
  const auto result = load(R"(device: pi-kitchen
prefix: site-a/linewire
groups: [kitchen, sensors]
broker:
  url: wss://broker.lan:443/mqtt
  protocol: 3.1.1
  username: pi
  password_file: secrets/password
  tls: {ca_file: ca.crt, cert_file: /pki/client.crt, key_file: /pki/client.key}
  keepalive: 45s
  session_expiry: 1h
  client_id: pi-1
  reconnect: {min: 500ms, max: 2m}
qos: 2
keep_runs: 0
run_state_ttl: 2h
log_level: debug
state_dir: state
limits: {max_runs: 4, max_payload: 1KiB, max_line: 100, buffer: 1MB}
commands:
  count:
    exec: [./bin/count.sh, --fast, "two words"]
    cwd: work
    env: {LEVEL: debug, N: 5, EMPTY: ""}
    args: {pattern: '[0-9]{1,3}', max: 3}
    timeout: 1.5
    kill_grace: 0s
    max_instances: 2
    on_busy: queue
    queue_max: 0
    max_output: 16MiB
    user: nobody
    group: nogroup
    stdin: false
    tty: true
    stderr: discard
    retain_last: false
    overflow: drop
    transports: [websocket]
    mode: service
    restart_delay: 250ms
    homeassistant:
      component: sensor
      unit_of_measurement: "°C"
      device_class: temperature
      expire_after: 600
      force_update: true
    keys: [alice, ci]
  free:
    exec: [/usr/bin/free, -m]
    transports: [websocket, mqtt]
    homeassistant: false
    unsigned: true
websocket:
  listen: "[::1]:8080"
  static_dir: ./www
  allowed_origins: [http://localhost:8080, https://example.org]
  max_connections: 5
  token_file: /etc/linewire/ws-token
  cert_file: ws.crt
  key_file: ws.key
homeassistant: {discovery: true, prefix: ha}
auth:
  keys:
    alice: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIABFecenpo/dUt0uXXh6ZQK6fsXERFlIXby54MsRZSMU alice@laptop
    ci: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ+PYcF4SVaOyzH3+jijN4Xf0zsVMJg2bsqtC1XsIdGl"
  require: true
  max_skew: 30s
)");
  const auto c = ok(result);
  CHECK(c.device == "pi-kitchen");
  CHECK(c.prefix == "site-a/linewire");
  CHECK(c.groups == std::vector<std::string>{"kitchen", "sensors"});

  const auto& b = c.broker;
  CHECK(b.url == "wss://broker.lan:443/mqtt");
  CHECK(b.protocol == cfg::Protocol::v311);
  CHECK(b.username == "pi");
  CHECK(b.password_file == "/etc/linewire/secrets/password");
  REQUIRE(b.tls);
  CHECK(b.tls->ca_file == "/etc/linewire/ca.crt");
  CHECK(b.tls->cert_file == "/pki/client.crt");
  CHECK(b.tls->key_file == "/pki/client.key");
  CHECK(b.keepalive == 45s);
  CHECK(b.session_expiry == Duration(1h));
  CHECK(b.client_id == "pi-1");
  CHECK(b.reconnect_min == 500ms);
  CHECK(b.reconnect_max == 2min);

  CHECK(c.qos == 2);
  CHECK(c.keep_runs == 0);
  CHECK(c.run_state_ttl == 2h);
  CHECK(c.log_level == "debug");
  CHECK(c.state_dir == "/etc/linewire/state/pi-kitchen");
  CHECK(c.limits.max_runs == 4);
  CHECK(c.limits.max_payload == 1024);
  CHECK(c.limits.max_line == 100);
  CHECK(c.limits.buffer == 1'000'000);

  REQUIRE(c.commands.size() == 2);
  const auto& k = c.commands[0];
  CHECK(k.name == "count");
  CHECK(k.exec == std::vector<std::string>{"/etc/linewire/bin/count.sh", "--fast", "two words"});
  CHECK(k.cwd == "/etc/linewire/work");
  CHECK(k.env == std::map<std::string, std::string>{{"LEVEL", "debug"}, {"N", "5"}, {"EMPTY", ""}});
  REQUIRE(k.args);
  CHECK(k.args->pattern == "[0-9]{1,3}");
  CHECK(k.args->max == 3);
  CHECK(k.timeout == Duration(1500));
  CHECK(k.kill_grace == 0s);
  CHECK(k.max_instances == 2);
  CHECK(k.on_busy == cfg::OnBusy::queue);
  CHECK(k.queue_max == 0);
  CHECK(k.max_output == std::size_t{16} * 1024 * 1024);
  CHECK(k.user == "nobody");
  CHECK(k.group == "nogroup");
  CHECK_FALSE(k.stdin_enabled);
  CHECK(k.tty);
  CHECK(k.stderr_mode == cfg::StderrMode::discard);
  CHECK_FALSE(k.retain_last);
  CHECK(k.overflow == cfg::Overflow::drop);
  CHECK_FALSE(k.mqtt);
  CHECK(k.websocket);
  CHECK(k.mode == cfg::Mode::service);
  CHECK(k.restart_delay == 250ms);
  CHECK(k.homeassistant.enabled);
  CHECK(k.homeassistant.component == "sensor");
  CHECK(k.homeassistant.extra == std::map<std::string, std::string>{{"unit_of_measurement", "°C"},
                                                                    {"device_class", "temperature"},
                                                                    {"expire_after", "600"},
                                                                    {"force_update", "true"}});
  CHECK(k.keys == std::vector<std::string>{"alice", "ci"});
  CHECK_FALSE(k.unsigned_ok);

  const auto& f = c.commands[1];
  CHECK(f.name == "free");
  CHECK(f.exec == std::vector<std::string>{"/usr/bin/free", "-m"});
  CHECK(f.mqtt);
  CHECK(f.websocket);
  CHECK_FALSE(f.homeassistant.enabled);
  CHECK(f.unsigned_ok);

  const auto& w = c.websocket;
  CHECK(w.listen == "[::1]:8080");
  CHECK(w.static_dir == "/etc/linewire/www");
  CHECK(w.allowed_origins ==
        std::vector<std::string>{"http://localhost:8080", "https://example.org"});
  CHECK(w.max_connections == 5);
  CHECK(w.token_file == "/etc/linewire/ws-token");
  CHECK(w.cert_file == "/etc/linewire/ws.crt");
  CHECK(w.key_file == "/etc/linewire/ws.key");

  CHECK(c.homeassistant.discovery);
  CHECK(c.homeassistant.prefix == "ha");

  REQUIRE(c.auth.keys.size() == 2);
  CHECK(c.auth.keys[0].name == "alice");
  CHECK(c.auth.keys[0].openssh.rfind("ssh-ed25519 AAAA", 0) == 0);
  CHECK(c.auth.keys[0].file.empty());
  CHECK(c.auth.keys[1].name == "ci");
  CHECK(c.auth.keys[1].file.empty());
  CHECK(c.auth.keys[0].public_key != c.auth.keys[1].public_key);
  CHECK(c.auth.require);
  CHECK(c.auth.max_skew == 30s);
  CHECK(c.auth.find_key("ci") == &c.auth.keys[1]);
}

TEST_CASE("every problem at once, in file order, with line and column", "[config]") {
  const auto result = load(R"(device: "bad name"
qos: 3
broker:
  url: http://broker
  keepalive: 0s
commands:
  count:
    exec: [./count.sh]
    tiemout: 30s
    args: {pattern: '[0-9'}
    on_busy: later
  "no/slash":
    exec: [x]
limits: {max_runs: 0}
)");
  CHECK_FALSE(result.config);
  CHECK(problems(result) ==
        std::vector<std::string>{
            "1:9: device: 'bad name' is not a valid name (1 to 64 of A-Z a-z 0-9 _ . -, "
            "starting with a letter or digit)",
            "2:6: qos: must be from 0 to 2, not 3",
            "4:8: broker.url: 'http://broker' is not valid: unknown scheme 'http' (expected "
            "mqtt, mqtts, ws, wss, tcp or ssl)",
            "5:14: broker.keepalive: must be at least 1s, not 0s",
            "9:5: unknown key 'tiemout' in command 'count' (did you mean 'timeout'?)",
            "10:21: commands.count.args.pattern: is not a valid regular expression: "
            "Unexpected character within '[...]' in regular expression",
            "11:14: commands.count.on_busy: expected one of reject, queue, replace, got 'later'",
            "12:3: 'no/slash' is not a valid command name (1 to 64 of A-Z a-z 0-9 _ . -, "
            "starting with a letter or digit)",
            "14:20: limits.max_runs: must be at least 1, not 0",
        });
  CHECK(cfg::format(result.problems[1], "x.yaml") == "x.yaml:2:6: qos: must be from 0 to 2, not 3");
}

TEST_CASE("unknown keys, with a hint when one is close", "[config]") {
  CHECK(problem("commands:\n  count:\n    exec: [x]\n    tiemout: 30s\n") ==
        "4:5: unknown key 'tiemout' in command 'count' (did you mean 'timeout'?)");
  CHECK(problem("brokr: {}\n") ==
        "1:1: unknown key 'brokr' at the top level (did you mean 'broker'?)");
  CHECK(problem("broker: {urll: mqtt://x}\n") ==
        "1:10: unknown key 'urll' in broker (did you mean 'url'?)");
  CHECK(problem("broker: {tls: {ca: x}}\n") == "1:16: unknown key 'ca' in broker.tls");
  CHECK(problem("colour: blue\n") == "1:1: unknown key 'colour' at the top level");
  CHECK(problem("commands:\n  c:\n    exec: [x]\n    homeassistant: {unit: C}\n") ==
        "4:21: unknown key 'unit' in commands.c.homeassistant");
}

TEST_CASE("wrong types", "[config]") {
  CHECK(problem("qos: {a: 1}\n") == "1:6: qos: expected an integer, got a mapping");
  CHECK(problem("qos: \"1\"\n") == "1:6: qos: expected an integer, got the quoted string '1'");
  CHECK(problem("qos: one\n") == "1:6: qos: expected an integer, got 'one'");
  CHECK(problem("qos: 1.0\n") == "1:6: qos: expected an integer, got '1.0'");
  CHECK(problem("keep_runs: 99999999999\n") ==
        "1:12: keep_runs: must be at least 0, not 99999999999");
  CHECK(problem("prefix: [a, b]\n") == "1:9: prefix: expected a string, got a list");
  CHECK(problem("prefix:\n") == "1:1: prefix: expected a string, got nothing");
  CHECK(problem("groups: kitchen\n") ==
        "1:9: groups: expected a list ([a, b] or '- a' lines), got 'kitchen'");
  CHECK(problem("broker: mqtt://x\n") ==
        "1:9: broker: expected a mapping (KEY: VALUE lines), got 'mqtt://x'");
  CHECK(problem("commands: [a]\n") ==
        "1:11: commands: expected a mapping (KEY: VALUE lines), got a list");
  CHECK(problem("commands:\n  c: {exec: [x], stdin: \"false\"}\n") ==
        "2:25: commands.c.stdin: expected true or false, got the quoted string 'false'");
  CHECK(problem("commands:\n  c: {exec: [x], stdin: 2}\n") ==
        "2:25: commands.c.stdin: expected true or false, got '2'");
  CHECK(problem("commands:\n  c: {exec: [x], tty: yes please}\n") ==
        "2:23: commands.c.tty: expected true or false, got 'yes please'");
  CHECK(problem("commands:\n  c: {exec: [x], tty: \"true\"}\n") ==
        "2:23: commands.c.tty: expected true or false, got the quoted string 'true'");
  CHECK(problem("commands:\n  c: {exec: [x, [y]]}\n") ==
        "2:17: commands.c.exec[1]: expected a string, got a list");
  CHECK(problem("commands:\n  c: {exec: [x], timeout: soon}\n") ==
        "2:27: commands.c.timeout: expected a duration such as 500ms, 30s, 5m or 1h, got 'soon'");
  CHECK(problem("limits: {buffer: lots}\n") ==
        "1:18: limits.buffer: expected a size such as 65536, 64KiB or 8MiB, got 'lots'");
  CHECK(problem("limits: {buffer: -1}\n") ==
        "1:18: limits.buffer: expected a size such as 65536, 64KiB or 8MiB, got '-1'");
  CHECK(problem("commands:\n  c: {exec: [x], max_output: 0}\n") ==
        "2:30: commands.c.max_output: must be at least 1B, not 0");
  CHECK(problem("log_level: verbose\n") ==
        "1:12: log_level: expected one of trace, debug, info, warn, error, critical, off, got "
        "'verbose'");
  CHECK(problem("log_level: warning\n") ==
        "1:12: log_level: expected one of trace, debug, info, warn, error, critical, off, got "
        "'warning'");
  CHECK(problem("commands:\n  c: {exec: [x], stderr: lgo}\n") ==
        "2:26: commands.c.stderr: expected one of publish, log, discard, got 'lgo' (did you mean "
        "'log'?)");
}

TEST_CASE("state_dir: the default, per device, and off", "[config]") {
  // SPEC §5: systemd's folder first (its first entry), then root's, then XDG's.
  CHECK(cfg::default_state_dir("/var/lib/linewire:/var/lib/other", "/x", "/home/u", false) ==
        "/var/lib/linewire");
  CHECK(cfg::default_state_dir(nullptr, nullptr, "/root", true) == "/var/lib/linewire");
  CHECK(cfg::default_state_dir("", "/home/u/.st", "/home/u", false) == "/home/u/.st/linewire");
  CHECK(cfg::default_state_dir(nullptr, "relative", "/home/u", false) ==
        "/home/u/.local/state/linewire");
  CHECK(cfg::default_state_dir(nullptr, nullptr, nullptr, false).empty());
  // `state_dir: ""` turns it off; it does not mean the config's folder.
  CHECK(ok(load("device: d\nstate_dir: \"\"\n")).state_dir.empty());
  CHECK(ok(load("device: d\nstate_dir: /srv/state\n")).state_dir == "/srv/state/d");
}

TEST_CASE("the protocol: 5 as a number, 3.1.1 as a string", "[config]") {
  for (const char* v : {"5", "\"5\"", "5.0"})
    CHECK(ok(load(std::string("broker: {protocol: ") + v + "}\n")).broker.protocol ==
          cfg::Protocol::v5);
  for (const char* v : {"3.1.1", "\"3.1.1\"", "311", "'311'"})
    CHECK(ok(load(std::string("broker: {protocol: ") + v + "}\n")).broker.protocol ==
          cfg::Protocol::v311);
  CHECK(ok(load("broker: {protocol: auto}\n")).broker.protocol == cfg::Protocol::automatic);
  CHECK(problem("broker: {protocol: 4}\n") ==
        "1:20: broker.protocol: expected 5, 3.1.1 or auto, got '4'");
  CHECK(problem("broker: {protocol: 3.1}\n") ==
        "1:20: broker.protocol: expected 5, 3.1.1 or auto, got '3.1'");
}

TEST_CASE("bad regular expressions", "[config]") {
  CHECK(problem("commands:\n  c:\n    exec: [x]\n    args: {pattern: '(a'}\n") ==
        "4:21: commands.c.args.pattern: is not a valid regular expression: Mismatched '(' and "
        "')' in regular expression");
  CHECK(problem("commands:\n  c:\n    exec: [x]\n    args: {pattern: 'a{2,1}'}\n")
            .starts_with("4:21: commands.c.args.pattern: is not a valid regular expression: "));
  CHECK(problem("commands:\n  c:\n    exec: [x]\n    args: {pattern: ''}\n") ==
        "4:21: commands.c.args.pattern: is empty");
  CHECK(problem("commands:\n  c:\n    exec: [x]\n    args: {max: 2}\n") ==
        "4:5: commands.c.args: needs a pattern that every argument must match");
  CHECK(problem("commands:\n  c:\n    exec: [x]\n    args: {pattern: a, max: -1}\n") ==
        "4:29: commands.c.args.max: must be at least 0, not -1");
  const auto c = ok(load("commands:\n  c:\n    exec: [x]\n    args: {pattern: '[a-z]+'}\n"));
  CHECK(c.commands[0].args->max == 1);  // the documented default
}

TEST_CASE("names", "[config]") {
  CHECK(cfg::is_valid_name("a"));
  CHECK(cfg::is_valid_name("pi-kitchen.2_b"));
  CHECK(cfg::is_valid_name(std::string(64, 'x')));
  CHECK_FALSE(cfg::is_valid_name(std::string(65, 'x')));
  for (const char* bad : {"", "-a", ".a", "_a", "a/b", "a+b", "a#", "a b", "ä", "a:b"})
    CHECK_FALSE(cfg::is_valid_name(bad));

  CHECK(problem("device: -pi\n").starts_with("1:9: device: '-pi' is not a valid name ("));
  CHECK(problem("groups: [ok, bad/group]\n")
            .starts_with("1:14: groups[1]: 'bad/group' is not a valid name ("));
  CHECK(problem("groups: [a, b, a]\n") == "1:16: groups[2]: 'a' is listed twice");
  CHECK(problem("commands:\n  .hidden: {exec: [x]}\n")
            .starts_with("2:3: '.hidden' is not a valid command name ("));
  CHECK(problem("commands:\n  c: {exec: [x], env: {1ABC: x}}\n") ==
        "2:24: commands.c.env.1ABC: is not a valid environment variable name "
        "([A-Za-z_][A-Za-z0-9_]*)");
  CHECK(problem("commands:\n  c: {exec: [x], env: {LINEWIRE_RUN: x}}\n") ==
        "2:24: commands.c.env.LINEWIRE_RUN: is set by the agent for every run");
  CHECK(problem("auth: {keys: {bad key: 'ssh-ed25519 "
                "AAAAC3NzaC1lZDI1NTE5AAAAIABFecenpo/dUt0uXXh6ZQK6fsXERFlIXby54MsRZSMU'}}\n")
            .starts_with("1:15: auth.keys.bad key: is not a valid key name ("));
}

TEST_CASE("the device defaults to the host name, if that is a valid name", "[config]") {
  CHECK(ok(load(kMinimal, "pi-1.lan")).device == "pi-1.lan");
  CHECK(ok(load("device: mine\n", "bad host")).device == "mine");
  const auto result = load(kMinimal, "bad host");
  REQUIRE(result.problems.size() == 1);
  CHECK(result.problems[0].line == 0);
  CHECK(result.problems[0].message.starts_with("the host name 'bad host' is not a valid device"));
  CHECK(cfg::format(result.problems[0], "f.yaml").starts_with("f.yaml: the host name"));
}

TEST_CASE("prefixes", "[config]") {
  for (const char* good : {"linewire", "site-a/linewire", "a/b/c", "with space"})
    CHECK_FALSE(cfg::check_prefix(good));
  for (const char* bad : {"", "/a", "a/", "a//b", "a/+/b", "a#", "$SYS/x", "/"})
    CHECK(cfg::check_prefix(bad));
  CHECK_FALSE(cfg::check_prefix(std::string("a")));
  CHECK(cfg::check_prefix(std::string("a\0b", 3)));
  CHECK(problem("prefix: a//b\n") ==
        "1:9: prefix: 'a//b' is not valid: it has an empty level ('//')");
  CHECK(problem("prefix: ''\n") == "1:9: prefix: is empty");
  CHECK(problem("homeassistant: {prefix: ha/+}\n") ==
        "1:25: homeassistant.prefix: 'ha/+' is not valid: it contains the MQTT wildcard '+'");
  CHECK(problem("prefix: \"a\\0b\"\n") == "1:9: prefix: contains a NUL character");
}

TEST_CASE("broker URLs", "[config]") {
  for (const char* good : {"mqtt://localhost", "mqtt://localhost:1883", "mqtts://broker.lan:8883",
                           "tcp://10.0.0.1:1883", "ssl://b:8883", "ws://b:80/mqtt", "wss://b/mqtt",
                           "mqtt://[::1]:1883", "mqtt://[fe80::1%eth0]"})
    CHECK_FALSE(cfg::check_broker_url(good));
  for (const char* bad :
       {"", "localhost", "localhost:1883", "http://b", "mqtt://", "mqtt://:1883", "mqtt://b:0",
        "mqtt://b:65536", "mqtt://b:x", "mqtt://b:", "mqtt://b/path", "mqtt://user:pw@b",
        "mqtt://::1", "mqtt://[::1", "mqtt://[]:1", "MQTT://b", "mqtt://b c"})
    CHECK(cfg::check_broker_url(bad));
  CHECK(problem("broker: {url: 'mqtt://u:p@b'}\n") ==
        "1:15: broker.url: 'mqtt://u:p@b' is not valid: put the user name in broker.username and "
        "the password in broker.password_file, not in the URL");
  CHECK(problem("broker: {url: 'mqtt://:1883'}\n") ==
        "1:15: broker.url: 'mqtt://:1883' is not valid: the host is missing");
}

TEST_CASE("listen addresses", "[config]") {
  for (const char* good :
       {"127.0.0.1:8080", "localhost:1", "0.0.0.0:65535", "[::1]:8080", "[::]:80"})
    CHECK_FALSE(cfg::check_listen(good));
  for (const char* bad :
       {"", "8080", ":8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
        "::1:8080", "[::1]", "[::1]8080", "[127.0.0.1]:80", "host:80x", "host:-1"})
    CHECK(cfg::check_listen(bad));
  CHECK(problem("websocket: {listen: '::1:8080'}\n") ==
        "1:21: websocket.listen: '::1:8080' is not valid: write an IPv6 address in brackets, as "
        "in [::1]:8080");
  CHECK(problem("websocket: {listen: 8080}\n") ==
        "1:21: websocket.listen: '8080' is not valid: the port is missing (HOST:PORT)");
  CHECK(problem("websocket: {listen: 'h:70000'}\n") ==
        "1:21: websocket.listen: 'h:70000' is not valid: the port must be a number from 1 to "
        "65535, not '70000'");
}

TEST_CASE("values that belong together", "[config]") {
  CHECK(problem("broker:\n  tls: {cert_file: c}\n") ==
        "2:3: broker.tls: cert_file is set but key_file is not; set both or neither");
  CHECK(problem("websocket:\n  key_file: k\n") ==
        "1:1: websocket: key_file is set but cert_file is not; set both or neither");
  CHECK(problem("broker:\n  reconnect: {min: 10s, max: 5s}\n") ==
        "2:30: broker.reconnect.max: is less than min (10s)");
  CHECK(problem("broker:\n  reconnect: {min: 2m}\n") ==
        "2:20: broker.reconnect.min: is more than max (1m)");
  CHECK(problem("limits: {buffer: 1KiB}\n") ==
        "1:18: limits.buffer: is smaller than max_line (64KiB)");
  CHECK(problem("limits: {max_line: 16MiB}\n") ==
        "1:20: limits.max_line: is larger than buffer (8MiB)");
  CHECK(problem("commands:\n  c: {exec: ['']}\n") == "2:14: commands.c.exec[0]: is empty");
  CHECK(problems(load("commands:\n  c: {exec: [[a], '', {b: 1}]}\n")) ==
        std::vector<std::string>{"2:14: commands.c.exec[0]: expected a string, got a list",
                                 "2:23: commands.c.exec[2]: expected a string, got a mapping"});
  CHECK(ok(load("commands:\n  c: {exec: [x, '']}\n")).commands[0].exec ==
        std::vector<std::string>{"x", ""});
  CHECK(problem("commands:\n  c: {exec: []}\n") ==
        "2:13: commands.c.exec: must list at least the program to run");
  CHECK(problem("commands:\n  c: {cwd: /}\n") ==
        "2:3: commands.c: has no exec (the program to run and its arguments)");
  CHECK(problem("commands:\n  c:\n") ==
        "2:3: commands.c: has no exec (the program to run and its arguments)");
  CHECK(problem("commands:\n  c: {exec: [x], transports: []}\n") ==
        "2:30: commands.c.transports: must name at least one of mqtt, websocket");
  CHECK(problem("commands:\n  c: {exec: [x], transports: [mqtt, mqtt]}\n") ==
        "2:37: commands.c.transports[1]: is listed twice");
  CHECK(problem("commands:\n  c: {exec: [x], transports: [http]}\n") ==
        "2:31: commands.c.transports[0]: expected one of mqtt, websocket, got 'http'");
  CHECK(problem("commands:\n  c: {exec: [x], keys: [bob]}\nauth: {keys: {alice: 'ssh-ed25519 "
                "AAAAC3NzaC1lZDI1NTE5AAAAIABFecenpo/dUt0uXXh6ZQK6fsXERFlIXby54MsRZSMU'}}\n") ==
        "2:25: commands.c.keys[0]: names no key of auth.keys: 'bob'");
  CHECK(problem("commands:\n  c: {exec: [x], keys: [a], unsigned: true}\n"
                "auth: {keys: {a: 'ssh-ed25519 "
                "AAAAC3NzaC1lZDI1NTE5AAAAIABFecenpo/dUt0uXXh6ZQK6fsXERFlIXby54MsRZSMU'}}\n") ==
        "2:39: commands.c.unsigned: cannot be true for a command with keys, which always needs a "
        "signature");
  CHECK(problem("auth: {require: true}\n") ==
        "1:17: auth.require: is true but auth.keys is empty, so every request would be refused");
  CHECK(problem("auth: {keys: {a: ssh-rsa AAAA}}\n") ==
        "1:18: auth.keys.a: 'ssh-rsa AAAA' is not valid: is a ssh-rsa key; only ssh-ed25519 keys "
        "are supported");
  CHECK(problem("auth: {keys: {a: {}}}\n") ==
        "1:15: auth.keys.a: needs a file, or an inline 'ssh-ed25519 ...' line instead");
}

TEST_CASE("Home Assistant per command: a switch or a mapping", "[config]") {
  const auto c =
      ok(load("commands:\n  a: {exec: [x], homeassistant: true}\n"
              "  b: {exec: [x], homeassistant: {component: switch, icon: mdi:power}}\n"));
  CHECK(c.commands[0].homeassistant.enabled);
  CHECK(c.commands[1].homeassistant.enabled);
  CHECK(c.commands[1].homeassistant.component == "switch");
  CHECK(c.commands[1].homeassistant.extra ==
        std::map<std::string, std::string>{{"icon", "mdi:power"}});
  CHECK(problem("commands:\n  a: {exec: [x], homeassistant: {component: light}}\n") ==
        "2:45: commands.a.homeassistant.component: expected one of button, sensor, "
        "binary_sensor, switch, got 'light'");
  CHECK(problem("commands:\n  a: {exec: [x], homeassistant: maybe}\n") ==
        "2:33: commands.a.homeassistant: expected true or false, got 'maybe'");
}

TEST_CASE("duplicate keys", "[config]") {
  CHECK(problem("qos: 1\nprefix: a\nqos: 2\n") == "3:1: duplicate key 'qos' (first on line 1)");
  CHECK(problem("commands:\n  c: {exec: [x]}\n  c: {exec: [y]}\n") ==
        "3:3: duplicate key 'c' in commands (first on line 2)");
  CHECK(problem("commands:\n  c: {exec: [x], env: {A: 1, A: 2}}\n") ==
        "2:30: duplicate key 'A' in commands.c.env (first on line 2)");
}

TEST_CASE("syntax errors, empty files and odd documents", "[config]") {
  CHECK(problem("commands:\n  c: {exec: [x}\n") == "2:15: illegal flow end");
  CHECK(problem("a: 1\n b: 2\n").starts_with("2:3: "));
  CHECK(problem("\"unterminated\n").starts_with("1:1: "));
  auto empty = load("");
  REQUIRE(empty.problems.size() == 1);
  CHECK(empty.problems[0].line == 0);
  CHECK(empty.problems[0].message == "the configuration is empty");
  CHECK(problem("# only a comment\n") == "0:0: the configuration is empty");
  CHECK(problem("~\n") == "0:0: the configuration is empty");
  CHECK(problem("- a\n- b\n") ==
        "1:1: expected a mapping of settings (KEY: VALUE lines) at the top level");
  CHECK(problem("just text\n") ==
        "1:1: expected a mapping of settings (KEY: VALUE lines) at the top level");
  CHECK(problem("qos: 1\n---\nqos: 2\n") ==
        "2:1: a second YAML document: the configuration is one mapping");
  CHECK(problem("[a]: 1\n") == "1:1: a key is a list, not a plain string");
  CHECK(problem("a: " + std::string(5000, '[')).ends_with(": nested too deeply"));
  // yaml-cpp 0.7's LoadAll never returns on these; the loader must.
  CHECK(problem(", b\n") == "1:1: unexpected ','");
  CHECK(problem("# comment\n,\n") == "2:1: unexpected ','");
  CHECK(problem("qos: 1\n---\n, b\n") ==
        "2:1: a second YAML document: the configuration is one mapping");
}

TEST_CASE("relative paths resolve against the config's folder", "[config]") {
  const std::string yaml = R"(broker:
  password_file: ../secret
  tls: {ca_file: ./pki/ca.crt, cert_file: c.crt, key_file: /abs/c.key}
state_dir: ./state
commands:
  a: {exec: [./bin/run.sh, ./not-a-path-argument], cwd: .}
  b: {exec: [sub/tool]}
  c: {exec: [uptime]}
  d: {exec: [/bin/true]}
websocket: {static_dir: www/, token_file: t, cert_file: c, key_file: k}
)";
  const auto result = cfg::load_string(yaml, "/srv/lw/conf/linewire.yaml", "h");
  const auto c = ok(result);
  CHECK(c.broker.password_file == "/srv/lw/conf/../secret");
  CHECK(c.broker.tls->ca_file == "/srv/lw/conf/pki/ca.crt");
  CHECK(c.broker.tls->cert_file == "/srv/lw/conf/c.crt");
  CHECK(c.broker.tls->key_file == "/abs/c.key");
  CHECK(c.state_dir == "/srv/lw/conf/state/h");
  CHECK(c.commands[0].exec ==
        std::vector<std::string>{"/srv/lw/conf/bin/run.sh", "./not-a-path-argument"});
  CHECK(c.commands[0].cwd == "/srv/lw/conf");
  CHECK(c.commands[1].exec[0] == "/srv/lw/conf/sub/tool");
  CHECK(c.commands[2].exec[0] == "uptime");
  CHECK(c.commands[3].exec[0] == "/bin/true");
  CHECK(c.websocket.static_dir == "/srv/lw/conf/www");
  CHECK(c.websocket.token_file == "/srv/lw/conf/t");
  CHECK(c.websocket.cert_file == "/srv/lw/conf/c");
  CHECK(c.websocket.key_file == "/srv/lw/conf/k");

  // An origin without a folder (or a relative one) means the current directory.
  const auto cwd = std::filesystem::current_path();
  const auto here = cfg::load_string("state_dir: s\n", "<string>", "h");
  CHECK(ok(here).state_dir == (cwd / "s" / "h").string());
  const auto sub = cfg::load_string("state_dir: s\n", "etc/x.yaml", "h");
  CHECK(ok(sub).state_dir == (cwd / "etc" / "s" / "h").string());
}

TEST_CASE("load_file", "[config]") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("linewire-test-config-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / "linewire.yaml").string();
  {
    std::ofstream out(path);
    out << "state_dir: state\nqos: 0\n";
  }
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof host - 1) == 0);
  const auto result = cfg::load_file(path);
  if (cfg::is_valid_name(host)) {
    const auto c = ok(result);
    CHECK(c.source == path);
    CHECK(c.device == host);
    CHECK(c.qos == 0);
    CHECK(c.state_dir == (dir / "state" / host).string());
  } else {  // this machine's name cannot be a device's: the file must say one
    REQUIRE(result.problems.size() == 1);
    CHECK(result.problems[0].message.starts_with("the host name"));
  }

  const auto missing = cfg::load_file((dir / "missing.yaml").string());
  REQUIRE(missing.problems.size() == 1);
  CHECK(missing.problems[0].line == 0);
  CHECK(cfg::format(missing.problems[0], "m.yaml") ==
        "m.yaml: cannot read: No such file or directory");
  const auto folder = cfg::load_file(dir.string());
  REQUIRE(folder.problems.size() == 1);
  CHECK(folder.problems[0].line == 0);
  CHECK(folder.problems[0].message == "cannot read: Is a directory");
  std::filesystem::remove_all(dir);
}

TEST_CASE("the reference config/linewire.yaml loads without a problem", "[config]") {
  const auto path = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() /
                    "config" / "linewire.yaml";
  std::ifstream in(path);
  REQUIRE(in);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // A fixed host name: the file leaves device to it, and this machine's may be no name.
  const auto result = cfg::load_string(text, path.string(), "testhost");
  for (const auto& p : result.problems) UNSCOPED_INFO(cfg::format(p, path.string()));
  REQUIRE(result.problems.empty());
  const auto& c = *result.config;
  CHECK(c.device == "testhost");
  CHECK(c.commands.size() == 4);
  REQUIRE(c.find_command("count") != nullptr);
  CHECK(c.find_command("count")->exec[0] == (path.parent_path() / "examples/count.sh").string());
  CHECK(c.websocket.listen == "127.0.0.1:8080");
}

TEST_CASE("auth key files: read and decoded when the config loads", "[config]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("linewire-test-keys-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "keys");
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
  };
  const std::string line =
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIABFecenpo/dUt0uXXh6ZQK6fsXERFlIXby54MsRZSMU alice";
  write("keys/line.pub", line + "\n");
  // The same key as a PEM SubjectPublicKeyInfo (`openssl pkey -pubout`).
  write("keys/alice.pem",
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAAEV5x6emj91S3S5deHplArp+xcREWUhdvLngyxFlIxQ=\n"
        "-----END PUBLIC KEY-----\n");
  write("keys/rsa.pub", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ x\n");
  write("keys/two.pub", line + "\n" + line + "\n");
  const auto origin = (dir / "linewire.yaml").string();
  const auto good = cfg::load_string(
      "auth:\n  keys:\n    a: {file: keys/line.pub}\n    b: {file: keys/alice.pem}\n"
      "    c: '" +
          line + "'\n",
      origin, "h");
  const auto c = ok(good);
  REQUIRE(c.auth.keys.size() == 3);
  CHECK(c.auth.keys[0].file == (dir / "keys/line.pub").string());
  CHECK(c.auth.keys[0].public_key == c.auth.keys[1].public_key);
  CHECK(c.auth.keys[0].public_key == c.auth.keys[2].public_key);
  CHECK(c.auth.keys[0].public_key[1] == 0x45);

  auto one_problem = [&](const std::string& file) {
    const auto r = cfg::load_string("auth: {keys: {a: {file: " + file + "}}}\n", origin, "h");
    const auto all = problems(r);
    REQUIRE(all.size() == 1);
    return all[0];
  };
  CHECK(one_problem("keys/none.pub") == "1:25: auth.keys.a.file: cannot read the key file " +
                                            (dir / "keys/none.pub").string() +
                                            ": No such file or directory");
  CHECK(one_problem("keys") == "1:25: auth.keys.a.file: cannot read the key file " +
                                   (dir / "keys").string() + ": not a regular file");
  CHECK(one_problem("keys/rsa.pub")
            .ends_with("rsa.pub is a ssh-rsa key; only ssh-ed25519 keys are supported"));
  CHECK(one_problem("keys/two.pub")
            .ends_with("holds more than one line; expected one "
                       "'ssh-ed25519 ...' line"));
  std::filesystem::remove_all(dir);
}
