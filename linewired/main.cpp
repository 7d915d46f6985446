// linewired: the agent's composition root. Loads the config, connects to the broker and serves
// requests until SIGTERM/SIGINT (SPEC §6, §7).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "agent/agent.hpp"
#include "agent/sd_notify.hpp"
#include "config/load.hpp"
#include "transports/mqtt/mqtt_transport.hpp"
#include "transports/mqtt/name_claim.hpp"
#include "transports/websocket/dropin.hpp"
#include "transports/websocket/listener.hpp"

namespace asio = boost::asio;
using namespace linewire;

namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitConfig = 2;
bool level_from_flag = false;  // --log-level wins over the config, also on reload

// A signal that came before the event loop's handlers were in place (SPEC §6: SIGTERM
// at any moment, also during the start-up's name check, ends the agent cleanly).
volatile std::sig_atomic_t early_signal = 0;

extern "C" void note_early_signal(int sig) {
  // SIGHUP only matters once there is something to reload; never let it end the agent.
  if (sig != SIGHUP || early_signal == 0) early_signal = sig;
}

void note_signals_until_the_loop_runs() {
  struct sigaction sa {};
  sa.sa_handler = note_early_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
}

bool stop_requested_early() { return early_signal == SIGTERM || early_signal == SIGINT; }

const char* signal_name(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "SIGTERM";
}

