#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "agent/line_splitter.hpp"

using linewire::agent::LineSplitter;

namespace {

std::vector<std::string> split(std::size_t max, const std::vector<std::string>& chunks) {
  LineSplitter s(max);
  std::vector<std::string> out;
  auto emit = [&](std::string_view l) { out.emplace_back(l); };
  for (const auto& c : chunks) s.feed(c, emit);
  s.finish(emit);
  return out;
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("lines end with \\n, and \\r\\n loses its \\r") {
  CHECK(split(100, {"a\nb\r\nc\n"}) == V{"a", "b", "c"});
  CHECK(split(100, {"\n\n"}) == V{"", ""});
  CHECK(split(100, {"a\rb\n"}) == V{"a\rb"});
}

TEST_CASE("a final line without newline is still a line") {
  CHECK(split(100, {"a\nlast"}) == V{"a", "last"});
  CHECK(split(100, {""}).empty());
}

TEST_CASE("lines split across chunks are joined") {
  CHECK(split(100, {"he", "llo\nwor", "ld\n"}) == V{"hello", "world"});
  CHECK(split(100, {"a\r", "\nb"}) == V{"a", "b"});
}

TEST_CASE("long lines leave in pieces of max_line") {
  CHECK(split(10, {std::string(25, 'x') + "\n"}) ==
        V{std::string(10, 'x'), std::string(10, 'x'), std::string(5, 'x')});
  // Arriving one byte at a time gives the same pieces.
  std::vector<std::string> bytes;
  for (char c : std::string(25, 'y') + "\n") bytes.emplace_back(1, c);
  CHECK(split(10, bytes) == V{std::string(10, 'y'), std::string(10, 'y'), std::string(5, 'y')});
  // Exactly max_line, then the newline: one line, no empty piece.
  CHECK(split(4, {"abcd\n"}) == V{"abcd"});
  CHECK(split(4, {"abcd", "\r\n"}) == V{"abcd"});
  CHECK(split(4, {"abcdefgh"}) == V{"abcd", "efgh"});
}

TEST_CASE("bytes are passed verbatim") {
  std::string bin = std::string("\xff\xfe\x00\x01", 4);
  CHECK(split(100, {bin + "\n"}) == V{bin});
}
