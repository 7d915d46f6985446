// Loading and validating the YAML configuration (SPEC §7).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace linewire::config {

struct Problem {
  int line = 0;    // 1-based; 0 when the problem has no place in the file
  int column = 0;  // 1-based
  std::string message;
};

struct LoadResult {
  std::optional<Config> config;   // set only when problems is empty
  std::vector<Problem> problems;  // every problem found, in file order
};

// `origin` names the text in messages and is the folder relative paths resolve
// against (its directory). `hostname` is the default device name.
LoadResult load_string(const std::string& yaml, const std::string& origin,
                       const std::string& hostname);
LoadResult load_file(const std::string& path);

// Where the agent keeps its state when the config does not say (SPEC §5): systemd's
// $STATE_DIRECTORY, else /var/lib/linewire for root, else $XDG_STATE_HOME/linewire or
// ~/.local/state/linewire; "" when none applies. The device's folder goes below it.
std::string default_state_dir(const char* state_directory, const char* xdg_state_home,
                              const char* home, bool root);

// "FILE:LINE:COLUMN: MESSAGE", the way compilers say it.
std::string format(const Problem& p, const std::string& origin);

}  // namespace linewire::config
