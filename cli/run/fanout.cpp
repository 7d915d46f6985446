// A fan-out's book-keeping: who is targeted, who answered, how each run ended, the
// summary: see fanout.hpp.
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
  Entry& e = entry(device);
  e.expected = true;
  e.phase = Phase::waiting;
  has_expected_ = true;
}

void Fanout::queue(const std::string& device) {
  Entry& e = entry(device);
  e.expected = true;
  e.phase = Phase::pending;
  has_expected_ = true;
}

void Fanout::offline(const std::string& device) {
  Entry& e = entry(device);
  e.phase = Phase::offline;
  e.status = kExitFailure;
  e.note = "offline, not run";
  has_expected_ = true;
}

void Fanout::skip(const std::string& device) {
  Entry& e = entry(device);
  e.phase = Phase::skipped;
  e.status = 0;
  e.note = "offline, skipped";
}

std::vector<std::string> Fanout::start_next(std::size_t batch) {
  std::vector<std::string> out;
  if (stopped_) return out;
  std::size_t n = active();
  for (auto& [name, e] : entries_) {
    if (batch != 0 && n >= batch) break;
    if (e.phase != Phase::pending) continue;
    e.phase = Phase::waiting;
    ++n;
    out.push_back(name);
  }
  return out;
}

void Fanout::stop_starting(std::string_view why) {
  if (stopped_) return;
  stopped_ = true;
  for (auto& [name, e] : entries_) {
    if (e.phase != Phase::pending) continue;
    e.phase = Phase::not_run;
    e.status = 0;  // the failure that stopped it already counts
    e.note = std::string(why);
  }
}

void Fanout::ended(const Entry& e) {
  if (fail_fast_ && e.status != 0) stop_starting("--fail-fast");
}

bool Fanout::replied(const std::string& device) {
  auto it = entries_.find(device);
  if (it != entries_.end()) {
    // One reported offline (or skipped) that came back in time is followed all the same.
    Phase p = it->second.phase;
    if (p != Phase::waiting && p != Phase::offline && p != Phase::skipped) return false;
    if (p != Phase::waiting && window_over_) return false;
  } else if (window_over_) {
    return false;  // too late: the summary is out
  }
  Entry& e = entry(device);
  e.phase = Phase::running;
  e.note.clear();
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
  ended(e);
  return true;
}

bool Fanout::finished(const std::string& device, const Outcome& outcome) {
  auto it = entries_.find(device);
  if (it == entries_.end() && window_over_) return false;
  // A final state may overtake the reply; it is an answer all the same.
  Entry& e = entry(device);
  // One reported offline (or skipped) whose final state comes all the same ran after all.
  const bool came_back = e.phase == Phase::offline || e.phase == Phase::skipped;
  if ((terminal(e.phase) && !came_back) || e.phase == Phase::pending) return false;
  e.phase = Phase::finished;
  e.status = e.timed_out ? kExitTimeout : outcome.status;
  if (e.timed_out) {
    e.note = "timed out";
  } else if (!outcome.note.empty()) {
    e.note = outcome.note;
  } else if (outcome.status != 0) {
    e.note = "exit " + std::to_string(outcome.status);
  }
  ended(e);
  return true;
}

bool Fanout::went_offline(const std::string& device) {
  auto it = entries_.find(device);
  if (it == entries_.end() || terminal(it->second.phase) || it->second.phase == Phase::pending)
    return false;
  Entry& e = it->second;
  // Asked, then gone (before or after its answer came): whether it ran is unknown.
  e.phase = Phase::lost;
  e.status = e.timed_out ? kExitTimeout : kExitFailure;
  e.note = "went offline";
  ended(e);
  return true;
}

bool Fanout::no_answer(const std::string& device) {
  auto it = entries_.find(device);
  if (it == entries_.end() || it->second.phase != Phase::waiting) return false;
  Entry& e = it->second;
  e.phase = Phase::no_answer;
  e.status = kExitFailure;
  e.note = "no answer";
  ended(e);
  return true;
}

void Fanout::reply_window_over() {
  window_over_ = true;
  for (auto& [name, e] : entries_) {
    if (e.phase != Phase::waiting) continue;
    e.phase = Phase::no_answer;
    e.status = kExitFailure;
    e.note = "no answer";
    ended(e);
  }
}

void Fanout::timed_out() {
  for (auto& [name, e] : entries_)
    if (!terminal(e.phase)) e.timed_out = true;
}

