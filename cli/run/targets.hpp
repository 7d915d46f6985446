// Which devices a fan-out asks (SPEC §10), from what the broker's retained status and
// info say: `--all`, every online device; `--group G`, every device whose info lists
// G, online or not (offline ones are not run, or skipped with --online). Pure: what to
// say goes back as notes, so the choice is unit-tested without a broker.
#pragma once

#include <string>
#include <vector>

#include "cli/output/devices.hpp"
#include "cli/run/fanout.hpp"
#include "cli/run/run_options.hpp"

namespace linewire::cli {

struct TargetChoice {
  bool go = false;                 // false: nothing to do (the notes say why)
  std::vector<std::string> notes;  // for stderr, in order
};

// Puts the targets into `fanout` (queued with --batch, else expected), and the offline
// and skipped ones; `url` and `prefix` name where the devices were looked for, in the
// notes.
TargetChoice pick_targets(const DeviceDirectory& directory, const RunOptions& o, Fanout& fanout,
                          const std::string& url, const std::string& prefix);

}  // namespace linewire::cli
