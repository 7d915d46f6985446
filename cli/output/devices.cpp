// Devices as their retained status and info describe them; the `ls` table: see devices.hpp.
#include "cli/output/devices.hpp"

#include "protocol/names.hpp"

namespace linewire::cli {

using nlohmann::json;

bool Device::in_group(std::string_view group) const {
  if (!info.is_object()) return false;
  auto it = info.find("groups");
  if (it == info.end() || !it->is_array()) return false;
  for (const auto& g : *it)
    if (g.is_string() && g.get<std::string>() == group) return true;
  return false;
}

std::string Device::version() const {
  if (!info.is_object()) return {};
  auto it = info.find("version");
  return it != info.end() && it->is_string() ? it->get<std::string>() : std::string();
}

DeviceDirectory::DeviceDirectory(std::string prefix) : prefix_(std::move(prefix)) {}

bool DeviceDirectory::add(std::string_view topic, std::string_view payload) {
  if (topic.size() <= prefix_.size() + 1 || topic.substr(0, prefix_.size()) != prefix_ ||
      topic[prefix_.size()] != '/')
    return false;
  std::string_view rest = topic.substr(prefix_.size() + 1);
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view name = rest.substr(0, slash);
  std::string_view leaf = rest.substr(slash + 1);
  if (!protocol::valid_name(name) || (leaf != "status" && leaf != "info")) return false;

  auto it = devices_.find(name);
  if (it == devices_.end()) {
    if (payload.empty()) return true;
    it = devices_.emplace(std::string(name), Device{std::string(name), {}, nullptr}).first;
  }
  Device& d = it->second;
  if (leaf == "status") {
    d.status.assign(payload);
  } else {
    d.info = json::parse(payload, nullptr, false);
    if (d.info.is_discarded() || !d.info.is_object()) d.info = nullptr;
  }
  if (d.status.empty() && d.info.is_null()) devices_.erase(it);
  return true;
}

std::vector<Device> DeviceDirectory::devices() const {
  std::vector<Device> out;
  for (const auto& [name, d] : devices_) out.push_back(d);
  return out;
}

const Device* DeviceDirectory::find(std::string_view name) const {
  auto it = devices_.find(name);
  return it == devices_.end() ? nullptr : &it->second;
}

std::vector<std::string> DeviceDirectory::online() const {
  std::vector<std::string> out;
  for (const auto& [name, d] : devices_)
    if (d.online()) out.push_back(name);
  return out;
}

std::vector<std::string> DeviceDirectory::online_in_group(std::string_view group) const {
  std::vector<std::string> out;
  for (const auto& [name, d] : devices_)
    if (d.online() && d.in_group(group)) out.push_back(name);
  return out;
}

namespace {

std::string runs_cell(const Device& d) {
  if (!d.online() || !d.info.is_object()) return "-";
  auto runs = d.info.find("runs");
  if (runs == d.info.end() || !runs->is_object()) return "-";
  auto number = [&](const char* key) {
    auto it = runs->find(key);
    return it != runs->end() && it->is_number_integer() ? std::to_string(it->get<long long>())
                                                        : std::string("?");
  };
  return number("active") + "/" + number("max");
}

std::string commands_cell(const Device& d) {
  if (!d.info.is_object()) return "-";
  auto commands = d.info.find("commands");
  if (commands == d.info.end() || !commands->is_object() || commands->empty()) return "-";
  std::string out;
  for (const auto& [name, ignored] : commands->items()) {
    if (!out.empty()) out += ",";
    out += name;
  }
  return out;
}

}  // namespace

std::string format_devices(const std::vector<Device>& devices, bool colour) {
  std::vector<Row> rows;
  for (const auto& d : devices) {
    std::string version = d.version();
    std::string_view status_colour = d.online() ? ansi::green : ansi::red;
    rows.push_back({{d.name, {}},
                    {d.status.empty() ? "?" : d.status, status_colour},
                    {version.empty() ? "-" : version, {}},
                    {runs_cell(d), {}},
                    {commands_cell(d), {}}});
  }
  return format_table({"NAME", "STATUS", "VERSION", "RUNS", "COMMANDS"}, rows, colour);
}

json devices_json(const std::vector<Device>& devices) {
  json out = json::array();
  for (const auto& d : devices) {
    json doc = d.info.is_object() ? d.info : json::object();
    doc["device"] = d.name;
    doc["status"] = d.status.empty() ? json(nullptr) : json(d.status);
    out.push_back(std::move(doc));
  }
  return out;
}

}  // namespace linewire::cli
