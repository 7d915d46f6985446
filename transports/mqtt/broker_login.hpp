// The agent's broker login from its config (broker.username, password_file, tls),
// shared by the agent's connection (mqtt_client.cpp) and the device-name check before
// it (name_claim.cpp). Includes Paho: only for those two files.
#pragma once

#include "config/config.hpp"
#include "protocol/broker_login.hpp"

namespace linewire::mqtt {

// Throws std::runtime_error when the password file cannot be read.
void apply_login(::mqtt::connect_options_builder& builder, const config::Broker& broker);

}  // namespace linewire::mqtt
