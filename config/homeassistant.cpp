// A command's `homeassistant:` block (SPEC §9) and the discovery names of all commands.
// Home Assistant drops an entity whose discovery config has a known key with a value it
// cannot read, silently; so the values passed through are checked here, with line and
// column, against what HA's MQTT platforms accept (homeassistant/components/mqtt/*.py).
#include <algorithm>
#include <array>
#include <map>

#include "config/checks.hpp"
#include "config/sections.hpp"

namespace linewire::config {
namespace {

using Names = std::vector<std::string_view>;

// HA's device classes per platform (SensorDeviceClass, BinarySensorDeviceClass,
// ButtonDeviceClass, SwitchDeviceClass).
const Names& device_classes(std::string_view component) {
  static const Names sensor = {"absolute_humidity",
                               "apparent_power",
                               "aqi",
                               "area",
                               "atmospheric_pressure",
                               "battery",
                               "blood_glucose_concentration",
                               "carbon_dioxide",
                               "carbon_monoxide",
                               "conductivity",
                               "current",
                               "data_rate",
                               "data_size",
                               "date",
                               "distance",
                               "duration",
                               "energy",
                               "energy_distance",
                               "energy_storage",
                               "enum",
                               "frequency",
                               "gas",
                               "humidity",
                               "illuminance",
                               "irradiance",
                               "moisture",
                               "monetary",
                               "nitrogen_dioxide",
                               "nitrogen_monoxide",
                               "nitrous_oxide",
                               "ozone",
                               "ph",
                               "pm1",
                               "pm10",
                               "pm25",
                               "pm4",
                               "power",
                               "power_factor",
                               "precipitation",
                               "precipitation_intensity",
                               "pressure",
                               "reactive_energy",
                               "reactive_power",
                               "signal_strength",
                               "sound_pressure",
                               "speed",
                               "sulphur_dioxide",
                               "temperature",
                               "timestamp",
                               "volatile_organic_compounds",
                               "volatile_organic_compounds_parts",
                               "voltage",
                               "volume",
                               "volume_flow_rate",
                               "volume_storage",
                               "water",
                               "weight",
                               "wind_direction",
                               "wind_speed"};
  static const Names binary_sensor = {"battery",
                                      "battery_charging",
                                      "carbon_monoxide",
                                      "cold",
                                      "connectivity",
                                      "door",
                                      "garage_door",
                                      "gas",
                                      "heat",
                                      "light",
                                      "lock",
                                      "moisture",
                                      "motion",
                                      "moving",
                                      "occupancy",
                                      "opening",
                                      "plug",
                                      "power",
                                      "presence",
                                      "problem",
                                      "running",
                                      "safety",
                                      "smoke",
                                      "sound",
                                      "tamper",
                                      "update",
                                      "vibration",
                                      "window"};
  static const Names button = {"identify", "restart", "update"};
  static const Names switch_ = {"outlet", "switch"};
  if (component == "binary_sensor") return binary_sensor;
  if (component == "button") return button;
  if (component == "switch") return switch_;
  return sensor;
}

std::string listed(const Names& names) {
  std::string out;
  for (const auto n : names) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

// The entity the pass-through keys go to (transports/mqtt/homeassistant.cpp): the control
// when the command names one, else its reader.
std::string keys_component(const HomeAssistantCommand& ha) {
  return ha.component.empty() ? "sensor" : ha.component;
}

}  // namespace

void read_entity(Reader& r, const Entry& e, HomeAssistantCommand& ha) {
  // `homeassistant: false` hides the command; a mapping tunes its entity.
  if (e.value.IsScalar()) {
    assign(ha.enabled, r.boolean(e));
    return;
  }
  ha.enabled = true;
  // Discovery keys passed to Home Assistant as they are, each checked as HA's schema would.
  const auto text = [&](const Entry& x) {
    if (auto value = r.text(x, true)) ha.extra[x.key.Scalar()] = std::move(*value);
  };
  std::optional<Entry> device_class;
  r.mapping(
      e, {
             {"component",
              [&](const Entry& x) {
                assign(ha.component, r.choice<std::string>(x, {{"button", "button"},
                                                               {"sensor", "sensor"},
                                                               {"binary_sensor", "binary_sensor"},
                                                               {"switch", "switch"}}));
              }},
             {"unit_of_measurement", text},
             {"icon", text},
             {"device_class", [&](const Entry& x) { device_class = x; }},
             {"state_class",
              [&](const Entry& x) {
                if (auto v = r.choice<std::string>(x, {{"measurement", "measurement"},
                                                       {"measurement_angle", "measurement_angle"},
                                                       {"total", "total"},
                                                       {"total_increasing", "total_increasing"}}))
                  ha.extra["state_class"] = *v;
              }},
             {"entity_category",
              [&](const Entry& x) {
                if (auto v = r.choice<std::string>(
                        x, {{"config", "config"}, {"diagnostic", "diagnostic"}}))
                  ha.extra["entity_category"] = *v;
              }},
             {"value_template",
              [&](const Entry& x) {
                auto v = r.text(x);
                if (!v) return;
                if (auto why = check_jinja(*v))
                  r.problem(x, "is not a Jinja template Home Assistant can read: " + *why);
                else
                  ha.extra["value_template"] = std::move(*v);
              }},
             // HA's cv.positive_int: whole seconds, not a duration ("90s").
             {"expire_after",
              [&](const Entry& x) {
                if (auto n = r.integer(x, 0)) ha.extra["expire_after"] = std::to_string(*n);
              }},
             {"force_update",
              [&](const Entry& x) {
                if (auto b = r.boolean(x)) ha.extra["force_update"] = *b ? "true" : "false";
              }},
         });
  // After the mapping: `component` may come after `device_class`.
  if (device_class) {
    const auto& known = device_classes(keys_component(ha));
    if (auto v = r.text(*device_class)) {
      if (std::find(known.begin(), known.end(), *v) == known.end()) {
        std::string message = "'" + *v + "' is not a device_class of Home Assistant's " +
                              keys_component(ha) + " (" + listed(known) + ")";
        if (auto hint = closest(*v, known)) message += "; did you mean '" + *hint + "'?";
        r.problem(*device_class, message);
      } else {
        ha.extra["device_class"] = std::move(*v);
      }
    }
  }
}

// HA allows only [A-Za-z0-9_-] in discovery topics, so `.` becomes `_` there and `b.up`
// and `b_up` would share every topic: one entity would silently replace the other.
void check_discovery_names(Reader& r, const std::vector<Entry>& commands, const Config& config) {
  if (!config.homeassistant.discovery) return;
  std::map<std::string, std::string> taken;  // discovery node → command
  for (const auto& e : commands) {
    const std::string name = e.key.Scalar();
    const Command* c = config.find_command(name);
    if (!c || !c->homeassistant.enabled || !c->mqtt) continue;
    std::string node = name;
    std::replace(node.begin(), node.end(), '.', '_');
    // Every command has a `running` binary_sensor at its node; a command whose reader is a
    // binary_sensor also has one at {node}_last.
    std::vector<std::string> nodes = {node};
    if (c->homeassistant.component == "binary_sensor") nodes.push_back(node + "_last");
    for (const auto& n : nodes) {
      const auto [it, fresh] = taken.emplace(n, name);
      if (!fresh && it->second != name)
        r.problem_at_key(e, "meets command '" + it->second +
                                "' in one Home Assistant discovery topic (" + config.device + "/" +
                                n + "; HA allows no '.' there): rename one of them");
    }
  }
}

}  // namespace linewire::config
