// One HTTP connection until it closes or upgrades (SPEC §8.3, §8.4): /healthz,
// /metrics and static files, and for an upgrade the checks of §8.3 before a run is
// started or watched.
#include <spdlog/spdlog.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "agent/auth_policy.hpp"
#include "protocol/names.hpp"
#include "transports/websocket/http_util.hpp"
#include "transports/websocket/listener_impl.hpp"

namespace linewire::websocket {

using Response = http::response<http::string_body>;

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(30);

std::string unique_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%08llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng() & 0xffffffff));
  return buf;
}

// The answer to a refused start (SPEC §8.3).
http::status status_for(protocol::ErrorCode code) {
  switch (code) {
    case protocol::ErrorCode::unknown_command:
    case protocol::ErrorCode::unknown_run:
      return http::status::not_found;
    case protocol::ErrorCode::busy:
      return http::status::too_many_requests;
    case protocol::ErrorCode::shutting_down:
      return http::status::service_unavailable;
    case protocol::ErrorCode::spawn_failed:
      return http::status::internal_server_error;
    case protocol::ErrorCode::unauthorized:
      return http::status::unauthorized;
    default:
      return http::status::bad_request;
  }
}

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

  // SPEC §8.4; an upgrade goes on in upgrade().
  void route(Request req) {
    if (!impl_->agent) return;
    if (beast::websocket::is_upgrade(req)) {
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

  // ---- the upgrade: SPEC §8.3's checks in its order, then a run or a viewer ----

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
    if (o.only_command) return start(*o.only_command, {}, std::move(req));
    auto segments = path_segments(path);
    if (segments && segments->size() == 2 && (*segments)[0] == "run" &&
        protocol::valid_name((*segments)[1]))
      return view((*segments)[1], std::move(req));
    if (!segments || segments->size() != 1 || !protocol::valid_name((*segments)[0]))
      return send(text(req, http::status::not_found, "404 Not Found\n"));
    std::vector<std::string> args;
    for (const auto& [k, v] : *query)
      if (k == "arg") args.push_back(v);
    start((*segments)[0], std::move(args), std::move(req));
  }

  // websocketd's CGI-style variables for the run (SPEC §8.1).
  RequestInfo request_info(const Request& req, const std::string& command) const {
    RequestInfo info;
    info.remote_addr = remote_.address().to_string();
    info.remote_port = std::to_string(remote_.port());
    info.host = std::string(req[http::field::host]);
    info.method = std::string(req.method_string());
    info.target = std::string(req.target());
    info.tls = tls_;
    info.server_software = "linewired";
    info.unique_id = unique_id();
    info.script_name = impl_->options.only_command ? "/" : "/" + command;
    for (const auto& field : req) info.headers.emplace_back(field.name_string(), field.value());
    return info;
  }

  // `/{command}`: a run this connection is the primary of (SPEC §8.1).
  void start(const std::string& name, std::vector<std::string> args, Request req) {
    RequestInfo info = request_info(req, name);
    // Signed requests (SPEC §11) are MQTT payloads signed over their topic; a URL has no
    // room for one and a browser cannot make one. A command that needs a signature
    // (its `keys`, or auth.require without `unsigned: true`) therefore never starts
    // here. Under auth.require an unknown name gets the same answer, so that a stranger
    // learns no command names (as over MQTT).
    const auto& config = impl_->agent->config();
    const config::Command* command = impl_->agent->find_command(name, "websocket");
    if (command ? !agent::accepts_unsigned(config, *command)
                : !agent::accepts_unsigned_unknown(config)) {
      spdlog::info("websocket {} {}: refused: '{}' needs a signed request", info.remote_addr,
                   info.target, name);
      return send(text(req, http::status::forbidden,
                       "403 Forbidden: '" + name +
                           "' needs a signed request, which a WebSocket cannot carry; start it "
                           "over MQTT\n"));
    }
    protocol::StartRequest request;
    request.args = std::move(args);
    agent::RunOrigin origin;
    origin.transport = "websocket";
    origin.topic = info.remote_addr + ":" + info.remote_port + " " + info.target;
    origin.env = cgi_env(info);
    auto result = command ? impl_->agent->start(*command, std::move(request), std::move(origin))
                          : impl_->agent->start(name, std::move(request), std::move(origin));
    if (auto* e = std::get_if<protocol::Error>(&result)) {
      spdlog::info("websocket {} {}: refused: {}", info.remote_addr, info.target, e->message);
      return send(text(req, status_for(e->code), e->message + "\n"));
    }
    const auto& started = std::get<agent::Started>(result);
    spdlog::info("websocket {}:{} {}: run {}", info.remote_addr, info.remote_port, info.target,
                 started.run);
    open_websocket(impl_, std::move(stream_), started.run, true, std::move(req));
  }

  // `/run/{run}`: a viewer (SPEC §8.2).
  void view(const std::string& run, Request req) {
    // `?from=N`: the run's kept lines first (SPEC §12), also of a run that has ended.
    std::optional<std::uint64_t> from;
    if (auto query = parse_query(split_target(req.target()).second)) {
      for (const auto& [key, value] : *query) {
        if (key != "from") continue;
        std::uint64_t n = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc() || end != value.data() + value.size())
          return send(text(req, http::status::bad_request,
                           "400 Bad Request: from must be a line number\n"));
        from = std::max<std::uint64_t>(n, 1);
      }
    }
    if (!impl_->agent->has_run(run) && !(from && impl_->agent->history().find(run)))
      return send(text(req, http::status::not_found, "404 Not Found: no such run\n"));
    open_viewer(impl_, std::move(stream_), run, from, std::move(req));
  }

  // ---- answers ----

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

  // Writes the answer, then reads the next request or ends the connection.
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

}  // namespace

void serve_http(std::shared_ptr<Listener::Impl> impl, AnyStream stream, tcp::endpoint remote) {
  std::make_shared<HttpSession>(std::move(impl), std::move(stream), std::move(remote))->run();
}

}  // namespace linewire::websocket
