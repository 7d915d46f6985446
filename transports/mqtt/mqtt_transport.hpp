// The MQTT side of linewired (SPEC §2, §3, §6): request topics in, run output, states,
// presence and info out.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "agent/agent.hpp"
#include "protocol/names.hpp"
#include "transports/mqtt/mqtt_client.hpp"
#include "transports/mqtt/replays.hpp"

namespace boost::asio {
class io_context;
}

namespace linewire::agent {
class Verifier;
struct Verified;
}  // namespace linewire::agent

namespace linewire::mqtt {

class Transport final : private agent::AgentObserver {
 public:
  Transport(boost::asio::io_context& io, agent::Agent& agent);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  void start();
  // Publishes `offline`, disconnects cleanly, then calls `done`.
  void stop(std::function<void()> done);

  bool broker_connected() const { return client_.connected(); }
  // Called after each (re)connect once the broker acknowledged every subscription:
  // from then on requests reach the agent (systemd's READY=1).
  void on_ready(std::function<void()> ready) { ready_ = std::move(ready); }

 private:
  using Reply = Replays::Reply;
  struct LastLines;

  // AgentObserver
  void on_line(const agent::Run& run, agent::Stream stream, std::string_view line,
               std::uint64_t seq) override;
  void on_state(const agent::Run& run, const std::string& document, bool final) override;
  void on_running(const std::string& command, bool running) override;
  void on_info(const std::string& document) override;
  void on_forget(const std::string& run) override;
  void on_record_final(const agent::RunRecord& record, const std::string& document) override;
  void on_reconfigured(const config::Config& previous) override;
  bool congested() const override { return client_.congested(); }

  void on_connected();

  // The request path (requests.cpp): decode, the shared checks, one handler per kind.
  struct Request;
  void on_message(Message m);
  Reply reply_route(const Message& m, protocol::RequestKind kind) const;
  std::optional<protocol::Error> check(Request& req);
  const config::Command* auth_target(const protocol::RequestTopic& t) const;
  std::optional<protocol::Error> dispatch(Request& req);
  std::optional<protocol::Error> handle_start(Request& req);
  std::optional<protocol::Error> handle_switch(Request& req);
  std::optional<protocol::Error> handle_stop(Request& req);
  std::optional<protocol::Error> handle_in(Request& req);
  std::optional<protocol::Error> handle_eof(Request& req);
  std::optional<protocol::Error> handle_signal(Request& req);
  std::optional<protocol::Error> handle_replay(Request& req);
  std::optional<protocol::Error> handle_other(
      Request& req, const std::function<std::optional<protocol::Error>()>& act);
  std::optional<protocol::Error> stop_command(const std::string& name);
  void log_request(const Request& req, std::string_view detail) const;
  void refuse(const Request& req, const protocol::Error& e);
  void reply(const Request& req, nlohmann::json doc);

  void publish_last(const std::string& command);
  void publish_state(const std::string& run, const std::string& document);
  void publish_result(const std::string& command, const std::string& document);
  std::vector<std::string> filters() const;
  void publish_running();
  void publish_discovery();

  boost::asio::io_context& io_;
  agent::Agent& agent_;
  const config::Config& config_;
  protocol::Topics topics_;
  PublishOptions out_;       // out/err: QoS from config
  PublishOptions retained_;  // last/running/info/status
  Client client_;
  std::unique_ptr<LastLines> last_;
  std::unique_ptr<agent::Verifier> verifier_;  // signed requests (SPEC §11)
  std::unique_ptr<Replays> replays_;           // kept output, again (SPEC §12)
  std::function<void()> ready_;
  std::set<std::string> discovery_published_;  // Home Assistant config topics (SPEC §9)
};

}  // namespace linewire::mqtt
