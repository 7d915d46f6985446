#include "transports/mqtt/mqtt_client.hpp"

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "protocol/connack.hpp"
#include "protocol/tcp_nodelay.hpp"
#include "transports/mqtt/broker_login.hpp"

namespace linewire::mqtt {

namespace asio = boost::asio;
namespace paho = ::mqtt;

namespace {

// What a queued message costs beyond its topic and payload: its Pending entry, the
// deque's share and two heap blocks' headers. Counted so that a flood of tiny lines
// is bounded by limits.buffer as well as a few huge ones.
constexpr std::uint64_t kEntryOverhead = 192;

// How many messages Paho holds at once. Paho C walks its command list for every
// command it sends, so a long list costs O(n) per message (measured here: 200k
// lines took 15 s of CPU with Paho holding up to 8 MiB, 3 s with 8 in it): beyond this window,
// output waits in our own queue (bounded by limits.buffer) and is handed over as
// Paho completes what it has.
constexpr std::size_t kPahoWindow = 16;

}  // namespace

struct Client::Impl final : paho::callback,
                            paho::iaction_listener,
                            std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_, const config::Config& cfg, std::string will, Handlers h)
      : io(io_),
        broker(cfg.broker),
        client_id(broker.client_id.empty() ? "linewired-" + cfg.device : broker.client_id),
        will_topic(std::move(will)),
        handlers(std::move(h)),
        limit(cfg.limits.buffer),
        low(cfg.limits.buffer / 2),
        retry(io_),
        backoff(cfg.broker.reconnect_min) {
    // `auto` starts with MQTT 5 and falls back to 3.1.1 if the broker refuses it.
    make_client(broker.protocol != config::Protocol::v311);
  }

  // Paho's client for one protocol version, and its connect options. Called again
  // (from the io_context, never while connected or connecting) when `auto` falls back.
  void make_client(bool v5) {
    if (client) forget_client();
    is_v5 = v5;
    paho::create_options create(v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
    // Publishing goes on while the broker is away, in our own queue (bounded by
    // limits.buffer, SPEC §5), never in Paho's offline buffer: Paho flushes that buffer
    // the moment it reconnects, ahead of the in-flight messages we send again, which
    // put lines out of order across an outage (seen in CI: 1017, 1021, ..., 1018).
    create.set_send_while_disconnected(false);
    client = std::make_unique<paho::async_client>(broker.url, client_id, create, nullptr);
    client->set_callback(*this);

    paho::connect_options_builder builder;
    builder.mqtt_version(v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1)
        .keep_alive_interval(std::chrono::duration_cast<std::chrono::seconds>(broker.keepalive))
        .connect_timeout(std::chrono::seconds(10))
        .will(paho::message(will_topic, "offline", 1, true));
    // Clean by default: requests sent while we were away must never run (SPEC §6).
    if (v5)
      builder.clean_start(!broker.session_expiry);
    else
      builder.clean_session(!broker.session_expiry);
    apply_login(builder, broker);
    options = builder.finalize();
    // Set on the final object: Paho C++ 1.2 copies connect_options with the C struct
    // still pointing at the builder's properties (a crash in MQTTAsync_connect).
    if (v5 && broker.session_expiry) {
      auto secs = std::chrono::duration_cast<std::chrono::seconds>(*broker.session_expiry);
      options.set_properties(paho::properties{
          paho::property(paho::property::SESSION_EXPIRY_INTERVAL, static_cast<int>(secs.count()))});
    }
  }

  // Paho refuses to drop the callbacks while a connect is under way (it throws, and
  // an exception out of a destructor ends the program: SIGTERM during a hanging or
  // refused CONNECT aborted the agent). Destroying the client (MQTTAsync_destroy)
  // ends the attempt and every callback with it, so that is what counts here; it
  // happens before the listeners that Paho's tokens point at are destroyed.
  void forget_client() noexcept {
    try {
      client->disable_callbacks();
    } catch (const std::exception&) {
      // A connect in progress: destroying the client below stops it.
    }
    client.reset();
  }

  ~Impl() override { forget_client(); }

  // ---- Paho threads: copy, post, return ----
  void connected(const std::string&) override {
    broker_fd = protocol::tune_broker_socket(broker_port);
    protocol::quick_ack(broker_fd);
    requeue_flight();
    is_connected = true;
    pump();
    post([](Impl& self) {
      self.backoff = self.broker.reconnect_min;
      if (self.handlers.connected) self.handlers.connected();
    });
  }

  void connection_lost(const std::string& cause) override {
    is_connected = false;
    broker_fd = -1;
    ++reconnect_count;
    post([cause](Impl& self) {
      if (self.handlers.lost) self.handlers.lost(cause);
      if (!self.stopping) self.schedule_retry(cause.empty() ? "connection lost" : cause);
    });
  }

  void message_arrived(paho::const_message_ptr msg) override {
    // A QoS 0 request gets nothing back from us (a QoS 1 one's PUBACK carries our ACK):
    // ACK it at once, or the broker's Nagle holds what it has for us next (the PUBACKs
    // of our replies, the next request) until our delayed ACK.
    if (msg->get_qos() == 0) protocol::quick_ack(broker_fd);
    Message m;
    m.topic = msg->get_topic();
    m.payload = msg->to_string();
    m.retained = msg->is_retained();
    const auto& props = msg->get_properties();
    if (props.contains(paho::property::RESPONSE_TOPIC))
      m.response_topic = paho::get<std::string>(props, paho::property::RESPONSE_TOPIC);
    if (props.contains(paho::property::CORRELATION_DATA))
      m.correlation = paho::get<std::string>(props, paho::property::CORRELATION_DATA);
    post([m = std::move(m)](Impl& self) mutable {
      if (self.handlers.message) self.handlers.message(std::move(m));
    });
  }

  // Publish completion (QoS 0: written; QoS 1/2: acknowledged) or failure.
  void on_success(const paho::token& tok) override { release(tok); }
  void on_failure(const paho::token& tok) override {
    int rc = tok.get_return_code();
    // A client-side failure (negative code) is a publish cut off by a lost connection,
    // even when the loss is reported after it: it stays in flight and is sent again
    // after the reconnect. A broker's refusal (an MQTT 5 reason code) is final.
    if (!is_connected || rc < 0) return;
    spdlog::warn("mqtt: a publish failed (code {})", rc);
    release(tok);
  }

  void release(const paho::token& tok) {
    auto id = reinterpret_cast<std::uintptr_t>(tok.get_user_context());
    std::uint64_t size = 0;
    bool acked = false;
    {
      std::lock_guard lock(mu);
      auto it = flight.find(id);
      if (it == flight.end()) return;  // sent again after a reconnect: the copy counts
      size = it->second.size;
      acked = it->second.qos > 0;
      flight.erase(it);
    }
    // A PUBACK: on a broker with Nagle on, its next PUBACKs and the next request
    // queue behind this one until we ACK it, and with nothing of ours to send Linux
    // delays that ACK by 40 ms (a request right after a run waited 44 ms on a stock
    // mosquitto, 1.9 ms with this; bench/README.md, "On a stock broker"). Only after
    // the PUBACK that leaves nothing of ours in flight is not enough: that brought the
    // 44 ms back (the ACK that matters is often for an earlier PUBACK), so it is one
    // setsockopt per QoS 1 message, within the 1.2x of Paho's floor measured with it.
    if (acked) protocol::quick_ack(broker_fd);
    settle(size);
    pump();
  }

  // After a reconnect, whatever was in flight when the connection dropped goes first,
  // in its order: with a clean session Paho forgets it, and with QoS 1 a duplicate is
  // allowed (the `seq` property tells it) where a loss is not.
  void requeue_flight() {
    std::lock_guard lock(mu);
    for (auto it = flight.rbegin(); it != flight.rend(); ++it)
      queue.push_front(std::move(it->second));
    flight.clear();
  }

  void settle(std::uint64_t size) {
    auto left = outstanding.fetch_sub(size) - size;
    if (left <= low && draining.exchange(false))
      post([](Impl& self) {
        if (self.handlers.drained) self.handlers.drained();
      });
  }

  // A message waiting for Paho, compact: the Paho message (a copy of the topic and
  // payload, its properties, a token: about 1 KB of heap for a short line) is made
  // only when it is handed over, so a queue of tiny lines costs about what it holds
  // (a million-line flood peaked at 50 MB RSS with Paho messages queued).
  struct Pending {
    std::string topic;
    std::string payload;
    std::optional<std::string> correlation;
    std::uint64_t seq = 0;
    std::uint64_t size = 0;  // counted in `outstanding`
    std::uint32_t expiry_s = 0;
    std::uint8_t qos = 1;
    bool retain = false;
  };

  paho::message_ptr make_message(const Pending& p) const {
    auto msg = paho::message::create(p.topic, p.payload.data(), p.payload.size(), p.qos, p.retain);
    if (is_v5) {
      paho::properties props;
      if (p.seq > 0)
        props.add(paho::property(paho::property::USER_PROPERTY, "seq", std::to_string(p.seq)));
      if (p.expiry_s > 0)
        props.add(
            paho::property(paho::property::MESSAGE_EXPIRY_INTERVAL, static_cast<int>(p.expiry_s)));
      if (p.correlation)
        props.add(paho::property(paho::property::CORRELATION_DATA, *p.correlation));
      if (!props.empty()) msg->set_properties(std::move(props));
    }
    return msg;
  }

  // Any thread. Queues the message unless Paho has room for it now.
  void enqueue(Pending p) {
    std::uint64_t id = 0;
    paho::message_ptr msg;
    {
      std::lock_guard lock(mu);
      if (!is_connected || flight.size() >= kPahoWindow || !queue.empty()) {
        queue.push_back(std::move(p));
        return;
      }
      id = ++next_id;
      msg = make_message(p);
      flight.emplace(id, std::move(p));
    }
    send(id, msg);
  }

  // Hands queued messages to Paho while it has room. Order is kept: the queue is
  // only ever drained from its front.
  void pump() {
    std::vector<std::pair<std::uint64_t, paho::message_ptr>> batch;
    {
      std::lock_guard lock(mu);
      while (is_connected && flight.size() < kPahoWindow && !queue.empty()) {
        std::uint64_t id = ++next_id;
        batch.emplace_back(id, make_message(queue.front()));
        flight.emplace(id, std::move(queue.front()));
        queue.pop_front();
      }
    }
    for (auto& [id, msg] : batch) send(id, msg);
  }

  void send(std::uint64_t id, const paho::message_ptr& msg) {
    try {
      client->publish(msg, reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)), *this);
    } catch (const paho::exception& e) {
      // Paho saw the connection drop before we did: it stays in flight and is sent
      // again, in its order, after the reconnect.
      if (!is_connected || e.get_return_code() == MQTTASYNC_DISCONNECTED) return;
      spdlog::warn("mqtt: cannot publish on {}: {}", msg->get_topic(), e.what());
      std::uint64_t size = 0;
      {
        std::lock_guard lock(mu);
        auto it = flight.find(id);
        if (it == flight.end()) return;
        size = it->second.size;
        flight.erase(it);
      }
      settle(size);
    }
  }

  bool idle() {
    std::lock_guard lock(mu);
    return queue.empty() && flight.empty();
  }

  template <typename F>
  void post(F&& f) {
    asio::post(io, [weak = weak_from_this(), f = std::forward<F>(f)]() mutable {
      if (auto self = weak.lock()) f(*self);
    });
  }

  // ---- io_context thread ----
  void connect() {
    try {
      client->connect(options, nullptr, connect_listener);
    } catch (const paho::exception& e) {
      schedule_retry(e.what());
    }
  }

  // Reconnecting is ours, not Paho's: its automatic reconnect counts in whole
  // seconds and waits seconds more after a loss. Back-off doubles from
  // reconnect_min to reconnect_max, each delay drawn from 0.5x to 1.5x of it so that
  // a fleet does not return to a restarted broker all at once (bench/fleet.py: with
  // +0..25% jitter, 190 of 200 agents came back within one second).
  void schedule_retry(const std::string& why) {
    std::uniform_int_distribution<long long> spread(0, backoff.count());
    auto delay = backoff / 2 + config::Duration(spread(rng));
    spdlog::warn("mqtt: not connected to {}: {}; retrying in {} ms", broker.url, why,
                 delay.count());
    retry.expires_after(delay);
    retry.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (auto self = weak.lock(); self && !ec) self->connect();
    });
    backoff = std::min(backoff * 2, broker.reconnect_max);
  }

  // A failed connect attempt (first or later) schedules the next one.
  struct ConnectListener final : paho::iaction_listener {
    Impl* impl = nullptr;
    void on_success(const paho::token&) override {}
    void on_failure(const paho::token& tok) override {
      int code = tok.get_return_code();
      impl->post([code](Impl& self) {
        if (!self.stopping) self.connect_failed(code);
      });
    }
  };

  void connect_failed(int code) {
    auto refusal = protocol::connack_refusal(code);
    if (refusal && refusal->unsupported_version && is_v5 &&
        broker.protocol == config::Protocol::automatic) {
      spdlog::warn(
          "mqtt: {} refused MQTT 5 (unsupported protocol version); broker.protocol is "
          "auto: using MQTT 3.1.1",
          broker.url);
      make_client(false);
      connect();
      return;
    }
    if (refusal) {
      schedule_retry(protocol::describe(*refusal));
      return;
    }
    // No CONNACK: Paho's own code. Its text is terse ("Failure"); say what it means.
    std::string why =
        code == MQTTASYNC_FAILURE
            ? "no MQTT answer (the connection was refused, closed or timed out)"
            : std::string(MQTTAsync_strerror(code)) + " (code " + std::to_string(code) + ")";
    schedule_retry(why);
  }

  // The SUBACKs of one subscribe() call: `done` runs on the io_context after the last.
  struct SubscribeBatch {
    std::atomic<std::size_t> left;
    std::function<void()> done;
  };
  struct SubackListener final : paho::iaction_listener {
    Impl* impl = nullptr;
    void on_success(const paho::token& tok) override { settle(tok); }
    void on_failure(const paho::token& tok) override {
      spdlog::warn("mqtt: a subscription was refused (code {})", tok.get_return_code());
      settle(tok);
    }
    void settle(const paho::token& tok) {
      impl->suback(static_cast<SubscribeBatch*>(tok.get_user_context()));
    }
  };

  void suback(SubscribeBatch* batch) {
    protocol::quick_ack(broker_fd);
    if (--batch->left != 0) return;
    post([done = std::move(batch->done)](Impl&) { done(); });
    delete batch;
  }

  asio::io_context& io;
  config::Broker broker;
  std::string client_id;
  std::string will_topic;
  Handlers handlers;
  std::uint64_t limit;
  std::uint64_t low;
  asio::steady_timer retry;
  config::Duration backoff;
  std::atomic<bool> is_v5{true};  // read by Paho threads (make_message)
  bool stopping = false;
  std::mt19937 rng{std::random_device{}()};
  std::atomic<bool> is_connected{false};
  std::atomic<std::uint64_t> outstanding{0};
  std::atomic<bool> draining{false};
  std::atomic<std::uint64_t> reconnect_count{0};
  const int broker_port = protocol::url_port(broker.url);
  std::atomic<int> broker_fd{-1};  // Paho's socket while connected, else -1
  std::mutex mu;
  std::deque<Pending> queue;                // guarded by mu
  std::map<std::uint64_t, Pending> flight;  // handed to Paho, by send order; mu
  std::uint64_t next_id = 0;                // guarded by mu
  std::unique_ptr<paho::async_client> client;
  paho::connect_options options;
  ConnectListener connect_listener;
  SubackListener suback_listener;
};

