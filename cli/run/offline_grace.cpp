// How long a device that went offline mid-run may take to come back: see offline_grace.hpp.
#include "cli/run/offline_grace.hpp"

namespace linewire::cli {

bool OfflineGrace::status(const std::string& device, std::string_view payload,
                          Clock::time_point now) {
  if (payload == "online") {
    since_.erase(device);
    return false;
  }
  return since_.emplace(device, now).second;
}

void OfflineGrace::reconnected(Clock::time_point now) {
  for (auto& [device, since] : since_) since = now;
}

std::vector<std::string> OfflineGrace::expired(Clock::time_point now) {
  std::vector<std::string> out;
  for (auto it = since_.begin(); it != since_.end();) {
    if (now >= it->second + grace_) {
      out.push_back(it->first);
      it = since_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::optional<OfflineGrace::Clock::time_point> OfflineGrace::deadline() const {
  std::optional<Clock::time_point> d;
  for (const auto& [device, since] : since_)
    if (!d || since + grace_ < *d) d = since + grace_;
  return d;
}

}  // namespace linewire::cli
