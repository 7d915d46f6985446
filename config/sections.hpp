// One reader per section of the file (SPEC §7), each filling its part of Config from an
// Entry and reporting through the Reader. Internal to config/.
#pragma once

#include "config/config.hpp"
#include "config/reader.hpp"

namespace linewire::config {

void read_broker(Reader& r, const Entry& e, Broker& broker);
void read_limits(Reader& r, const Entry& e, Limits& limits);
void read_commands(Reader& r, const Entry& e, Config& config);
void read_websocket(Reader& r, const Entry& e, WebSocket& websocket);
void read_homeassistant(Reader& r, const Entry& e, HomeAssistant& homeassistant);
void read_auth(Reader& r, const Entry& e, Auth& auth);
// A command's `homeassistant:` (homeassistant.cpp).
void read_entity(Reader& r, const Entry& e, HomeAssistantCommand& ha);
// Commands whose names meet in one discovery topic (`b.up`, `b_up`), when discovery is on.
void check_discovery_names(Reader& r, const std::vector<Entry>& commands, const Config& config);

// A section's value with a check of its own (prefix, URL, ...): the text, or nullopt
// after reporting why it is wrong.
std::optional<std::string> checked_text(Reader& r, const Entry& e,
                                        std::optional<std::string> (*check)(std::string_view));

}  // namespace linewire::config
