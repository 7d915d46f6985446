// Why a broker refused a CONNECT, in words a person can act on (SPEC §6). Shared by
// the agent's log and the client's error message. Pure: it takes the codes Paho
// reports, so it is unit-tested without a broker.
#pragma once

#include <optional>
#include <string>

namespace linewire::protocol {

struct ConnectRefusal {
  std::string reason;  // the broker's answer in words, e.g. "not authorized"
  std::string hint;    // what to change, may be empty
  // The broker does not speak the protocol version asked for: with
  // `broker.protocol: auto` the agent then tries MQTT 3.1.1.
  bool unsupported_version = false;
};

// `code` is the return code of a failed connect as Paho reports it: a CONNACK return
// code of MQTT 3.1.1 (1 to 5; a broker that does not speak MQTT 5 may answer a v5
// CONNECT that way too) or an MQTT 5 reason code (0x80 and up). Nothing for other
// codes (Paho's own negative codes: no CONNACK arrived).
// `side` picks the hint's words: the agent's config keys or the client's flags.
enum class Side { agent, client };
std::optional<ConnectRefusal> connack_refusal(int code, Side side = Side::agent);

// One line for a log or an error message: "refused by the broker: REASON (HINT)".
std::string describe(const ConnectRefusal& r);

}  // namespace linewire::protocol
