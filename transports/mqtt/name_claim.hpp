// Two agents claiming one device name would take turns throwing each other off the
// broker (one client id) and publish each other's status. Before its own connection,
// linewired looks at the device's retained status and info: when another live
// linewired already has the name, it refuses to start (README "Fleets").
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "config/config.hpp"

namespace linewire::mqtt {

// A reason to refuse, or nothing when the name is free, was left by an instance that is
// gone (this host, its pid no longer a linewired), or the broker cannot be asked now
// (the agent then connects and retries as usual: the check never blocks a start-up).
// `cancelled` is polled every 50 ms: a SIGTERM during start-up ends the check at once.
std::optional<std::string> name_claimed_elsewhere(const config::Config& cfg,
                                                  const std::function<bool()>& cancelled);

}  // namespace linewire::mqtt
