// Output history (SPEC §12): per-run and total bounds, the order of eviction, cursors.
#include <catch2/catch.hpp>
#include <string>

#include "agent/history.hpp"

using linewire::agent::History;
using linewire::agent::Stream;

namespace {

constexpr std::size_t kCost = History::kLineOverhead + 8;  // an 8-byte line
const std::string kLine = "12345678";

std::vector<std::uint64_t> seqs(const History::Run& r) {
  std::vector<std::uint64_t> out;
  for (const auto& l : r.lines) out.push_back(l.seq);
  return out;
}

}  // namespace

TEST_CASE("a run keeps its lines with their seq, in order, both streams") {
  History h(1 << 20);
  h.open("r1", "count", "running", 1 << 16);
  h.add("r1", Stream::out, 1, "a");
  h.add("r1", Stream::err, 1, "oops");
  h.add("r1", Stream::out, 2, "b");
  const auto* r = h.find("r1");
  REQUIRE(r);
  REQUIRE(r->lines.size() == 3);
  CHECK(r->lines[1].stream == Stream::err);
  CHECK(r->lines[1].text == "oops");
  CHECK(r->lines[2].seq == 2);
  CHECK(r->bytes == 1 + 4 + 1 + 3 * History::kLineOverhead);
  CHECK(h.bytes() == r->bytes);
  CHECK(r->state == "running");
  h.finish("r1", "exited");
  CHECK(h.find("r1")->state == "exited");
}

TEST_CASE("past the command's history the run's oldest lines go") {
  History h(1 << 20);
  h.open("r1", "count", "running", 3 * kCost);
  for (std::uint64_t s = 1; s <= 5; ++s) h.add("r1", Stream::out, s, kLine);
  CHECK(seqs(*h.find("r1")) == std::vector<std::uint64_t>{3, 4, 5});
  CHECK(h.bytes() == 3 * kCost);
}

TEST_CASE("history 0 keeps nothing but the run is still known") {
  History h(1 << 20);
  h.open("r1", "count", "running", 0);
  h.add("r1", Stream::out, 1, kLine);
  REQUIRE(h.find("r1"));
  CHECK(h.find("r1")->lines.empty());
  CHECK(h.bytes() == 0);
}

TEST_CASE("a line bigger than the run's history empties it: no gap in the middle") {
  History h(1 << 20);
  h.open("r1", "count", "running", 2 * kCost);
  h.add("r1", Stream::out, 1, kLine);
  h.add("r1", Stream::out, 2, std::string(100, 'x'));
  CHECK(h.find("r1")->lines.empty());
  h.add("r1", Stream::out, 3, kLine);
  CHECK(seqs(*h.find("r1")) == std::vector<std::uint64_t>{3});
  CHECK(h.bytes() == kCost);
}

TEST_CASE(
    "past limits.history the oldest finished run goes whole, then running runs' oldest lines") {
  History h(10 * kCost);
  h.open("old", "c", "running", 1 << 20);
  h.open("new", "c", "running", 1 << 20);
  h.open("live", "c", "running", 1 << 20);
  for (std::uint64_t s = 1; s <= 3; ++s) h.add("old", Stream::out, s, kLine);
  for (std::uint64_t s = 1; s <= 3; ++s) h.add("new", Stream::out, s, kLine);
  h.finish("old", "exited");
  h.finish("new", "exited");
  for (std::uint64_t s = 1; s <= 4; ++s) h.add("live", Stream::out, s, kLine);
  CHECK(h.bytes() == 10 * kCost);
  h.add("live", Stream::out, 5, kLine);  // one over: "old" goes, whole
  CHECK(h.find("old")->lines.empty());
  CHECK(h.find("old")->state == "exited");  // still known: its state is still retained
  CHECK(h.find("new")->lines.size() == 3);
  CHECK(h.bytes() == 8 * kCost);
  for (std::uint64_t s = 6; s <= 8; ++s) h.add("live", Stream::out, s, kLine);
  CHECK(h.find("new")->lines.empty());  // then the next finished one
  CHECK(h.find("live")->lines.size() == 8);
  for (std::uint64_t s = 9; s <= 11; ++s) h.add("live", Stream::out, s, kLine);
  // No finished output left: the running run's oldest lines go.
  CHECK(seqs(*h.find("live")).front() == 2);
  CHECK(h.bytes() == 10 * kCost);
}

TEST_CASE("forget drops a run and its bytes; a smaller limits.history applies at once") {
  History h(1 << 20);
  h.open("a", "c", "running", 1 << 20);
  h.open("b", "c", "running", 1 << 20);
  for (std::uint64_t s = 1; s <= 4; ++s) h.add("a", Stream::out, s, kLine);
  for (std::uint64_t s = 1; s <= 4; ++s) h.add("b", Stream::out, s, kLine);
  h.forget("a");
  CHECK_FALSE(h.find("a"));
  CHECK(h.bytes() == 4 * kCost);
  h.set_max_total(2 * kCost);
  CHECK(seqs(*h.find("b")) == std::vector<std::uint64_t>{3, 4});
  h.add("nobody", Stream::out, 1, kLine);  // a run never opened is not kept
  CHECK_FALSE(h.find("nobody"));
}

TEST_CASE("a cursor (pos) finds the next line even after older ones went") {
  History h(1 << 20);
  h.open("r", "c", "running", 3 * kCost);
  for (std::uint64_t s = 1; s <= 3; ++s) h.add("r", Stream::out, s, kLine);
  const auto* r = h.find("r");
  auto it = r->at(1);
  REQUIRE(it != r->lines.end());
  CHECK(it->seq == 2);
  std::uint64_t next = it->pos + 1;
  h.add("r", Stream::out, 4, kLine);
  h.add("r", Stream::out, 5, kLine);  // seq 1 and 2 went
  CHECK(r->at(next)->seq == 3);
  CHECK(r->at(0)->seq == 3);  // before the first kept: from the first kept
  CHECK(r->at(100) == r->lines.end());
}
