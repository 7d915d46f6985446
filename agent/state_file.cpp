#include "agent/state_file.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace linewire::agent {

using nlohmann::json;

namespace {

std::int64_t to_ms(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

StateFile::StateFile(std::string dir) {
  if (dir.empty()) return;  // off: linewired says so at start-up
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  // The agent cannot promise crash safety without it: refuse to start, naming the folder
  // (SPEC §5), rather than find out at the first run.
  if (ec || ::access(dir.c_str(), W_OK | X_OK) != 0)
    throw std::runtime_error(
        "state_dir " + dir + ": " + (ec ? ec.message() : std::strerror(errno)) +
        ". linewired keeps its runs there for crash safety: make the folder writable for its "
        "user, set state_dir to another folder, or state_dir: \"\" to turn crash safety off");
  path_ = (fs::path(dir) / "runs.json").string();
  // Before SPEC §5 gave each device a folder, the files sat in state_dir itself.
  const fs::path legacy = fs::path(dir).parent_path();
  for (const char* name : {"runs.json", "homeassistant.json"})
    if (fs::exists(legacy / name, ec) && !fs::exists(fs::path(dir) / name, ec)) {
      fs::rename(legacy / name, fs::path(dir) / name, ec);
      if (!ec) spdlog::info("moved {} to {}", (legacy / name).string(), dir);
    }
  spdlog::info("state: {} (crash safety)", dir);
}

SavedState StateFile::load() const {
  SavedState out;
  if (path_.empty()) return out;
  std::ifstream in(path_);
  if (!in) return out;
  json doc = json::parse(in, nullptr, false);
  if (!doc.is_object()) {
    spdlog::warn("{}: not a state file, ignored", path_);
    return out;
  }
  try {
    for (const auto& r : doc.value("active", json::array())) {
      ActiveRun a;
      a.record.run = r.at("run").get<std::string>();
      a.record.command = r.at("command").get<std::string>();
      a.record.args = r.value("args", std::vector<std::string>{});
      a.record.transport = r.value("transport", "mqtt");
      a.record.key = r.value("key", "");
      a.record.pid = r.at("pid").get<int>();
      a.record.started =
          Clock::time_point(std::chrono::milliseconds(r.at("started_ms").get<std::int64_t>()));
      a.start_ticks = r.value("start_ticks", std::uint64_t{0});
      out.active.push_back(std::move(a));
    }
    out.finished = doc.value("finished", std::vector<std::string>{});
  } catch (const json::exception& e) {
    spdlog::warn("{}: {}; ignored", path_, e.what());
    return {};
  }
  return out;
}

void StateFile::save(const SavedState& state) const {
  if (path_.empty()) return;
  json active = json::array();
  for (const auto& a : state.active)
    active.push_back({{"run", a.record.run},
                      {"command", a.record.command},
                      {"args", a.record.args},
                      {"transport", a.record.transport},
                      {"key", a.record.key},
                      {"pid", a.record.pid},
                      {"started_ms", to_ms(a.record.started)},
                      {"start_ticks", a.start_ticks}});
  std::string text = json{{"active", active}, {"finished", state.finished}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
  std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) {
      spdlog::warn("cannot write {}", tmp);
      return;
    }
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) spdlog::warn("cannot replace {}", path_);
}

std::uint64_t process_start_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!in || !std::getline(in, stat)) return 0;
  // Field 22; the command name (field 2) may hold spaces, so count from its ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) return std::stoull(field);
  return 0;
}

}  // namespace linewire::agent
