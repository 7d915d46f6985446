// What the command line says about `linewire run` (SPEC §10.2, §10.3).
#pragma once

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
  double wait_s = 10;  // for replies
  std::string device;  // empty for a fan-out
  std::string command;
  std::vector<std::string> args;
};

}  // namespace linewire::cli
