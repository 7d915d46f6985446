#include "transports/mqtt/broker_login.hpp"

#include <spdlog/spdlog.h>

#include <fstream>
#include <stdexcept>

namespace linewire::mqtt {

bool tls_scheme(const std::string& url) {
  return url.rfind("mqtts://", 0) == 0 || url.rfind("ssl://", 0) == 0 ||
         url.rfind("wss://", 0) == 0;
}

namespace {

std::string read_password(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read broker.password_file " + path);
  std::string password;
  std::getline(in, password);
  if (!password.empty() && password.back() == '\r') password.pop_back();
  return password;
}

}  // namespace

void apply_login(::mqtt::connect_options_builder& builder, const config::Broker& broker) {
  if (!broker.username.empty()) builder.user_name(broker.username);
  if (!broker.password_file.empty()) builder.password(read_password(broker.password_file));
  if (!broker.tls && !tls_scheme(broker.url)) return;
  ::mqtt::ssl_options_builder ssl;
  ssl.enable_server_cert_auth(true).verify(true);
  if (broker.tls) {
    if (!broker.tls->ca_file.empty()) ssl.trust_store(broker.tls->ca_file);
    if (!broker.tls->cert_file.empty()) ssl.key_store(broker.tls->cert_file);
    if (!broker.tls->key_file.empty()) ssl.private_key(broker.tls->key_file);
  }
  ssl.error_handler([](const std::string& msg) { spdlog::warn("mqtt tls: {}", msg); });
  builder.ssl(ssl.finalize());
}

}  // namespace linewire::mqtt
