// The `commands` section: what a device may run, and how.
#include <regex>

#include "config/checks.hpp"
#include "config/sections.hpp"

namespace linewire::config {
namespace {

// Set by the agent for every run (SPEC §5): a config value would be overwritten.
bool is_reserved_env(const std::string& name) {
  return name == "LINEWIRE_DEVICE" || name == "LINEWIRE_COMMAND" || name == "LINEWIRE_RUN" ||
         name == "LINEWIRE_TRANSPORT";
}

void read_exec(Reader& r, const Entry& e, Command& c) {
  const auto elements = r.list(e);
  if (!elements) return;
  if (elements->empty()) {
    r.problem(e, "must list at least the program to run");
    return;
  }
  std::vector<std::string> argv;
  bool ok = true;
  for (std::size_t i = 0; i < elements->size(); ++i) {
    // An empty argument is a real argv element; an empty program is not.
    if (auto arg = r.text((*elements)[i], i > 0))
      argv.push_back(std::move(*arg));
    else
      ok = false;
  }
  if (!ok) return;
  // A bare name ("uptime") is looked up in PATH at run time; anything with a slash is a
  // path, and a relative one means the config's folder, not wherever the agent started.
  if (argv[0].find('/') != std::string::npos) argv[0] = r.resolve(argv[0]);
  c.exec = std::move(argv);
}

void read_env(Reader& r, const Entry& e, Command& c) {
  r.entries(e, [&](const Entry& v) {
    const std::string name = v.key.Scalar();
    if (!is_env_name(name)) {
      r.problem_at_key(v, "is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
      return;
    }
    if (is_reserved_env(name)) {
      r.problem_at_key(v, "is set by the agent for every run");
      return;
    }
    // Scalars as written: `LEVEL: 5` and `DEBUG: true` are the strings "5" and "true".
    if (auto value = r.text(v, true)) c.env[name] = std::move(*value);
  });
}

void read_args(Reader& r, const Entry& e, Command& c) {
  ArgsRule rule;
  bool has_pattern = false;
  r.mapping(e, {
                   {"pattern",
                    [&](const Entry& p) {
                      has_pattern = true;
                      auto pattern = r.text(p);
                      if (!pattern) return;
                      try {
                        std::regex compiled(*pattern, std::regex::ECMAScript);
                        rule.pattern = std::move(*pattern);
                      } catch (const std::regex_error& error) {
                        r.problem(
                            p, std::string("is not a valid regular expression: ") + error.what());
                      }
                    }},
                   {"max", [&](const Entry& m) { assign(rule.max, r.integer(m, 0)); }},
               });
  if (!has_pattern && (e.value.IsMap() || e.value.IsNull()))
    r.problem_at_key(e, "needs a pattern that every argument must match");
  c.args = std::move(rule);
}

void read_transports(Reader& r, const Entry& e, Command& c) {
  const auto elements = r.list(e);
  if (!elements) return;
  if (elements->empty()) {
    r.problem(e, "must name at least one of mqtt, websocket");
    return;
  }
  bool mqtt = false;
  bool websocket = false;
  for (const auto& element : *elements) {
    const auto which = r.choice<bool*>(element, {{"mqtt", &mqtt}, {"websocket", &websocket}});
    if (!which) continue;
    if (**which) r.problem(element, "is listed twice");
    **which = true;
  }
  c.mqtt = mqtt;
  c.websocket = websocket;
}

// Names of auth.keys, checked once the whole file (auth may come later) is read.
void read_keys(Reader& r, const Entry& e, Command& c, const Config& config) {
  const auto elements = r.list(e);
  if (!elements) return;
  if (elements->empty()) r.problem(e, "lists no key; remove it or name at least one");
  for (const auto& element : *elements) {
    auto key = r.name(element);
    if (!key) continue;
    r.later([&r, &config, element, name = *key] {
      if (config.auth.find_key(name) == nullptr)
        r.problem(element, "names no key of auth.keys: '" + name + "'");
    });
    c.keys.push_back(std::move(*key));
  }
}

void read_command(Reader& r, const Entry& e, Command& c, const Config& config) {
  using std::chrono::hours;
  using std::chrono::seconds;
  bool has_exec = false;
  std::optional<Entry> unsigned_entry;
  std::optional<Entry> every_entry;
  r.mapping(
      e, {
             {"exec",
              [&](const Entry& x) {
                has_exec = true;
                read_exec(r, x, c);
              }},
             {"cwd", [&](const Entry& x) { assign(c.cwd, r.path(x)); }},
             {"env", [&](const Entry& x) { read_env(r, x, c); }},
             {"args", [&](const Entry& x) { read_args(r, x, c); }},
             {"timeout", [&](const Entry& x) { assign(c.timeout, r.duration(x, Duration(1))); }},
             {"kill_grace", [&](const Entry& x) { assign(c.kill_grace, r.duration(x)); }},
             {"max_instances", [&](const Entry& x) { assign(c.max_instances, r.integer(x, 0)); }},
             {"on_busy",
              [&](const Entry& x) {
                assign(c.on_busy, r.choice<OnBusy>(x, {{"reject", OnBusy::reject},
                                                       {"queue", OnBusy::queue},
                                                       {"replace", OnBusy::replace}}));
              }},
             {"queue_max", [&](const Entry& x) { assign(c.queue_max, r.integer(x, 0)); }},
             {"max_output", [&](const Entry& x) { assign(c.max_output, r.size(x, 1)); }},
             {"history", [&](const Entry& x) { assign(c.history, r.size(x, 0)); }},
             {"user", [&](const Entry& x) { assign(c.user, r.text(x)); }},
             {"group", [&](const Entry& x) { assign(c.group, r.text(x)); }},
             {"stdin", [&](const Entry& x) { assign(c.stdin_enabled, r.boolean(x)); }},
             {"tty", [&](const Entry& x) { assign(c.tty, r.boolean(x)); }},
             {"stderr",
              [&](const Entry& x) {
                assign(c.stderr_mode, r.choice<StderrMode>(x, {{"publish", StderrMode::publish},
                                                               {"log", StderrMode::log},
                                                               {"discard", StderrMode::discard}}));
              }},
             {"retain_last", [&](const Entry& x) { assign(c.retain_last, r.boolean(x)); }},
             {"overflow",
              [&](const Entry& x) {
                assign(c.overflow, r.choice<Overflow>(
                                       x, {{"block", Overflow::block}, {"drop", Overflow::drop}}));
              }},
             {"transports", [&](const Entry& x) { read_transports(r, x, c); }},
             {"mode",
              [&](const Entry& x) {
                assign(c.mode, r.choice<Mode>(x, {{"on_demand", Mode::on_demand},
                                                  {"service", Mode::service}}));
              }},
             {"restart_delay", [&](const Entry& x) { assign(c.restart_delay, r.duration(x)); }},
             // A schedule under a second would be a busy loop, not a sensor; over a year,
             // its tick times (and the sensor's expire_after) would overflow the clock.
             {"every",
              [&](const Entry& x) {
                every_entry = x;
                assign(c.every, r.duration(x, seconds(1), hours(24 * 365)));
              }},
             {"homeassistant", [&](const Entry& x) { read_entity(r, x, c.homeassistant); }},
             {"keys", [&](const Entry& x) { read_keys(r, x, c, config); }},
             {"unsigned",
              [&](const Entry& x) {
                unsigned_entry = x;
                assign(c.unsigned_ok, r.boolean(x));
              }},
         });
  if (!has_exec && (e.value.IsMap() || e.value.IsNull()))
    r.problem_at_key(e, "has no exec (the program to run and its arguments)");
  // SPEC §5: a service runs all the time; a schedule is for on-demand commands.
  if (every_entry && c.every && c.mode == Mode::service)
    r.problem(*every_entry, "is for on-demand commands; a service already runs all the time");
  // SPEC §11: keys mean "always signed"; unsigned means "signature optional".
  if (!c.keys.empty() && c.unsigned_ok && unsigned_entry)
    r.problem(*unsigned_entry,
              "cannot be true for a command with keys, which always needs a "
              "signature");
}

}  // namespace

void read_commands(Reader& r, const Entry& e, Config& config) {
  std::vector<Entry> entries;
  r.entries(e, [&](const Entry& entry) {
    entries.push_back(entry);
    Entry c = entry;
    c.what = "command '" + c.key.Scalar() + "'";
    Command command;
    command.name = c.key.Scalar();
    if (!is_valid_name(command.name))
      r.problem(c.key.Mark(), "'" + command.name + "' is not a valid command name (" +
                                  std::string(kNameRule) + ")");
    read_command(r, c, command, config);
    config.commands.push_back(std::move(command));
  });
  // Once the whole file is read: `homeassistant.discovery` may come after the commands.
  r.later([&r, &config, entries] { check_discovery_names(r, entries, config); });
}

}  // namespace linewire::config
