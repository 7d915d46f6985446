// Home Assistant discovery documents (SPEC §9, transports/mqtt/homeassistant.hpp):
// for each component, the keys HA's MQTT integration requires, and the project's rules
// (names, default_entity_id, no object_id, value_template, retain, topics).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "agent/auth_policy.hpp"
#include "config/load.hpp"
#include "transports/mqtt/homeassistant.hpp"

namespace cfg = linewire::config;
namespace ha = linewire::mqtt::homeassistant;
using nlohmann::json;

namespace {

cfg::Config load(const std::string& yaml) {
  auto r = cfg::load_string(yaml, "/etc/linewire/linewire.yaml", "host");
  INFO(yaml);
  for (const auto& p : r.problems) INFO(p.message);
  REQUIRE(r.problems.empty());
  return *r.config;
}

// Discovery documents by topic.
std::map<std::string, json> docs(const cfg::Config& c) {
  std::map<std::string, json> out;
  for (const auto& d : ha::documents(c, "1.2.3")) {
    INFO(d.topic);
    CHECK(out.count(d.topic) == 0);  // every entity has its own topic
    out[d.topic] = json::parse(d.payload);
  }
  return out;
}

const std::string kHeader = R"(
device: pi-1
homeassistant: {discovery: true}
)";

// What every entity carries, whatever its component.
void check_common(const json& d, const std::string& component, const std::string& name,
                  const std::string& unique_id) {
  INFO(d.dump());
  CHECK(d.at("name") == name);
  CHECK(d.at("unique_id") == unique_id);
  CHECK(d.at("default_entity_id") == ha::default_entity_id(component, unique_id));
  CHECK_FALSE(d.contains("object_id"));
  CHECK(d.at("availability_topic") == "linewire/pi-1/status");
  CHECK(d.at("payload_available") == "online");
  CHECK(d.at("payload_not_available") == "offline");
  CHECK(d.at("device").at("identifiers") == json::array({"linewire_pi-1"}));
  CHECK(d.at("device").at("name") == "pi-1");
  CHECK(d.at("device").at("sw_version") == "1.2.3");
  CHECK(d.at("device").contains("model"));
}

}  // namespace

TEST_CASE("an on-demand command is a button, a sensor and a running binary_sensor", "[ha]") {
  auto c = load(kHeader + "commands: {count: {exec: [/bin/echo]}}\n");
  auto d = docs(c);
  REQUIRE(d.size() == 3);

  const auto& button = d.at("homeassistant/button/pi-1/count/config");
  check_common(button, "button", "count", "linewire_pi-1_count");
  CHECK(button.at("default_entity_id") == "button.linewire_pi_1_count");
  CHECK(button.at("command_topic") == "linewire/pi-1/cmd/count/start");
  CHECK(button.at("payload_press") == "{}");
  CHECK(button.at("retain") == false);

  const auto& sensor = d.at("homeassistant/sensor/pi-1/count/config");
  check_common(sensor, "sensor", "count", "linewire_pi-1_count_last");
  CHECK(sensor.at("default_entity_id") == "sensor.linewire_pi_1_count_last");
  CHECK(sensor.at("state_topic") == "linewire/pi-1/cmd/count/last");
  CHECK(sensor.at("value_template") == "{{ value[:255] }}");

  const auto& running = d.at("homeassistant/binary_sensor/pi-1/count/config");
  check_common(running, "binary_sensor", "count running", "linewire_pi-1_count_running");
  CHECK(running.at("default_entity_id") == "binary_sensor.linewire_pi_1_count_running");
  CHECK(running.at("state_topic") == "linewire/pi-1/cmd/count/running");
  CHECK(running.at("payload_on") == "ON");
  CHECK(running.at("payload_off") == "OFF");
}

