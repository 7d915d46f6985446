// Loading: YAML text to a Config and every problem with it. The sections live in
// their own files (broker.cpp, command.cpp, ...); this one holds the top level.
#include "config/load.hpp"

#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "config/checks.hpp"
#include "config/sections.hpp"
#include "config/units.hpp"

namespace linewire::config {
namespace {

using std::chrono::seconds;

// MQTT 5 carries a message expiry in 32 bits of seconds.
constexpr Duration kMaxExpiry = seconds(UINT32_MAX);

// The absolute folder relative paths in the file mean; absolute so that they keep
// their meaning if the agent changes directory later.
std::filesystem::path base_dir_of(const std::string& origin) {
  std::filesystem::path dir = std::filesystem::path(origin).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  const auto absolute = std::filesystem::absolute(dir, ec);
  if (ec) return dir;
  std::filesystem::path out;
  for (const auto& part : absolute)
    if (part != "." && !part.empty()) out /= part;
  return out;
}

std::optional<std::string> read_prefix(Reader& r, const Entry& e) {
  return checked_text(r, e, check_prefix);
}

void read_top(Reader& r, const Entry& top, Config& c, const std::string& hostname) {
  bool has_device = false;
  bool has_state_dir = false;
  r.mapping(
      top,
      {
          {"device",
           [&](const Entry& e) {
             has_device = true;
             assign(c.device, r.name(e));
           }},
          {"prefix", [&](const Entry& e) { assign(c.prefix, read_prefix(r, e)); }},
          {"groups", [&](const Entry& e) { assign(c.groups, r.names(e)); }},
          {"broker", [&](const Entry& e) { read_broker(r, e, c.broker); }},
          {"qos", [&](const Entry& e) { assign(c.qos, r.integer(e, 0, 2)); }},
          {"keep_runs", [&](const Entry& e) { assign(c.keep_runs, r.integer(e, 0)); }},
          {"run_state_ttl",
           [&](const Entry& e) { assign(c.run_state_ttl, r.duration(e, seconds(1), kMaxExpiry)); }},
          {"log_level",
           [&](const Entry& e) {
             assign(c.log_level, r.choice<std::string>(e, {{"trace", "trace"},
                                                           {"debug", "debug"},
                                                           {"info", "info"},
                                                           {"warn", "warn"},
                                                           {"error", "error"},
                                                           {"critical", "critical"},
                                                           {"off", "off"}}));
           }},
          {"state_dir",
           [&](const Entry& e) {
             // "" turns crash safety off; it must not resolve to the config's folder.
             if (auto v = r.text(e, true)) c.state_dir = v->empty() ? "" : r.resolve(*v);
             has_state_dir = true;
           }},
          {"limits", [&](const Entry& e) { read_limits(r, e, c.limits); }},
          {"commands", [&](const Entry& e) { read_commands(r, e, c); }},
          {"websocket", [&](const Entry& e) { read_websocket(r, e, c.websocket); }},
          {"homeassistant", [&](const Entry& e) { read_homeassistant(r, e, c.homeassistant); }},
          {"auth", [&](const Entry& e) { read_auth(r, e, c.auth); }},
      });
  if (!has_device) {
    if (is_valid_name(hostname))
      c.device = hostname;
    else
      r.problem(YAML::Mark::null_mark(), "the host name '" + hostname +
                                             "' is not a valid device name (" +
                                             std::string(kNameRule) + "): set device");
  }
  // Crash safety is on unless turned off (SPEC §5); one folder per device keeps agents
  // of different devices on one machine apart.
  if (!has_state_dir)
    c.state_dir = default_state_dir(std::getenv("STATE_DIRECTORY"), std::getenv("XDG_STATE_HOME"),
                                    std::getenv("HOME"), geteuid() == 0);
  if (!c.state_dir.empty() && !c.device.empty())
    c.state_dir = (std::filesystem::path(c.state_dir) / c.device).string();
}

// Where the documents of a YAML stream start, without building them.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;

  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// A second document is a problem: YAML::Load would silently ignore it. Not LoadAll:
// in yaml-cpp 0.7 it loops forever, eating memory, on a stray ',' at the top level
// (the parser yields an empty document without moving on). Here that shows as a second
// document starting where the first did.
void check_single_document(Reader& r, const std::string& yaml) {
  std::istringstream in(yaml);
  YAML::Parser parser(in);
  DocumentStarts starts;
  if (!parser.HandleNextDocument(starts) || !parser.HandleNextDocument(starts)) return;
  const auto& first = starts.marks.at(0);
  const auto& second = starts.marks.at(1);
  if (second.pos == first.pos && second.pos >= 0 &&
      static_cast<std::size_t>(second.pos) < yaml.size())
    r.problem(second,
              std::string("unexpected '") + yaml[static_cast<std::size_t>(second.pos)] + "'");
  else
    r.problem(second, "a second YAML document: the configuration is one mapping");
}

// The whole text: exactly one document, and a mapping.
void read_document(Reader& r, const std::string& yaml, Config& c, const std::string& hostname) {
  const YAML::Node root = YAML::Load(yaml);
  check_single_document(r, yaml);
  if (root.IsNull()) {
    if (r.empty()) r.problem(YAML::Mark::null_mark(), "the configuration is empty");
    return;
  }
  if (!root.IsMap()) {
    r.problem(root.Mark(), "expected a mapping of settings (KEY: VALUE lines) at the top level");
    return;
  }
  read_top(r, Entry{"", "", root, root}, c, hostname);
}

}  // namespace

std::optional<std::string> checked_text(Reader& r, const Entry& e,
                                        std::optional<std::string> (*check)(std::string_view)) {
  auto value = r.text(e);
  if (!value) return std::nullopt;
  if (auto why = check(*value)) {
    r.problem(e, "'" + *value + "' is not valid: " + *why);
    return std::nullopt;
  }
  return value;
}

void read_limits(Reader& r, const Entry& e, Limits& limits) {
  std::optional<Entry> max_line;
  std::optional<Entry> buffer;
  r.mapping(e,
            {
                {"max_runs", [&](const Entry& c) { assign(limits.max_runs, r.integer(c, 1)); }},
                {"max_payload", [&](const Entry& c) { assign(limits.max_payload, r.size(c, 1)); }},
                {"max_line",
                 [&](const Entry& c) {
                   max_line = c;
                   assign(limits.max_line, r.size(c, 1));
                 }},
                {"buffer",
                 [&](const Entry& c) {
                   buffer = c;
                   assign(limits.buffer, r.size(c, 1));
                 }},
                {"history", [&](const Entry& c) { assign(limits.history, r.size(c, 0)); }},
            });
  // The buffer must hold at least one whole line, or a long line could never leave.
  if (limits.buffer >= limits.max_line) return;
  if (buffer)
    r.problem(*buffer, "is smaller than max_line (" + format_size(limits.max_line) + ")");
  else if (max_line)
    r.problem(*max_line, "is larger than buffer (" + format_size(limits.buffer) + ")");
}

void read_homeassistant(Reader& r, const Entry& e, HomeAssistant& ha) {
  r.mapping(e, {
                   {"discovery", [&](const Entry& c) { assign(ha.discovery, r.boolean(c)); }},
                   {"prefix", [&](const Entry& c) { assign(ha.prefix, read_prefix(r, c)); }},
               });
}

LoadResult load_string(const std::string& yaml, const std::string& origin,
                       const std::string& hostname) {
  Reader r(base_dir_of(origin));
  Config c;
  c.source = origin;
  try {
    read_document(r, yaml, c, hostname);
  } catch (const YAML::DeepRecursion& e) {
    r.problem(e.mark, "nested too deeply");  // yaml-cpp says "bad file"
  } catch (const YAML::Exception& e) {
    // Syntax errors: yaml-cpp stops at the first, so it is the only one there is.
    r.problem(e.mark, e.msg);
  } catch (const std::exception& e) {
    r.problem(YAML::Mark::null_mark(), std::string("cannot read the configuration: ") + e.what());
  }
  LoadResult result;
  result.problems = r.finish();
  if (result.problems.empty()) result.config = std::move(c);
  return result;
}

LoadResult load_file(const std::string& path) {
  std::string text;
  std::FILE* file = std::fopen(path.c_str(), "rb");
  int error = file == nullptr ? errno : 0;
  if (file != nullptr) {
    char buffer[65536];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
    if (std::ferror(file)) error = errno != 0 ? errno : EIO;  // EISDIR for a folder
    std::fclose(file);
  }
  if (error != 0) {
    LoadResult result;
    result.problems.push_back(Problem{0, 0, std::string("cannot read: ") + std::strerror(error)});
    return result;
  }
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return load_string(text, path, host);
}

std::string default_state_dir(const char* state_directory, const char* xdg_state_home,
                              const char* home, bool root) {
  // systemd's StateDirectory= may list several folders, separated by ':'.
  if (state_directory && *state_directory) {
    std::string first = state_directory;
    return first.substr(0, first.find(':'));
  }
  if (root) return "/var/lib/linewire";
  if (xdg_state_home && *xdg_state_home == '/') return std::string(xdg_state_home) + "/linewire";
  if (home && *home) return std::string(home) + "/.local/state/linewire";
  return "";  // nowhere to keep it: crash safety off (the agent says so)
}

std::string format(const Problem& p, const std::string& origin) {
  if (p.line <= 0) return origin + ": " + p.message;
  return origin + ":" + std::to_string(p.line) + ":" + std::to_string(p.column) + ": " + p.message;
}

}  // namespace linewire::config
