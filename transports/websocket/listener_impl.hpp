// What the listener's three files share. Nothing outside this folder includes it, so
// Asio and Beast stay out of listener.hpp and every other shared header.
//
// A connection goes through the three in order, as in Beast's chat-multi example:
//   listener.cpp      accepts it (limits, retry on errors) and is the Listener itself;
//   http_session.cpp  reads its requests, answers plain HTTP, decides on an upgrade;
//   ws_session.cpp    pipes the upgraded connection to a run, as its primary or a viewer.
// websocketd drop-in mode adds cgi_session.cpp (a --cgidir script's request, in place
// of ws_session.cpp) and devconsole.cpp; --redirport's port is accepted here too and
// served by http_session.cpp in redirect mode.
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
#include <string_view>
#include <utility>
#include <vector>

#include "transports/websocket/any_stream.hpp"
#include "transports/websocket/cgi.hpp"
#include "transports/websocket/listener.hpp"

namespace linewire::websocket {

class ProcessLink;

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
        redirect_acceptor(io_),
        retry(io_),
        redirect_retry(io_) {}

  // listener.cpp: accepts connections until stopped; `redirect`: on --redirport.
  void accept(bool redirect = false);

  asio::io_context& io;
  agent::Agent* agent;  // null once the Listener is gone: sessions may outlive it
  Options options;
  std::function<bool()> broker_connected;
  tcp::acceptor acceptor;
  tcp::acceptor redirect_acceptor;  // --redirport; closed when not asked for
  asio::steady_timer retry;
  asio::steady_timer redirect_retry;
  std::optional<ssl::context> tls;
  std::filesystem::path static_root;
  std::filesystem::path script_root;  // --dir, canonical
  std::filesystem::path cgi_root;     // --cgidir, canonical
  int websockets = 0;
  int http_sessions = 0;
  bool stopped = false;
  std::set<Live*> live;
};

// http_session.cpp: serves one accepted connection (the TLS handshake first, with TLS)
// until it closes or becomes a WebSocket. `redirect`: a --redirport connection, where
// every request is answered with a 301 to redirect_location (http_util.hpp).
void serve_http(std::shared_ptr<Listener::Impl> impl, AnyStream stream, tcp::endpoint remote,
                bool redirect = false);

// ws_session.cpp: a viewer of `run` (SPEC §8.2); with `from`, its kept stdout lines from
// that line first (§12), also of a run that has ended.
void open_viewer(std::shared_ptr<Listener::Impl> impl, AnyStream&& stream, std::string run,
                 std::optional<std::uint64_t> from, Request req);

// ws_session.cpp: pipes an upgrade request's connection to `run`, as the client that
// started it (`primary`) or as a viewer; closes it at once when the run is gone. With
// `link` (--binary) the run's stdout comes as raw bytes through it.
void open_websocket(std::shared_ptr<Listener::Impl> impl, AnyStream&& stream, std::string run,
                    bool primary, Request req, std::shared_ptr<ProcessLink> link = nullptr);

// cgi_session.cpp: runs a --cgidir script for the request `head` with `body` and writes
// its answer; the connection ends with it.
void serve_cgi(std::shared_ptr<Listener::Impl> impl, AnyStream&& stream, RequestInfo info,
               Request head, std::string body, ScriptMatch script);

// http_session.cpp: adds --header-http's or --header-ws's headers; a name given
// replaces the answer's own field of that name.
void add_headers(http::fields& fields, const std::vector<std::pair<std::string, std::string>>& add);

// devconsole.cpp: the page --devconsole serves.
std::string_view devconsole_page();

}  // namespace linewire::websocket
