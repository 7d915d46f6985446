// The local WebSocket listener (SPEC §8) on the agent's io_context: `/{command}` starts
// a run and pipes it, `/run/{run}` attaches a viewer, `/healthz`, `/metrics` and
// static files. Asio and Beast stay in this folder's .cpp files and its private
// listener_impl.hpp: this header is all the agent sees.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent.hpp"

namespace boost::asio {
class io_context;
}

namespace linewire::websocket {

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
