// Durations and sizes of SPEC §7 (config/units.hpp).
#include <catch2/catch.hpp>
#include <limits>

#include "config/units.hpp"

using linewire::config::Duration;
using linewire::config::format_duration;
using linewire::config::format_size;
using linewire::config::parse_duration;
using linewire::config::parse_size;
using namespace std::chrono_literals;

TEST_CASE("durations with a unit", "[units]") {
  CHECK(parse_duration("500ms") == Duration(500));
  CHECK(parse_duration("30s") == Duration(30s));
  CHECK(parse_duration("5m") == Duration(5min));
  CHECK(parse_duration("1h") == Duration(1h));
  CHECK(parse_duration("1d") == Duration(24h));
  CHECK(parse_duration("0s") == Duration(0));
  CHECK(parse_duration("0ms") == Duration(0));
}

TEST_CASE("a bare number is seconds", "[units]") {
  CHECK(parse_duration("30") == Duration(30s));
  CHECK(parse_duration("0") == Duration(0));
  CHECK(parse_duration("1.5") == Duration(1500));
  CHECK(parse_duration("007") == Duration(7s));
}

TEST_CASE("decimal durations round down to milliseconds", "[units]") {
  CHECK(parse_duration("0.5s") == Duration(500));
  CHECK(parse_duration("0.1s") == Duration(100));  // exact, not 99 as with doubles
  CHECK(parse_duration("1.5m") == Duration(90s));
  CHECK(parse_duration("0.25h") == Duration(15min));
  CHECK(parse_duration("1.9ms") == Duration(1));
  CHECK(parse_duration("0.0001s") == Duration(0));
  CHECK(parse_duration("2.999999999999999999999999s") == Duration(2999));
}

TEST_CASE("sums of durations", "[units]") {
  CHECK(parse_duration("1h30m") == Duration(90min));
  CHECK(parse_duration("1m30s") == Duration(90s));
  CHECK(parse_duration("1s500ms") == Duration(1500));
  CHECK(parse_duration("1d1h1m1s1ms") == Duration(90'061'001));
}

TEST_CASE("durations that are not", "[units]") {
  for (const char* text : {"",    " ",   "-1s",  "-1",  "+1s", "s",     "ms",   "1x",  "1 s",
                           " 1s", "1s ", "1S",   "1.s", ".5s", "1..5s", "1h30", "30 ", "1e3",
                           "1,5", "abc", "0x10", "1s-", "5M",  "5sec",  "nan",  "inf"}) {
    INFO("'" << text << "'");
    CHECK_FALSE(parse_duration(text));
  }
}

TEST_CASE("durations that overflow", "[units]") {
  constexpr auto max = std::numeric_limits<Duration::rep>::max();
  CHECK(parse_duration(std::to_string(max) + "ms") == Duration(max));
  CHECK_FALSE(parse_duration(std::to_string(max) + "s"));
  CHECK_FALSE(parse_duration("9223372036854775808ms"));  // max + 1
  CHECK_FALSE(parse_duration("99999999999999999999999999ms"));
  CHECK_FALSE(parse_duration("200000000000000d"));
  CHECK_FALSE(parse_duration("9223372036854775807ms1ms"));  // the sum overflows
}

TEST_CASE("sizes", "[units]") {
  CHECK(parse_size("0") == 0u);
  CHECK(parse_size("65536") == 65536u);
  CHECK(parse_size("100B") == 100u);
  CHECK(parse_size("64KiB") == 65536u);
  CHECK(parse_size("8MiB") == 8u * 1024 * 1024);
  CHECK(parse_size("2GiB") == 2ull * 1024 * 1024 * 1024);
  CHECK(parse_size("1TiB") == 1ull << 40);
  CHECK(parse_size("64KB") == 64000u);
  CHECK(parse_size("64kB") == 64000u);
  CHECK(parse_size("3MB") == 3'000'000u);
  CHECK(parse_size("1GB") == 1'000'000'000u);
  CHECK(parse_size("1TB") == 1'000'000'000'000u);
}

TEST_CASE("decimal sizes need a unit and round down to bytes", "[units]") {
  CHECK(parse_size("1.5KiB") == 1536u);
  CHECK(parse_size("0.5MiB") == 512u * 1024);
  CHECK(parse_size("0.1KiB") == 102u);
  CHECK_FALSE(parse_size("1.5"));
  CHECK_FALSE(parse_size("1.5B"));
}

TEST_CASE("sizes that are not", "[units]") {
  for (const char* text :
       {"",    "-1",   "-1KiB", "+1",    "KiB",   "1 KiB", " 1",  "1 ",  "1kib", "1K",
        "1Ki", "1MIB", "1b",    "1KiBs", "1.KiB", ".5KiB", "abc", "1e3", "0x10", "1s"}) {
    INFO("'" << text << "'");
    CHECK_FALSE(parse_size(text));
  }
}

TEST_CASE("sizes that overflow", "[units]") {
  constexpr auto max = std::numeric_limits<std::size_t>::max();
  CHECK(parse_size(std::to_string(max)) == max);
  CHECK_FALSE(parse_size("18446744073709551616"));  // max + 1
  CHECK_FALSE(parse_size("16777216TiB"));           // 2^64
  CHECK(parse_size("16777215TiB") == std::size_t{16777215} << 40);
  CHECK_FALSE(parse_size("99999999999999999999999KiB"));
}

TEST_CASE("formatted durations and sizes read back the same", "[units]") {
  CHECK(format_duration(Duration(0)) == "0s");
  CHECK(format_duration(Duration(500)) == "500ms");
  CHECK(format_duration(Duration(30s)) == "30s");
  CHECK(format_duration(Duration(90min)) == "1h30m");
  CHECK(format_duration(Duration(24h)) == "1d");
  CHECK(format_duration(Duration(-1500)) == "-1s500ms");
  for (const auto d : {Duration(1), Duration(1500), Duration(90'061'001), Duration(36h),
                       Duration(std::numeric_limits<Duration::rep>::max())})
    CHECK(parse_duration(format_duration(d)) == d);

  CHECK(format_size(0) == "0B");
  CHECK(format_size(100) == "100B");
  CHECK(format_size(65536) == "64KiB");
  CHECK(format_size(8 * 1024 * 1024) == "8MiB");
  CHECK(format_size(1536) == "1536B");
  for (const std::size_t s : {std::size_t{0}, std::size_t{1}, std::size_t{1} << 40,
                              std::numeric_limits<std::size_t>::max()})
    CHECK(parse_size(format_size(s)) == s);
}