Client::Client(asio::io_context& io, const config::Config& config, std::string will_topic,
               Handlers handlers)
    : impl_(std::make_shared<Impl>(io, config, std::move(will_topic), std::move(handlers))) {
  impl_->connect_listener.impl = impl_.get();
  impl_->suback_listener.impl = impl_.get();
}

Client::~Client() = default;

void Client::start() { impl_->connect(); }

void Client::subscribe(const std::vector<std::string>& filters, std::function<void()> done) {
  // Retain handling 0 and Retain As Published on (SPEC §3): a retained request arrives
  // flagged, whether the broker sends it from its store at subscribe or live (with
  // Retain As Published off the broker clears the flag on live delivery, and
  // `mosquitto_pub -r` would run once). MQTT 3.1.1 ignores the option.
  paho::subscribe_options opts(false, true, paho::subscribe_options::SEND_RETAINED_ON_SUBSCRIBE);
  // One more than the filters, settled below: `done` never runs before every filter
  // was sent, even if the first SUBACKs arrive meanwhile.
  auto* batch = done ? new Impl::SubscribeBatch{{filters.size() + 1}, std::move(done)} : nullptr;
  for (const auto& f : filters) {
    try {
      if (batch)
        impl_->client->subscribe(f, 1, batch, impl_->suback_listener, opts);
      else
        impl_->client->subscribe(f, 1, opts);
    } catch (const paho::exception& e) {
      spdlog::warn("mqtt: subscribe {} failed: {}", f, e.what());
      if (batch) impl_->suback(batch);
    }
  }
  if (batch) impl_->suback(batch);
}

