// Where the client connects and as whom (SPEC §10): the broker from --broker, else
// LINEWIRE_BROKER, else mqtt://localhost:1883; the password from a file or
// LINEWIRE_PASSWORD, never from the command line (it would show in `ps`).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace linewire::cli {

struct BrokerOptions {
  std::string url;  // normalized: scheme://host:port
  std::string username;
  std::optional<std::string> password;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool v5 = true;
  bool tls() const;
};

inline constexpr std::string_view kDefaultBroker = "mqtt://localhost:1883";

// The first of `flag` and `env` that is set and not empty, else the default.
std::string choose_broker(const std::string& flag, const char* env);

// `host`, `host:port` or `scheme://host[:port]` to `scheme://host:port` with the
// scheme's usual port, since Paho wants one. nullopt for a scheme Paho cannot use.
std::optional<std::string> normalize_url(std::string_view url);

}  // namespace linewire::cli
