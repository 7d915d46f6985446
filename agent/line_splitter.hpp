// Turns a byte stream into lines (SPEC §2): `\n` ends a line, a `\r` before it goes
// with it, a line longer than max_line leaves in pieces of max_line bytes, and the
// final line without `\n` still counts. Bytes are passed on verbatim.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace linewire::agent {

class LineSplitter {
 public:
  explicit LineSplitter(std::size_t max_line) : max_line_(max_line == 0 ? 1 : max_line) {}

  // Calls `emit(std::string_view line)` for every complete line or piece in `data`.
  // Lines wholly inside `data` are passed without a copy.
  template <typename Emit>
  void feed(std::string_view data, Emit&& emit) {
    while (!data.empty()) {
      std::size_t nl = data.find('\n');
      if (nl == std::string_view::npos) {
        pending_.append(data);
        emit_long_pieces(emit);
        return;
      }
      std::string_view head = data.substr(0, nl);
      data.remove_prefix(nl + 1);
      if (pending_.empty()) {
        emit_line(head, emit);
      } else {
        pending_.append(head);
        emit_line(std::string_view(pending_), emit);
        pending_.clear();
      }
    }
  }

  // End of stream: a final line without `\n` is still a line.
  template <typename Emit>
  void finish(Emit&& emit) {
    if (!pending_.empty()) {
      std::string_view rest(pending_);
      emit_pieces(rest, emit);
      pending_.clear();
    }
  }

  std::size_t buffered() const { return pending_.size(); }

 private:
  template <typename Emit>
  void emit_line(std::string_view line, Emit& emit) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    emit_pieces(line, emit);
  }

  // Emits `line` in pieces of at most max_line bytes (an empty line is one piece).
  template <typename Emit>
  void emit_pieces(std::string_view line, Emit& emit) {
    do {
      std::string_view piece = line.substr(0, max_line_);
      line.remove_prefix(piece.size());
      emit(piece);
    } while (!line.empty());
  }

  // Without a newline in sight, a pending line past max_line is sent in pieces as
  // soon as it is known to be longer: one byte more than max_line, or two when that
  // byte is a `\r` that may turn out to belong to the line ending.
  template <typename Emit>
  void emit_long_pieces(Emit& emit) {
    std::size_t done = 0;
    while (pending_.size() - done > max_line_) {
      std::size_t left = pending_.size() - done;
      if (left == max_line_ + 1 && pending_.back() == '\r') break;
      emit(std::string_view(pending_).substr(done, max_line_));
      done += max_line_;
    }
    if (done > 0) pending_.erase(0, done);
  }

  std::size_t max_line_;
  std::string pending_;
};

}  // namespace linewire::agent
