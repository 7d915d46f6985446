#include "cli/broker/connection.hpp"

#include <mqtt/async_client.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "cli/broker/ids.hpp"
#include "cli/interrupts.hpp"
#include "protocol/broker_login.hpp"
#include "protocol/connack.hpp"
#include "protocol/tcp_nodelay.hpp"

namespace linewire::cli {

namespace paho = ::mqtt;

namespace {

// How often a wait looks at Ctrl-C: a handler only counts signals (interrupts.hpp).
constexpr std::chrono::milliseconds kTick{50};
// After a connection loss, Paho retries by itself; past this, the client gives up.
constexpr std::chrono::seconds kReconnectBudget{30};

// Waits for a Paho token, a tick at a time so that Ctrl-C is not ignored meanwhile.
bool wait(paho::token& token, Clock::time_point deadline) {
  using std::chrono::milliseconds;
  while (!token.wait_for(std::min(kTick, std::chrono::duration_cast<milliseconds>(
                                             deadline - Clock::now() + milliseconds(1))))) {
    if (auto sig = take_interrupt()) throw Interrupted{*sig};
    if (Clock::now() >= deadline) return false;
  }
  return true;
}

std::string describe(const paho::exception& e) {
  const int rc = e.get_return_code();
  // A refused CONNECT comes as Paho's "CONNACK return code" with the broker's code as
  // the return code: MQTT 5 reason codes from 0x80, MQTT 3.1.1 ones 1 to 5.
  if (rc >= 0x80 || (rc >= 1 && rc <= 5 && e.get_message() == "CONNACK return code"))
    if (auto refusal = protocol::connack_refusal(rc, protocol::Side::client))
      return protocol::describe(*refusal);
  std::string what = e.get_message();
  if (what.empty()) what = e.get_error_str();
  if (what.empty()) what = e.what();
  if (e.get_reason_code() >= 0x80) what += " (" + e.get_reason_code_str() + ")";
  return what;
}

}  // namespace

struct Connection::Impl final : paho::iaction_listener {
  // Paho throws from disable_callbacks() while a connect is under way (Ctrl-C during a
  // hanging CONNECT); nothing may leave a destructor. Destroying the client ends the
  // attempt and its callbacks either way.
  ~Impl() override {
    if (!client) return;
    try {
      client->disable_callbacks();
    } catch (const std::exception&) {
      // A connect in progress: reset() below stops it.
    }
    client.reset();
  }

  void push(Event e) {
    {
      std::lock_guard lock(mu);
      events.push_back(std::move(e));
    }
    cv.notify_one();
  }

  // Publish completions (QoS 1: PUBACK) on Paho's threads.
  void on_success(const paho::token&) override {
    // We send nothing back for a PUBACK: ACK it now, or the broker's Nagle holds what
    // it has for us next (a start's reply, its first line) until our delayed ACK.
    protocol::quick_ack(fd);
    settle();
  }
  void on_failure(const paho::token&) override { settle(); }
  void settle() {
    {
      std::lock_guard lock(mu);
      if (unacked > 0) --unacked;
    }
    cv.notify_all();
  }

  void on_message(const paho::const_message_ptr& m) {
    // A QoS 1 message's PUBACK carries our ACK; a QoS 0 one gets nothing back, so ACK
    // at once, or the broker's Nagle holds the next message until our delayed ACK.
    if (m->get_qos() == 0) protocol::quick_ack(fd);
    Event e;
    e.message.topic = m->get_topic();
    e.message.payload = m->to_string();
    e.message.retained = m->is_retained();
    const auto& props = m->get_properties();
    if (props.contains(paho::property::CORRELATION_DATA))
      e.message.correlation = paho::get<std::string>(props, paho::property::CORRELATION_DATA);
    // Paho C takes a non-const pointer but only reads (Paho C++ does the same cast).
    int n = MQTTProperties_propertyCount(const_cast<MQTTProperties*>(&props.c_struct()),
                                         MQTTPROPERTY_CODE_USER_PROPERTY);
    for (int i = 0; i < n; ++i) {
      auto [key, value] = paho::get<paho::string_pair>(props, paho::property::USER_PROPERTY,
                                                       static_cast<std::size_t>(i));
      if (key != "seq") continue;
      try {
        e.message.seq = std::stoull(value);
      } catch (const std::exception&) {
        // Not a number: the line still counts, just unsequenced.
      }
    }
    push(std::move(e));
  }

