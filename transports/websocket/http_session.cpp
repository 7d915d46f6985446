// One HTTP connection until it closes or upgrades (SPEC §8.3, §8.4): /healthz,
// /metrics and static files, and for an upgrade the checks of §8.3 before a run is
// started or watched. In websocketd drop-in mode (§8.6) also --dir's programs, the
// dev console, --header-http and the hand-over of a --cgidir request to cgi_session.cpp.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "agent/auth_policy.hpp"
#include "protocol/names.hpp"
#include "transports/websocket/cgi.hpp"
#include "transports/websocket/dropin_launcher.hpp"
#include "transports/websocket/http_util.hpp"
#include "transports/websocket/listener_impl.hpp"

namespace linewire::websocket {

using Response = http::response<http::string_body>;

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(30);
// A --cgidir request's body is read whole before the script starts; past this, 413.
// Bounded, as every request here is: CGI is for forms, not uploads.
constexpr std::uint64_t kMaxCgiBody = 1024 * 1024;

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

}  // namespace

void add_headers(http::fields& fields,
                 const std::vector<std::pair<std::string, std::string>>& add) {
  // A name given here replaces ours (Server, Content-Type, ...); given twice, both go.
  std::vector<std::string_view> replaced;
  for (const auto& [name, value] : add) {
    if (std::find(replaced.begin(), replaced.end(), name) == replaced.end()) {
      fields.erase(name);
      replaced.push_back(name);
    }
    fields.insert(name, value);
  }
}

