// Which requests need a signature (SPEC §11), in one place for every part that asks:
// the request checks (verifier.cpp) and Home Assistant discovery (§9), which offers
// buttons and switches only for commands that accept unsigned requests.
#pragma once

#include "config/config.hpp"

namespace linewire::agent {

// Whether an unsigned request may run `command`: not when it names keys (then only
// those may), nor under auth.require unless it is marked `unsigned: true`.
inline bool accepts_unsigned(const config::Config& config, const config::Command& command) {
  if (!command.keys.empty()) return false;
  return !config.auth.require || command.unsigned_ok;
}

// The same for a request whose target is not known (no such command or run): with
// auth.require on, a stranger must not learn which commands or runs exist.
inline bool accepts_unsigned_unknown(const config::Config& config) { return !config.auth.require; }

}  // namespace linewire::agent