  paho::subscribe_options subscribe_options(bool no_local = true) const {
    // No Local: our own requests under a run's topics (`in`, `signal`) do not come back.
    // Retained messages come at every subscription: after a reconnect (a new session)
    // that brings a run's final state again if it ended meanwhile.
    return v5 ? paho::subscribe_options(no_local, false,
                                        paho::subscribe_options::SEND_RETAINED_ON_SUBSCRIBE)
              : paho::subscribe_options();
  }

  bool v5 = true;
  int port = 0;             // the broker's, to find Paho's socket
  std::atomic<int> fd{-1};  // Paho's socket while connected, else -1
  std::unique_ptr<paho::async_client> client;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;               // guarded by mu
  std::vector<std::string> filters;       // guarded by mu: renewed after a reconnect
  std::size_t unacked = 0;                // guarded by mu
  bool connected_once = false;            // guarded by mu
  std::optional<Clock::time_point> lost;  // only the thread calling next()
};

Connection::Connection(BrokerOptions options, std::string prefix)
    : options_(std::move(options)),
      client_id_("linewire-" + random_hex(12)),
      reply_topic_(prefix + "/_client/" + client_id_ + "/reply"),
      replay_topic_(prefix + "/_client/" + client_id_ + "/replay"),
      impl_(std::make_shared<Impl>()) {
  impl_->v5 = options_.v5;
  impl_->port = protocol::url_port(options_.url);
  paho::create_options create(options_.v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
  // A signal or an `eof` sent while the connection is away leaves once it is back.
  create.set_send_while_disconnected(true, true);
  create.set_max_buffered_messages(1000);
  try {
    impl_->client = std::make_unique<paho::async_client>(options_.url, client_id_, create, nullptr);
  } catch (const paho::exception& e) {
    throw Failure("cannot use the broker address " + options_.url + ": " + describe(e));
  }
  Impl* impl = impl_.get();
  impl->client->set_message_callback([impl](paho::const_message_ptr m) { impl->on_message(m); });
  impl->client->set_connection_lost_handler([impl](const std::string& cause) {
    impl->fd = -1;
    Event e;
    e.kind = Event::Kind::lost;
    e.cause = cause;
    impl->push(std::move(e));
  });
  impl->client->set_connected_handler([impl](const std::string&) {
    impl->fd = protocol::tune_broker_socket(impl->port);
    protocol::quick_ack(impl->fd);
    std::vector<std::string> renew;
    {
      std::lock_guard lock(impl->mu);
      if (!impl->connected_once) {
        impl->connected_once = true;
        return;
      }
      renew = impl->filters;
    }
    // A new session has no subscriptions: renew them all.
    for (const auto& f : renew) {
      try {
        impl->client->subscribe(f, 1, impl->subscribe_options());
      } catch (const paho::exception&) {
        // The connection went again; the next reconnect tries again.
      }
    }
    Event e;
    e.kind = Event::Kind::reconnected;
    impl->push(std::move(e));
  });
}

Connection::~Connection() { disconnect(); }

void Connection::connect() {
  paho::connect_options_builder builder;
  builder.mqtt_version(options_.v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1)
      .connect_timeout(kConnectTimeout)
      .keep_alive_interval(std::chrono::seconds(20))
      .automatic_reconnect(std::chrono::seconds(1), std::chrono::seconds(2));
  // A clean start, no session kept on the broker: a client that dies (or is killed)
  // leaves nothing behind there. Paho C++ 1.2 cannot end a session at DISCONNECT (its
  // disconnect options drop the properties), so a session with an expiry would outlive
  // every `linewire run` by that long. After a reconnect the subscriptions are renewed;
  // a run's final state is retained, so its end is never missed, and the lines that
  // went by meanwhile are counted as lost (RunStreams).
  if (options_.v5) {
    builder.clean_start(true);
  } else {
    builder.clean_session(true);
  }
  protocol::apply_login(builder,
                        {options_.url, options_.username, options_.password, options_.ca_file,
                         options_.cert_file, options_.key_file, options_.tls()});
  try {
    auto token = impl_->client->connect(builder.finalize());
    if (!wait(*token, Clock::now() + kConnectTimeout))
      throw Failure("cannot connect to " + options_.url + ": no answer within " +
                    std::to_string(kConnectTimeout.count()) + " s");
  } catch (const paho::exception& e) {
    throw Failure("cannot connect to " + options_.url + ": " + describe(e));
  }
}

void Connection::subscribe(const std::vector<std::string>& filters) {
  {
    std::lock_guard lock(impl_->mu);
    impl_->filters.insert(impl_->filters.end(), filters.begin(), filters.end());
  }
  subscribe_now(filters, true);
}

void Connection::subscribe_once(const std::string& filter) { subscribe_now({filter}, false); }

void Connection::subscribe_now(const std::vector<std::string>& filters, bool no_local) {
  auto deadline = Clock::now() + kSubscribeTimeout;
  std::vector<std::pair<std::string, paho::token_ptr>> tokens;
  try {
    // One SUBSCRIBE per filter: Paho C++ 1.2's subscribe of a collection with MQTT 5
    // options crashes in MQTTAsync_subscribeMany.
    for (const auto& f : filters)
      tokens.emplace_back(f, impl_->client->subscribe(f, 1, impl_->subscribe_options(no_local)));
    for (auto& [filter, token] : tokens) {
      if (!wait(*token, deadline))
        throw Failure("the broker did not confirm the subscription to " + filter);
      // We send nothing back for a SUBACK: on a broker with Nagle on, the next SUBACKs
      // and the retained messages behind them waited for our delayed ACK (40 ms).
      protocol::quick_ack(impl_->fd);
      const auto response = token->get_subscribe_response();
      for (auto rc : response.get_reason_codes())
        if (rc >= 0x80)
          throw Failure("the broker refused the subscription to " + filter +
                        " (not authorized? check its ACL)");
    }
  } catch (const paho::exception& e) {
    throw Failure("cannot subscribe to " +
                  (tokens.empty() ? filters.front() : tokens.back().first) + ": " + describe(e));
  }
}

void Connection::publish(const std::string& topic, std::string_view payload,
                         const PublishProps& props) {
  auto msg = paho::message::create(topic, payload.data(), payload.size(), 1, false);
  if (options_.v5 && !props.response_topic.empty()) {
    paho::properties p;
    p.add(paho::property(paho::property::RESPONSE_TOPIC, props.response_topic));
    if (!props.correlation.empty())
      p.add(paho::property(paho::property::CORRELATION_DATA, props.correlation));
    msg->set_properties(std::move(p));
  }
  {
    std::lock_guard lock(impl_->mu);
    ++impl_->unacked;
  }
  try {
    impl_->client->publish(msg, nullptr, *impl_);
  } catch (const paho::exception& e) {
    impl_->settle();
    throw Failure("cannot publish on " + topic + ": " + describe(e));
  }
}

bool Connection::wait_published(std::size_t limit, Clock::time_point deadline) {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_until(lock, deadline, [&] { return impl_->unacked <= limit; });
}

std::optional<Event> Connection::next(Clock::time_point deadline) {
  std::unique_lock lock(impl_->mu);
  for (;;) {
    if (auto sig = take_interrupt()) {
      Event e;
      e.kind = Event::Kind::interrupt;
      e.signal = *sig;
      return e;
    }
    if (!impl_->events.empty()) {
      Event e = std::move(impl_->events.front());
      impl_->events.pop_front();
      if (e.kind == Event::Kind::lost && !impl_->lost) impl_->lost = Clock::now();
      if (e.kind == Event::Kind::reconnected) impl_->lost.reset();
      return e;
    }
    auto now = Clock::now();
    if (impl_->lost && now >= *impl_->lost + kReconnectBudget)
      throw Failure("lost the connection to " + options_.url + " and could not reconnect within " +
                    std::to_string(kReconnectBudget.count()) + " s");
    if (now >= deadline) return std::nullopt;
    impl_->cv.wait_until(lock, std::min(deadline, now + kTick));
  }
}

void Connection::disconnect() {
  if (!impl_ || !impl_->client) return;
  try {
    if (!impl_->client->is_connected()) return;
    // At once: what had to arrive was waited for (wait_published), and Paho would
    // otherwise hold the DISCONNECT until every publish in flight is acknowledged.
    // Briefly: Paho C sometimes holds even this one back while messages are still
    // coming in (seen after a 100-device fan-out: the full second this waited, every
    // time); the process exits right after, and its closed socket tells the broker.
    impl_->client->disconnect(0)->wait_for(std::chrono::milliseconds(100));
  } catch (const paho::exception&) {
    // Leaving anyway: the broker notices within the keep-alive.
  }
}

}  // namespace linewire::cli
