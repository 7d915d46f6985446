#include "transports/mqtt/broker_login.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace linewire::mqtt {

void apply_login(::mqtt::connect_options_builder& builder, const config::Broker& broker) {
  protocol::BrokerLogin login;
  login.url = broker.url;
  login.username = broker.username;
  if (!broker.password_file.empty()) {
    try {
      login.password = protocol::read_password_file(broker.password_file);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(std::string("broker.password_file: ") + e.what());
    }
  }
  if (broker.tls) {
    login.tls = true;
    login.ca_file = broker.tls->ca_file;
    login.cert_file = broker.tls->cert_file;
    login.key_file = broker.tls->key_file;
  }
  protocol::apply_login(builder, login,
                        [](const std::string& msg) { spdlog::warn("mqtt tls: {}", msg); });
}

}  // namespace linewire::mqtt
