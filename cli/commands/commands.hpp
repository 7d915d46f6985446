// The subcommands of `linewire` (SPEC §10). Each returns the process's exit status and
// throws Failure (exit 255 with its message) or Interrupted.
#pragma once

#include <cstdint>
#include <string>

#include "cli/broker/session.hpp"
#include "cli/run/run_options.hpp"

namespace linewire::cli {

int run_one(const Context& ctx, const RunOptions& o);
int run_many(const Context& ctx, const RunOptions& o);
int list_devices(const Context& ctx, bool json);
// Where `watch` and `logs` start in a run's output (SPEC §10, §12).
struct WatchFrom {
  std::uint64_t line = 0;  // 0: the first line the agent still holds
  bool only_new = false;   // watch --new: no replay, lines from now on
};
int watch(const Context& ctx, const std::string& device, const std::string& name,
          const WatchFrom& from);
int logs(const Context& ctx, const std::string& device, const std::string& run,
         const WatchFrom& from);
int list_runs(const Context& ctx, const std::string& device, bool json);
int kill_run(const Context& ctx, const std::string& device, const std::string& run,
             const std::string& signal, double wait_s);

}  // namespace linewire::cli
