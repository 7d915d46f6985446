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
#include "agent/names.hpp"
#include "transports/websocket/listener.hpp"

namespace linewire::websocket {

namespace asio = boost::asio;

namespace {

constexpr const char* kUsage =
    "usage: linewired --port=PORT [--address=ADDR] [--staticdir=DIR] [--maxforks=N]\n"
    "                 [--closems=MS] [--origin=HOST[:PORT][,...]] [--sameorigin]\n"
    "                 [--passenv=VAR[,...]] [--ssl --sslcert=FILE --sslkey=FILE]\n"
    "                 [--loglevel=LEVEL] PROGRAM [ARGS...]\n";

const std::map<std::string, bool> kFlags = {
    // name → takes a value (Go's flag package: -name=v, --name=v, -name v, --name v)
    {"port", true},    {"address", true}, {"staticdir", true},   {"maxforks", true},
    {"closems", true}, {"origin", true},  {"sameorigin", false}, {"passenv", true},
    {"ssl", false},    {"sslcert", true}, {"sslkey", true},      {"loglevel", true},
};

struct Parsed {
  std::map<std::string, std::string> flags;
  std::vector<std::string> program;
};

// Go flag syntax: flags until the first argument that is not one, or `--`.
std::optional<Parsed> parse(int argc, char** argv, std::string& error) {
  Parsed p;
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
    p.flags[name] = value.value_or("true");
  }
  for (; i < argc; ++i) p.program.emplace_back(argv[i]);
  return p;
}

bool truthy(const std::string& v) { return v == "true" || v == "1"; }

std::optional<int> number(const std::map<std::string, std::string>& flags, const std::string& name,
                          int fallback, std::string& error) {
  auto it = flags.find(name);
  if (it == flags.end()) return fallback;
  try {
    std::size_t used = 0;
    int n = std::stoi(it->second, &used);
    if (used == it->second.size() && n >= 0) return n;
  } catch (const std::exception&) {
  }
  error = "invalid value \"" + it->second + "\" for flag -" + name;
  return std::nullopt;
}

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
  std::string error;
  auto parsed = parse(argc, argv, error);
  // Plain ints, each set once its flag is known good (a chain of optionals here made
  // GCC's -Os flow analysis warn of a maybe-uninitialized read).
  int port = 0, maxforks = 0, closems = 0;
  bool ok = false;
  if (parsed) {
    const auto& f = parsed->flags;
    auto p = number(f, "port", 0, error);
    auto m = p ? number(f, "maxforks", 0, error) : std::nullopt;
    auto c = m ? number(f, "closems", 0, error) : std::nullopt;
    if (p && (*p == 0 || *p > 65535))
      error = "--port must be 1 to 65535";
    else if (p && m && c && parsed->program.empty())
      error = "no PROGRAM to serve";
    else if (p && m && c && f.count("ssl") && truthy(f.at("ssl")) &&
             (!f.count("sslcert") || !f.count("sslkey")))
      error = "--ssl needs --sslcert and --sslkey";
    else if (p && m && c) {
      ok = true;
      port = *p;
      maxforks = *m;
      closems = *c;
    }
  }
  if (!ok) {
    std::cerr << "linewired: " << error << "\n" << kUsage;
    return 2;
  }
  const auto& f = parsed->flags;
  auto logger = spdlog::stderr_color_mt("linewired");
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
  logger->set_level(
      spdlog::level::from_str(level_for(f.count("loglevel") ? f.at("loglevel") : "")));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  std::signal(SIGPIPE, SIG_IGN);

  // One command, made from the command line: every path runs it (SCRIPT_NAME "/").
  config::Config cfg;
  config::Command cmd;
  std::string base = std::filesystem::path(parsed->program.front()).filename().string();
  cmd.name = agent::valid_name(base) ? base : "program";
  cmd.exec = parsed->program;
  cmd.mqtt = false;
  cmd.websocket = true;
  cmd.stderr_mode = config::StderrMode::log;  // websocketd logs stderr too
  cmd.max_instances = maxforks;
  if (closems > 0) cmd.kill_grace = std::chrono::milliseconds(closems);
  if (auto it = f.find("passenv"); it != f.end())
    for (const auto& name : split_commas(it->second))
      if (const char* v = std::getenv(name.c_str())) cmd.env[name] = v;
  cfg.commands.push_back(cmd);
  cfg.limits.max_runs = maxforks > 0 ? maxforks : 1 << 20;
  cfg.device = "websocketd";

  Options options;
  // SPEC §8 binds to loopback unless told otherwise (websocketd binds every address).
  options.address = f.count("address") ? f.at("address") : "127.0.0.1";
  options.port = static_cast<unsigned short>(port);
  options.static_dir = f.count("staticdir") ? f.at("staticdir") : "";
  if (f.count("origin")) options.allowed_origins = split_commas(f.at("origin"));
  options.any_origin = !(f.count("sameorigin") && truthy(f.at("sameorigin")));
  options.max_connections = maxforks > 0 ? maxforks : 1 << 20;
  options.only_command = cmd.name;
  if (f.count("ssl") && truthy(f.at("ssl"))) {
    options.cert_file = f.at("sslcert");
    options.key_file = f.at("sslkey");
  }

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
    spdlog::info("linewired {} (websocketd drop-in) serving {} on every path", version,
                 parsed->program.front());
    io.run();
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}

}  // namespace linewire::websocket
