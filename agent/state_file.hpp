// The agent's memory across its own crashes (SPEC §4 `lost`, §5 crash safety,
// `keep_runs`): the runs that are running and the newest finished ones, in
// `{state_dir}/{device}/runs.json` (the config resolves that folder), written
// atomically (a temporary file renamed over the old one) whenever a run starts or
// ends. Not fsynced: it has to survive the agent being killed, which the page cache
// does; after a power loss every run is gone anyway.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "agent/documents.hpp"

namespace linewire::agent {

struct ActiveRun {
  RunRecord record;               // as published in the `running` state
  std::uint64_t start_ticks = 0;  // /proc/PID/stat starttime: guards against pid reuse
};

struct SavedState {
  std::vector<ActiveRun> active;
  std::vector<std::string> finished;  // oldest first, at most keep_runs
};

class StateFile {
 public:
  // Creates `dir` if missing; throws std::runtime_error, naming it, when the agent cannot
  // write there. Empty dir: crash safety is off, nothing is saved or read.
  explicit StateFile(std::string dir);
  bool enabled() const { return !path_.empty(); }
  // What the previous agent left; empty when there is no file or it is unreadable
  // (a warning is logged: a bad file must not stop the agent).
  SavedState load() const;
  void save(const SavedState& state) const;

 private:
  std::string path_;
};

// The kernel's start time of a process (clock ticks since boot), 0 if it is gone.
std::uint64_t process_start_ticks(pid_t pid);

}  // namespace linewire::agent
