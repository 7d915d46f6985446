// One stream of a run back in order by seq, duplicates dropped: see sequencer.hpp.
#include "cli/run/sequencer.hpp"

#include <algorithm>
#include <utility>

namespace linewire::cli {

Sequencer::Sequencer(Emit emit, std::size_t max_waiting)
    : emit_(std::move(emit)), max_waiting_(max_waiting == 0 ? 1 : max_waiting) {}

void Sequencer::emit(std::string_view line) {
  ++emitted_;
  emit_(line);
}

void Sequencer::push(std::optional<std::uint64_t> seq, std::string line) {
  if (!seq || *seq == 0) {
    emit(line);
    return;
  }
  if (!started_) {
    started_ = true;
    if (join_late_) next_ = *seq;
    first_ = *seq;
  }
  if (*seq < next_ || waiting_.count(*seq)) {
    ++duplicates_;
    return;
  }
  if (*seq > next_) {
    waiting_.emplace(*seq, std::move(line));
    if (waiting_.size() > max_waiting_) {
      skip_to_first_waiting();
      drain();
    }
    return;
  }
  emit(line);
  ++next_;
  drain();
}

void Sequencer::drain() {
  for (auto it = waiting_.begin(); it != waiting_.end() && it->first == next_;
       it = waiting_.erase(it)) {
    emit(it->second);
    ++next_;
  }
}

void Sequencer::skip_to_first_waiting() {
  if (waiting_.empty()) return;
  skipped_ += waiting_.begin()->first - next_;
  next_ = waiting_.begin()->first;
}

void Sequencer::lost_before(std::uint64_t seq) {
  started_ = true;
  while (next_ < seq) {
    const std::uint64_t to = waiting_.empty() ? seq : std::min(seq, waiting_.begin()->first);
    gone_ += to - next_;
    skipped_ += to - next_;
    next_ = to;
    drain();
  }
}

void Sequencer::flush() {
  while (!waiting_.empty()) {
    skip_to_first_waiting();
    drain();
  }
}

}  // namespace linewire::cli