void Fanout::timed_out(const std::string& device) {
  auto it = entries_.find(device);
  if (it != entries_.end() && !terminal(it->second.phase)) it->second.timed_out = true;
}

void Fanout::abandon(int status, std::string_view note) {
  for (auto& [name, e] : entries_)
    if (e.phase != Phase::pending) abandon(name, status, note);
}

bool Fanout::abandon(const std::string& device, int status, std::string_view note) {
  auto it = entries_.find(device);
  if (it == entries_.end() || terminal(it->second.phase) || it->second.phase == Phase::pending)
    return false;
  Entry& e = it->second;
  if (e.phase == Phase::waiting) {
    e.phase = Phase::no_answer;
    e.status = kExitFailure;
    e.note = "no answer";
  } else {
    e.phase = Phase::lost;
    e.status = e.timed_out ? kExitTimeout : status;
    e.note = e.timed_out ? "timed out" : std::string(note);
  }
  ended(e);
  return true;
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
  return std::any_of(entries_.begin(), entries_.end(), [](const auto& kv) {
    return kv.second.phase == Phase::waiting || kv.second.phase == Phase::pending;
  });
}

std::vector<std::string> Fanout::running() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_)
    if (e.phase == Phase::running) out.push_back(name);
  return out;
}

std::size_t Fanout::active() const {
  return static_cast<std::size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const auto& kv) {
        return kv.second.phase == Phase::waiting || kv.second.phase == Phase::running;
      }));
}

const Fanout::Entry* Fanout::find(std::string_view device) const {
  auto it = entries_.find(device);
  return it == entries_.end() ? nullptr : &it->second;
}

int Fanout::exit_status() const {
  int highest = -1;
  for (const auto& [name, e] : entries_)
    if (e.phase != Phase::skipped && e.phase != Phase::not_run)
      highest = std::max(highest, e.status);
  return highest < 0 ? kExitFailure : highest;  // nothing ran: 255
}

Fanout::Counts Fanout::counts() const {
  Counts c;
  for (const auto& [name, e] : entries_) {
    if (e.phase == Phase::skipped) {
      ++c.skipped;
      continue;
    }
    ++c.targeted;
    if (e.phase == Phase::no_answer) {
      ++c.no_answer;
    } else if (e.phase == Phase::offline) {
      ++c.offline;
    } else if (e.phase == Phase::not_run) {
      ++c.not_run;
    } else if (e.phase == Phase::finished && e.status == 0) {
      ++c.ok;
    } else {
      ++c.failed;
    }
  }
  return c;
}

std::vector<std::string> Fanout::summary() const {
  std::string ok, failed, offline, silent, not_run, skipped, not_run_why;
  auto add = [](std::string& list, const std::string& item) {
    if (!list.empty()) list += ", ";
    list += item;
  };
  for (const auto& [name, e] : entries_) {
    switch (e.phase) {
      case Phase::no_answer:
        add(silent, name);
        break;
      case Phase::offline:
        add(offline, name);
        break;
      case Phase::skipped:
        add(skipped, name);
        break;
      case Phase::not_run:
        add(not_run, name);
        not_run_why = e.note;
        break;
      default:
        if (e.phase == Phase::finished && e.status == 0)
          add(ok, name);
        else
          add(failed, name + (e.note.empty() ? "" : " (" + e.note + ")"));
    }
  }
  const Counts c = counts();
  std::vector<std::string> out;
  if (c.ok) out.push_back("ok: " + ok);
  if (c.failed) out.push_back("failed: " + failed);
  if (c.offline) out.push_back("offline, not run: " + offline);
  if (c.no_answer) out.push_back("no answer: " + silent);
  if (c.not_run)
    out.push_back("not run" + (not_run_why.empty() ? "" : " (" + not_run_why + ")") + ": " +
                  not_run);
  if (c.skipped) out.push_back("skipped " + std::to_string(c.skipped) + " offline: " + skipped);
  if (c.targeted == 0) out.push_back("no device answered");
  std::string last = std::to_string(c.targeted) + " targeted: " + std::to_string(c.ok) + " ok, " +
                     std::to_string(c.failed) + " failed, " + std::to_string(c.offline) +
                     " offline, " + std::to_string(c.no_answer) + " no answer";
  if (c.not_run) last += ", " + std::to_string(c.not_run) + " not run";
  if (c.skipped) last += " (" + std::to_string(c.skipped) + " offline skipped)";
  out.push_back(std::move(last));
  return out;
}

}  // namespace linewire::cli
