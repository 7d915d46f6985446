// A WebSocket connection piped to one run (SPEC §8.1, §8.2): output lines out as text
// frames, and for the client that started the run, frames in as stdin lines and the
// backlog holding the child back. With --binary (§8.6) raw stdout bytes out as binary
// messages instead, and messages in as raw stdin bytes.
#include <spdlog/spdlog.h>

#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>

#include "transports/websocket/dropin_launcher.hpp"
#include "transports/websocket/listener_impl.hpp"

namespace linewire::websocket {

namespace ws = beast::websocket;

namespace {

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
// How much of a run's history a `?from=N` viewer has queued at a time.
constexpr std::size_t kReplayBatch = 64 * 1024;

// One WebSocket connection piped to one run: the run's primary (it started the run:
// its frames are stdin, its backlog holds the child back, its leaving kills the run)
// or a viewer (output only; dropped when too far behind).
//
// Lifetime: the session is owned by its pending Beast operations (each handler holds a
// shared_ptr), as Beast's own sessions are; while it is attached the handshake or a
// read is always pending, so it lives as long as its connection does. The Run holds a
// plain RunSink pointer to it, which stays good because the destructor detaches
// (RunSink's contract). The last reference only ever goes in a completion handler,
// never inside one of the Run's calls into a sink, so a Run never calls a sink that
// is gone.
class WsSession final : public std::enable_shared_from_this<WsSession>,
                        public agent::RunSink,
                        public Live {
 public:
  WsSession(std::shared_ptr<Listener::Impl> impl, AnyStream&& stream, std::string run, bool primary,
            std::shared_ptr<ProcessLink> link)
      : impl_(std::move(impl)),
        ws_(std::move(stream)),
        run_(std::move(run)),
        primary_(primary),
        link_(std::move(link)),
        timer_(impl_->io) {
    ++impl_->websockets;
    impl_->live.insert(this);
    // Raw stdout (--binary): the link calls this, never the Run; taken back below.
    if (link_) link_->set_output([this](std::string_view bytes) { queue(bytes); });
  }
  ~WsSession() {
    if (link_) {
      link_->set_output(nullptr);
      link_->hold_output(false);  // what is left of the run is killed, not held
    }
    // The Run holds a plain pointer to this sink: take it back. A Listener that went
    // first detached every session already (abandon) and cleared impl_->agent.
    if (attached_ && impl_->agent) impl_->agent->detach(run_, *this);
    --impl_->websockets;
    impl_->live.erase(this);
  }

  // `?from=N` (SPEC §12): the run's kept stdout lines from line N, then the live ones.
  // A cursor walks the history as the client takes the frames (refill), a few dozen KiB
  // at a time, so a big history neither trips the viewer limit nor grows memory. Live
  // lines are ignored meanwhile: each is in the history before a sink hears it, so the
  // cursor gets to it; once it reaches the end, the live lines follow, each once and in
  // order (one thread: nothing comes in between). False when the agent knows no such run.
  bool replay(std::uint64_t from) {
    if (!impl_->agent->history().find(run_)) return false;
    replay_from_ = from;
    replaying_ = true;
    ++impl_->agent->metrics().replays;
    refill();
    return true;
  }

  bool attach() {
    if (!impl_->agent->attach(run_, *this, primary_)) return false;
    attached_ = true;
    return true;
  }

  void accept(Request req) {
    auto timeouts = ws::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.idle_timeout = kIdleTimeout;
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.set_option(
        ws::stream_base::decorator([headers = impl_->options.headers_ws](ws::response_type& res) {
          res.set(http::field::server, "linewired");
          add_headers(res.base(), headers);  // --header, --header-ws
        }));
    ws_.read_message_max(impl_->options.max_message);
    ws_.binary(link_ != nullptr);
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

  // ---- agent::RunSink ----

  void on_line(agent::Stream stream, std::string_view line, std::uint64_t) override {
    if (replaying_) return;  // already in the history: the cursor gets to it
    if (stream == agent::Stream::out) queue(line);
  }

  void on_finished(const agent::RunRecord&) override {
    attached_ = false;  // the Run forgets its sinks as it tells them
    ended_ = true;
    code_ = ws::close_code::normal;
    flush();
  }

  bool congested() const override { return held_; }

  // ---- Live: the Listener is going away ----

  void abandon() override {
    if (attached_ && impl_->agent) impl_->agent->detach(run_, *this);
    attached_ = false;
    ended_ = true;
    // The pending operations end with operation_aborted and release the session.
    error_code ignored;
    ws_.next_layer().socket().close(ignored);
  }

 private:
  // One frame for the client: a line, or with --binary the bytes of one read.
  void queue(std::string_view frame) {
    if (ended_) return;
    queue_.emplace_back(frame);
    queued_ += frame.size() + kFrameOverhead;
    if (queued_ > kPrimaryHigh && !held_) {
      held_ = true;
      if (link_) link_->hold_output(true);  // raw output bypasses the Run's own check
    }
    if (!primary_ && queued_ > kViewerLimit) {
      spdlog::info("run {}: a viewer is {} bytes behind: disconnected (1008)", run_, queued_);
      end(ws::close_code::policy_error, "too slow: output queue full");
      return;
    }
    flush();
  }

  // The run ends its side: drop what is queued behind the frame in flight and close.
  void end(ws::close_code code, std::string reason) {
    replaying_ = false;
    if (attached_) impl_->agent->detach(run_, *this);
    attached_ = false;
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

  // Each frame is a line for the run's stdin; a viewer's frames are read and ignored.
  void read() {
    ws_.async_read(in_, [self = this->shared_from_this()](error_code ec, std::size_t) {
      if (ec) {
        self->leave();
        return;
      }
      if (self->primary_ && self->attached_ && self->link_) {
        // --binary, as websocketd: a binary message's bytes as they are, a text
        // message's with a newline.
        std::string bytes = beast::buffers_to_string(self->in_.data());
        if (self->ws_.got_text()) bytes.push_back('\n');
        self->link_->write_stdin(std::move(bytes));
      } else if (self->primary_ && self->attached_) {
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
  }

  // Writes the queued frames one at a time, then closes once the run has ended. Below
  // the low mark a held-back run reads again.
  // The next kept lines for `?from=N`, up to kReplayBatch bytes queued.
  void refill() {
    const agent::History::Run* kept = impl_->agent->history().find(run_);
    if (!kept) replaying_ = false;  // forgotten (keep_runs): what was sent is all
    while (replaying_ && queued_ < kReplayBatch) {
      auto it = kept->at(replay_pos_);
      if (it == kept->lines.end()) {
        replaying_ = false;
        break;
      }
      replay_pos_ = it->pos + 1;
      if (it->stream != agent::Stream::out || it->seq < replay_from_) continue;
      queue_.emplace_back(it->text);
      queued_ += it->text.size() + kFrameOverhead;
    }
  }

  void flush() {
    if (!accepted_ || writing_ || closing_) return;
    if (queue_.size() < 2 && replaying_) refill();
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
                        if (self->link_) self->link_->hold_output(false);
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
  std::shared_ptr<ProcessLink> link_;  // --binary: raw stdout in, raw stdin out
  asio::steady_timer timer_;
  beast::flat_buffer in_;
  bool replaying_ = false;        // ?from=N: the cursor has not reached the end
  std::uint64_t replay_pos_ = 0;  // its next History position
  std::uint64_t replay_from_ = 1;
  std::deque<std::string> queue_;  // frames not yet written, the one in flight first
  std::size_t queued_ = 0;         // their bytes, plus kFrameOverhead each
  bool held_ = false;              // past kPrimaryHigh, not yet below kPrimaryLow
  bool attached_ = false;
  bool accepted_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool ended_ = false;
  ws::close_code code_ = ws::close_code::normal;
  std::string reason_;
};

}  // namespace

void open_websocket(std::shared_ptr<Listener::Impl> impl, AnyStream&& stream, std::string run,
                    bool primary, Request req, std::shared_ptr<ProcessLink> link) {
  auto session = std::make_shared<WsSession>(std::move(impl), std::move(stream), std::move(run),
                                             primary, std::move(link));
  if (session->attach()) session->accept(std::move(req));
}

void open_viewer(std::shared_ptr<Listener::Impl> impl, AnyStream&& stream, std::string run,
                 std::optional<std::uint64_t> from, Request req) {
  auto session = std::make_shared<WsSession>(std::move(impl), std::move(stream), std::move(run),
                                             false, nullptr);
  const bool kept = from && session->replay(*from);
  if (session->attach()) return session->accept(std::move(req));
  if (!kept) return;
  // It has ended: its kept lines, then a normal close.
  session->on_finished({});
  session->accept(std::move(req));
}

}  // namespace linewire::websocket
