// The process's one connection, and bounded waits for retained messages: see session.hpp.
#include "cli/broker/session.hpp"

#include <cstdlib>

#include "cli/output/output.hpp"

namespace linewire::cli {

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

namespace {

std::unique_ptr<Connection>& the_connection() {
  static auto* c = new std::unique_ptr<Connection>();  // never destroyed: see leave()
  return *c;
}

}  // namespace

Connection& open_connection(const Context& ctx, bool streams) {
  auto& c = the_connection();
  c = std::make_unique<Connection>(ctx.broker, ctx.prefix);
  c->set_signer(ctx.signer);
  c->connect();
  if (streams && !c->v5())
    note(
        "MQTT 3.1.1: output lines carry no sequence numbers; a line repeated after a "
        "reconnect cannot be detected (lost lines are still counted)");
  return *c;
}

void leave(int status) {
  if (auto& c = the_connection()) c->disconnect();
  std::_Exit(status);
}

namespace {

void handle_other(const Event& e) {
  if (e.kind == Event::Kind::interrupt) throw Interrupted{e.signal};
  if (e.kind == Event::Kind::lost) note("connection to the broker lost; reconnecting");
}

}  // namespace

std::vector<Incoming> collect_retained(Connection& c, const std::vector<std::string>& filters) {
  // mosquitto queues a subscription's retained messages when it confirms it, ahead
  // of anything published after: a message of our own, published once every filter
  // is confirmed, comes back after the last of them (all QoS 1, one queue). MQTT
  // orders messages per topic only, and brokers that send retained messages from
  // another process (EMQX's retainer, HiveMQ) may let the marker overtake some, so
  // collecting goes on for kAfterMarker of quiet after it. That instead of kQuiet
  // took ~250 ms off `ls` and `run --all`. A broker that refuses the marker (its
  // ACL) leaves kQuiet, as before.
  static unsigned collected = 0;
  const std::string marker = c.reply_topic() + "/retained-end/" + std::to_string(++collected);
  c.subscribe(filters);
  try {
    c.subscribe_once(marker);
    c.publish(marker, "");
  } catch (const Failure&) {
    // Refused: kQuiet decides alone.
  }
  std::vector<Incoming> got;
  const auto end = Clock::now() + kCollectMax;
  auto quiet_until = Clock::now() + kQuiet;
  bool marker_back = false;
  while (true) {
    auto e = c.next(std::min(end, quiet_until));
    if (!e) break;
    if (e->kind != Event::Kind::message) {
      handle_other(*e);
      continue;
    }
    if (e->message.topic == marker) {
      marker_back = true;
      quiet_until = Clock::now() + kAfterMarker;
      continue;
    }
    // After the marker only a retained message (a late one) holds the end back: live
    // traffic on these topics (devices' info updates) would otherwise keep it open.
    if (!marker_back)
      quiet_until = Clock::now() + kQuiet;
    else if (e->message.retained)
      quiet_until = Clock::now() + kAfterMarker;
    got.push_back(std::move(e->message));
  }
  return got;
}

std::optional<std::string> wait_for_status(Connection& c, const std::string& topic,
                                           std::vector<Incoming>& backlog) {
  const auto end = Clock::now() + kStatusWait;
  while (auto e = c.next(end)) {
    if (e->kind != Event::Kind::message) {
      handle_other(*e);
      continue;
    }
    if (e->message.topic == topic) return std::move(e->message.payload);
    backlog.push_back(std::move(e->message));
  }
  return std::nullopt;
}

std::optional<std::string> offline_reason(const std::optional<std::string>& status,
                                          const std::string& device, const Connection& c) {
  if (!status || status->empty())
    return "no device '" + device + "' on " + c.url() + " (no retained status within " +
           std::to_string(kStatusWait.count()) + " s: wrong name or --prefix?)";
  if (*status == "online") return std::nullopt;
  return device + " is " + *status;
}

}  // namespace linewire::cli
