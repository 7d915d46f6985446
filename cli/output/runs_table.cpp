// The `runs` table from the retained run states: see runs_table.hpp.
#include "cli/output/runs_table.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "cli/output/table.hpp"

namespace linewire::cli {

using nlohmann::json;
using std::chrono::milliseconds;

namespace {

std::string text(const json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<long long> integer(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<long long>();
}

bool digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int number(std::string_view s) {
  int n = 0;
  for (char c : s) n = n * 10 + (c - '0');
  return n;
}

std::string exit_cell(const json& doc) {
  const std::string state = text(doc, "state");
  if (state == "exited") {
    auto code = integer(doc, "exit_code");
    return code ? std::to_string(*code) : "?";
  }
  if (state == "killed") {
    std::string sig = text(doc, "signal");
    return sig.empty() ? "?" : sig;
  }
  return "-";
}

std::string started_cell(const json& doc) {
  // Seconds are enough for a table: 2026-11-22T23:00:00Z.
  std::string started = text(doc, "started");
  if (started.size() >= 19 && parse_timestamp(started)) return started.substr(0, 19) + "Z";
  return started.empty() ? "-" : started;
}

std::string duration_cell(const json& doc, SystemTime now) {
  if (auto ms = integer(doc, "duration_ms"); ms && *ms >= 0)
    return format_duration(milliseconds(*ms));
  if (text(doc, "state") != "running") return "-";
  auto started = parse_timestamp(text(doc, "started"));
  if (!started || *started > now) return "-";
  return format_duration(std::chrono::duration_cast<milliseconds>(now - *started));
}

std::string_view state_colour(const json& doc) {
  const std::string state = text(doc, "state");
  if (state == "running") return ansi::cyan;
  if (state == "exited")
    return integer(doc, "exit_code").value_or(1) == 0 ? ansi::green : ansi::red;
  if (state == "killed") return ansi::yellow;
  return ansi::red;
}

}  // namespace

std::optional<SystemTime> parse_timestamp(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.fff]Z
  if (t.size() < 20 || t.back() != 'Z' || t[4] != '-' || t[7] != '-' || t[10] != 'T' ||
      t[13] != ':' || t[16] != ':')
    return std::nullopt;
  std::string_view parts[] = {t.substr(0, 4),  t.substr(5, 2),  t.substr(8, 2),
                              t.substr(11, 2), t.substr(14, 2), t.substr(17, 2)};
  for (auto p : parts)
    if (!digits(p)) return std::nullopt;
  std::string_view fraction = t.substr(19, t.size() - 20);
  long long ms = 0;
  if (!fraction.empty()) {
    if (fraction.front() != '.' || !digits(fraction.substr(1))) return std::nullopt;
    std::string f(fraction.substr(1, 3));
    f.resize(3, '0');
    ms = number(f);
  }
  std::tm tm{};
  tm.tm_year = number(parts[0]) - 1900;
  tm.tm_mon = number(parts[1]) - 1;
  tm.tm_mday = number(parts[2]);
  tm.tm_hour = number(parts[3]);
  tm.tm_min = number(parts[4]);
  tm.tm_sec = number(parts[5]);
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60)
    return std::nullopt;
  std::time_t secs = timegm(&tm);
  return std::chrono::system_clock::from_time_t(secs) + milliseconds(ms);
}

std::string format_duration(milliseconds d) {
  long long ms = std::max<long long>(d.count(), 0);
  char buf[32];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lldms", ms);
  } else if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%lld.%llds", ms / 1000, ms % 1000 / 100);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", ms / 60'000, ms % 60'000 / 1000);
  } else if (ms < 86'400'000) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", ms / 3'600'000, ms % 3'600'000 / 60'000);
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", ms / 86'400'000, ms % 86'400'000 / 3'600'000);
  }
  return buf;
}

std::vector<json> newest_first(std::vector<json> states) {
  std::erase_if(states, [](const json& d) {
    return !d.is_object() || text(d, "run").empty() || text(d, "state").empty();
  });
  std::sort(states.begin(), states.end(), [](const json& a, const json& b) {
    auto sa = text(a, "started"), sb = text(b, "started");
    if (sa != sb) return sa > sb;  // one format throughout, so text order is time order
    return text(a, "run") > text(b, "run");
  });
  return states;
}

std::string format_runs(const std::vector<json>& states, SystemTime now, bool colour) {
  std::vector<Row> rows;
  for (const auto& doc : states) {
    rows.push_back({{text(doc, "run"), {}},
                    {text(doc, "command"), {}},
                    {text(doc, "state"), state_colour(doc)},
                    {exit_cell(doc), {}},
                    {started_cell(doc), {}},
                    {duration_cell(doc, now), {}}});
  }
  return format_table({"RUN", "COMMAND", "STATE", "EXIT", "STARTED", "DURATION"}, rows, colour);
}

}  // namespace linewire::cli
