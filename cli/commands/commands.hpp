// The subcommands of `linewire` (SPEC §10). Each returns the process's exit status and
// throws Failure (exit 255 with its message) or Interrupted.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/session.hpp"

namespace linewire::cli {

struct RunOptions {
  std::optional<double> timeout_s;
  std::string id;
  bool no_stdin = false;
  std::string group;
  bool all = false;
  double wait_s = 10;  // for replies
  std::string device;  // empty for a fan-out
  std::string command;
  std::vector<std::string> args;
};

int run_one(const Context& ctx, const RunOptions& o);
int run_many(const Context& ctx, const RunOptions& o);
int list_devices(const Context& ctx, bool json);
int watch(const Context& ctx, const std::string& device, const std::string& name);
int list_runs(const Context& ctx, const std::string& device, bool json);
int kill_run(const Context& ctx, const std::string& device, const std::string& run,
             const std::string& signal, double wait_s);

// Ending a run the client follows: how long output may still come after the TERM sent
// at --timeout, and after the KILL of a second Ctrl-C.
inline constexpr std::chrono::seconds kAfterTimeout{2};
inline constexpr std::chrono::seconds kAfterKill{5};
// The local --timeout fires this much after the agent's own (it started counting when
// the request was sent, the agent when the process started), so normally the agent's
// state says `timeout` first.
inline constexpr std::chrono::milliseconds kTimeoutSlack{500};

// The deadlines of `linewire run` (one device or many), besides a device's offline
// grace: the reply to the start request (--wait), the local --timeout, and the last wait
// for final states after the TERM of --timeout or the KILL of a second Ctrl-C.
class RunDeadlines {
 public:
  // The start request goes out now.
  void start(const RunOptions& o) {
    const auto now = Clock::now();
    reply_by_ = now + seconds(o.wait_s);
    if (o.timeout_s) timeout_at_ = now + seconds(*o.timeout_s) + kTimeoutSlack;
  }

  // The earliest of them and `offline` (the offline grace's); the reply's only while
  // `awaiting_reply`.
  Clock::time_point next(bool awaiting_reply, std::optional<Clock::time_point> offline) const {
    auto d = Clock::time_point::max();
    if (awaiting_reply) d = std::min(d, reply_by_);
    if (timeout_at_) d = std::min(d, *timeout_at_);
    if (give_up_at_) d = std::min(d, *give_up_at_);
    if (offline) d = std::min(d, *offline);
    return d;
  }

  bool reply_overdue(Clock::time_point now) const { return now >= reply_by_; }

  // True once: at the first call at or after the local --timeout.
  bool timeout_due(Clock::time_point now) {
    if (!timeout_at_ || now < *timeout_at_) return false;
    timeout_at_.reset();
    return true;
  }

  // Stop waiting `after` from now, with exit status `status` and the note `why`; an
  // earlier give-up already set stays.
  void give_up(std::chrono::seconds after, int status, std::string why) {
    auto at = Clock::now() + after;
    if (give_up_at_ && *give_up_at_ <= at) return;
    give_up_at_ = at;
    give_up_status_ = status;
    give_up_note_ = std::move(why);
  }

  struct GiveUp {
    int status;
    std::string note;
  };
  // The give-up, once, when it is due at `now`.
  std::optional<GiveUp> give_up_due(Clock::time_point now) {
    if (!give_up_at_ || now < *give_up_at_) return std::nullopt;
    give_up_at_.reset();
    return GiveUp{give_up_status_, give_up_note_};
  }

 private:
  Clock::time_point reply_by_;
  std::optional<Clock::time_point> timeout_at_;
  std::optional<Clock::time_point> give_up_at_;
  int give_up_status_ = 0;
  std::string give_up_note_;
};

}  // namespace linewire::cli
