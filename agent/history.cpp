#include "agent/history.hpp"

#include <algorithm>

namespace linewire::agent {

std::deque<History::Line>::const_iterator History::Run::at(std::uint64_t pos) const {
  return std::lower_bound(lines.begin(), lines.end(), pos,
                          [](const Line& l, std::uint64_t p) { return l.pos < p; });
}

void History::open(const std::string& run, const std::string& command, std::string state,
                   std::size_t max) {
  auto [it, fresh] = runs_.try_emplace(run);
  if (!fresh) return;
  it->second.command = command;
  it->second.state = std::move(state);
  it->second.max = max;
  running_.push_back(run);
}

void History::set_state(const std::string& run, std::string state) {
  if (auto it = runs_.find(run); it != runs_.end()) it->second.state = std::move(state);
}

void History::add(const std::string& run, Stream stream, std::uint64_t seq, std::string_view text) {
  auto it = runs_.find(run);
  if (it == runs_.end()) return;
  Run& r = it->second;
  const std::size_t cost = text.size() + kLineOverhead;
  if (cost > r.max) {
    // Bigger than all this run may keep: nothing older can stay either, since a
    // replay must never skip a line in the middle.
    while (!r.lines.empty()) drop_front(r);
    ++r.next_pos;
    return;
  }
  r.lines.push_back({stream, seq, r.next_pos++, std::string(text)});
  r.bytes += cost;
  bytes_ += cost;
  while (r.bytes > r.max) drop_front(r);
  enforce_total();
}

void History::finish(const std::string& run, std::string state) {
  auto it = runs_.find(run);
  if (it == runs_.end()) return;
  it->second.state = std::move(state);
  running_.remove(run);
  finished_.push_back(run);
  enforce_total();
}

void History::forget(const std::string& run) {
  auto it = runs_.find(run);
  if (it == runs_.end()) return;
  bytes_ -= it->second.bytes;
  runs_.erase(it);
  running_.remove(run);
  finished_.remove(run);
}

void History::set_max_total(std::size_t max_total) {
  max_total_ = max_total;
  enforce_total();
}

const History::Run* History::find(const std::string& run) const {
  auto it = runs_.find(run);
  return it == runs_.end() ? nullptr : &it->second;
}

void History::drop_front(Run& r) {
  const std::size_t cost = r.lines.front().text.size() + kLineOverhead;
  r.lines.pop_front();
  r.bytes -= cost;
  bytes_ -= cost;
}

// Over limits.history: finished runs' output first, oldest first and whole (a viewer
// of a finished run wants all of it or knows it is gone), then running runs' oldest
// lines, the oldest run first. A finished run whose output went stays known (its
// state is still retained): a replay of it answers with nothing kept.
void History::enforce_total() {
  for (auto it = finished_.begin(); bytes_ > max_total_ && it != finished_.end(); ++it) {
    Run& r = runs_.at(*it);
    while (!r.lines.empty()) drop_front(r);
  }
  for (auto it = running_.begin(); bytes_ > max_total_ && it != running_.end(); ++it) {
    Run& r = runs_.at(*it);
    while (bytes_ > max_total_ && !r.lines.empty()) drop_front(r);
  }
}

}  // namespace linewire::agent
