// websocketd drop-in mode (SPEC §8.6). The command line, read with Go's flag syntax as
// websocketd reads it, becomes one command (PROGRAM ARGS) and the listener's options;
// an agent without MQTT and the listener then serve it until SIGTERM or SIGINT.
#include "transports/websocket/dropin.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>

#include "agent/agent.hpp"
#include "protocol/names.hpp"
#include "transports/websocket/listener.hpp"

namespace linewire::websocket {

namespace asio = boost::asio;

namespace {

constexpr const char* kUsage =
    "usage: linewired --port=PORT [--address=ADDR] [--staticdir=DIR] [--maxforks=N]\n"
    "                 [--closems=MS] [--origin=HOST[:PORT][,...]] [--sameorigin]\n"
    "                 [--passenv=VAR[,...]] [--ssl --sslcert=FILE --sslkey=FILE]\n"
    "                 [--loglevel=LEVEL] PROGRAM [ARGS...]\n";

// ---- the command line ----

const std::map<std::string, bool> kFlags = {
    // name → takes a value (Go's flag package: -name=v, --name=v, -name v, --name v)
    {"port", true},    {"address", true}, {"staticdir", true},   {"maxforks", true},
    {"closems", true}, {"origin", true},  {"sameorigin", false}, {"passenv", true},
    {"ssl", false},    {"sslcert", true}, {"sslkey", true},      {"loglevel", true},
};

// The flags given (a boolean's value is "true", "false", "1" or "0") and PROGRAM ARGS.
struct CommandLine {
  std::map<std::string, std::string> flags;
  std::vector<std::string> program;

  bool has(const std::string& name) const { return flags.count(name) > 0; }
  // "" when the flag is absent.
  std::string value(const std::string& name) const {
    auto it = flags.find(name);
    return it == flags.end() ? std::string() : it->second;
  }
  // A boolean flag that is set and true.
  bool on(const std::string& name) const {
    auto v = value(name);
    return v == "true" || v == "1";
  }
};

// Go flag syntax: flags until the first argument that is not one, or `--`.
std::optional<CommandLine> parse(int argc, char** argv, std::string& error) {
  CommandLine line;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.size() < 2 || a[0] != '-') break;
    std::string name = a.substr(a[1] == '-' ? 2 : 1);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto it = kFlags.find(name);
    if (it == kFlags.end()) {
      error = "flag provided but not supported in drop-in mode: -" + name;
      return std::nullopt;
    }
    if (it->second && !value) {
      if (i + 1 >= argc) {
        error = "flag needs an argument: -" + name;
        return std::nullopt;
      }
      value = argv[++i];
    }
    if (!it->second && value && *value != "true" && *value != "false" && *value != "1" &&
        *value != "0") {
      error = "invalid boolean value for -" + name;
      return std::nullopt;
    }
    line.flags[name] = value.value_or("true");
  }
  for (; i < argc; ++i) line.program.emplace_back(argv[i]);
  return line;
}

// A number flag (0 or more) into `out`, which keeps its value when the flag is absent.
// Plain ints and a bool rather than optionals: a chain of optionals here once made
// GCC's -Os flow analysis warn of a maybe-uninitialized read.
bool read_number(const CommandLine& line, const std::string& name, int& out, std::string& error) {
  if (!line.has(name)) return true;
  const std::string& text = line.flags.at(name);
  try {
    std::size_t used = 0;
    int n = std::stoi(text, &used);
    if (used == text.size() && n >= 0) {
      out = n;
      return true;
    }
  } catch (const std::exception&) {
  }
  error = "invalid value \"" + text + "\" for flag -" + name;
  return false;
}

// What the command line asks for, checked.
struct DropIn {
  CommandLine line;
  int port = 0;
  int maxforks = 0;  // runs and WebSockets at once; 0: no limit
  int closems = 0;   // the kill grace; 0: the default
};

// False with the first problem in `error`; the caller exits with status 2, as Go does.
bool read_command_line(int argc, char** argv, DropIn& out, std::string& error) {
  auto line = parse(argc, argv, error);
  if (!line) return false;
  out.line = std::move(*line);
  if (!read_number(out.line, "port", out.port, error)) return false;
  if (out.port == 0 || out.port > 65535) {
    error = "--port must be 1 to 65535";
    return false;
  }
  if (!read_number(out.line, "maxforks", out.maxforks, error)) return false;
  if (!read_number(out.line, "closems", out.closems, error)) return false;
  if (out.line.program.empty()) {
    error = "no PROGRAM to serve";
    return false;
  }
  if (out.line.on("ssl") && (!out.line.has("sslcert") || !out.line.has("sslkey"))) {
    error = "--ssl needs --sslcert and --sslkey";
    return false;
  }
  return true;
}

