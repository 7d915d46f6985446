#include "transports/websocket/listener.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <stdexcept>

#include "agent/names.hpp"
#include "transports/websocket/any_stream.hpp"
#include "transports/websocket/http_util.hpp"

namespace linewire::websocket {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ws = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Request = http::request<http::empty_body>;
using Response = http::response<http::string_body>;
using error_code = boost::system::error_code;

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(30);
// A client that neither answers pings nor sends anything this long is gone.
constexpr auto kIdleTimeout = std::chrono::seconds(60);
// The client that started a run holds the child back past this much queued output,
// and lets it go on below the low mark (websocketd's backpressure, SPEC §8).
constexpr std::size_t kPrimaryHigh = 256 * 1024;
constexpr std::size_t kPrimaryLow = 64 * 1024;
// A viewer further behind than this is disconnected (close 1008): it never slows the
// run or the other viewers.
constexpr std::size_t kViewerLimit = 1024 * 1024;
constexpr std::size_t kFrameOverhead = 32;  // a queued frame's own cost
// Plain HTTP connections (requests, static files) beside the WebSocket ones.
constexpr int kExtraHttpConnections = 16;

std::string unique_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%08llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng() & 0xffffffff));
  return buf;
}

std::string read_token(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read websocket.token_file " + path);
  std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) throw std::runtime_error("websocket.token_file " + path + " is empty");
  return token;
}

http::status status_for(agent::ErrorCode code) {
  switch (code) {
    case agent::ErrorCode::unknown_command:
    case agent::ErrorCode::unknown_run:
      return http::status::not_found;
    case agent::ErrorCode::busy:
      return http::status::too_many_requests;
    case agent::ErrorCode::shutting_down:
      return http::status::service_unavailable;
    case agent::ErrorCode::spawn_failed:
      return http::status::internal_server_error;
    case agent::ErrorCode::unauthorized:
      return http::status::unauthorized;
    default:
      return http::status::bad_request;
  }
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

// A WebSocket session the listener can end when it goes away.
class Live {
 public:
  virtual void abandon() = 0;

 protected:
  ~Live() = default;
};

struct Listener::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_, agent::Agent& agent_, Options options_,
       std::function<bool()> broker_connected_)
      : io(io_),
        agent(&agent_),
        options(std::move(options_)),
        broker_connected(std::move(broker_connected_)),
        acceptor(io_),
        retry(io_) {}

  void accept();
  void serve(AnyStream stream, tcp::endpoint remote);

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

