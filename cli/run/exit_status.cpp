// A run's final state to the client's exit status: see exit_status.hpp.
#include "cli/run/exit_status.hpp"

#include <charconv>
#include <csignal>
#include <cstring>
#include <nlohmann/json.hpp>

#include "protocol/names.hpp"

namespace linewire::cli {

using nlohmann::json;

namespace {

std::string string_field(const json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::optional<int> signal_number(std::string_view name) {
  if (auto sig = protocol::parse_signal(name)) return sig;
  if (name.substr(0, 3) == "SIG") name.remove_prefix(3);
  if (name.empty()) return std::nullopt;
  int number = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), number);
  if (ec == std::errc() && end == name.data() + name.size())
    return number > 0 && number < NSIG ? std::optional<int>(number) : std::nullopt;
  // The agent names signals beyond SPEC §2's list the way glibc abbreviates them.
  for (int sig = 1; sig < NSIG; ++sig) {
    const char* abbrev = sigabbrev_np(sig);
    if (abbrev && name == abbrev) return sig;
  }
  return std::nullopt;
}

bool is_final_state(std::string_view state) {
  return state == "exited" || state == "killed" || state == "failed" || state == "lost";
}

std::optional<Outcome> outcome_of(const json& doc) {
  if (!doc.is_object()) return std::nullopt;
  const std::string state = string_field(doc, "state");
  if (!is_final_state(state)) return std::nullopt;
  Outcome o;
  if (state == "exited") {
    auto code = doc.find("exit_code");
    if (code != doc.end() && code->is_number_integer()) {
      auto value = code->get<long long>();
      if (value >= 0 && value <= 255) {
        o.status = static_cast<int>(value);
        return o;
      }
    }
    o.note = "exited without a valid exit code";
    return o;
  }
  if (state == "killed") {
    const std::string sig = string_field(doc, "signal");
    const std::string reason = string_field(doc, "reason");
    o.note = "killed by " + (sig.empty() ? std::string("a signal") : sig) +
             (reason.empty() ? "" : " (" + reason + ")");
    if (reason == "timeout") {
      o.status = kExitTimeout;
    } else if (auto n = signal_number(sig)) {
      o.status = 128 + *n;
    }
    return o;
  }
  const std::string error = string_field(doc, "error");
  o.note = state + (error.empty() ? "" : ": " + error);
  return o;
}

}  // namespace linewire::cli
