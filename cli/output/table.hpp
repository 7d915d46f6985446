// Plain text tables for `ls` and `runs`: columns padded to their widest cell, colour
// only where the caller asks for it (a terminal), never counted in the widths.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace linewire::cli {

struct Cell {
  std::string text;
  std::string_view colour;  // an ANSI SGR sequence such as "\x1b[32m", or empty
};

using Row = std::vector<Cell>;

// The header, then the rows; two spaces between columns, the last column unpadded.
std::string format_table(const std::vector<std::string>& header, const std::vector<Row>& rows,
                         bool colour);

namespace ansi {
inline constexpr std::string_view green = "\x1b[32m";
inline constexpr std::string_view red = "\x1b[31m";
inline constexpr std::string_view yellow = "\x1b[33m";
inline constexpr std::string_view cyan = "\x1b[36m";
inline constexpr std::string_view bold = "\x1b[1m";
inline constexpr std::string_view reset = "\x1b[0m";
}  // namespace ansi

}  // namespace linewire::cli
