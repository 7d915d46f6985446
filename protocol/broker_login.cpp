#include "protocol/broker_login.hpp"

#include <fstream>
#include <stdexcept>

namespace linewire::protocol {

bool tls_scheme(const std::string& url) {
  return url.rfind("mqtts://", 0) == 0 || url.rfind("ssl://", 0) == 0 ||
         url.rfind("wss://", 0) == 0;
}

std::string read_password_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read the password file " + path);
  std::string password;
  std::getline(in, password);
  if (!password.empty() && password.back() == '\r') password.pop_back();
  return password;
}

void apply_login(::mqtt::connect_options_builder& builder, const BrokerLogin& login,
                 std::function<void(const std::string&)> tls_error) {
  if (!login.username.empty()) builder.user_name(login.username);
  if (login.password) builder.password(*login.password);
  if (!login.tls && !tls_scheme(login.url)) return;
  ::mqtt::ssl_options_builder ssl;
  ssl.enable_server_cert_auth(true).verify(true);
  if (!login.ca_file.empty()) ssl.trust_store(login.ca_file);
  if (!login.cert_file.empty()) ssl.key_store(login.cert_file);
  if (!login.key_file.empty()) ssl.private_key(login.key_file);
  if (tls_error) ssl.error_handler(std::move(tls_error));
  builder.ssl(ssl.finalize());
}

}  // namespace linewire::protocol
