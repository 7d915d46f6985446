// The subcommands of `linewire` (SPEC §10). Each returns the process's exit status and
// throws Failure (exit 255 with its message) or Interrupted.
#pragma once

#include <string>

#include "cli/broker/session.hpp"
#include "cli/run/run_options.hpp"

namespace linewire::cli {

int run_one(const Context& ctx, const RunOptions& o);
int run_many(const Context& ctx, const RunOptions& o);
int list_devices(const Context& ctx, bool json);
int watch(const Context& ctx, const std::string& device, const std::string& name);
int list_runs(const Context& ctx, const std::string& device, bool json);
int kill_run(const Context& ctx, const std::string& device, const std::string& run,
             const std::string& signal, double wait_s);

}  // namespace linewire::cli