// Both modes, the agent and the websocketd drop-in: logging to stderr, and SIGPIPE off.
void set_up_process(const std::string& log_level) {
  auto logger = spdlog::stderr_color_mt("linewired");
  // Under systemd, journald stamps the time itself.
  logger->set_pattern(std::getenv("JOURNAL_STREAM") ? "%l: %v" : "%Y-%m-%d %H:%M:%S.%e %l %v");
  logger->set_level(spdlog::level::from_str(log_level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  // A subscriber (or a WebSocket client) that vanishes must not kill us through a
  // pipe write.
  std::signal(SIGPIPE, SIG_IGN);
}

// SIGHUP: a new config takes effect only when it is wholly valid (SPEC §6).
void reload(agent::Agent& agent) {
  const std::string path = agent.config().source;
  spdlog::info("SIGHUP: reloading {}", path);
  auto loaded = config::load_file(path);
  if (!loaded.problems.empty()) {
    for (const auto& p : loaded.problems) spdlog::error("{}", config::format(p, path));
    spdlog::error("reload refused: {} problem(s); the running configuration stays",
                  loaded.problems.size());
    return;
  }
  std::string level = loaded.config->log_level;
  if (auto refused = agent.reload(std::move(*loaded.config))) {
    spdlog::error("reload refused: {}", *refused);
    return;
  }
  if (!level_from_flag) spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace

int main(int argc, char** argv) {
  if (websocket::is_dropin(argc, argv))
    return websocket::run_dropin(argc, argv, LINEWIRE_VERSION, set_up_process);
  CLI::App app{"linewired: run configured programs for MQTT requests, line by line"};
  std::string config_path = "/etc/linewire/linewire.yaml";
  bool check_only = false;
  std::string log_level;
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_flag("--check-config", check_only, "validate the configuration and exit (0 or 2)");
  // `linewired --check-config FILE` reads as it is meant (the issue's own example).
  std::string config_file;
  app.add_option("config_file", config_file, "configuration file, as --config");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error (overrides log_level)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.set_version_flag("--version", "linewired " LINEWIRE_VERSION);
  app.footer(
      "\nwebsocketd drop-in mode, without a config file:\n"
      "  linewired --port=PORT [websocketd's flags] PROGRAM [ARGS...]\n"
      "  linewired --port=PORT [websocketd's flags] --dir=DIR\n"
      "  (every websocketd 0.4.1 flag: linewired --port=1 --help; the README, \"Coming from "
      "websocketd\")");
  CLI11_PARSE(app, argc, argv);
  if (!config_file.empty()) {
    if (app.count("--config") != 0 && config_file != config_path) {
      std::cerr << "two configuration files given: " << config_path << " and " << config_file
                << "\n";
      return kExitConfig;
    }
    config_path = config_file;
  }

  auto loaded = config::load_file(config_path);
  if (!loaded.problems.empty()) {
    for (const auto& p : loaded.problems) std::cerr << config::format(p, config_path) << "\n";
    std::cerr << loaded.problems.size() << " problem(s) in " << config_path << "\n";
    return kExitConfig;
  }
  if (check_only) {
    std::cout << config_path << ": ok (" << loaded.config->commands.size() << " commands)\n";
    return 0;
  }
  config::Config cfg = std::move(*loaded.config);
  level_from_flag = !log_level.empty();
  set_up_process(log_level.empty() ? cfg.log_level : log_level);
  if (cfg.state_dir.empty())
    spdlog::warn(
        "state_dir is \"\": crash safety is off (after a crash, runs are not reported "
        "lost and their processes are not stopped)");

  note_signals_until_the_loop_runs();

  auto claimed = mqtt::name_claimed_elsewhere(cfg, stop_requested_early);
  if (stop_requested_early()) {
    spdlog::info("{} during start-up: stopped before connecting", signal_name(early_signal));
    return 0;
  }
  if (claimed) {
    spdlog::critical("{}", *claimed);
    return kExitRuntime;
  }

  try {
    asio::io_context io;
    agent::Agent agent(io, std::move(cfg), LINEWIRE_VERSION);
    mqtt::Transport transport(io, agent);
    std::unique_ptr<websocket::Listener> listener;
    if (!agent.config().websocket.listen.empty())
      listener = std::make_unique<websocket::Listener>(
          io, agent, websocket::options_from(agent.config()),
          [&transport] { return transport.broker_connected(); });

    // systemd (Type=notify): ready once requests can reach us, and a watchdog fed by
    // the event loop itself, so a wedged loop gets the agent restarted.
    agent::sd::Notifier notifier;
    transport.on_ready(
        [&] { notifier.notify("READY=1\nSTATUS=connected to " + agent.config().broker.url); });
    asio::steady_timer watchdog(io);
    std::function<void()> feed_watchdog;
    if (auto every = agent::sd::watchdog_interval(std::getenv("WATCHDOG_USEC"),
                                                  std::getenv("WATCHDOG_PID"), getpid());
        every && notifier.enabled()) {
      feed_watchdog = [&, every = *every] {
        notifier.notify("WATCHDOG=1");
        watchdog.expires_after(every);
        watchdog.async_wait([&](const boost::system::error_code& ec) {
          if (!ec) feed_watchdog();
        });
      };
      feed_watchdog();
    }

    asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
    auto handle_signal = [&](int sig) {
      if (sig == SIGHUP) {
        notifier.notify(agent::sd::reloading_message(agent::sd::monotonic_usec()));
        reload(agent);
        notifier.notify("READY=1");
        return;
      }
      if (agent.shutting_down()) {
        spdlog::warn("second {}: killing every run and leaving now", signal_name(sig));
        agent.kill_now();
        std::_Exit(kExitRuntime);
      }
      spdlog::info("{}: shutting down", signal_name(sig));
      notifier.notify("STOPPING=1");
      if (listener) listener->stop();
      agent.shutdown([&] {
        transport.stop([&] {
          spdlog::info("stopped");
          io.stop();
        });
      });
    };
    std::function<void(const boost::system::error_code&, int)> on_signal =
        [&](const boost::system::error_code& ec, int sig) {
          if (ec) return;
          signals.async_wait(on_signal);
          handle_signal(sig);
        };
    signals.async_wait(on_signal);
    // The signal_set owns SIGTERM/SIGINT/SIGHUP from here; one that came before it is
    // handled first thing in the loop.
    if (int sig = early_signal) asio::post(io, [&handle_signal, sig] { handle_signal(sig); });

    spdlog::info("linewired {} device '{}', {} command(s)", LINEWIRE_VERSION, agent.config().device,
                 agent.config().commands.size());
    agent.recover();
    if (listener) listener->start();
    transport.start();
    agent.start_services();
    agent.start_schedule();
    io.run();
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return kExitRuntime;
  }
  return 0;
}
