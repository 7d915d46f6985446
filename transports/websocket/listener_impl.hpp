// What the listener's three files share. Nothing outside this folder includes it, so
// Asio and Beast stay out of listener.hpp and every other shared header.
//
// A connection goes through the three in order, as in Beast's chat-multi example:
//   listener.cpp      accepts it (limits, retry on errors) and is the Listener itself;
//   http_session.cpp  reads its requests, answers plain HTTP, decides on an upgrade;
//   ws_session.cpp    pipes the upgraded connection to a run, as its primary or a viewer.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "transports/websocket/any_stream.hpp"
#include "transports/websocket/listener.hpp"

namespace linewire::websocket {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Request = http::request<http::empty_body>;
using error_code = boost::system::error_code;

// A WebSocket session the listener can end when it goes away.
class Live {
 public:
  virtual void abandon() = 0;

 protected:
  ~Live() = default;
};

// Owned by the Listener and by every session: a session may outlive the Listener.
struct Listener::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_, agent::Agent& agent_, Options options_,
       std::function<bool()> broker_connected_)
      : io(io_),
        agent(&agent_),
        options(std::move(options_)),
        broker_connected(std::move(broker_connected_)),
        acceptor(io_),
        retry(io_) {}

  // listener.cpp: accepts connections until stopped.
  void accept();

  asio::io_context& io;
  agent::Agent* agent;  // null once the Listener is gone: sessions may outlive it
  Options options;
  std::function<bool()> broker_connected;
  tcp::acceptor acceptor;
  asio::steady_timer retry;
  std::optional<ssl::context> tls;
  std::filesystem::path static_root;
  int websockets = 0;
  int http_sessions = 0;
  bool stopped = false;
  std::set<Live*> live;
};

// http_session.cpp: serves one accepted connection (the TLS handshake first, with TLS)
// until it closes or becomes a WebSocket.
void serve_http(std::shared_ptr<Listener::Impl> impl, AnyStream stream, tcp::endpoint remote);

// ws_session.cpp: a viewer of `run` (SPEC §8.2); with `from`, its kept stdout lines from
// that line first (§12), also of a run that has ended.
void open_viewer(std::shared_ptr<Listener::Impl> impl, AnyStream&& stream, std::string run,
                 std::optional<std::uint64_t> from, Request req);

// ws_session.cpp: pipes an upgrade request's connection to `run`, as the client that
// started it (`primary`) or as a viewer; closes it at once when the run is gone.
void open_websocket(std::shared_ptr<Listener::Impl> impl, AnyStream&& stream, std::string run,
                    bool primary, Request req);

}  // namespace linewire::websocket
