// The local WebSocket listener (SPEC §8) on the agent's io_context: `/{command}` starts
// a run and pipes it, `/run/{run}` attaches a viewer, `/healthz`, `/metrics` and
// static files. Asio and Beast stay in this folder's .cpp files and its private
// listener_impl.hpp: this header is all the agent sees.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/agent.hpp"

namespace boost::asio {
class io_context;
}

namespace linewire::websocket {

class DropInLauncher;

struct Options {
  std::string address = "127.0.0.1";
  unsigned short port = 8080;
  std::string static_dir;
  std::vector<std::string> allowed_origins;
  // No allowed_origins: true lets any origin in (websocketd without --origin), false
  // lets only pages served by this listener in.
  bool any_origin = false;
  int max_connections = 64;
  std::string token;  // empty: no token
  std::string cert_file;
  std::string key_file;
  // websocketd drop-in: every path runs this command; no /run, /healthz, /metrics.
  std::optional<std::string> only_command;
  std::size_t max_message = 65536;

  // websocketd drop-in's other flags (SPEC §8.6); all off in config mode.
  bool serve_upgrades = true;  // false: only --staticdir/--cgidir, every upgrade is 404
  std::string script_dir;      // --dir: /NAME runs script_dir/NAME as only_command's run
  std::string cgi_dir;         // --cgidir: plain HTTP requests run CGI/1.1 scripts in it
  bool devconsole = false;
  bool binary = false;  // --binary: raw bytes both ways, binary messages out
  bool reverse_lookup = false;
  std::vector<std::pair<std::string, std::string>> headers_ws;    // on the 101
  std::vector<std::pair<std::string, std::string>> headers_http;  // on plain HTTP answers
  unsigned short redirect_port = 0;                               // 0: none
  // Runs a program other than the command's, or with raw output: needed by script_dir,
  // cgi_dir and binary; the Agent was made with it.
  DropInLauncher* launcher = nullptr;
};

// From the `websocket` config section; throws std::runtime_error (token file unreadable).
Options options_from(const config::Config& config);

class Listener {
 public:
  Listener(boost::asio::io_context& io, agent::Agent& agent, Options options,
           std::function<bool()> broker_connected);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds and listens; throws std::runtime_error when it cannot.
  void start();
  // Stops accepting; open connections end with their runs.
  void stop();
  // "ADDRESS:PORT" bound (the port chosen by the system when 0 was asked).
  std::string endpoint() const;

  // listener_impl.hpp: the state its sessions share, which may outlive the Listener.
  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace linewire::websocket
