// A fan-out's book-keeping: who answered, how each run ended, the summary: see fanout.hpp.
#include "cli/run/fanout.hpp"

#include <algorithm>

namespace linewire::cli {

Fanout::Entry& Fanout::entry(const std::string& device) {
  auto it = entries_.find(device);
  if (it == entries_.end()) {
    Entry e;
    e.device = device;
    it = entries_.emplace(device, std::move(e)).first;
  }
  return it->second;
}

void Fanout::expect(const std::string& device) {
  entry(device).expected = true;
  has_expected_ = true;
}

bool Fanout::replied(const std::string& device) {
  auto it = entries_.find(device);
  if (it != entries_.end() && it->second.phase != Phase::waiting) return false;
  if (it == entries_.end() && window_over_) return false;  // too late: the summary is out
  entry(device).phase = Phase::running;
  return true;
}

bool Fanout::refused(const std::string& device, std::string_view code, std::string_view message) {
  auto it = entries_.find(device);
  if (it != entries_.end() && it->second.phase != Phase::waiting) return false;
  if (it == entries_.end() && window_over_) return false;
  Entry& e = entry(device);
  e.phase = Phase::refused;
  e.status = kExitFailure;
  e.note = "refused: " + std::string(code) + (message.empty() ? "" : ": " + std::string(message));
  return true;
}

bool Fanout::finished(const std::string& device, const Outcome& outcome) {
  auto it = entries_.find(device);
  if (it == entries_.end() && window_over_) return false;
  // A final state may overtake the reply; it is an answer all the same.
  Entry& e = entry(device);
  if (terminal(e.phase)) return false;
  e.phase = Phase::finished;
  e.status = e.timed_out ? kExitTimeout : outcome.status;
  if (e.timed_out) {
    e.note = "timed out";
  } else if (!outcome.note.empty()) {
    e.note = outcome.note;
  } else if (outcome.status != 0) {
    e.note = "exit " + std::to_string(outcome.status);
  }
  return true;
}

bool Fanout::went_offline(const std::string& device) {
  auto it = entries_.find(device);
  if (it == entries_.end() || terminal(it->second.phase)) return false;
  Entry& e = it->second;
  e.phase = Phase::lost;
  e.status = e.timed_out ? kExitTimeout : kExitFailure;
  e.note = "went offline";
  return true;
}

void Fanout::reply_window_over() {
  window_over_ = true;
  for (auto& [name, e] : entries_) {
    if (e.phase != Phase::waiting) continue;
    e.phase = Phase::no_answer;
    e.status = kExitFailure;
    e.note = "no answer";
  }
}

void Fanout::timed_out() {
  for (auto& [name, e] : entries_)
    if (!terminal(e.phase)) e.timed_out = true;
}

void Fanout::abandon(int status, std::string_view note) {
  for (auto& [name, e] : entries_) {
    if (terminal(e.phase)) continue;
    if (e.phase == Phase::waiting) {
      e.phase = Phase::no_answer;
      e.status = kExitFailure;
      e.note = "no answer";
      continue;
    }
    e.phase = Phase::lost;
    e.status = e.timed_out ? kExitTimeout : status;
    e.note = e.timed_out ? "timed out" : std::string(note);
  }
}

bool Fanout::done() const {
  bool all_terminal = std::all_of(entries_.begin(), entries_.end(),
                                  [](const auto& kv) { return terminal(kv.second.phase); });
  // With no device expected (none in the group had its info retained), whoever is in
  // the group may still answer until the window closes.
  return all_terminal && (window_over_ || has_expected_);
}

bool Fanout::waiting_for_replies() const {
  if (!window_over_ && !has_expected_) return true;
  return std::any_of(entries_.begin(), entries_.end(),
                     [](const auto& kv) { return kv.second.phase == Phase::waiting; });
}

std::vector<std::string> Fanout::running() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_)
    if (e.phase == Phase::running) out.push_back(name);
  return out;
}

const Fanout::Entry* Fanout::find(std::string_view device) const {
  auto it = entries_.find(device);
  return it == entries_.end() ? nullptr : &it->second;
}

int Fanout::exit_status() const {
  if (entries_.empty()) return kExitFailure;
  int highest = 0;
  for (const auto& [name, e] : entries_) highest = std::max(highest, e.status);
  return highest;
}

std::vector<std::string> Fanout::summary() const {
  std::string ok, failed, silent;
  std::size_t n_ok = 0, n_failed = 0, n_silent = 0;
  auto add = [](std::string& list, const std::string& item) {
    if (!list.empty()) list += ", ";
    list += item;
  };
  for (const auto& [name, e] : entries_) {
    if (e.phase == Phase::no_answer) {
      add(silent, name);
      ++n_silent;
    } else if (e.status == 0 && e.phase == Phase::finished) {
      add(ok, name);
      ++n_ok;
    } else {
      add(failed, name + (e.note.empty() ? "" : " (" + e.note + ")"));
      ++n_failed;
    }
  }
  std::vector<std::string> out;
  if (n_ok) out.push_back("ok: " + ok);
  if (n_failed) out.push_back("failed: " + failed);
  if (n_silent) out.push_back("no answer: " + silent);
  if (entries_.empty()) out.push_back("no device answered");
  std::size_t n = entries_.size();
  out.push_back(std::to_string(n) + (n == 1 ? " device: " : " devices: ") + std::to_string(n_ok) +
                " ok, " + std::to_string(n_failed) + " failed, " + std::to_string(n_silent) +
                " no answer");
  return out;
}

}  // namespace linewire::cli