// One WebSocket connection piped to one run: the run's primary (it started the run:
// its frames are stdin, its backlog holds the child back, its leaving kills the run)
// or a viewer (output only; dropped when too far behind).
class WsSession final : public std::enable_shared_from_this<WsSession>,
                        public agent::RunSink,
                        public Live {
 public:
  WsSession(std::shared_ptr<Listener::Impl> impl, AnyStream&& stream, std::string run, bool primary)
      : impl_(std::move(impl)),
        ws_(std::move(stream)),
        run_(std::move(run)),
        primary_(primary),
        timer_(impl_->io) {
    ++impl_->websockets;
    impl_->live.insert(this);
  }
  ~WsSession() {
    if (attached_ && impl_->agent) impl_->agent->detach(run_, *this);
    --impl_->websockets;
    impl_->live.erase(this);
  }

  bool attach() {
    if (!impl_->agent->attach(run_, *this, primary_)) return false;
    attached_ = true;
    keep_ = this->shared_from_this();  // the agent holds a plain pointer to this sink
    return true;
  }

  void accept(Request req) {
    auto timeouts = ws::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.idle_timeout = kIdleTimeout;
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.set_option(ws::stream_base::decorator(
        [](ws::response_type& res) { res.set(http::field::server, "linewired"); }));
    ws_.read_message_max(impl_->options.max_message);
    ws_.text(true);
    ws_.async_accept(req, [self = this->shared_from_this()](error_code ec) {
      if (ec) {
        spdlog::debug("websocket {}: handshake failed: {}", self->run_, ec.message());
        self->leave();
        return;
      }
      self->accepted_ = true;
      self->read();
      self->flush();
    });
  }

  void on_line(agent::Stream stream, std::string_view line, std::uint64_t) override {
    if (stream != agent::Stream::out || ended_) return;
    queue_.emplace_back(line);
    queued_ += line.size() + kFrameOverhead;
    if (queued_ > kPrimaryHigh) held_ = true;
    if (!primary_ && queued_ > kViewerLimit) {
      spdlog::info("run {}: a viewer is {} bytes behind: disconnected (1008)", run_, queued_);
      end(ws::close_code::policy_error, "too slow: output queue full");
      return;
    }
    flush();
  }

  void on_finished(const agent::RunRecord&) override {
    attached_ = false;
    // The agent is iterating its sinks: let go of this one after that.
    asio::post(impl_->io, [keep = std::move(keep_)] {});
    ended_ = true;
    code_ = ws::close_code::normal;
    flush();
  }

  bool congested() const override { return held_; }

  void abandon() override {
    if (attached_ && impl_->agent) impl_->agent->detach(run_, *this);
    attached_ = false;
    ended_ = true;
    error_code ignored;
    ws_.next_layer().socket().close(ignored);
    keep_.reset();  // may destroy this: nothing after
  }

 private:
  // The run ends its side: drop what is queued behind the frame in flight and close.
  void end(ws::close_code code, std::string reason) {
    if (attached_) impl_->agent->detach(run_, *this);
    attached_ = false;
    asio::post(impl_->io, [keep = std::move(keep_)] {});
    ended_ = true;
    code_ = code;
    reason_ = std::move(reason);
    queue_.erase(writing_ ? queue_.begin() + 1 : queue_.begin(), queue_.end());
    // A client that reads nothing may never take the frame in flight.
    timer_.expires_after(std::chrono::seconds(10));
    timer_.async_wait([weak = this->weak_from_this()](error_code ec) {
      if (auto self = weak.lock(); self && !ec) {
        error_code ignored;
        self->ws_.next_layer().socket().close(ignored);
      }
    });
    flush();
  }

  void read() {
    ws_.async_read(in_, [self = this->shared_from_this()](error_code ec, std::size_t) {
      if (ec) {
        self->leave();
        return;
      }
      if (self->primary_ && self->attached_) {
        auto error =
            self->impl_->agent->write_stdin(self->run_, beast::buffers_to_string(self->in_.data()));
        if (error) spdlog::debug("run {}: websocket input refused: {}", self->run_, error->message);
      }
      self->in_.consume(self->in_.size());
      self->read();
    });
  }

  // The client went away (or broke the protocol): a run it started is killed.
  void leave() {
    timer_.cancel();
    if (!attached_) return;
    attached_ = false;
    impl_->agent->detach(run_, *this);
    if (primary_) impl_->agent->kill(run_, "disconnect");
    ended_ = true;
    keep_.reset();
  }

  void flush() {
    if (!accepted_ || writing_ || closing_) return;
    if (queue_.empty()) {
      if (ended_) close();
      return;
    }
    writing_ = true;
    ws_.async_write(asio::buffer(queue_.front()),
                    [self = this->shared_from_this()](error_code ec, std::size_t) {
                      self->writing_ = false;
                      if (ec) {
                        self->leave();
                        return;
                      }
                      self->queued_ -= self->queue_.front().size() + kFrameOverhead;
                      self->queue_.pop_front();
                      if (self->held_ && self->queued_ < kPrimaryLow) {
                        self->held_ = false;
                        if (self->primary_ && self->attached_)
                          self->impl_->agent->resume_run(self->run_);
                      }
                      self->flush();
                    });
  }

  void close() {
    closing_ = true;
    ws_.async_close(ws::close_reason(code_, reason_),
                    [self = this->shared_from_this()](error_code) { self->timer_.cancel(); });
  }

  std::shared_ptr<Listener::Impl> impl_;
  ws::stream<AnyStream> ws_;
  std::string run_;
  bool primary_;
  asio::steady_timer timer_;
  std::shared_ptr<WsSession> keep_;
  beast::flat_buffer in_;
  std::deque<std::string> queue_;
  std::size_t queued_ = 0;
  bool held_ = false;
  bool attached_ = false;
  bool accepted_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool ended_ = false;
  ws::close_code code_ = ws::close_code::normal;
  std::string reason_;
};

