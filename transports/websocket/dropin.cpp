// websocketd drop-in mode (SPEC §8.6). The command line (dropin_flags.cpp) becomes one
// command and the listener's options; an agent without MQTT and the listener then serve
// it until SIGTERM or SIGINT.
#include "transports/websocket/dropin.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "agent/agent.hpp"
#include "protocol/names.hpp"
#include "transports/websocket/dropin_flags.hpp"
#include "transports/websocket/dropin_launcher.hpp"
#include "transports/websocket/listener.hpp"

namespace linewire::websocket {

namespace asio = boost::asio;

namespace {

std::string level_for(const std::string& websocketd_level) {
  // websocketd: debug, trace, access, info, error, fatal (default access).
  if (websocketd_level == "debug" || websocketd_level == "trace") return "debug";
  if (websocketd_level == "error") return "error";
  if (websocketd_level == "fatal") return "critical";
  return "info";
}

// One command, made from the command line; no MQTT. With --dir, --cgidir or
// --staticdir alone there is no PROGRAM: the command's exec is then the folder itself,
// which nothing can execute, and each run's program is chosen per request
// (DropInLauncher); a run for which none was chosen fails to start.
config::Config config_for(const dropin::Flags& f) {
  config::Command cmd;
  if (!f.program.empty()) {
    std::string base = std::filesystem::path(f.program.front()).filename().string();
    cmd.name = protocol::valid_name(base) ? base : "program";
    cmd.exec = f.program;
  } else {
    cmd.name = !f.dir.empty() ? "dir" : "cgi";
    cmd.exec = {std::filesystem::absolute(!f.dir.empty() ? f.dir : f.cgidir).string()};
  }
  cmd.mqtt = false;
  cmd.websocket = true;
  cmd.stderr_mode = config::StderrMode::log;  // websocketd logs stderr too
  cmd.max_instances = f.maxforks;
  if (f.closems > 0) cmd.kill_grace = std::chrono::milliseconds(f.closems);
  for (const auto& name : f.passenv)
    if (const char* v = std::getenv(name.c_str())) cmd.env[name] = v;

  config::Config cfg;
  cfg.commands.push_back(cmd);
  cfg.limits.max_runs = f.maxforks > 0 ? f.maxforks : 1 << 20;
  cfg.device = "websocketd";
  return cfg;
}

// The listener serves `command` on every path (SCRIPT_NAME "/"), or with --dir the
// program each path names: no /run, /healthz or /metrics.
Options options_for(const dropin::Flags& f, const std::string& command, DropInLauncher& launcher) {
  Options options;
  // SPEC §8 binds to loopback unless told otherwise (websocketd binds every address).
  options.address = f.address.empty() ? "127.0.0.1" : f.address;
  options.port = static_cast<unsigned short>(f.port);
  options.static_dir = f.staticdir;
  options.allowed_origins = f.origins;
  options.any_origin = !f.sameorigin;
  options.max_connections = f.maxforks > 0 ? f.maxforks : 1 << 20;
  options.only_command = command;
  options.serve_upgrades = !f.program.empty() || !f.dir.empty();
  options.script_dir = f.dir;
  options.cgi_dir = f.cgidir;
  options.devconsole = f.devconsole;
  options.binary = f.binary;
  options.reverse_lookup = f.reverselookup;
  options.headers_ws = f.headers_ws;
  options.headers_http = f.headers_http;
  options.redirect_port = static_cast<unsigned short>(f.redirport);
  options.launcher = &launcher;
  if (f.ssl) {
    options.cert_file = f.sslcert;
    options.key_file = f.sslkey;
  }
  return options;
}

std::string serving(const dropin::Flags& f) {
  std::string what;
  if (!f.program.empty()) what = f.program.front() + " on every path";
  if (!f.dir.empty()) what = "the programs in " + f.dir;
  if (!f.cgidir.empty()) what += (what.empty() ? "" : ", ") + ("CGI scripts in " + f.cgidir);
  if (!f.staticdir.empty()) what += (what.empty() ? "" : ", ") + ("files in " + f.staticdir);
  if (f.devconsole) what += ", the dev console";
  return what;
}

// ---- serving ----

// Until SIGTERM or SIGINT (a second one: KILL to every run, exit 1); 1 when it cannot
// listen.
int serve(const dropin::Flags& flags, const std::string& version) {
  try {
    asio::io_context io;
    DropInLauncher launcher;
    config::Config cfg = config_for(flags);
    std::string command = cfg.commands.front().name;
    agent::Agent agent(io, std::move(cfg), version, launcher);
    Listener listener(io, agent, options_for(flags, command, launcher), [] { return false; });
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
    spdlog::info("linewired {} (websocketd drop-in) serving {}", version, serving(flags));
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

int run_dropin(int argc, char** argv, const std::string& version, const ProcessSetup& setup) {
  std::string error;
  auto parsed = dropin::parse(argc, argv, error);
  if (!parsed) {
    std::cerr << "linewired: " << error << "\n\n" << dropin::usage();
    return 2;
  }
  using Action = dropin::Parsed::Action;
  switch (parsed->action) {
    case Action::help:
      std::cout << dropin::usage();
      return 0;
    case Action::version:
      // websocketd prints "websocketd VERSION (GO linux-amd64) --": name and version first.
      std::cout << "linewired " << version << " (websocketd drop-in mode)\n";
      return 0;
    case Action::license:
      std::cout << "linewired " << version << "\n"
                << "linewired has no licence text of its own yet: none ships with its source.\n"
                << "websocketd's BSD licence, which `websocketd --license` prints, is "
                   "websocketd's, not linewired's.\n";
      return 0;
    case Action::serve:
      break;
  }
  setup(level_for(parsed->flags.loglevel));
  return serve(parsed->flags, version);
}

}  // namespace linewire::websocket
