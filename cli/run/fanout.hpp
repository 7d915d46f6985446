// Book-keeping of a fan-out (`run --group`, `run --all`, SPEC §10): which devices are
// expected to answer, which replied, how each run ended; when it is all over, the exit
// status (the highest of all, 255 for a device that never answered) and the summary.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cli/run/exit_status.hpp"

namespace linewire::cli {

class Fanout {
 public:
  enum class Phase { waiting, running, finished, refused, lost, no_answer };

  struct Entry {
    std::string device;
    bool expected = false;
    bool timed_out = false;
    Phase phase = Phase::waiting;
    int status = kExitFailure;
    std::string note;  // why it failed, for the summary
  };

  // A device that should answer: online, and in the group when there is one.
  void expect(const std::string& device);

  // Replies and final states; each returns false when it changes nothing (a device
  // already done, or a duplicate). A reply from a device not expected still counts:
  // it answered, so its run is followed like the others.
  bool replied(const std::string& device);
  bool refused(const std::string& device, std::string_view code, std::string_view message);
  bool finished(const std::string& device, const Outcome& outcome);
  // The device's status went `offline` before its run ended.
  bool went_offline(const std::string& device);

  // --wait has passed: whoever has not replied did not answer.
  void reply_window_over();
  // --timeout has passed: runs still going count as timed out (124) however they end.
  void timed_out();
  // Gives up on every run still going, with `status` and `note`.
  void abandon(int status, std::string_view note);

  bool done() const;
  bool waiting_for_replies() const;
  std::vector<std::string> running() const;  // devices whose runs still go on
  const Entry* find(std::string_view device) const;
  const std::map<std::string, Entry, std::less<>>& entries() const { return entries_; }

  int exit_status() const;
  // For stderr: `ok: a, b`, `failed: c (exit 3)`, `no answer: d`, then the counts.
  std::vector<std::string> summary() const;

 private:
  Entry& entry(const std::string& device);
  static bool terminal(Phase p) { return p != Phase::waiting && p != Phase::running; }

  std::map<std::string, Entry, std::less<>> entries_;
  bool window_over_ = false;
  bool has_expected_ = false;
};

}  // namespace linewire::cli
