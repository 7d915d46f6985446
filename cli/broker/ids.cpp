// Random names the client makes up: see ids.hpp.
#include "cli/broker/ids.hpp"

#include <chrono>
#include <ctime>
#include <random>

namespace linewire::cli {

std::string random_hex(std::size_t n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n);
  while (out.size() < n) {
    auto bits = rng();
    for (int i = 0; i < 16 && out.size() < n; ++i, bits >>= 4) out.push_back(kHex[bits & 0xf]);
  }
  return out;
}

std::string new_run_id() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S-", &tm);
  return buf + random_hex(6);
}

}  // namespace linewire::cli