// ---- what it becomes ----

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto comma = s.find(',', start);
    std::string part = s.substr(start, comma - start);
    if (!part.empty()) out.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string level_for(const std::string& websocketd_level) {
  // websocketd: debug, trace, access, info, error, fatal (default access).
  if (websocketd_level == "debug" || websocketd_level == "trace") return "debug";
  if (websocketd_level == "error") return "error";
  if (websocketd_level == "fatal") return "critical";
  return "info";
}

void log_to_stderr(const std::string& websocketd_level) {
  auto logger = spdlog::stderr_color_mt("linewired");
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
  logger->set_level(spdlog::level::from_str(level_for(websocketd_level)));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

// One command, made from the command line; no MQTT.
config::Config config_for(const DropIn& d) {
  config::Command cmd;
  std::string base = std::filesystem::path(d.line.program.front()).filename().string();
  cmd.name = protocol::valid_name(base) ? base : "program";
  cmd.exec = d.line.program;
  cmd.mqtt = false;
  cmd.websocket = true;
  cmd.stderr_mode = config::StderrMode::log;  // websocketd logs stderr too
  cmd.max_instances = d.maxforks;
  if (d.closems > 0) cmd.kill_grace = std::chrono::milliseconds(d.closems);
  for (const auto& name : split_commas(d.line.value("passenv")))
    if (const char* v = std::getenv(name.c_str())) cmd.env[name] = v;

  config::Config cfg;
  cfg.commands.push_back(cmd);
  cfg.limits.max_runs = d.maxforks > 0 ? d.maxforks : 1 << 20;
  cfg.device = "websocketd";
  return cfg;
}

// The listener serves `command` on every path (SCRIPT_NAME "/"): no /run, /healthz
// or /metrics.
Options options_for(const DropIn& d, const std::string& command) {
  const CommandLine& line = d.line;
  Options options;
  // SPEC §8 binds to loopback unless told otherwise (websocketd binds every address).
  options.address = line.has("address") ? line.value("address") : "127.0.0.1";
  options.port = static_cast<unsigned short>(d.port);
  options.static_dir = line.value("staticdir");
  options.allowed_origins = split_commas(line.value("origin"));
  options.any_origin = !line.on("sameorigin");
  options.max_connections = d.maxforks > 0 ? d.maxforks : 1 << 20;
  options.only_command = command;
  if (line.on("ssl")) {
    options.cert_file = line.value("sslcert");
    options.key_file = line.value("sslkey");
  }
  return options;
}

// ---- serving ----

// Until SIGTERM or SIGINT (a second one: KILL to every run, exit 1); 1 when it cannot
// listen.
int serve(config::Config cfg, Options options, const std::string& program,
          const std::string& version) {
  try {
    asio::io_context io;
    agent::Agent agent(io, std::move(cfg), version);
    Listener listener(io, agent, std::move(options), [] { return false; });
    asio::signal_set signals(io, SIGTERM, SIGINT);
    std::function<void(const boost::system::error_code&, int)> on_signal =
        [&](const boost::system::error_code& ec, int) {
          if (ec) return;
          if (agent.shutting_down()) {
            agent.kill_now();
            std::_Exit(1);
          }
          spdlog::info("shutting down");
          signals.async_wait(on_signal);
          listener.stop();
          agent.shutdown([&] { io.stop(); });
        };
    signals.async_wait(on_signal);
    listener.start();
    spdlog::info("linewired {} (websocketd drop-in) serving {} on every path", version, program);
    io.run();
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

bool is_dropin(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--" || a.empty() || a[0] != '-') return false;
    if (a == "-port" || a == "--port" || a.starts_with("-port=") || a.starts_with("--port="))
      return true;
  }
  return false;
}

int run_dropin(int argc, char** argv, const std::string& version) {
  DropIn dropin;
  std::string error;
  if (!read_command_line(argc, argv, dropin, error)) {
    std::cerr << "linewired: " << error << "\n" << kUsage;
    return 2;
  }
  log_to_stderr(dropin.line.value("loglevel"));
  std::signal(SIGPIPE, SIG_IGN);
  config::Config cfg = config_for(dropin);
  Options options = options_for(dropin, cfg.commands.front().name);
  return serve(std::move(cfg), std::move(options), dropin.line.program.front(), version);
}

}  // namespace linewire::websocket
