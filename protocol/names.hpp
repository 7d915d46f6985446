// Names and topics (SPEC §1, §2): the one place topic strings are built and parsed,
// so that no request can ever reach a topic it should not.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace linewire::protocol {

// ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ — also excludes `/ + #`, NUL and a leading dot.
bool valid_name(std::string_view name);

// A signal name of SPEC §2 (`TERM`, `SIGTERM`, ...) to its number; nullopt otherwise.
std::optional<int> parse_signal(std::string_view name);
// The short name (`TERM`) of a signal number, or its number as text.
std::string signal_name(int sig);

enum class RequestKind { start, stop, switch_, in, eof, signal, replay, group_start };

struct RequestTopic {
  RequestKind kind;
  std::string
      name;  // the command (start/stop/switch/group_start) or the run (in/eof/signal/replay)
  std::string group;  // group_start only
};

class Topics {
 public:
  Topics(std::string prefix, std::string device);

  const std::string& prefix() const { return prefix_; }
  const std::string& device() const { return device_; }

  std::string status() const { return base_ + "status"; }
  std::string info() const { return base_ + "info"; }
  std::string errors() const { return base_ + "errors"; }
  std::string command(std::string_view command, std::string_view leaf) const;
  std::string run(std::string_view run, std::string_view leaf) const;
  std::string group_start(std::string_view group, std::string_view command) const;

  // Subscription filters for every request topic of this device (§2), and the group
  // start filter for one group.
  std::string device_filter(std::string_view kind, std::string_view leaf) const;
  std::string group_filter(std::string_view group) const;

  // Parses a topic the agent received. nullopt when it is not one of the request
  // topics; the name in it is NOT validated here (the caller refuses bad names with
  // bad_request so the sender learns why).
  std::optional<RequestTopic> parse(std::string_view topic) const;

 private:
  std::string prefix_;
  std::string device_;
  std::string base_;  // "{prefix}/{device}/"
};

}  // namespace linewire::protocol
