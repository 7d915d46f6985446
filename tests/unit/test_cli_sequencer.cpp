#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/run/run_streams.hpp"
#include "cli/run/sequencer.hpp"

using namespace linewire::cli;
using nlohmann::json;

namespace {

struct Capture {
  std::vector<std::string> lines;
  Sequencer::Emit emit() {
    return [this](std::string_view l) { lines.emplace_back(l); };
  }
};

}  // namespace

TEST_CASE("in order: every line at once") {
  Capture c;
  Sequencer s(c.emit());
  s.push(1, "a");
  CHECK(c.lines == std::vector<std::string>{"a"});
  s.push(2, "b");
  s.push(3, "c");
  CHECK(c.lines == std::vector<std::string>{"a", "b", "c"});
  CHECK(s.highest() == 3);
  CHECK(s.duplicates() == 0);
}

TEST_CASE("duplicates are dropped") {
  Capture c;
  Sequencer s(c.emit());
  s.push(1, "a");
  s.push(1, "a");
  s.push(3, "c");
  s.push(3, "c");  // a duplicate of a line still waiting
  s.push(2, "b");
  s.push(2, "b");
  CHECK(c.lines == std::vector<std::string>{"a", "b", "c"});
  CHECK(s.duplicates() == 3);
}

TEST_CASE("early lines wait for the ones before them") {
  Capture c;
  Sequencer s(c.emit());
  s.push(3, "c");
  s.push(2, "b");
  CHECK(c.lines.empty());
  CHECK(s.waiting() == 2);
  s.push(1, "a");
  CHECK(c.lines == std::vector<std::string>{"a", "b", "c"});
  CHECK(s.waiting() == 0);
}

TEST_CASE("flush gives up on gaps, in order") {
  Capture c;
  Sequencer s(c.emit());
  s.push(1, "a");
  s.push(4, "d");
  s.push(6, "f");
  s.flush();
  CHECK(c.lines == std::vector<std::string>{"a", "d", "f"});
  CHECK(s.skipped() == 3);  // 2, 3, 5
  CHECK(s.highest() == 6);
}

TEST_CASE("a bounded wait: too many early lines skip the gap") {
  Capture c;
  Sequencer s(c.emit(), 3);
  s.push(2, "b");
  s.push(3, "c");
  s.push(4, "d");
  CHECK(c.lines.empty());
  s.push(5, "e");  // a fourth waiting line: 1 is given up
  CHECK(c.lines == std::vector<std::string>{"b", "c", "d", "e"});
  CHECK(s.skipped() == 1);
  s.push(1, "a");  // too late: counted as a duplicate, never printed out of order
  CHECK(c.lines.size() == 4);
}

TEST_CASE("lines without seq (MQTT 3.1.1) pass as they come") {
  Capture c;
  Sequencer s(c.emit());
  s.push(std::nullopt, "x");
  s.push(std::nullopt, "x");
  CHECK(c.lines == std::vector<std::string>{"x", "x"});
  CHECK_FALSE(s.sequenced());
  CHECK(s.emitted() == 2);
}

TEST_CASE("joining late starts at the first seq seen") {
  Capture c;
  Sequencer s(c.emit());
  s.join_late();
  s.push(41, "p");
  s.push(42, "q");
  CHECK(c.lines == std::vector<std::string>{"p", "q"});
  CHECK(s.skipped() == 0);
}

TEST_CASE("RunStreams: both streams, and the final state's counts") {
  std::vector<std::string> out, err;
  RunStreams r(
      [&](Stream s, std::string_view l) { (s == Stream::out ? out : err).emplace_back(l); });
  r.line(Stream::out, 2, "two");
  r.line(Stream::err, 1, "oops");
  r.line(Stream::out, 1, "one");
  r.line(Stream::out, 1, "one");
  CHECK(out == std::vector<std::string>{"one", "two"});
  CHECK(err == std::vector<std::string>{"oops"});
  CHECK(r.finish(json{{"state", "exited"}, {"lines", 2}, {"err_lines", 1}}).empty());
}

TEST_CASE("RunStreams: lines that never came are told") {
  std::vector<std::string> out;
  RunStreams r([&](Stream, std::string_view l) { out.emplace_back(l); });
  r.line(Stream::out, 1, "a");
  r.line(Stream::out, 3, "c");
  auto notes = r.finish(json{{"state", "exited"}, {"lines", 5}, {"err_lines", 0}});
  CHECK(out == std::vector<std::string>{"a", "c"});
  REQUIRE(notes.size() == 1);
  CHECK(notes[0] == "3 of 5 stdout line(s) did not arrive");
}

TEST_CASE("RunStreams without seq: losses and duplicates by count") {
  std::vector<std::string> out;
  RunStreams r([&](Stream, std::string_view l) { out.emplace_back(l); });
  r.line(Stream::out, std::nullopt, "a");
  auto lost = r.finish(json{{"lines", 3}, {"err_lines", 0}});
  REQUIRE(lost.size() == 1);
  CHECK(lost[0] == "2 of 3 stdout line(s) did not arrive");

  RunStreams twice([](Stream, std::string_view) {});
  twice.line(Stream::err, std::nullopt, "a");
  twice.line(Stream::err, std::nullopt, "a");
  auto dup = twice.finish(json{{"lines", 0}, {"err_lines", 1}});
  REQUIRE(dup.size() == 1);
  CHECK(dup[0].find("1 stderr line(s) more than the run wrote") == 0);
}

TEST_CASE("RunStreams joining late: nothing before the first line is missing") {
  RunStreams r([](Stream, std::string_view) {}, true);
  r.line(Stream::out, 7, "g");
  r.line(Stream::out, 8, "h");
  CHECK(r.finish(json{{"lines", 8}, {"err_lines", 4}}).empty());
  RunStreams tail([](Stream, std::string_view) {}, true);
  tail.line(Stream::out, 7, "g");
  CHECK(tail.finish(json{{"lines", 9}})[0] == "2 of 9 stdout line(s) did not arrive");
}