TEST_CASE("a service is a switch on cmd/{c}/switch that reads cmd/{c}/running", "[ha]") {
  auto c = load(kHeader + "commands: {temp: {exec: [/bin/cat], mode: service}}\n");
  auto d = docs(c);
  CHECK(d.count("homeassistant/button/pi-1/temp/config") == 0);
  const auto& sw = d.at("homeassistant/switch/pi-1/temp/config");
  check_common(sw, "switch", "temp", "linewire_pi-1_temp");
  CHECK(sw.at("default_entity_id") == "switch.linewire_pi_1_temp");
  CHECK(sw.at("command_topic") == "linewire/pi-1/cmd/temp/switch");
  CHECK(sw.at("state_topic") == "linewire/pi-1/cmd/temp/running");
  CHECK(sw.at("payload_on") == "ON");
  CHECK(sw.at("payload_off") == "OFF");
  CHECK(sw.at("state_on") == "ON");
  CHECK(sw.at("state_off") == "OFF");
  CHECK(sw.at("retain") == false);
  CHECK(d.count("homeassistant/sensor/pi-1/temp/config") == 1);
  CHECK(d.count("homeassistant/binary_sensor/pi-1/temp/config") == 1);
}

TEST_CASE("discovery off, a hidden command, retain_last off, mqtt off", "[ha]") {
  CHECK(ha::documents(load("commands: {a: {exec: [/bin/true]}}\n"), "1").empty());
  auto d = docs(load(kHeader + R"(commands:
  hidden: {exec: [/bin/true], homeassistant: false}
  quiet: {exec: [/bin/true], retain_last: false}
)"));
  for (const auto& [topic, doc] : d) CHECK(topic.find("/hidden/") == std::string::npos);
  CHECK(d.count("homeassistant/sensor/pi-1/quiet/config") == 0);
  CHECK(d.count("homeassistant/button/pi-1/quiet/config") == 1);
  CHECK(d.count("homeassistant/binary_sensor/pi-1/quiet/config") == 1);
}

TEST_CASE("a dot in a device or command name is an underscore in discovery topics", "[ha]") {
  auto d = docs(load(R"(device: pi.kitchen
homeassistant: {discovery: true, prefix: ha}
commands: {disk.free: {exec: [/bin/df]}}
)"));
  REQUIRE(d.count("ha/button/pi_kitchen/disk_free/config") == 1);
  const auto& b = d.at("ha/button/pi_kitchen/disk_free/config");
  CHECK(b.at("name") == "disk.free");
  CHECK(b.at("unique_id") == "linewire_pi.kitchen_disk.free");
  CHECK(b.at("default_entity_id") == "button.linewire_pi_kitchen_disk_free");
  CHECK(b.at("command_topic") == "linewire/pi.kitchen/cmd/disk.free/start");
  CHECK(ha::status_topic(load("homeassistant: {prefix: ha}\ncommands: {}\n")) == "ha/status");
}

TEST_CASE("default_entity_id lower-cases and replaces what HA does not allow", "[ha]") {
  CHECK(ha::default_entity_id("sensor", "linewire_Pi-7_Temp.C") == "sensor.linewire_pi_7_temp_c");
  CHECK(ha::topic_name("a.b.c") == "a_b_c");
  CHECK(ha::topic_name("a-b_c") == "a-b_c");
}

TEST_CASE("a command's entity keys go to its component, typed as HA wants them", "[ha]") {
  auto d = docs(load(kHeader + R"(commands:
  temp:
    exec: [/bin/cat]
    homeassistant: {unit_of_measurement: "°C", device_class: temperature, state_class: measurement,
                    expire_after: 600, force_update: true, icon: "mdi:thermometer"}
  door:
    exec: [/bin/cat]
    homeassistant: {component: binary_sensor, device_class: door}
  pump:
    exec: [/bin/cat]
    homeassistant: {component: switch, icon: "mdi:pump", unit_of_measurement: "W"}
)"));
  const auto& temp = d.at("homeassistant/sensor/pi-1/temp/config");
  CHECK(temp.at("unit_of_measurement") == "°C");
  CHECK(temp.at("device_class") == "temperature");
  CHECK(temp.at("state_class") == "measurement");
  CHECK(temp.at("expire_after") == 600);
  CHECK(temp.at("force_update") == true);
  CHECK(temp.at("icon") == "mdi:thermometer");
  // The running binary_sensor keeps its own device class.
  CHECK(d.at("homeassistant/binary_sensor/pi-1/temp/config").at("device_class") == "running");
  CHECK_FALSE(d.at("homeassistant/button/pi-1/temp/config").contains("unit_of_measurement"));

  // A binary_sensor reading `last`, beside the running one: two topics, two unique_ids.
  const auto& door = d.at("homeassistant/binary_sensor/pi-1/door_last/config");
  CHECK(door.at("state_topic") == "linewire/pi-1/cmd/door/last");
  CHECK(door.at("unique_id") == "linewire_pi-1_door_last");
  CHECK(door.at("device_class") == "door");
  CHECK(d.at("homeassistant/binary_sensor/pi-1/door/config").at("unique_id") ==
        "linewire_pi-1_door_running");

  // An on-demand command that names `switch`; a key a switch does not know is left out.
  const auto& pump = d.at("homeassistant/switch/pi-1/pump/config");
  CHECK(pump.at("command_topic") == "linewire/pi-1/cmd/pump/switch");
  CHECK(pump.at("icon") == "mdi:pump");
  CHECK_FALSE(pump.contains("unit_of_measurement"));
  CHECK(d.count("homeassistant/button/pi-1/pump/config") == 0);
}

TEST_CASE("HA cannot sign: controls only for commands that accept unsigned requests", "[ha]") {
  cfg::Config c;
  cfg::Command open;
  CHECK(linewire::agent::accepts_unsigned(c, open));
  cfg::Command keyed;
  keyed.keys = {"alice"};
  CHECK_FALSE(linewire::agent::accepts_unsigned(c, keyed));
  keyed.unsigned_ok = true;  // `keys` always wants a signature
  CHECK_FALSE(linewire::agent::accepts_unsigned(c, keyed));
  c.auth.require = true;
  CHECK_FALSE(linewire::agent::accepts_unsigned(c, open));
  open.unsigned_ok = true;
  CHECK(linewire::agent::accepts_unsigned(c, open));

  c.device = "pi-1";
  c.homeassistant.discovery = true;
  cfg::Command svc;
  svc.name = "svc";
  svc.mode = cfg::Mode::service;
  cfg::Command btn;
  btn.name = "btn";
  c.commands = {svc, btn};
  auto d = docs(c);
  // Signed-only: no switch, no button; the sensors stay (reading is not a request).
  CHECK(d.count("homeassistant/switch/pi-1/svc/config") == 0);
  CHECK(d.count("homeassistant/button/pi-1/btn/config") == 0);
  CHECK(d.count("homeassistant/sensor/pi-1/btn/config") == 1);
  CHECK(d.count("homeassistant/binary_sensor/pi-1/svc/config") == 1);
  c.commands[0].unsigned_ok = true;
  CHECK(docs(c).count("homeassistant/switch/pi-1/svc/config") == 1);
}

TEST_CASE("stale topics are those published before and not now", "[ha]") {
  auto now = ha::documents(load(kHeader + "commands: {a: {exec: [/bin/true]}}\n"), "1");
  std::set<std::string> before = {"homeassistant/button/pi-1/a/config",
                                  "homeassistant/button/pi-1/gone/config",
                                  "homeassistant/sensor/pi-1/gone/config"};
  CHECK(ha::stale(before, now) ==
        std::vector<std::string>{"homeassistant/button/pi-1/gone/config",
                                 "homeassistant/sensor/pi-1/gone/config"});
  CHECK(ha::stale(before, {}).size() == 3);
}

TEST_CASE("published topics survive a restart in the state_dir", "[ha]") {
  auto dir = std::filesystem::temp_directory_path() / ("lw-ha-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  CHECK(ha::load_published(dir.string()).empty());  // no file yet
  std::set<std::string> topics = {"homeassistant/button/x/a/config", "ha/sensor/x/b/config"};
  ha::save_published(dir.string(), topics);
  CHECK(ha::load_published(dir.string()) == topics);
  ha::save_published(dir.string(), {});
  CHECK(ha::load_published(dir.string()).empty());
  {
    std::ofstream bad(dir / "homeassistant.json");
    bad << "not json";
  }
  CHECK(ha::load_published(dir.string()).empty());
  CHECK(ha::load_published("").empty());
  std::filesystem::remove_all(dir);
}
