// The client's side of the broker: a small wrapper over Paho's async client, separate
// from the agent's (transports/mqtt/mqtt_client.hpp), which is built around the agent's
// config and flow control. Here everything waits with a bound, and everything that
// arrives (messages, connection changes, Ctrl-C) comes out of one queue, in order, on
// the thread that calls next(): the commands are plain loops without locks.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cli/broker/options.hpp"

namespace linewire::cli {

class Signer;

using Clock = std::chrono::steady_clock;

// What ends the client with 255 and a message: the broker cannot be reached, a
// subscription is refused, and so on.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The user interrupted a wait before anything was started: exit 128+signal.
struct Interrupted {
  int signal;
};

struct Incoming {
  std::string topic;
  std::string payload;
  bool retained = false;
  std::optional<std::uint64_t> seq;  // the `seq` user property (SPEC §2), MQTT 5 only
  std::string correlation;           // MQTT 5 Correlation Data, empty if none
};

struct Event {
  enum class Kind { message, lost, reconnected, interrupt };
  Kind kind = Kind::message;
  Incoming message;   // message
  int signal = 0;     // interrupt
  std::string cause;  // lost
};

struct PublishProps {
  std::string response_topic;  // MQTT 5 only
  std::string correlation;     // MQTT 5 only
};

class Connection {
 public:
  static constexpr std::chrono::seconds kConnectTimeout{5};
  static constexpr std::chrono::seconds kSubscribeTimeout{5};

  Connection(BrokerOptions options, std::string prefix);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects or throws Failure within kConnectTimeout (Interrupted on Ctrl-C). After a connection
  // loss, Paho reconnects by itself and the subscriptions are renewed (Event::Kind::reconnected).
  void connect();
  // Subscribes (QoS 1) and waits for the broker's answer; throws Failure (or
  // Interrupted). Renewed after a reconnect. Our own publishes on these filters do not
  // come back (MQTT 5 No Local).
  void subscribe(const std::vector<std::string>& filters);
  // The same for one filter whose messages include our own (No Local off), and not
  // renewed after a reconnect: a marker needed once (see collect_retained).
  void subscribe_once(const std::string& filter);
  // QoS 1, not retained; does not wait.
  void publish(const std::string& topic, std::string_view payload, const PublishProps& props = {});
  // Waits until at most `limit` publishes are unacknowledged; false at the deadline.
  bool wait_published(std::size_t limit, Clock::time_point deadline);
  // The next event, or nullopt at the deadline.
  std::optional<Event> next(Clock::time_point deadline);
  // Bounded; nothing of ours stays on the broker (clean sessions only).
  void disconnect();

  bool v5() const { return options_.v5; }
  const std::string& client_id() const { return client_id_; }
  // `{prefix}/_client/{client-id}/reply` (SPEC §10: everything under the prefix).
  const std::string& reply_topic() const { return reply_topic_; }
  // `{prefix}/_client/{client-id}/replay`: replays answer here, their lines below it
  // (SPEC §12). A subscription to `replay_topic()/#` takes both.
  const std::string& replay_topic() const { return replay_topic_; }
  const std::string& url() const { return options_.url; }
  // The key every request is signed with (SPEC §11), or nullptr: see Requester.
  void set_signer(std::shared_ptr<const Signer> signer) { signer_ = std::move(signer); }
  const Signer* signer() const { return signer_.get(); }

 private:
  void subscribe_now(const std::vector<std::string>& filters, bool no_local);

  struct Impl;
  BrokerOptions options_;
  std::string client_id_;
  std::string reply_topic_;
  std::string replay_topic_;
  std::shared_ptr<Impl> impl_;
  std::shared_ptr<const Signer> signer_;
};

}  // namespace linewire::cli
