// What the broker's retained `{prefix}/+/status` and `{prefix}/+/info` say about the
// devices (SPEC §2, §6): for `ls`, and for the devices a fan-out expects to answer.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cli/output/table.hpp"

namespace linewire::cli {

struct Device {
  std::string name;
  std::string status;   // `online`, `offline`, or empty when no status was seen
  nlohmann::json info;  // the info document, null when none was seen (or not JSON)

  bool online() const { return status == "online"; }
  bool in_group(std::string_view group) const;
  std::string version() const;
};

class DeviceDirectory {
 public:
  explicit DeviceDirectory(std::string prefix);

  // Takes a message on `{prefix}/{device}/status` or `/info`; false for any other
  // topic or a device name that is not one (SPEC §1). An empty payload (a cleared
  // retained message) forgets what it clears.
  bool add(std::string_view topic, std::string_view payload);

  std::vector<Device> devices() const;  // by name
  const Device* find(std::string_view name) const;
  std::vector<std::string> online() const;
  std::vector<std::string> online_in_group(std::string_view group) const;

 private:
  std::string prefix_;
  std::map<std::string, Device, std::less<>> devices_;
};

// NAME STATUS VERSION RUNS(active/max) COMMANDS
std::string format_devices(const std::vector<Device>& devices, bool colour);
// An array: each device's info document with `device` and `status` set.
nlohmann::json devices_json(const std::vector<Device>& devices);

}  // namespace linewire::cli
