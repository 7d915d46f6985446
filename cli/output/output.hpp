// stdout and stderr for scripts and pipes (SPEC §10): one write per line, so every line
// is out as soon as it arrives and lines from two streams never interleave mid-line;
// colour only on a terminal (and never with NO_COLOR); a reader that went away (EPIPE)
// is noticed, not fatal.
#pragma once

#include <string_view>

namespace linewire::cli {

class Output {
 public:
  explicit Output(int fd);

  bool colour() const { return colour_; }
  // `prefix` (coloured on a terminal), `text`, then a newline, in one write.
  // False, now and from then on, once the reader is gone.
  bool line(std::string_view text, std::string_view prefix = {}, std::string_view colour = {});
  bool write(std::string_view text);
  bool broken() const { return broken_; }

 private:
  int fd_;
  bool colour_;
  bool broken_ = false;
};

Output& out();
Output& err();

// `linewire: message` on stderr.
void note(std::string_view message);

}  // namespace linewire::cli
