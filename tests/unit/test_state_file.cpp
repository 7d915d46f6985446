#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "agent/state_file.hpp"

using namespace linewire::agent;

namespace {

std::filesystem::path fresh_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("linewire-test-" + name + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

}  // namespace

TEST_CASE("the state file round-trips active and finished runs") {
  auto dir = fresh_dir("state");
  StateFile file(dir.string());
  REQUIRE(file.enabled());
  CHECK(file.load().active.empty());

  SavedState state;
  ActiveRun a;
  a.record.run = "r1";
  a.record.command = "count";
  a.record.args = {"5"};
  a.record.pid = 4242;
  a.record.key = "alice";
  a.record.started = Clock::time_point(std::chrono::milliseconds(1795388400123));
  a.start_ticks = 99;
  state.active.push_back(a);
  state.finished = {"old-1", "old-2"};
  file.save(state);

  auto back = file.load();
  REQUIRE(back.active.size() == 1);
  CHECK(back.active[0].record.run == "r1");
  CHECK(back.active[0].record.args == std::vector<std::string>{"5"});
  CHECK(back.active[0].record.pid == 4242);
  CHECK(back.active[0].record.key == "alice");
  CHECK(back.active[0].record.started == a.record.started);
  CHECK(back.active[0].start_ticks == 99);
  CHECK(back.finished == std::vector<std::string>{"old-1", "old-2"});
  CHECK_FALSE(std::filesystem::exists(dir / "runs.json.tmp"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a damaged state file is ignored, not fatal") {
  auto dir = fresh_dir("damaged");
  StateFile file(dir.string());
  std::ofstream(dir / "runs.json") << "{\"active\": [{\"run\": 5}]";
  CHECK(file.load().active.empty());
  std::ofstream(dir / "runs.json") << "{\"active\": [{\"run\": 5}]}";
  CHECK(file.load().active.empty());
  std::filesystem::remove_all(dir);
}

TEST_CASE("no state_dir, no file") {
  StateFile file("");
  CHECK_FALSE(file.enabled());
  CHECK(file.load().active.empty());
}

TEST_CASE("an unusable state_dir is an error naming it") {
  auto dir = fresh_dir("unusable");
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "file") << "not a folder";
  const std::string bad = (dir / "file" / "device").string();
  try {
    StateFile file(bad);
    FAIL("no error for " << bad);
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find(bad) != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("files from before the per-device folder move into it") {
  auto base = fresh_dir("legacy");
  std::filesystem::create_directories(base);
  std::ofstream(base / "runs.json") << R"({"active": [], "finished": ["old-1"]})";
  StateFile file((base / "dev").string());
  CHECK(file.load().finished == std::vector<std::string>{"old-1"});
  CHECK_FALSE(std::filesystem::exists(base / "runs.json"));
  std::filesystem::remove_all(base);
}

TEST_CASE("process start times tell a live process from a reused pid") {
  CHECK(process_start_ticks(getpid()) > 0);
  CHECK(process_start_ticks(0x7ffffff) == 0);
}