namespace {

class HttpSession final : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(std::shared_ptr<Listener::Impl> impl, AnyStream stream, tcp::endpoint remote,
              bool redirect)
      : impl_(std::move(impl)),
        stream_(std::move(stream)),
        remote_(std::move(remote)),
        tls_(stream_.is_tls()),
        redirect_(redirect) {
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
  // The head first: only a --cgidir script may be sent a body (read_cgi_body); any
  // other request with one ends the connection (empty_body refuses body bytes).
  void read() {
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    // Checked against Content-Length as soon as the head is read.
    parser_->body_limit(impl_->cgi_root.empty() || redirect_ ? 0 : kMaxCgiBody);
    upgrading_ = false;
    stream_.expires_after(kRequestTimeout);
    http::async_read_header(
        stream_, buffer_, *parser_, [self = this->shared_from_this()](error_code ec, std::size_t) {
          if (ec == http::error::body_limit) {
            Request head = self->parser_->get();
            head.keep_alive(false);  // its body is still on the way
            return self->send(
                text(head, http::status::payload_too_large, "413 Payload Too Large\n"));
          }
          if (ec) return;  // closed, timed out, or not HTTP: just close
          self->on_head();
        });
  }

  void on_head() {
    const Request& head = parser_->get();
    if (!impl_->cgi_root.empty() && !redirect_ && !beast::websocket::is_upgrade(head)) {
      auto script = find_script(impl_->cgi_root, split_target(head.target()).first, false);
      if (script.status != ScriptMatch::Status::not_found) return read_cgi_body(std::move(script));
    }
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](error_code ec, std::size_t) {
                       if (ec) return;
                       self->route(self->parser_->release());
                     });
  }

  // A --cgidir script's request: its body as raw bytes by its Content-Length (a chunked
  // one is refused, 411; no second Beast parser is compiled for it), after a 100
  // Continue when the client waits for one (curl does past 1 KiB); then the script
  // (cgi_session.cpp). The head's check against kMaxCgiBody already passed.
  void read_cgi_body(ScriptMatch script) {
    Request head = parser_->get();
    head.keep_alive(false);  // the connection ends with the script's answer
    if (script.status == ScriptMatch::Status::not_executable)
      return send(text(head, http::status::forbidden,
                       "403 Forbidden: " + script.script_name + " is not executable\n"));
    if (parser_->chunked())
      return send(text(head, http::status::length_required, "411 Length Required\n"));
    const std::size_t length = parser_->content_length().value_or(0);
    auto body = std::make_shared<std::string>(beast::buffers_to_string(buffer_.data()));
    if (body->size() > length) body->resize(length);
    buffer_.consume(body->size());
    const std::size_t missing = length - body->size();
    auto run = [self = this->shared_from_this(), head = std::move(head), body,
                script = std::move(script)](error_code ec, std::size_t) mutable {
      if (ec || !self->impl_->agent) return;
      RequestInfo info = self->request_info(head, "");
      serve_cgi(self->impl_, std::move(self->stream_), std::move(info), std::move(head),
                std::move(*body), std::move(script));
    };
    if (missing == 0) return run({}, 0);
    auto read_rest = [self = this->shared_from_this(), body, missing,
                      run = std::move(run)]() mutable {
      asio::async_read(self->stream_, asio::dynamic_buffer(*body), asio::transfer_exactly(missing),
                       std::move(run));
    };
    if (!beast::iequals(parser_->get()[http::field::expect], "100-continue")) return read_rest();
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::async_write(stream_, asio::buffer(kContinue),
                      [read_rest = std::move(read_rest)](error_code ec, std::size_t) mutable {
                        if (!ec) read_rest();
                      });
  }

  // SPEC §8.4; an upgrade goes on in upgrade().
  void route(Request req) {
    if (!impl_->agent) return;
    if (redirect_) {
      // --redirport: everything, upgrades too, goes to the main port's root (no
      // --header-http: websocketd's redirect server has none either).
      std::string location = redirect_location(req[http::field::host], impl_->options.address,
                                               impl_->options.port, impl_->tls.has_value());
      auto res = text(req, http::status::moved_permanently,
                      "<a href=\"" + location + "\">Moved Permanently</a>.\n");
      res.set(http::field::content_type, "text/html; charset=utf-8");
      res.set(http::field::location, location);
      return send(std::move(res));
    }
    if (beast::websocket::is_upgrade(req)) {
      upgrading_ = true;  // websocketd adds no --header-http to these answers
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
    if (impl_->options.devconsole) {
      // Every plain GET, as websocketd: the page opens a WebSocket to its own path.
      auto res = text(req, http::status::ok, std::string(devconsole_page()));
      res.set(http::field::content_type, "text/html; charset=utf-8");
      res.set(http::field::cache_control, "no-cache");
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
    if (o.only_command) return upgrade_dropin(std::move(req));
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

  // Drop-in mode (SPEC §8.6): every path runs the program, or with --dir the program
  // the path names; with --reverselookup the client's name is looked up first.
  void upgrade_dropin(Request req) {
    const auto& o = impl_->options;
    if (o.reverse_lookup && !remote_host_) {
      resolver_.emplace(impl_->io);
      return resolver_->async_resolve(
          remote_, [self = this->shared_from_this(), req = std::move(req)](
                       error_code ec, tcp::resolver::results_type names) mutable {
            // No name (or no answer): the address, as websocketd.
            self->remote_host_ = !ec && !names.empty() ? names.begin()->host_name()
                                                       : self->remote_.address().to_string();
            self->upgrade_dropin(std::move(req));
          });
    }
    if (!o.serve_upgrades)  // --staticdir or --cgidir alone: no program to run
      return send(text(req, http::status::not_found, "404 Not Found\n"));
    LaunchChange change;
    change.raw_stdout = o.binary;
    std::optional<ScriptMatch> script;
    if (!impl_->script_root.empty()) {
      script = find_script(impl_->script_root, split_target(req.target()).first, true);
      if (script->status == ScriptMatch::Status::not_found)
        return send(text(req, http::status::not_found, "404 Not Found\n"));
      // websocketd upgrades, fails to start it and drops the connection: say why instead.
      if (script->status == ScriptMatch::Status::not_executable)
        return send(text(req, http::status::forbidden,
                         "403 Forbidden: " + script->script_name + " is not executable\n"));
      change.executable = script->file.string();
    }
    if (!script && !o.binary) return start(*o.only_command, {}, std::move(req));
    start(*o.only_command, {}, std::move(req), std::move(change), std::move(script));
  }

  // websocketd's CGI-style variables for the run (SPEC §8.1).
  RequestInfo request_info(const http::request_header<>& req, const std::string& command) const {
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

  // `/{command}`: a run this connection is the primary of (SPEC §8.1). `change`: drop-in
  // mode's other program or raw bytes (dropin_launcher.hpp), `script` that program.
  void start(const std::string& name, std::vector<std::string> args, Request req,
             std::optional<LaunchChange> change = std::nullopt,
             std::optional<ScriptMatch> script = std::nullopt) {
    RequestInfo info = request_info(req, name);
    if (script) info.script_name = script->script_name;
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
    if (script) origin.env["PATH_INFO"] = script->path_info;  // after the program's name
    if (remote_host_) origin.env["REMOTE_HOST"] = *remote_host_;
    std::shared_ptr<ProcessLink> link;
    const std::string id = "ws" + unique_id();
    if (change) {
      // The launcher knows the run by the id asked for here.
      request.id = id;
      link = impl_->options.launcher->expect(id, std::move(*change));
    }
    auto result = command ? impl_->agent->start(*command, std::move(request), std::move(origin))
                          : impl_->agent->start(name, std::move(request), std::move(origin));
    if (auto* e = std::get_if<protocol::Error>(&result)) {
      if (link) impl_->options.launcher->forget(id);
      spdlog::info("websocket {} {}: refused: {}", info.remote_addr, info.target, e->message);
      return send(text(req, status_for(e->code), e->message + "\n"));
    }
    const auto& started = std::get<agent::Started>(result);
    spdlog::info("websocket {}:{} {}: run {}", info.remote_addr, info.remote_port, info.target,
                 started.run);
    // The link carries the session's bytes only with --binary (--dir alone changes
    // just the program).
    open_websocket(impl_, std::move(stream_), started.run, true, std::move(req),
                   impl_->options.binary ? std::move(link) : nullptr);
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
    if (!upgrading_ && !redirect_) add_headers(res.base(), impl_->options.headers_http);
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
  bool redirect_;  // a --redirport connection
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  bool upgrading_ = false;  // the request being answered asked for a WebSocket
  std::optional<tcp::resolver> resolver_;
  std::optional<std::string> remote_host_;  // --reverselookup's answer
};

}  // namespace

void serve_http(std::shared_ptr<Listener::Impl> impl, AnyStream stream, tcp::endpoint remote,
                bool redirect) {
  std::make_shared<HttpSession>(std::move(impl), std::move(stream), std::move(remote), redirect)
      ->run();
}

}  // namespace linewire::websocket
