// The event loop of `linewire run` (SPEC §10.2, §10.3), shared by one run on one device
// (commands/run_one.cpp) and a fan-out (commands/run_many.cpp): messages, deadlines,
// Ctrl-C and friends, a closed stdout and the connection's ups and downs.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "cli/broker/connection.hpp"
#include "cli/broker/payloads.hpp"
#include "cli/broker/requester.hpp"
#include "cli/broker/session.hpp"
#include "cli/run/offline_grace.hpp"
#include "cli/run/run_options.hpp"

namespace linewire::cli {

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
    if (wake_at_) d = std::min(d, *wake_at_);
    if (offline) d = std::min(d, *offline);
    return d;
  }

  bool reply_overdue(Clock::time_point now) const { return now >= reply_by_; }

  // A wait of the run's own (a replay's answer): wake_due() says when it is over.
  void wake(Clock::time_point at) { wake_at_ = at; }
  void clear_wake() { wake_at_.reset(); }
  bool wake_due(Clock::time_point now) {
    if (!wake_at_ || now < *wake_at_) return false;
    wake_at_.reset();
    return true;
  }

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
  std::optional<Clock::time_point> wake_at_;
  int give_up_status_ = 0;
  std::string give_up_note_;
};

// What following one run and following many have in common; each derives from it and
// fills in what differs (the virtual functions below).
class RunLoop {
 public:
  virtual ~RunLoop() = default;
  RunLoop(const RunLoop&) = delete;
  RunLoop& operator=(const RunLoop&) = delete;

 protected:
  // `id`: the run id (one for every device). `runs` names what Ctrl-C signals in the
  // notes ("run ID", "every run"); `kill_note` is the give-up's note when no final state
  // comes within kAfterKill of the KILL of a second Ctrl-C.
  RunLoop(Connection& c, const RunOptions& o, std::string id, std::string runs,
          std::string kill_note);

  // Takes events until a handler or over() gives the exit status, or the user ends it:
  // SIGTERM or SIGHUP (128+N), a third Ctrl-C (130), a closed stdout (141); the last two
  // with TERM to the runs (terminate()). Ctrl-C sends INT, then KILL (interrupt()).
  int follow();

  // The start request(s) go out now: a new correlation, and the deadlines (reply,
  // --timeout) count from now. Returns the request's fields.
  StartFields starting();

 public:
  // True once a run loop of this process sent a start request. A failure after that
  // must not be reported as "not run" (`run --json`, cli/main.cpp).
  static bool asked() { return asked_; }

 protected:
  // The reply in `m` when it answers our start request (its correlation); else nullopt.
  std::optional<Reply> our_reply(const Incoming& m) const;
  // A status message of `device`, whose run we follow: says on stderr that it went
  // offline (`aside` added) and how long we wait, or that it is back.
  void device_status(const std::string& device, const std::string& payload,
                     std::string_view aside = {});

  // While true, the reply's deadline (--wait) counts.
  virtual bool awaiting_reply() const = 0;
  // The earliest deadline passed (the reply, --timeout, a give-up, an offline grace).
  virtual std::optional<int> on_deadline() = 0;
  virtual std::optional<int> on_message(const Incoming& m) = 0;
  // Ctrl-C's INT or KILL for the run(s): sent now, or as soon as a run exists.
  virtual void interrupt(const std::string& name) = 0;
  // TERM to the runs that exist, as the client leaves.
  virtual void terminate() = 0;
  // The exit status once nothing is left to wait for.
  virtual std::optional<int> over() const { return std::nullopt; }
  // The connection is back (its subscriptions renewed): ask for what was missed.
  virtual void on_reconnected() {}

  Connection& c_;
  const RunOptions& o_;
  std::string id_;
  Requester requester_;
  OfflineGrace offline_;
  RunDeadlines deadlines_;
  std::string correlation_;
  bool timed_out_ = false;

 private:
  std::optional<int> on_interrupt(int sig);

  std::string runs_;
  std::string kill_note_;
  int interrupts_ = 0;
  static inline bool asked_ = false;
};

}  // namespace linewire::cli
