// The JSON of the start request the client sends and of the agents' replies (SPEC §3).
// Requester (requester.hpp) publishes them; these are the pure parts, unit-tested.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace linewire::cli {

struct StartFields {
  std::string id;
  std::vector<std::string> args;
  std::optional<double> timeout_s;
  // MQTT 3.1.1 only: where to reply, in the payload (MQTT 5 uses the Response Topic).
  std::string reply_to;
  std::string correlation;
};

std::string start_payload(const StartFields& fields);

// An agent's answer to a request (SPEC §3).
struct Reply {
  bool ok = false;
  std::string device;
  std::string run;
  bool queued = false;
  std::string code;         // on refusal
  std::string message;      // on refusal
  std::string correlation;  // the JSON `correlation` field (MQTT 3.1.1), empty if none
};

// nullopt when `payload` is not a reply document.
std::optional<Reply> parse_reply(std::string_view payload);

}  // namespace linewire::cli
