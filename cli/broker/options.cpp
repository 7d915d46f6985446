// The broker's address and credentials from flags and the environment: see options.hpp.
#include "cli/broker/options.hpp"

#include <array>
#include <utility>

#include "protocol/broker_login.hpp"

namespace linewire::cli {

namespace {

// The schemes Paho C understands, with their usual ports.
constexpr std::array<std::pair<std::string_view, std::string_view>, 6> kSchemes{{
    {"mqtt", "1883"},
    {"tcp", "1883"},
    {"mqtts", "8883"},
    {"ssl", "8883"},
    {"ws", "80"},
    {"wss", "443"},
}};

}  // namespace

bool BrokerOptions::tls() const {
  return protocol::tls_scheme(url) || !ca_file.empty() || !cert_file.empty();
}

std::string choose_broker(const std::string& flag, const char* env) {
  if (!flag.empty()) return flag;
  if (env && *env) return env;
  return std::string(kDefaultBroker);
}

std::optional<std::string> normalize_url(std::string_view url) {
  std::string_view scheme = "mqtt";
  std::string_view rest = url;
  if (auto sep = url.find("://"); sep != std::string_view::npos) {
    scheme = url.substr(0, sep);
    rest = url.substr(sep + 3);
  }
  std::string_view port;
  bool known = false;
  for (const auto& [name, default_port] : kSchemes) {
    if (name == scheme) {
      known = true;
      port = default_port;
    }
  }
  if (!known || rest.empty()) return std::nullopt;
  // A path (ws://host:port/mqtt) stays; the port goes before it.
  std::string_view path;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash);
    rest = rest.substr(0, slash);
  }
  if (rest.empty()) return std::nullopt;
  std::size_t colon = std::string_view::npos;
  if (rest.front() == '[') {  // [::1]:1883
    auto close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return std::nullopt;
      colon = close + 1;
    }
  } else {
    colon = rest.find(':');
  }
  const bool has_port = colon != std::string_view::npos;
  if (has_port) {
    std::string_view digits = rest.substr(colon + 1);
    if (digits.empty() || digits.size() > 5 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos)
      return std::nullopt;
  }
  if (colon == 0) return std::nullopt;  // no host
  std::string out;
  out.append(scheme).append("://").append(rest);
  if (!has_port) out.append(":").append(port);
  out.append(path);
  return out;
}

}  // namespace linewire::cli
