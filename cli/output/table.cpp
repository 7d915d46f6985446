// Plain text tables with padded columns: see table.hpp.
#include "cli/output/table.hpp"

#include <algorithm>

namespace linewire::cli {

std::string format_table(const std::vector<std::string>& header, const std::vector<Row>& rows,
                         bool colour) {
  std::vector<std::size_t> widths(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) widths[c] = header[c].size();
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size() && c < widths.size(); ++c)
      widths[c] = std::max(widths[c], row[c].text.size());

  std::string out;
  auto line = [&](auto cell_at, std::size_t n) {
    std::string text;
    for (std::size_t c = 0; c < n; ++c) {
      const Cell cell = cell_at(c);
      bool last = c + 1 == n;
      if (colour && !cell.colour.empty()) {
        text.append(cell.colour).append(cell.text).append(ansi::reset);
      } else {
        text.append(cell.text);
      }
      if (!last) text.append(widths[c] - std::min(widths[c], cell.text.size()) + 2, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out.append(text).append("\n");
  };
  line([&](std::size_t c) { return Cell{header[c], {}}; }, header.size());
  for (const auto& row : rows)
    line([&](std::size_t c) { return c < row.size() ? row[c] : Cell{}; }, header.size());
  return out;
}

}  // namespace linewire::cli
