// `linewire ls` and `linewire runs DEVICE`: what the broker has retained (SPEC §4, §6).
#include <nlohmann/json.hpp>

#include "cli/commands/commands.hpp"
#include "cli/output/devices.hpp"
#include "cli/output/output.hpp"
#include "cli/output/runs_table.hpp"
#include "cli/run/exit_status.hpp"
#include "protocol/names.hpp"

namespace linewire::cli {

using nlohmann::json;

int list_devices(const Context& ctx, bool as_json) {
  Connection& c = open_connection(ctx, false);
  DeviceDirectory directory(ctx.prefix);
  for (const auto& m : collect_retained(c, {ctx.prefix + "/+/status", ctx.prefix + "/+/info"}))
    directory.add(m.topic, m.payload);
  auto devices = directory.devices();
  if (as_json) {
    out().line(devices_json(devices).dump(-1, ' ', false, json::error_handler_t::replace));
  } else {
    out().write(format_devices(devices, out().colour()));
  }
  return 0;
}

int list_runs(const Context& ctx, const std::string& device, bool as_json) {
  Connection& c = open_connection(ctx, false);
  protocol::Topics topics(ctx.prefix, device);
  bool known = false;
  std::vector<json> states;
  for (const auto& m :
       collect_retained(c, {topics.status(), topics.device_filter("run", "state")})) {
    if (m.topic == topics.status()) {
      known = known || !m.payload.empty();
      continue;
    }
    json doc = json::parse(m.payload, nullptr, false);
    if (doc.is_object()) states.push_back(std::move(doc));
  }
  if (!known && states.empty()) {
    note("no device '" + device + "' on " + c.url() + " (no retained status or runs)");
    return kExitFailure;
  }
  states = newest_first(std::move(states));
  if (as_json) {
    out().line(json(states).dump(-1, ' ', false, json::error_handler_t::replace));
  } else {
    out().write(format_runs(states, std::chrono::system_clock::now(), out().colour()));
  }
  return 0;
}

}  // namespace linewire::cli
