// What the command line says about `linewire run` (SPEC §10.2, §10.3).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace linewire::cli {

struct RunOptions {
  std::optional<double> timeout_s;
  std::string id;
  bool no_stdin = false;
  std::string group;
  bool all = false;
  bool online = false;     // --online: offline members of the group are skipped
  std::size_t batch = 0;   // --batch N: at most N devices at once (0: no bound)
  bool fail_fast = false;  // --fail-fast: nothing more starts after a failure
  bool json = false;       // --json: NDJSON on stdout (SPEC §10)
  double wait_s = 10;      // for replies
  std::string device;      // empty for a fan-out
  std::string command;
  std::vector<std::string> args;
};

}  // namespace linewire::cli
