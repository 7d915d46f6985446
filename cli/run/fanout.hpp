// Book-keeping of a fan-out (`run --group`, `run --all`, SPEC §10): which devices are
// targeted, which are offline and not run (or skipped on purpose with --online), which
// wait for their turn (--batch), which replied, how each run ended; when it is all over,
// the exit status (the highest of all; 255 for a device offline or silent) and the
// summary, whose last line counts targeted, ok, failed, offline and no answer.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/run/exit_status.hpp"

namespace linewire::cli {

class Fanout {
 public:
  enum class Phase {
    pending,    // targeted, not asked yet (--batch: waits for its turn)
    waiting,    // asked, no answer yet
    running,    // answered; its run goes on
    finished,   // its final state came
    refused,    // the device refused the request
    lost,       // went offline mid-run, or given up on
    no_answer,  // neither answered nor went offline within --wait
    offline,    // offline when targeted (or before it answered): not run
    not_run,    // never asked: --fail-fast after a failure, or Ctrl-C
    skipped,    // offline and left out on purpose (--online, --all): not targeted
  };

  struct Entry {
    std::string device;
    bool expected = false;
    bool timed_out = false;
    Phase phase = Phase::waiting;
    int status = kExitFailure;
    std::string note;  // why it failed, for the summary
  };

  struct Counts {
    std::size_t targeted = 0, ok = 0, failed = 0, offline = 0, no_answer = 0, not_run = 0,
                skipped = 0;
  };

  // --fail-fast: after the first failure no pending device starts (SPEC §10).
  explicit Fanout(bool fail_fast = false) : fail_fast_(fail_fast) {}

  // A device that should answer, asked now: online, and in the group when there is one.
  void expect(const std::string& device);
  // A device that should answer once its turn comes (--batch): see start_next().
  void queue(const std::string& device);
  // A targeted device that is offline: not run, 255 (`DEVICE: offline, not run`).
  void offline(const std::string& device);
  // An offline device left out on purpose: named in the summary, not counted.
  void skip(const std::string& device);

  // Pending devices to ask now, in name order, so that at most `batch` are waiting or
  // running at once (0: no bound); they become `waiting`. None once stopped.
  std::vector<std::string> start_next(std::size_t batch);
  // Nothing more starts (Ctrl-C, or --fail-fast's first failure): pending devices are
  // not run, with `why` in the summary.
  void stop_starting(std::string_view why);
  bool stopped() const { return stopped_; }

  // Replies and final states; each returns false when it changes nothing (a device
  // already done, or a duplicate). A reply from a device not expected still counts:
  // it answered, so its run is followed like the others; so does one from a device
  // reported offline that came back in time.
  bool replied(const std::string& device);
  bool refused(const std::string& device, std::string_view code, std::string_view message);
  bool finished(const std::string& device, const Outcome& outcome);
  // The device's status went `offline` after it was asked and before its run ended:
  // failed (`went offline`), since whether it ran is unknown.
  bool went_offline(const std::string& device);
  // This device's --wait has passed without an answer (--batch: each has its own).
  bool no_answer(const std::string& device);

  // --wait has passed: whoever has not replied did not answer.
  void reply_window_over();
  // --timeout has passed: runs still going count as timed out (124) however they end.
  void timed_out();
  void timed_out(const std::string& device);
  // Gives up on every run still going (or on `device`'s), with `status` and `note`.
  void abandon(int status, std::string_view note);
  bool abandon(const std::string& device, int status, std::string_view note);

  bool done() const;
  bool waiting_for_replies() const;
  std::vector<std::string> running() const;  // devices whose runs still go on
  std::size_t active() const;                // waiting or running
  const Entry* find(std::string_view device) const;
  const std::map<std::string, Entry, std::less<>>& entries() const { return entries_; }

  int exit_status() const;
  Counts counts() const;
  // For stderr: `ok: a, b`, `failed: c (exit 3)`, `offline: d`, `no answer: e`,
  // `not run: f (why)`, `skipped N offline: g`, then the counts.
  std::vector<std::string> summary() const;

  static bool terminal(Phase p) {
    return p != Phase::pending && p != Phase::waiting && p != Phase::running;
  }

 private:
  Entry& entry(const std::string& device);
  // A device's run ended: with --fail-fast, a failure stops what has not started.
  void ended(const Entry& e);

  std::map<std::string, Entry, std::less<>> entries_;
  bool window_over_ = false;
  bool has_expected_ = false;
  bool fail_fast_ = false;
  bool stopped_ = false;
};

}  // namespace linewire::cli
