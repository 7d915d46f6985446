// Listener: binds, accepts (within the connection limits, breathing on errors) and
// hands each connection to an HTTP session (http_session.cpp).
#include "transports/websocket/listener.hpp"

#include <spdlog/spdlog.h>

#include <cctype>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <tuple>

#include "agent/auth_policy.hpp"
#include "transports/websocket/http_util.hpp"
#include "transports/websocket/listener_impl.hpp"

namespace linewire::websocket {

namespace {

// Plain HTTP connections (requests, static files) beside the WebSocket ones.
constexpr int kExtraHttpConnections = 16;

std::string read_token(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read websocket.token_file " + path);
  std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) throw std::runtime_error("websocket.token_file " + path + " is empty");
  return token;
}

}  // namespace

Options options_from(const config::Config& config) {
  Options o;
  const auto& w = config.websocket;
  auto [host, port] = host_port(w.listen, "8080");
  o.address = host;
  o.port = static_cast<unsigned short>(std::stoi(port));
  o.static_dir = w.static_dir;
  o.allowed_origins = w.allowed_origins;
  o.max_connections = w.max_connections;
  if (!w.token_file.empty()) o.token = read_token(w.token_file);
  o.cert_file = w.cert_file;
  o.key_file = w.key_file;
  o.max_message = config.limits.max_payload;
  return o;
}

// The main port, or with `redirect` --redirport's (plain HTTP whatever the main port
// speaks; every request redirected, http_session.cpp). One function for both, so that
// Asio's accept operation is compiled once.
void Listener::Impl::accept(bool redirect) {
  tcp::acceptor& on = redirect ? redirect_acceptor : acceptor;
  on.async_accept([self = shared_from_this(), redirect](error_code ec, tcp::socket socket) {
    if (self->stopped || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of file descriptors and the like: breathe instead of spinning.
      spdlog::warn("websocket: accept: {}", ec.message());
      auto& timer = redirect ? self->redirect_retry : self->retry;
      timer.expires_after(std::chrono::milliseconds(200));
      timer.async_wait([self, redirect](error_code ec2) {
        if (!ec2) self->accept(redirect);
      });
      return;
    }
    if (self->http_sessions >= self->options.max_connections + kExtraHttpConnections) {
      error_code ignored;
      socket.close(ignored);  // past every limit: not even an HTTP answer
    } else {
      error_code ignored;
      auto remote = socket.remote_endpoint(ignored);
      socket.set_option(tcp::no_delay(true), ignored);
      serve_http(self,
                 self->tls && !redirect ? AnyStream::tls(std::move(socket), *self->tls)
                                        : AnyStream::plain(std::move(socket)),
                 remote, redirect);
    }
    self->accept(redirect);
  });
}

Listener::Listener(asio::io_context& io, agent::Agent& agent, Options options,
                   std::function<bool()> broker_connected)
    : impl_(std::make_shared<Impl>(io, agent, std::move(options), std::move(broker_connected))) {}

Listener::~Listener() {
  stop();
  auto live = impl_->live;
  for (Live* l : live) l->abandon();
  impl_->agent = nullptr;
}

void Listener::start() {
  auto& o = impl_->options;
  // Canonical once: every path a request names is checked against these.
  for (auto [dir, root, what] : {std::tuple{&o.static_dir, &impl_->static_root, "static_dir"},
                                 std::tuple{&o.script_dir, &impl_->script_root, "--dir"},
                                 std::tuple{&o.cgi_dir, &impl_->cgi_root, "--cgidir"}}) {
    if (dir->empty()) continue;
    std::error_code ec;
    *root = std::filesystem::canonical(*dir, ec);
    if (ec) throw std::runtime_error(std::string(what) + " " + *dir + ": " + ec.message());
  }
  if (!o.cert_file.empty()) {
    impl_->tls.emplace(ssl::context::tls_server);
    auto& ctx = *impl_->tls;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    error_code ec;
    ctx.use_certificate_chain_file(o.cert_file, ec);
    if (ec) throw std::runtime_error("TLS certificate " + o.cert_file + ": " + ec.message());
    ctx.use_private_key_file(o.key_file, ssl::context::pem, ec);
    if (ec) throw std::runtime_error("TLS key " + o.key_file + ": " + ec.message());
  }
  error_code ec;
  tcp::resolver resolver(impl_->io);
  auto results = resolver.resolve(o.address, std::to_string(o.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty())
    throw std::runtime_error("websocket: cannot resolve " + o.address + ": " + ec.message());
  tcp::endpoint bind_to = results.begin()->endpoint();
  auto& acceptor = impl_->acceptor;
  acceptor.open(bind_to.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(bind_to, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("websocket: cannot listen on " + o.address + ":" +
                             std::to_string(o.port) + ": " + ec.message());
  spdlog::info("websocket: listening on {}://{}/", impl_->tls ? "wss" : "ws", endpoint());
  if (o.redirect_port != 0) {
    // --redirport: the same address, another port, plain HTTP; every request redirected.
    tcp::endpoint redirect_at(bind_to.address(), o.redirect_port);
    auto& r = impl_->redirect_acceptor;
    r.open(redirect_at.protocol(), ec);
    if (!ec) r.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) r.bind(redirect_at, ec);
    if (!ec) r.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      throw std::runtime_error("websocket: cannot listen on " + o.address + ":" +
                               std::to_string(o.redirect_port) + ": " + ec.message());
    spdlog::info("websocket: redirecting http://{}:{}/ to it", o.address, o.redirect_port);
    impl_->accept(true);
  }
  // Said once at start, so that a 403 later is no surprise (http_session.cpp says why).
  const auto& config = impl_->agent->config();
  for (const auto& c : config.commands)
    if (c.websocket && !agent::accepts_unsigned(config, c))
      spdlog::warn(
          "websocket: command '{}' needs signed requests: it is refused over WebSocket (403); "
          "start it over MQTT",
          c.name);
  impl_->accept();
}

void Listener::stop() {
  impl_->stopped = true;
  error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->redirect_acceptor.close(ignored);
  impl_->retry.cancel();
  impl_->redirect_retry.cancel();
}

std::string Listener::endpoint() const {
  error_code ec;
  auto e = impl_->acceptor.local_endpoint(ec);
  if (ec) return {};
  auto a = e.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(e.port());
}

}  // namespace linewire::websocket