void Client::unsubscribe(const std::vector<std::string>& filters) {
  for (const auto& f : filters) {
    try {
      impl_->client->unsubscribe(f);
    } catch (const paho::exception& e) {
      spdlog::warn("mqtt: unsubscribe {} failed: {}", f, e.what());
    }
  }
}

void Client::publish(const std::string& topic, std::string_view payload, const PublishOptions& o) {
  Impl::Pending p;
  p.topic = topic;
  p.payload = payload;
  if (o.correlation) p.correlation = *o.correlation;
  p.seq = o.seq;
  p.expiry_s = o.expiry_s;
  p.qos = static_cast<std::uint8_t>(o.qos);
  p.retain = o.retain;
  p.size = payload.size() + topic.size() + kEntryOverhead;
  auto total = impl_->outstanding.fetch_add(p.size) + p.size;
  if (total > impl_->limit) impl_->draining = true;
  impl_->enqueue(std::move(p));
}

void Client::stop(const std::string& topic, std::string_view payload, std::function<void()> done) {
  impl_->stopping = true;
  impl_->retry.cancel();
  auto client = impl_->client.get();
  if (!client->is_connected()) {
    done();
    return;
  }
  // Let what is queued (final states above all) leave first; Paho's threads drain it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!impl_->idle() && client->is_connected() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  try {
    auto msg = paho::message::create(topic, payload.data(), payload.size(), 1, true);
    client->publish(msg)->wait_for(std::chrono::seconds(5));
    // Disconnect waits (bounded) for what is still in flight.
    client->disconnect(std::chrono::seconds(5))->wait_for(std::chrono::seconds(6));
  } catch (const paho::exception& e) {
    spdlog::warn("mqtt: clean disconnect failed: {}", e.what());
  }
  done();
}

bool Client::connected() const { return impl_->is_connected; }
bool Client::v5() const { return impl_->is_v5; }
bool Client::congested() const { return impl_->outstanding.load() > impl_->limit; }
std::uint64_t Client::outstanding_bytes() const { return impl_->outstanding.load(); }
std::uint64_t Client::reconnects() const { return impl_->reconnect_count.load(); }

}  // namespace linewire::mqtt
