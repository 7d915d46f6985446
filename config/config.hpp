// The agent's configuration (SPEC §7), as loaded and validated by load.hpp.
// Plain data: every other part of linewire reads it, none of it parses YAML.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "auth/openssh.hpp"

namespace linewire::config {

using Duration = std::chrono::milliseconds;

struct Tls {
  std::string ca_file;    // empty: the system's trust store
  std::string cert_file;  // client certificate (optional, with key_file)
  std::string key_file;
  bool operator==(const Tls&) const = default;
};

// `automatic`: MQTT 5, falling back to 3.1.1 when the broker refuses 5 (SPEC §6).
enum class Protocol { v5, v311, automatic };

struct Broker {
  std::string url = "mqtt://localhost:1883";  // mqtt mqtts ws wss tcp ssl
  Protocol protocol = Protocol::v5;
  std::string username;
  std::string password_file;  // path; the password itself never lives in the config
  std::optional<Tls> tls;
  Duration keepalive{std::chrono::seconds(30)};
  // Absent: clean session, so requests sent while the agent was away never run.
  std::optional<Duration> session_expiry;
  std::string client_id;  // empty: "linewired-{device}"
  Duration reconnect_min{std::chrono::seconds(1)};
  Duration reconnect_max{std::chrono::seconds(60)};
};

struct Limits {
  int max_runs = 32;
  std::size_t max_payload = 64 * 1024;
  std::size_t max_line = 64 * 1024;
  std::size_t buffer = 8 * 1024 * 1024;
  std::size_t history = 16 * 1024 * 1024;  // kept output of all runs (SPEC §12)
};

struct ArgsRule {
  std::string pattern;  // ECMAScript regex; each argument must match it whole
  int max = 1;          // at most this many arguments
};

enum class OnBusy { reject, queue, replace };
enum class Mode { on_demand, service };
enum class StderrMode { publish, log, discard };
enum class Overflow { block, drop };

struct HomeAssistantCommand {
  bool enabled = true;    // `homeassistant: false` hides the command
  std::string component;  // empty: the default for the command's mode
  // Further discovery keys passed through as strings (unit_of_measurement, ...).
  std::map<std::string, std::string> extra;
};

struct Command {
  std::string name;
  std::vector<std::string> exec;  // exec[0] is resolved against the config's folder
  std::string cwd;                // empty: the agent's working directory
  std::map<std::string, std::string> env;
  std::optional<ArgsRule> args;  // absent: arguments are refused
  std::optional<Duration> timeout;
  Duration kill_grace{std::chrono::seconds(5)};
  int max_instances = 0;  // 0: only limits.max_runs applies
  OnBusy on_busy = OnBusy::reject;
  int queue_max = 16;
  std::optional<std::size_t> max_output;
  std::size_t history = 256 * 1024;  // kept output of each run, 0: none (SPEC §12)
  std::string user;
  std::string group;
  bool stdin_enabled = true;
  bool tty = false;  // stdout on a pseudo-terminal (SPEC §5)
  StderrMode stderr_mode = StderrMode::publish;
  bool retain_last = true;
  Overflow overflow = Overflow::block;
  bool mqtt = true;  // from `transports`
  bool websocket = false;
  Mode mode = Mode::on_demand;
  Duration restart_delay{std::chrono::seconds(5)};
  // SPEC §5: also started by the agent every this long (with up to 10 % delay), at least 1 s.
  std::optional<Duration> every;
  HomeAssistantCommand homeassistant;
  // SPEC §11: non-empty means only requests signed by one of these keys run it.
  std::vector<std::string> keys;
  bool unsigned_ok = false;  // `unsigned: true`: accepted unsigned despite auth.require
};

struct WebSocket {
  std::string listen;  // "HOST:PORT"; empty: no listener
  std::string static_dir;
  std::vector<std::string> allowed_origins;
  int max_connections = 64;
  std::string token_file;
  std::string cert_file;  // both set: the listener speaks TLS
  std::string key_file;
  bool operator==(const WebSocket&) const = default;
};

struct HomeAssistant {
  bool discovery = false;
  std::string prefix = "homeassistant";
};

// SPEC §11: the Ed25519 public keys whose signed requests a device trusts.
struct TrustedKey {
  std::string name;
  std::string openssh;                // an inline "ssh-ed25519 AAAA... comment" line, or
  std::string file;                   // a file holding such a line or a PEM public key (resolved)
  auth::PublicKeyBytes public_key{};  // decoded from either when the config loads
};

struct Auth {
  std::vector<TrustedKey> keys;  // in file order
  bool require = false;          // false: unsigned requests are still accepted
  Duration max_skew{std::chrono::seconds(60)};

  const TrustedKey* find_key(const std::string& name) const {
    for (const auto& k : keys)
      if (k.name == name) return &k;
    return nullptr;
  }
};

struct Config {
  std::string source;  // the file it came from, for messages
  std::string device;  // default: the host name
  std::string prefix = "linewire";
  std::vector<std::string> groups;
  Broker broker;
  int qos = 1;
  int keep_runs = 100;
  Duration run_state_ttl{std::chrono::hours(24)};
  std::string log_level = "info";
  // The device's own state folder, `{state_dir}/{device}` (SPEC §5), resolved at load
  // from the key or its default; empty: crash safety turned off (`state_dir: ""`).
  std::string state_dir;
  Limits limits;
  std::vector<Command> commands;  // in file order
  WebSocket websocket;
  HomeAssistant homeassistant;
  Auth auth;

  const Command* find_command(const std::string& name) const {
    for (const auto& c : commands)
      if (c.name == name) return &c;
    return nullptr;
  }
};

}  // namespace linewire::config