// One HTTP connection until it upgrades or closes: routing (SPEC §8).
class HttpSession final : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(std::shared_ptr<Listener::Impl> impl, AnyStream stream, tcp::endpoint remote)
      : impl_(std::move(impl)),
        stream_(std::move(stream)),
        remote_(std::move(remote)),
        tls_(stream_.is_tls()) {
    ++impl_->http_sessions;
  }
  ~HttpSession() { --impl_->http_sessions; }

  void run() {
    if (!tls_) return read();
    stream_.expires_after(kRequestTimeout);
    stream_.async_handshake([self = this->shared_from_this()](error_code ec) {
      if (!ec) self->read();
    });
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(0);
    stream_.expires_after(kRequestTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](error_code ec, std::size_t) {
                       if (ec) return;  // closed, timed out, or not HTTP: just close
                       self->route(self->parser_->release());
                     });
  }

  void route(Request req) {
    if (!impl_->agent) return;
    if (ws::is_upgrade(req)) {
      stream_.expires_never();
      upgrade(std::move(req));
      return;
    }
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      auto res = text(req, http::status::method_not_allowed, "405 Method Not Allowed\n");
      res.set(http::field::allow, "GET, HEAD");
      return send(std::move(res));
    }
    auto [path, query] = split_target(req.target());
    if (!impl_->options.only_command && path == "/healthz") {
      nlohmann::json doc = {{"broker_connected", impl_->broker_connected()},
                            {"runs", impl_->agent->active_runs()},
                            {"websocket_connections", impl_->websockets}};
      auto res = text(req, http::status::ok, doc.dump() + "\n");
      res.set(http::field::content_type, "application/json");
      return send(std::move(res));
    }
    if (!impl_->options.only_command && path == "/metrics") {
      std::vector<CommandGauge> gauges;
      for (const auto& c : impl_->agent->config().commands)
        gauges.push_back({c.name, impl_->agent->active(c.name)});
      auto res = text(req, http::status::ok,
                      metrics_text(impl_->agent->metrics(), gauges, impl_->broker_connected(),
                                   impl_->websockets));
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      return send(std::move(res));
    }
    if (!impl_->static_root.empty()) {
      if (auto file = resolve_static(impl_->static_root, path)) return send_file(req, *file);
    }
    send(text(req, http::status::not_found, "404 Not Found\n"));
  }

  bool origin_ok(const Request& req) const {
    const auto& o = impl_->options;
    std::string_view origin = req[http::field::origin];
    if (!o.allowed_origins.empty()) return origin_allowed(origin, o.allowed_origins);
    return o.any_origin || same_origin(origin, req[http::field::host], tls_);
  }

  bool token_ok(const Request& req, const std::vector<std::pair<std::string, std::string>>& query) {
    const std::string& token = impl_->options.token;
    if (token.empty()) return true;
    std::string_view auth = req[http::field::authorization];
    if (auth.starts_with("Bearer ") && token_equal(auth.substr(7), token)) return true;
    for (const auto& [k, v] : query)
      if (k == "token" && token_equal(v, token)) return true;
    return false;
  }

  void upgrade(Request req) {
    const auto& o = impl_->options;
    if (impl_->websockets >= o.max_connections)
      return send(text(req, http::status::too_many_requests, "429 Too Many Requests\n"));
    if (!origin_ok(req)) return send(text(req, http::status::forbidden, "403 Forbidden\n"));
    auto [path, raw_query] = split_target(req.target());
    auto query = parse_query(raw_query);
    if (!query) return send(text(req, http::status::bad_request, "400 Bad Request: query\n"));
    if (!token_ok(req, *query)) {
      auto res = text(req, http::status::unauthorized, "401 Unauthorized\n");
      res.set(http::field::www_authenticate, "Bearer");
      return send(std::move(res));
    }
    std::string command;
    std::vector<std::string> args;
    if (o.only_command) {
      command = *o.only_command;
    } else {
      auto segments = path_segments(path);
      if (segments && segments->size() == 2 && (*segments)[0] == "run" &&
          agent::valid_name((*segments)[1]))
        return view((*segments)[1], std::move(req));
      if (!segments || segments->size() != 1 || !agent::valid_name((*segments)[0]))
        return send(text(req, http::status::not_found, "404 Not Found\n"));
      command = (*segments)[0];
      for (const auto& [k, v] : *query)
        if (k == "arg") args.push_back(v);
    }
    RequestInfo info;
    info.remote_addr = remote_.address().to_string();
    info.remote_port = std::to_string(remote_.port());
    info.host = std::string(req[http::field::host]);
    info.method = std::string(req.method_string());
    info.target = std::string(req.target());
    info.tls = tls_;
    info.server_software = "linewired";
    info.unique_id = unique_id();
    info.script_name = o.only_command ? "/" : "/" + command;
    for (const auto& field : req) info.headers.emplace_back(field.name_string(), field.value());

    agent::StartRequest request;
    request.args = std::move(args);
    agent::RunOrigin origin;
    origin.transport = "websocket";
    origin.topic = info.remote_addr + ":" + info.remote_port + " " + info.target;
    origin.env = cgi_env(info);
    auto result = impl_->agent->start(command, std::move(request), std::move(origin));
    if (auto* e = std::get_if<agent::Error>(&result)) {
      spdlog::info("websocket {} {}: refused: {}", info.remote_addr, info.target, e->message);
      return send(text(req, status_for(e->code), e->message + "\n"));
    }
    const auto& started = std::get<agent::Started>(result);
    spdlog::info("websocket {}:{} {}: run {}", info.remote_addr, info.remote_port, info.target,
                 started.run);
    auto session = std::make_shared<WsSession>(impl_, std::move(stream_), started.run, true);
    if (session->attach()) session->accept(std::move(req));
  }

  void view(const std::string& run, Request req) {
    if (!impl_->agent->has_run(run))
      return send(text(req, http::status::not_found, "404 Not Found: no such run\n"));
    auto session = std::make_shared<WsSession>(impl_, std::move(stream_), run, false);
    if (session->attach()) session->accept(std::move(req));
  }

  static Response text(const Request& req, http::status status, std::string body) {
    Response res{status, req.version()};
    res.set(http::field::server, "linewired");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();
    return res;
  }

  void send_file(const Request& req, const std::filesystem::path& file) {
    beast::error_code ec;
    http::file_body::value_type body;
    body.open(file.c_str(), beast::file_mode::scan, ec);
    if (ec) return send(text(req, http::status::not_found, "404 Not Found\n"));
    auto size = body.size();
    if (req.method() == http::verb::head) {
      http::response<http::empty_body> res{http::status::ok, req.version()};
      res.set(http::field::server, "linewired");
      res.set(http::field::content_type, content_type(file.native()));
      res.content_length(size);
      res.keep_alive(req.keep_alive());
      return send(std::move(res));
    }
    http::response<http::file_body> res{std::piecewise_construct, std::make_tuple(std::move(body)),
                                        std::make_tuple(http::status::ok, req.version())};
    res.set(http::field::server, "linewired");
    res.set(http::field::content_type, content_type(file.native()));
    res.set("X-Content-Type-Options", "nosniff");
    res.content_length(size);
    res.keep_alive(req.keep_alive());
    send(std::move(res));
  }

  template <class Body>
  void send(http::response<Body> res) {
    bool keep_alive = res.keep_alive();
    stream_.expires_after(kRequestTimeout);
    beast::async_write(stream_, http::message_generator(std::move(res)),
                       [self = this->shared_from_this(), keep_alive](error_code ec, std::size_t) {
                         if (ec) return;
                         if (keep_alive) return self->read();
                         self->shutdown();
                       });
  }

  void shutdown() {
    stream_.async_shutdown([self = this->shared_from_this()](error_code) {});
  }

  std::shared_ptr<Listener::Impl> impl_;
  AnyStream stream_;
  tcp::endpoint remote_;
  bool tls_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
};

