#include "agent/sd_notify.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace linewire::agent::sd {

std::optional<Address> notify_address(std::string_view value) {
  Address a;
  a.addr.sun_family = AF_UNIX;
  if (value.size() < 2 || (value[0] != '/' && value[0] != '@')) return std::nullopt;
  if (value.size() > sizeof(a.addr.sun_path) - (value[0] == '/' ? 1 : 0)) return std::nullopt;
  std::memcpy(a.addr.sun_path, value.data(), value.size());
  if (value[0] == '@') a.addr.sun_path[0] = '\0';
  // A path counts its NUL terminator; an abstract name is exactly its bytes.
  a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size() +
                                    (value[0] == '/' ? 1 : 0));
  return a;
}

namespace {
template <typename T>
std::optional<T> number(const char* text) {
  if (!text || !*text) return std::nullopt;
  T value{};
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}
}  // namespace

std::optional<std::chrono::microseconds> watchdog_interval(const char* usec, const char* pid,
                                                           pid_t self) {
  auto interval = number<std::uint64_t>(usec);
  if (!interval || *interval == 0) return std::nullopt;
  if (pid && *pid) {
    auto owner = number<long>(pid);
    if (!owner || *owner != self) return std::nullopt;
  }
  // Half the limit, but not so short that a loaded machine turns it into a busy loop.
  auto half = std::max<std::uint64_t>(*interval / 2, 1000);
  return std::chrono::microseconds(half);
}

std::string reloading_message(std::uint64_t monotonic) {
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic);
}

std::uint64_t monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

namespace {
std::string_view env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}
}  // namespace

Notifier::Notifier() : Notifier(env("NOTIFY_SOCKET")) {}

Notifier::Notifier(std::string_view socket_value) {
  auto a = notify_address(socket_value);
  if (!a) return;
  address_ = *a;
  // Close-on-exec: the programs linewired runs must not talk to systemd as if they
  // were the service.
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

Notifier::~Notifier() {
  if (fd_ >= 0) ::close(fd_);
}

bool Notifier::notify(std::string_view message) const {
  if (fd_ < 0) return false;
  ssize_t sent;
  do {
    sent = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&address_.addr), address_.length);
  } while (sent < 0 && errno == EINTR);
  return sent == static_cast<ssize_t>(message.size());
}

}  // namespace linewire::agent::sd
