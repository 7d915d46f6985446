// The payloads of the requests the client sends (SPEC §3). Every request the client
// publishes is built here and leaves through one function (Requester in requester.hpp),
// so that signing (SPEC §11) can wrap it in one place later.
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

// A fresh run id that sorts by time and reads well in `runs`: 20261122-230000-3fa9c1.
std::string new_run_id();
// A random lower-case hex string of `n` characters (client ids, correlation data).
std::string random_hex(std::size_t n);

}  // namespace linewire::cli

namespace linewire::cli {

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
