// Home Assistant MQTT discovery (SPEC §9): which entities a config offers and their
// retained discovery documents. Pure functions of the config, so that what Home
// Assistant sees is unit-tested without a broker; mqtt_transport.cpp publishes them.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace linewire::mqtt::homeassistant {

struct Discovery {
  std::string topic;    // {ha_prefix}/{component}/{device}/{node}/config
  std::string payload;  // the JSON document
};

// A name as it may appear in a discovery topic: HA allows [A-Za-z0-9_-] there, and
// names (SPEC §1) may also hold `.`, which becomes `_`.
std::string topic_name(std::string_view name);

// `{component}.` + the unique_id in lower case, every character outside a-z0-9_ as `_`.
std::string default_entity_id(std::string_view component, std::string_view unique_id);

// Every discovery config of the config's commands, in command order; empty when
// discovery is off. `version` goes into the device block.
std::vector<Discovery> documents(const config::Config& config, const std::string& version);

// `{ha_prefix}/status`, where Home Assistant announces itself.
std::string status_topic(const config::Config& config);

// The discovery topics published before and not any more: they get an empty retained
// message, so Home Assistant removes the entity.
std::vector<std::string> stale(const std::set<std::string>& published,
                               const std::vector<Discovery>& current);

// What was published, remembered across restarts in `{state_dir}/homeassistant.json`,
// so that commands removed while the agent was down are cleared too. An empty dir
// remembers nothing; an unreadable file is an empty set (with a warning).
std::set<std::string> load_published(const std::string& state_dir);
void save_published(const std::string& state_dir, const std::set<std::string>& topics);

}  // namespace linewire::mqtt::homeassistant
