// The `broker` section: where and how the agent connects.
#include <cstdint>

#include "config/checks.hpp"
#include "config/sections.hpp"
#include "config/units.hpp"

namespace linewire::config {
namespace {

using std::chrono::seconds;

// MQTT carries the keep alive in 16 bits and the session expiry in 32, both seconds.
constexpr Duration kMaxKeepalive = seconds(65535);
constexpr Duration kMaxSessionExpiry = seconds(UINT32_MAX);

std::optional<Protocol> read_protocol(Reader& r, const Entry& e) {
  // `protocol: 5` is an integer in YAML and `protocol: 3.1.1` a string: accept the
  // spellings people write, quoted or not.
  if (e.value.IsScalar()) {
    const auto& v = e.value.Scalar();
    if (v == "5" || v == "5.0") return Protocol::v5;
    if (v == "3.1.1" || v == "311") return Protocol::v311;
    if (v == "auto") return Protocol::automatic;
  }
  r.problem(e, "expected 5, 3.1.1 or auto, got " +
                   (e.value.IsScalar() ? "'" + e.value.Scalar() + "'" : std::string("nothing")));
  return std::nullopt;
}

// cert_file and key_file are one credential: either alone is a half-done edit.
void check_pair(Reader& r, const Entry& e, const std::string& cert, const std::string& key) {
  if (cert.empty() != key.empty())
    r.problem_at_key(e, cert.empty() ? "key_file is set but cert_file is not; set both or neither"
                                     : "cert_file is set but key_file is not; set both or neither");
}

void read_tls(Reader& r, const Entry& e, Tls& tls) {
  r.mapping(e, {
                   {"ca_file", [&](const Entry& c) { assign(tls.ca_file, r.path(c)); }},
                   {"cert_file", [&](const Entry& c) { assign(tls.cert_file, r.path(c)); }},
                   {"key_file", [&](const Entry& c) { assign(tls.key_file, r.path(c)); }},
               });
  check_pair(r, e, tls.cert_file, tls.key_file);
}

void read_reconnect(Reader& r, const Entry& e, Broker& b) {
  std::optional<Entry> min_entry;
  std::optional<Entry> max_entry;
  r.mapping(e, {
                   {"min",
                    [&](const Entry& c) {
                      min_entry = c;
                      assign(b.reconnect_min, r.duration(c, Duration(1)));
                    }},
                   {"max",
                    [&](const Entry& c) {
                      max_entry = c;
                      assign(b.reconnect_max, r.duration(c, Duration(1)));
                    }},
               });
  if (b.reconnect_min <= b.reconnect_max) return;
  if (max_entry)
    r.problem(*max_entry, "is less than min (" + format_duration(b.reconnect_min) + ")");
  else if (min_entry)
    r.problem(*min_entry, "is more than max (" + format_duration(b.reconnect_max) + ")");
}

}  // namespace

void read_broker(Reader& r, const Entry& e, Broker& b) {
  r.mapping(
      e,
      {
          {"url", [&](const Entry& c) { assign(b.url, checked_text(r, c, check_broker_url)); }},
          {"protocol", [&](const Entry& c) { assign(b.protocol, read_protocol(r, c)); }},
          {"username", [&](const Entry& c) { assign(b.username, r.text(c)); }},
          {"password_file", [&](const Entry& c) { assign(b.password_file, r.path(c)); }},
          {"tls",
           [&](const Entry& c) {
             b.tls.emplace();
             read_tls(r, c, *b.tls);
           }},
          {"keepalive",
           [&](const Entry& c) { assign(b.keepalive, r.duration(c, seconds(1), kMaxKeepalive)); }},
          {"session_expiry",
           [&](const Entry& c) {
             assign(b.session_expiry, r.duration(c, seconds(0), kMaxSessionExpiry));
           }},
          {"client_id", [&](const Entry& c) { assign(b.client_id, r.text(c)); }},
          {"reconnect", [&](const Entry& c) { read_reconnect(r, c, b); }},
      });
}

}  // namespace linewire::config
