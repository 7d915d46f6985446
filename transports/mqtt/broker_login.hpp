// How linewired logs in to its broker (user name, password file, TLS), shared by the
// agent's connection (mqtt_client.cpp) and the device-name check before it
// (name_claim.cpp). Includes Paho: only for those two files.
#pragma once

#include <mqtt/connect_options.h>

#include <string>

#include "config/config.hpp"

namespace linewire::mqtt {

// mqtts://, ssl:// and wss:// URLs are TLS even without a `broker.tls` section.
bool tls_scheme(const std::string& url);

// Sets the user name, the password (first line of broker.password_file) and, for TLS, the
// CA, client certificate and key with server verification on. Throws std::runtime_error
// when the password file cannot be read.
void apply_login(::mqtt::connect_options_builder& builder, const config::Broker& broker);

}  // namespace linewire::mqtt
