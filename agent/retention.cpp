// What the agent remembers of runs beyond their processes (SPEC §4.3, §5, §12): the
// state file that makes a crash survivable, the finished runs kept for keep_runs (their
// retained states, their ids for duplicate_id) and, with them, their kept output.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>

#include "agent/agent.hpp"

namespace linewire::agent {

namespace {

// How many finished run ids are remembered for duplicate_id beyond keep_runs.
constexpr std::size_t kMinRememberedIds = 1000;

}  // namespace

void Agent::save_state() const {
  if (!state_file_.enabled()) return;
  SavedState state;
  for (const auto& [id, run] : runs_) state.active.push_back({run->record(), run->start_ticks()});
  std::size_t keep = std::min(finished_.size(), static_cast<std::size_t>(config_.keep_runs));
  state.finished.assign(finished_.end() - static_cast<std::ptrdiff_t>(keep), finished_.end());
  state_file_.save(state);
}

void Agent::recover() {
  SavedState saved = state_file_.load();
  finished_.assign(saved.finished.begin(), saved.finished.end());
  for (auto& a : saved.active) {
    RunRecord& r = a.record;
    // Only the very process we started: a pid can be reused after a reboot.
    bool alive = a.start_ticks != 0 && process_start_ticks(r.pid) == a.start_ticks;
    if (alive) ::kill(-r.pid, SIGKILL);
    spdlog::warn("run {}: lost (the agent stopped while it ran){}", r.run,
                 alive ? "; its process group was killed" : "");
    r.phase = RunPhase::lost;
    r.ended = Clock::now();
    r.error = "linewired stopped while the run was running";
    if (observer_) observer_->on_record_final(r, state_document(r));
    remember_finished(r);
  }
  save_state();
}

void Agent::remember_finished(const RunRecord& r) {
  history_.finish(r.run, std::string(to_string(r.phase)));
  finished_.push_back(r.run);
  std::size_t keep = static_cast<std::size_t>(config_.keep_runs);
  // States past keep_runs are cleared, and their kept output with them; their ids stay
  // taken a while longer so that a late duplicate is still refused.
  if (finished_.size() > keep) {
    const std::string& forgotten = finished_[finished_.size() - keep - 1];
    history_.forget(forgotten);
    if (observer_) observer_->on_forget(forgotten);
  }
  metrics_.history_bytes = history_.bytes();
  while (finished_.size() > std::max(keep, kMinRememberedIds)) finished_.pop_front();
}

// A reload that lowered keep_runs: the finished runs it no longer keeps go now (their
// retained states cleared, their output with them), not one by one as new runs end.
// remember_finished already forgot those past the previous keep_runs.
void Agent::forget_past_keep_runs(int previous_keep) {
  const std::size_t keep = static_cast<std::size_t>(config_.keep_runs);
  const std::size_t kept = std::min(finished_.size(), static_cast<std::size_t>(previous_keep));
  if (keep < kept) {
    for (std::size_t i = finished_.size() - kept; i < finished_.size() - keep; ++i) {
      history_.forget(finished_[i]);
      if (observer_) observer_->on_forget(finished_[i]);
    }
    save_state();
  }
}

}  // namespace linewire::agent
