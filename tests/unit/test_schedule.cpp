// `every` (SPEC §5, agent/schedule.hpp) and the configuration Home Assistant depends on
// (SPEC §9, config/homeassistant.cpp): the schedule's timing on a real io_context, and
// --check-config's refusals with their line and column.
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "agent/schedule.hpp"
#include "config/checks.hpp"
#include "config/load.hpp"

namespace cfg = linewire::config;
using linewire::agent::Schedule;
using linewire::agent::tick_offset;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

cfg::Config with_every(std::map<std::string, cfg::Duration> every) {
  cfg::Config c;
  for (const auto& [name, period] : every) {
    cfg::Command command;
    command.name = name;
    command.every = period;
    c.commands.push_back(command);
  }
  return c;
}

// Runs the loop for `d` of real time: the schedule's timers are real steady_timers.
void run_for(boost::asio::io_context& io, Clock::duration d) {
  io.restart();
  io.run_for(d);
}

// The problems of a config as "LINE:COLUMN: MESSAGE".
std::vector<std::string> problems(const std::string& yaml) {
  auto r = cfg::load_string(yaml, "/etc/linewire/linewire.yaml", "host");
  std::vector<std::string> out;
  for (const auto& p : r.problems)
    out.push_back(std::to_string(p.line) + ":" + std::to_string(p.column) + ": " + p.message);
  return out;
}

