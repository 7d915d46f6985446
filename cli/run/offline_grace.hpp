// A device whose status turns `offline` mid-run may well come back: a broker restart
// sends every device's last will, and the runs go on meanwhile (SPEC §6). So a run's
// end is declared unknown only when its device stays offline for a grace period,
// counted again from each of our own reconnects (the status arrives anew then).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace linewire::cli {

class OfflineGrace {
 public:
  using Clock = std::chrono::steady_clock;

  explicit OfflineGrace(Clock::duration grace) : grace_(grace) {}

  // A status message of `device`. Returns true when the device just went offline
  // (false for one already counted, or one that is online).
  bool status(const std::string& device, std::string_view payload, Clock::time_point now);
  // Our own connection is back: every grace starts again.
  void reconnected(Clock::time_point now);
  // Devices whose grace ran out by `now`; they are forgotten.
  std::vector<std::string> expired(Clock::time_point now);

  std::optional<Clock::time_point> deadline() const;
  bool offline(std::string_view device) const { return since_.count(std::string(device)) > 0; }

 private:
  Clock::duration grace_;
  std::map<std::string, Clock::time_point> since_;
};

}  // namespace linewire::cli
