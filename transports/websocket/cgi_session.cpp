// A --cgidir script's request (SPEC §8.6): the script runs as an ordinary run of the
// drop-in command with its own program (dropin_launcher.hpp) and raw stdout; its head
// (CGI/1.1 headers, `Status:`) becomes the HTTP answer's, and its body follows as it
// comes, chunked, held back like a WebSocket's output when the client reads slowly.
// The connection ends with the answer. A client that goes away ends the script: TERM,
// and KILL after --closems, whatever the script does (websocketd's CGI would wait for
// it for ever).
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/write.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstdio>
#include <deque>
#include <random>

#include "transports/websocket/dropin_launcher.hpp"
#include "transports/websocket/listener_impl.hpp"

namespace linewire::websocket {

namespace {

// The script's output waiting for the client: past the high mark the script's stdout
// is no longer read (it blocks on write) until the backlog is below the low mark.
constexpr std::size_t kHigh = 256 * 1024;
constexpr std::size_t kLow = 64 * 1024;
// A head that has not ended by then is no CGI head.
constexpr std::size_t kMaxHead = 64 * 1024;

std::string run_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  char buf[24];
  std::snprintf(buf, sizeof buf, "cgi%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

class CgiSession final : public std::enable_shared_from_this<CgiSession>,
                         public agent::RunSink,
                         public Live {
 public:
  CgiSession(std::shared_ptr<Listener::Impl> impl, AnyStream&& stream, RequestInfo info,
             Request req, std::string body, ScriptMatch script)
      : impl_(std::move(impl)),
        stream_(std::move(stream)),
        info_(std::move(info)),
        req_(std::move(req)),
        body_(std::move(body)),
        script_(std::move(script)) {
    impl_->live.insert(this);
  }
  ~CgiSession() {
    if (link_) {
      link_->set_output(nullptr);
      link_->hold_output(false);
    }
    if (attached_ && impl_->agent) impl_->agent->detach(run_, *this);
    impl_->live.erase(this);
  }

  void start() {
    // The request's 30 s are over: the script may take as long as its client stays.
    stream_.expires_never();
    run_ = run_id();
    LaunchChange change;
    change.executable = script_.file.string();
    change.cwd = script_.file.parent_path().string();  // as Go's CGI host runs it
    change.raw_stdout = true;
    link_ = impl_->options.launcher->expect(run_, std::move(change));
    link_->set_output([this](std::string_view bytes) { on_bytes(bytes); });

    protocol::StartRequest request;
    request.id = run_;
    if (!body_.empty()) request.stdin_text = std::move(body_);
    agent::RunOrigin origin;
    origin.transport = "websocket";
    origin.topic = info_.remote_addr + ":" + info_.remote_port + " CGI " + info_.target;
    origin.env =
        cgi11_env(info_, script_.file, request.stdin_text ? request.stdin_text->size() : 0);
    const config::Command* command =
        impl_->agent->config().find_command(*impl_->options.only_command);
    if (!command) return fail(http::status::service_unavailable, "no command");
    auto result = impl_->agent->start(*command, std::move(request), std::move(origin));
    if (auto* e = std::get_if<protocol::Error>(&result)) {
      impl_->options.launcher->forget(run_);
      spdlog::info("cgi {} {}: refused: {}", info_.remote_addr, info_.target, e->message);
      auto status = e->code == protocol::ErrorCode::busy ? http::status::too_many_requests
                    : e->code == protocol::ErrorCode::spawn_failed
                        ? http::status::internal_server_error
                        : http::status::service_unavailable;
      return fail(status, e->message);
    }
    spdlog::info("cgi {}:{} {}: run {}", info_.remote_addr, info_.remote_port, info_.target, run_);
    impl_->agent->close_stdin(run_);  // the body, then EOF
    attached_ = impl_->agent->attach(run_, *this, true);
    watch_client();
  }

  // ---- agent::RunSink: the end of the run (its stdout comes through the link) ----

  void on_line(agent::Stream, std::string_view, std::uint64_t) override {}

  void on_finished(const agent::RunRecord&) override {
    attached_ = false;
    finished_ = true;
    if (!head_sent_) return fail(http::status::internal_server_error, "no headers");
    flush();
  }

  bool congested() const override { return held_; }

  void abandon() override {
    if (attached_ && impl_->agent) impl_->agent->detach(run_, *this);
    attached_ = false;
    finished_ = true;
    error_code ignored;
    stream_.socket().close(ignored);
  }

 private:
  // A read that only ends when the client goes (or sends more than it should): then the
  // script is no longer wanted.
  void watch_client() {
    stream_.async_read_some(asio::buffer(discard_),
                            [self = this->shared_from_this()](error_code ec, std::size_t) {
                              if (!ec) return self->watch_client();
                              if (ec == asio::error::operation_aborted) return;
                              self->client_gone();
                            });
  }

  void client_gone() {
    if (!attached_ || !impl_->agent) return;
    spdlog::info("cgi {}: the client left: run {} ends", info_.target, run_);
    impl_->agent->detach(run_, *this);
    attached_ = false;
    impl_->agent->kill(run_, "disconnect");
  }

  void on_bytes(std::string_view bytes) {
    if (failed_) return;
    if (head_sent_) return queue(bytes);
    head_.append(bytes);
    auto end = cgi_head_end(head_);
    if (end == std::string::npos) {
      if (head_.size() > kMaxHead) fail(http::status::internal_server_error, "head too long");
      return;
    }
    std::string error;
    auto parsed = parse_cgi_head(std::string_view(head_).substr(0, end), error);
    if (!parsed) return fail(http::status::internal_server_error, error);
    std::string body = head_.substr(end);
    head_.clear();
    send_head(*parsed);
    queue(body);
  }

  // The answer goes out as bytes through one queue and one write (flush): head, body
  // chunks, the last chunk. Formatting the head here keeps Beast's serializers, and a
  // second copy of their asynchronous code, out of this file (the binary's size
  // matters, docs/architecture.md).
  void send_head(const CgiHead& head) {
    http::fields fields;
    fields.set(http::field::server, "linewired");
    add_headers(fields, impl_->options.headers_http);
    for (const auto& [name, value] : head.headers) fields.insert(name, value);
    head_only_ = req_.method() == http::verb::head;
    // A script that gives its Content-Length is trusted with it; otherwise HTTP/1.1
    // gets chunks, so that a client can tell a whole answer from a broken one.
    chunked_ = !head_only_ && req_.version() >= 11 &&
               fields.find(http::field::content_length) == fields.end();
    if (chunked_) fields.set(http::field::transfer_encoding, "chunked");
    std::string reason = head.reason;
    if (reason.empty())
      reason = std::string(http::obsolete_reason(http::int_to_status(head.status)));
    push_head(head.status, reason, fields);
  }

  void push_head(int status, std::string_view reason, http::fields& fields) {
    head_sent_ = true;
    // The answer's end is the connection's.
    if (req_.version() >= 11) fields.set(http::field::connection, "close");
    std::string text = req_.version() >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ";
    text += std::to_string(status) + " " + std::string(reason) + "\r\n";
    for (const auto& f : fields) {
      text += f.name_string();
      text += ": ";
      text += f.value();
      text += "\r\n";
    }
    text += "\r\n";
    push(std::move(text));
  }

  void queue(std::string_view bytes) {
    if (head_only_ || bytes.empty()) return;  // HEAD: the script runs on, its body goes nowhere
    if (!chunked_) return push(std::string(bytes));
    char size[20];
    std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
    std::string chunk(size);
    chunk.append(bytes);
    chunk += "\r\n";
    push(std::move(chunk));
  }

  void push(std::string bytes) {
    queued_ += bytes.size();
    queue_.push_back(std::move(bytes));
    if (queued_ > kHigh && !held_) {
      held_ = true;
      link_->hold_output(true);
    }
    flush();
  }

  void flush() {
    if (writing_ || closing_) return;
    if (queue_.empty()) {
      if (finished_) finish();
      return;
    }
    writing_ = true;
    asio::async_write(stream_, asio::buffer(queue_.front()),
                      [self = this->shared_from_this()](error_code ec, std::size_t) {
                        self->queued_ -= self->queue_.front().size();
                        self->queue_.pop_front();
                        self->written(ec);
                      });
  }

  void written(error_code ec) {
    writing_ = false;
    if (ec) return client_gone();
    if (held_ && queued_ < kLow) {
      held_ = false;
      link_->hold_output(false);
      if (attached_) impl_->agent->resume_run(run_);
    }
    flush();
  }

  // Everything is written: the last chunk, then the connection ends.
  void finish() {
    if (chunked_) {
      chunked_ = false;
      return push("0\r\n\r\n");
    }
    closing_ = true;
    // watch_client's read goes first: a TLS shutdown must not overlap a read.
    error_code cancel_error;
    stream_.socket().cancel(cancel_error);
    stream_.async_shutdown([self = this->shared_from_this()](error_code) {
      error_code ignored;
      self->stream_.socket().close(ignored);  // ends watch_client too
    });
  }

  // No answer from the script that HTTP can carry: 500 (websocketd's too), and the
  // script, if it still runs, is not wanted. Only ever before the script's own head.
  void fail(http::status status, const std::string& why) {
    failed_ = true;
    if (status == http::status::internal_server_error)
      spdlog::warn("cgi {}: {}: {}", info_.target, script_.script_name, why);
    if (attached_) {
      impl_->agent->detach(run_, *this);
      attached_ = false;
      impl_->agent->kill(run_, "bad CGI answer");
    }
    finished_ = true;
    std::string body = std::string(http::obsolete_reason(status)) + "\n";
    http::fields fields;
    fields.set(http::field::server, "linewired");
    fields.set(http::field::content_type, "text/plain; charset=utf-8");
    add_headers(fields, impl_->options.headers_http);
    fields.set(http::field::content_length, std::to_string(body.size()));
    head_only_ = req_.method() == http::verb::head;
    chunked_ = false;
    push_head(static_cast<int>(status), http::obsolete_reason(status), fields);
    if (!head_only_) push(std::move(body));
  }

  std::shared_ptr<Listener::Impl> impl_;
  AnyStream stream_;
  RequestInfo info_;
  Request req_;  // its head
  std::string body_;
  ScriptMatch script_;
  std::string run_;
  std::shared_ptr<ProcessLink> link_;
  std::string head_;               // the script's output until its head is whole
  std::deque<std::string> queue_;  // bytes of the answer not yet written, in flight first
  std::size_t queued_ = 0;
  std::array<char, 512> discard_{};
  bool attached_ = false;
  bool head_sent_ = false;
  bool head_only_ = false;
  bool chunked_ = false;
  bool held_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool finished_ = false;  // the run ended: what is queued is all
  bool failed_ = false;
};

}  // namespace

void serve_cgi(std::shared_ptr<Listener::Impl> impl, AnyStream&& stream, RequestInfo info,
               Request head, std::string body, ScriptMatch script) {
  std::make_shared<CgiSession>(std::move(impl), std::move(stream), std::move(info), std::move(head),
                               std::move(body), std::move(script))
      ->start();
}

}  // namespace linewire::websocket