void Listener::Impl::serve(AnyStream stream, tcp::endpoint remote) {
  std::make_shared<HttpSession>(shared_from_this(), std::move(stream), std::move(remote))->run();
}

void Listener::Impl::accept() {
  acceptor.async_accept([self = shared_from_this()](error_code ec, tcp::socket socket) {
    if (self->stopped || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of file descriptors and the like: breathe instead of spinning.
      spdlog::warn("websocket: accept: {}", ec.message());
      self->retry.expires_after(std::chrono::milliseconds(200));
      self->retry.async_wait([self](error_code ec2) {
        if (!ec2) self->accept();
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
      self->serve(self->tls ? AnyStream::tls(std::move(socket), *self->tls)
                            : AnyStream::plain(std::move(socket)),
                  remote);
    }
    self->accept();
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
  if (!o.static_dir.empty()) {
    std::error_code ec;
    impl_->static_root = std::filesystem::canonical(o.static_dir, ec);
    if (ec) throw std::runtime_error("static_dir " + o.static_dir + ": " + ec.message());
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
  impl_->accept();
}

void Listener::stop() {
  impl_->stopped = true;
  error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->retry.cancel();
}

std::string Listener::endpoint() const {
  error_code ec;
  auto e = impl_->acceptor.local_endpoint(ec);
  if (ec) return {};
  auto a = e.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(e.port());
}

}  // namespace linewire::websocket
