// How agent and client log in to a broker: user name, password, TLS (docs/protocol.md
// §7 `broker`, §10 flags). One place for the password file's format and for the TLS
// settings, so that the two sides cannot drift apart. Includes Paho's options header:
// only for the files that build a connection.
#pragma once

#include <mqtt/connect_options.h>

#include <functional>
#include <optional>
#include <string>

namespace linewire::protocol {

struct BrokerLogin {
  std::string url;
  std::string username;
  std::optional<std::string> password;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool tls = false;  // a tls section or flag; a TLS URL scheme is TLS without it
};

// mqtts://, ssl:// and wss:// URLs are TLS even without TLS settings.
bool tls_scheme(const std::string& url);

// The password is the first line of the file, without its line ending (so that
// `echo secret > file` works). Throws std::runtime_error naming the file.
std::string read_password_file(const std::string& path);

// Sets the user name, the password and, for TLS, the CA, client certificate and key,
// with the server's certificate verified. `tls_error` hears Paho's TLS error messages.
void apply_login(::mqtt::connect_options_builder& builder, const BrokerLogin& login,
                 std::function<void(const std::string&)> tls_error = {});

}  // namespace linewire::protocol
