// A thin wrapper over Paho's async client (SPEC §2, §6): connect with a last will,
// TLS and credentials, reconnect with back-off, subscribe, publish with MQTT 5
// properties, and count what is waiting for the broker (flow control, SPEC §5).
// Paho calls back on its own threads; everything reaches the agent through
// asio::post on the io_context, so the agent needs no locks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace boost::asio {
class io_context;
}

namespace linewire::mqtt {

struct Message {
  std::string topic;
  std::string payload;
  bool retained = false;
  std::string response_topic;              // MQTT 5 Response Topic, empty if none
  std::optional<std::string> correlation;  // MQTT 5 Correlation Data
};

struct PublishOptions {
  int qos = 1;
  bool retain = false;
  std::uint64_t seq = 0;                     // > 0: the `seq` user property (MQTT 5 only)
  std::uint32_t expiry_s = 0;                // > 0: message expiry interval (MQTT 5 only)
  const std::string* correlation = nullptr;  // echoed Correlation Data (MQTT 5 only)
};

class Client {
 public:
  struct Handlers {
    std::function<void()> connected;               // every (re)connect
    std::function<void(const std::string&)> lost;  // the connection dropped
    std::function<void(Message)> message;
    std::function<void()> drained;  // below the low mark again
  };

  // `will_topic` gets `offline`, retained, QoS 1, as the last will.
  Client(boost::asio::io_context& io, const config::Config& config, std::string will_topic,
         Handlers handlers);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects in the background; retries with back-off until the broker answers.
  void start();
  // `done` (optional) runs on the io_context once the broker answered every filter.
  void subscribe(const std::vector<std::string>& filters, std::function<void()> done = {});
  void unsubscribe(const std::vector<std::string>& filters);
  void publish(const std::string& topic, std::string_view payload, const PublishOptions& o);
  // Publishes `payload` retained on `topic`, waits (bounded) until it and everything
  // before it left, then disconnects and calls `done`.
  void stop(const std::string& topic, std::string_view payload, std::function<void()> done);

  bool connected() const;
  bool v5() const;
  // Bytes handed to Paho and not yet acknowledged are over the buffer limit.
  bool congested() const;
  std::uint64_t outstanding_bytes() const;
  std::uint64_t reconnects() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace linewire::mqtt
