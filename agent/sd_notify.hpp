// systemd's service notification protocol (sd_notify(3)), written out rather than
// linking libsystemd: one datagram per message to the unix socket named by
// NOTIFY_SOCKET (a path, or an abstract name written with a leading '@'), and the
// watchdog interval from WATCHDOG_USEC/WATCHDOG_PID. Without NOTIFY_SOCKET every
// call is a no-op, so linewired behaves the same outside systemd.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace linewire::agent::sd {

struct Address {
  sockaddr_un addr{};
  socklen_t length = 0;  // what sendto() gets: an abstract name has no terminating NUL
};

// NOTIFY_SOCKET's value as a socket address; nullopt when it is empty, too long for
// sun_path, or neither an absolute path nor '@'-abstract.
std::optional<Address> notify_address(std::string_view value);

// How often to send WATCHDOG=1: half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
// advises. nullopt when the watchdog is off, the value is not a positive number, or
// WATCHDOG_PID names another process (the variables were inherited, not meant for us).
std::optional<std::chrono::microseconds> watchdog_interval(const char* usec, const char* pid,
                                                           pid_t self);

// RELOADING=1 with the CLOCK_MONOTONIC time systemd (253+, Type=notify-reload) wants
// beside it; older systemd ignores the extra line.
std::string reloading_message(std::uint64_t monotonic_usec);

class Notifier {
 public:
  // From the environment: NOTIFY_SOCKET.
  Notifier();
  explicit Notifier(std::string_view socket_value);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  bool enabled() const { return fd_ >= 0; }
  // Sends one message ("READY=1", "WATCHDOG=1", ...); false if it could not be sent.
  bool notify(std::string_view message) const;

 private:
  int fd_ = -1;
  Address address_;
};

// CLOCK_MONOTONIC now, in microseconds.
std::uint64_t monotonic_usec();

}  // namespace linewire::agent::sd
