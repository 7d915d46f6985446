#include "protocol/connack.hpp"

namespace linewire::protocol {

std::optional<ConnectRefusal> connack_refusal(int code, Side side) {
  const std::string credentials = side == Side::agent
                                      ? "check broker.username and broker.password_file"
                                      : "check --username and --password-file";
  const std::string version =
      side == Side::agent ? "set broker.protocol to 3.1.1 or auto" : "use --protocol 3.1.1";
  ConnectRefusal r;
  switch (code) {
    case 1:     // MQTT 3.1.1: unacceptable protocol version
    case 0x84:  // MQTT 5: unsupported protocol version
      r.reason = "unsupported protocol version";
      r.hint = "the broker does not speak this MQTT version: " + version;
      r.unsupported_version = true;
      return r;
    case 2:
    case 0x85:
      r.reason = "client identifier not valid";
      r.hint = side == Side::agent ? "set broker.client_id to an id the broker accepts" : "";
      return r;
    case 3:
    case 0x88:
      r.reason = "server unavailable";
      return r;
    case 4:
    case 0x86:
      r.reason = "bad user name or password";
      r.hint = credentials;
      return r;
    case 5:
    case 0x87:
      r.reason = "not authorized";
      r.hint =
          "the broker wants credentials or an ACL entry for this client, as mosquitto with "
          "allow_anonymous false does: " +
          credentials;
      return r;
    case 0x80:
      r.reason = "unspecified error";
      return r;
    case 0x81:
      r.reason = "malformed packet";
      return r;
    case 0x82:
      r.reason = "protocol error";
      return r;
    case 0x83:
      r.reason = "implementation specific error";
      r.hint = "the broker's log says why";
      return r;
    case 0x89:
      r.reason = "server busy";
      return r;
    case 0x8A:
      r.reason = "banned";
      r.hint = "the broker's administrator banned this client";
      return r;
    case 0x8C:
      r.reason = "bad authentication method";
      return r;
    case 0x90:
      r.reason = "topic name invalid";
      r.hint =
          "the broker refuses the last will's topic {prefix}/{device}/status: check prefix, "
          "device and the broker's ACL";
      return r;
    case 0x95:
      r.reason = "packet too large";
      return r;
    case 0x97:
      r.reason = "quota exceeded";
      return r;
    case 0x99:
      r.reason = "payload format invalid";
      return r;
    case 0x9A:
      r.reason = "retain not supported";
      r.hint =
          "linewire needs retained messages (status, info, run states): enable them on the "
          "broker";
      return r;
    case 0x9B:
      r.reason = "QoS not supported";
      r.hint = "the last will is QoS 1: allow QoS 1 on the broker";
      return r;
    case 0x9C:
    case 0x9D:
      r.reason = code == 0x9C ? "use another server" : "server moved";
      r.hint = "point broker.url at the broker's new address";
      return r;
    case 0x9F:
      r.reason = "connection rate exceeded";
      return r;
    default:
      return std::nullopt;
  }
}

std::string describe(const ConnectRefusal& r) {
  std::string out = "refused by the broker: " + r.reason;
  if (!r.hint.empty()) out += " (" + r.hint + ")";
  return out;
}

}  // namespace linewire::protocol
