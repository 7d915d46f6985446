// Every request the client sends leaves through here: starts (SPEC §3) and a run's
// `in`, `eof` and `signal` (SPEC §2). With a signing key (--key), each is wrapped in
// the envelope of a signed request (SPEC §11); nothing else publishes to a device.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cli/broker/connection.hpp"
#include "cli/broker/payloads.hpp"

namespace linewire::cli {

class Requester {
 public:
  explicit Requester(Connection& connection) : connection_(connection) {}

  // A start request whose reply comes to the connection's reply topic with
  // `correlation`: the MQTT 5 Response Topic and Correlation Data, or for MQTT 3.1.1
  // the `reply_to`/`correlation` fields of the payload.
  void start(const std::string& topic, StartFields fields, const std::string& correlation);
  // A line for the run's stdin (`in`) and its end (`eof`). MQTT 3.1.1 cannot ask for
  // a reply to these, so refusals go to `errors` there.
  void line(const std::string& topic, std::string_view line);
  void eof(const std::string& topic);
  // A signal to a run (`run/{id}/signal`), remembered: see signalled(). With
  // `correlation`, MQTT 5 asks for a reply.
  void signal(const std::string& topic, std::string_view name, const std::string& correlation = {});
  // A replay of a run's kept output (`run/{id}/replay`, SPEC §12) from line `from_out`
  // of stdout and `from_err` of stderr, answered on the connection's replay topic.
  void replay(const std::string& topic, std::uint64_t from_out, std::uint64_t from_err,
              const std::string& correlation);

  // A signal was sent: wait for the broker to take it before disconnecting. Nothing
  // else needs that wait (an `in` or `eof` for a run that ended is moot), and it can
  // cost 40 ms: Paho does not turn Nagle off, so a last small publish may wait for a
  // delayed ACK.
  bool signalled() const { return signalled_; }

 private:
  // `plain` unsigned, else the envelope of `fields` (SPEC §11).
  void send(const std::string& topic, std::string_view plain, std::string_view fields,
            const std::string& correlation);

  Connection& connection_;
  bool signalled_ = false;
};

}  // namespace linewire::cli
