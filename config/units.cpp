// Durations and sizes: exact integer arithmetic, so "0.1s" is 100ms and never 99.
#include "config/units.hpp"

#include <cstdint>
#include <iterator>
#include <limits>

namespace linewire::config {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

struct Unit {
  std::string_view name;
  std::uint64_t scale;
};

constexpr Unit kDurationUnits[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000},
};

constexpr Unit kSizeUnits[] = {
    {"B", 1},
    {"KiB", std::uint64_t{1} << 10},
    {"MiB", std::uint64_t{1} << 20},
    {"GiB", std::uint64_t{1} << 30},
    {"TiB", std::uint64_t{1} << 40},
    {"kB", 1'000},
    {"KB", 1'000},
    {"MB", 1'000'000},
    {"GB", 1'000'000'000},
    {"TB", 1'000'000'000'000},
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// "12.5": the whole part, and the fraction's digits as written.
struct Number {
  std::uint64_t whole = 0;
  std::string_view fraction;
};

// Takes a number off the front of `text`: digits, then optionally '.' and digits.
std::optional<Number> take_number(std::string_view& text) {
  Number n;
  std::size_t i = 0;
  for (; i < text.size() && is_digit(text[i]); ++i) {
    const auto digit = static_cast<std::uint64_t>(text[i] - '0');
    if (n.whole > (kMax - digit) / 10) return std::nullopt;
    n.whole = n.whole * 10 + digit;
  }
  if (i == 0) return std::nullopt;
  if (i < text.size() && text[i] == '.') {
    const std::size_t start = ++i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i == start) return std::nullopt;  // "5." is more likely a slip than 5
    n.fraction = text.substr(start, i - start);
  }
  text.remove_prefix(i);
  return n;
}

std::string_view take_unit(std::string_view& text) {
  std::size_t i = 0;
  while (i < text.size() && is_letter(text[i])) ++i;
  const auto unit = text.substr(0, i);
  text.remove_prefix(i);
  return unit;
}

template <std::size_t N>
const Unit* find_unit(const Unit (&units)[N], std::string_view name) {
  for (const auto& u : units)
    if (u.name == name) return &u;
  return nullptr;
}

// n × scale rounded down, or nullopt past `limit`.
std::optional<std::uint64_t> scaled(const Number& n, std::uint64_t scale, std::uint64_t limit) {
  if (n.whole > limit / scale) return std::nullopt;
  const std::uint64_t whole = n.whole * scale;
  // The fraction as num/den; digits so far past the scale's precision that they
  // cannot change the result are dropped, which keeps num × scale within 64 bits.
  std::uint64_t num = 0;
  std::uint64_t den = 1;
  for (const char c : n.fraction) {
    if (den > kMax / 10 / scale) break;
    num = num * 10 + static_cast<std::uint64_t>(c - '0');
    den *= 10;
  }
  const std::uint64_t part = num * scale / den;
  if (part > limit - whole) return std::nullopt;
  return whole + part;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  constexpr auto limit = static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max());
  if (text.empty()) return std::nullopt;
  std::uint64_t total = 0;
  bool first = true;
  while (!text.empty()) {
    const auto number = take_number(text);
    if (!number) return std::nullopt;
    const auto unit_name = take_unit(text);
    const Unit* unit = nullptr;
    if (unit_name.empty()) {
      // Only a lone number means seconds: in "1h30" the 30 would be a guess.
      if (!first || !text.empty()) return std::nullopt;
      unit = find_unit(kDurationUnits, "s");
    } else {
      unit = find_unit(kDurationUnits, unit_name);
      if (unit == nullptr) return std::nullopt;
    }
    const auto part = scaled(*number, unit->scale, limit - total);
    if (!part) return std::nullopt;
    total += *part;
    first = false;
  }
  return Duration{static_cast<Duration::rep>(total)};
}

std::optional<std::size_t> parse_size(std::string_view text) {
  constexpr auto limit = static_cast<std::uint64_t>(std::numeric_limits<std::size_t>::max());
  const auto number = take_number(text);
  if (!number) return std::nullopt;
  const auto unit_name = take_unit(text);
  if (!text.empty()) return std::nullopt;
  const Unit* unit = unit_name.empty() ? &kSizeUnits[0] : find_unit(kSizeUnits, unit_name);
  if (unit == nullptr) return std::nullopt;
  // Half a byte is meaningless; half a KiB is 512 bytes.
  if (unit->scale == 1 && !number->fraction.empty()) return std::nullopt;
  const auto bytes = scaled(*number, unit->scale, limit);
  if (!bytes) return std::nullopt;
  return static_cast<std::size_t>(*bytes);
}

std::string format_duration(Duration d) {
  if (d.count() == 0) return "0s";
  std::string out;
  auto ms = static_cast<std::uint64_t>(d.count() < 0 ? -(d.count() + 1) : d.count());
  if (d.count() < 0) {
    out = "-";
    ++ms;  // -(min+1)+1 avoids overflowing on the most negative value
  }
  // Largest unit first, each at most once: 90061001ms is "1d1h1m1s1ms".
  for (auto it = std::rbegin(kDurationUnits); it != std::rend(kDurationUnits); ++it) {
    if (ms >= it->scale) {
      out += std::to_string(ms / it->scale);
      out += it->name;
      ms %= it->scale;
    }
  }
  return out;
}

std::string format_size(std::size_t bytes) {
  // The largest binary unit that divides it exactly, so the text reads back the same.
  for (int i = 4; i >= 1; --i) {
    const auto& u = kSizeUnits[i];
    if (bytes >= u.scale && bytes % u.scale == 0)
      return std::to_string(bytes / u.scale) + std::string(u.name);
  }
  return std::to_string(bytes) + "B";
}

}  // namespace linewire::config
