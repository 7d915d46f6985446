// stdout and stderr, one write per line, colour on a terminal only: see output.hpp.
#include "cli/output/output.hpp"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli/output/table.hpp"

namespace linewire::cli {

namespace {

bool wants_colour(int fd) {
  if (!isatty(fd)) return false;
  const char* no_colour = std::getenv("NO_COLOR");
  if (no_colour && *no_colour) return false;
  const char* term = std::getenv("TERM");
  return !(term && std::strcmp(term, "dumb") == 0);
}

// Writes every byte of `iov`, going on after a partial write or EINTR.
bool write_all(int fd, iovec* iov, int count) {
  while (count > 0) {
    ssize_t n = ::writev(fd, iov, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

iovec piece(std::string_view s) { return {const_cast<char*>(s.data()), s.size()}; }

}  // namespace

Output::Output(int fd) : fd_(fd), colour_(wants_colour(fd)) {}

bool Output::line(std::string_view text, std::string_view prefix, std::string_view colour) {
  if (broken_) return false;
  const bool paint = colour_ && !colour.empty() && !prefix.empty();
  iovec iov[5];
  int n = 0;
  if (paint) iov[n++] = piece(colour);
  if (!prefix.empty()) iov[n++] = piece(prefix);
  if (paint) iov[n++] = piece(ansi::reset);
  iov[n++] = piece(text);
  iov[n++] = piece("\n");
  if (!write_all(fd_, iov, n)) broken_ = true;
  return !broken_;
}

bool Output::write(std::string_view text) {
  if (broken_) return false;
  iovec iov[1] = {piece(text)};
  if (!write_all(fd_, iov, 1)) broken_ = true;
  return !broken_;
}

Output& out() {
  static Output o(STDOUT_FILENO);
  return o;
}

Output& err() {
  static Output o(STDERR_FILENO);
  return o;
}

void note(std::string_view message) { err().line(message, "linewire: "); }

}  // namespace linewire::cli