bool has(const std::vector<std::string>& all, const std::string& place, const std::string& text) {
  for (const auto& p : all)
    if (p.starts_with(place + ": ") && p.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("tick n is due n periods after the base plus at most a tenth of one", "[schedule]") {
  CHECK(tick_offset(60s, 1, 0.0) == 60s);
  CHECK(tick_offset(60s, 1, 0.999) < 66s);
  CHECK(tick_offset(60s, 1, 0.5) == 63s);
  // No drift: tick 60 of a minute's schedule is due at an hour, whatever came before.
  CHECK(tick_offset(60s, 60, 0.0) == 1h);
  CHECK(tick_offset(60s, 60, 0.999) < 1h + 6s);
}

TEST_CASE("a schedule ticks one period after it starts, then every period", "[schedule]") {
  boost::asio::io_context io;
  std::map<std::string, std::vector<Clock::time_point>> ticks;
  Schedule s(io, [&](const std::string& name) { ticks[name].push_back(Clock::now()); });
  const auto start = Clock::now();
  s.apply(with_every({{"a", 100ms}}));
  run_for(io, 1150ms);  // ticks 1 to 11 are due by then, 12 is not
  const auto& a = ticks["a"];
  REQUIRE(a.size() >= 9);
  CHECK(a.size() <= 11);
  CHECK(a.front() - start >= 100ms);
  for (std::size_t i = 0; i < a.size(); ++i) {
    // Each due at (i+1) periods plus up to 10 ms of jitter; a late wake-up (a loaded
    // machine, a sanitizer) delays that tick only: the bound does not grow with i.
    const auto at = a[i] - start;
    CHECK(at >= 100ms * static_cast<int>(i + 1));
    CHECK(at < 100ms * static_cast<int>(i + 1) + 10ms + 150ms);
  }

  SECTION("a changed period starts over, an unchanged one keeps its phase, a removed one stops") {
    ticks.clear();
    const auto reload = Clock::now();
    s.apply(with_every({{"a", 300ms}, {"b", 100ms}}));
    run_for(io, 750ms);
    REQUIRE(ticks["a"].size() == 2);
    CHECK(ticks["a"][0] - reload >= 300ms);
    CHECK(ticks["b"].size() >= 5);
    s.apply(with_every({{"b", 100ms}}));
    ticks.clear();
    run_for(io, 450ms);
    CHECK(ticks["a"].empty());
    CHECK(ticks["b"].size() >= 3);
    s.apply(cfg::Config{});
    ticks.clear();
    run_for(io, 250ms);
    CHECK(ticks.empty());
  }
  SECTION("stop ends every tick") {
    ticks.clear();
    s.stop();
    run_for(io, 250ms);
    CHECK(ticks.empty());
  }
}

TEST_CASE("every: a duration of at least 1 s, for on-demand commands", "[schedule][config]") {
  CHECK(problems("commands: {t: {exec: [/bin/true], every: 1m}}\n").empty());
  CHECK(problems("commands: {t: {exec: [/bin/true], every: 1s}}\n").empty());
  const auto all = problems(R"(commands:
  zero: {exec: [/bin/true], every: 0}
  negative: {exec: [/bin/true], every: -5s}
  fast: {exec: [/bin/true], every: 500ms}
  svc: {exec: [/bin/true], mode: service, every: 1m}
)");
  INFO(all.size());
  for (const auto& p : all) INFO(p);
  CHECK(has(all, "2:36", "must be at least 1s, not 0"));
  CHECK(has(all, "3:40", "expected a duration"));
  CHECK(has(all, "4:36", "must be at least 1s, not 500ms"));
  CHECK(has(all, "5:50", "for on-demand commands"));
  CHECK(all.size() == 4);
}

TEST_CASE("check_jinja: balanced delimiters, strings and block tags", "[config][ha]") {
  for (const char* ok :
       {"{{ value[:255] }}", "{{ value_json.get('a') }}", "plain text", "{\"json\": 1}",
        "{{ {'a': {'b': 1}} | tojson }}", "{% if value == '}}' %}x{% else %}y{% endif %}",
        "{%- for x in value_json -%}{{ x }}{%- endfor %}", "{# note #}{{ value }}",
        "{% set x = 1 %}{{ x }}", "{% raw %}{{ {% endraw %}", "{{ \"a\\\"b\" }}"}) {
    INFO(ok);
    CHECK_FALSE(cfg::check_jinja(ok));
  }
  const std::map<std::string, std::string> bad = {
      {"{{ value", "'{{' is never closed with '}}' (at character 1)"},
      {"x {{ value }", "unexpected '}' (at character 12)"},
      {"{{ }}", "an empty '{{ }}' (at character 1)"},
      {"{{ value) }}", "unexpected ')' (at character 9)"},
      {"{{ 'abc }}", "a string opened with ' is never closed (at character 4)"},
      {"{% if x %}y", "'{% if %}' is never closed with '{% endif %}' (at character 1)"},
      {"{% endfor %}", "'{% endfor %}' closes no '{% for %}'"},
      {"{% if x %}{% endfor %}", "closes no"},
      {"{% else %}", "outside an if or for"},
      {"{# note", "a comment '{#' is never closed"},
      {"{% %}", "without a tag name"},
      {"{% raw %}{{", "'{% raw %}' is never closed"}};
  for (const auto& [text, why] : bad) {
    INFO(text);
    const auto got = cfg::check_jinja(text);
    REQUIRE(got);
    CHECK(got->find(why) != std::string::npos);
  }
}

TEST_CASE("homeassistant overrides are refused where HA would drop the entity", "[config][ha]") {
  const auto all = problems(R"(homeassistant: {discovery: true}
commands:
  a:
    exec: [/bin/true]
    homeassistant:
      expire_after: "90s"
      device_class: temprature
      value_template: "{{ value_json.t "
      force_update: maybe
      entity_category: sensors
      state_class: average
  b: {exec: [/bin/true], homeassistant: {component: binary_sensor, device_class: temperature}}
  c: {exec: [/bin/true], homeassistant: {component: button, device_class: restart, expire_after: 5}}
)");
  for (const auto& p : all) INFO(p);
  CHECK(has(all, "6:21", "expected an integer, got the quoted string '90s'"));
  CHECK(has(all, "7:21", "not a device_class of Home Assistant's sensor"));
  CHECK(has(all, "7:21", "did you mean 'temperature'?"));
  CHECK(has(all, "8:23", "is not a Jinja template Home Assistant can read: '{{' is never closed"));
  CHECK(has(all, "9:21", "expected true or false"));
  CHECK(has(all, "10:24", "expected one of config, diagnostic"));
  CHECK(has(all, "11:20", "expected one of measurement"));
  CHECK(has(all, "12:82", "not a device_class of Home Assistant's binary_sensor"));
  CHECK(all.size() == 7);  // c: a button takes device_class restart
}

TEST_CASE("names that meet in one discovery topic are refused when discovery is on",
          "[config][ha]") {
  const std::string commands = R"(commands:
  b.up: {exec: [/bin/true]}
  b_up: {exec: [/bin/true]}
  door: {exec: [/bin/true], homeassistant: {component: binary_sensor}}
  door_last: {exec: [/bin/true]}
  hidden.x: {exec: [/bin/true], homeassistant: false}
  hidden_x: {exec: [/bin/true]}
)";
  CHECK(problems(commands).empty());  // no discovery: no topics to meet in
  const auto all = problems("device: pi\nhomeassistant: {discovery: true}\n" + commands);
  for (const auto& p : all) INFO(p);
  CHECK(has(all, "5:3", "meets command 'b.up' in one Home Assistant discovery topic (pi/b_up"));
  CHECK(has(all, "7:3", "meets command 'door' in one Home Assistant discovery topic"));
  CHECK(all.size() == 2);
}
