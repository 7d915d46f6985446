// The subcommands of `linewire` (SPEC §10). Each returns the process's exit status and
// throws Failure (exit 255 with its message) or Interrupted.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cli/session.hpp"

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

int run_one(const Context& ctx, const RunOptions& o);
int run_many(const Context& ctx, const RunOptions& o);
int list_devices(const Context& ctx, bool json);
int watch(const Context& ctx, const std::string& device, const std::string& name);
int list_runs(const Context& ctx, const std::string& device, bool json);
int kill_run(const Context& ctx, const std::string& device, const std::string& run,
             const std::string& signal, double wait_s);

// Ending a run the client follows: how long output may still come after the TERM sent
// at --timeout, and after the KILL of a second Ctrl-C.
inline constexpr std::chrono::seconds kAfterTimeout{2};
inline constexpr std::chrono::seconds kAfterKill{5};
// The local --timeout fires this much after the agent's own (it started counting when
// the request was sent, the agent when the process started), so normally the agent's
// state says `timeout` first.
inline constexpr std::chrono::milliseconds kTimeoutSlack{500};

}  // namespace linewire::cli
