// The event loop `linewire run` shares between one device and a fan-out: see run_loop.hpp.
#include "cli/run/run_loop.hpp"

#include <csignal>
#include <nlohmann/json.hpp>

#include "cli/broker/ids.hpp"
#include "cli/output/output.hpp"
#include "cli/run/exit_status.hpp"

namespace linewire::cli {

using nlohmann::json;

namespace {

constexpr int kExitBrokenPipe = 128 + SIGPIPE;  // as if killed by SIGPIPE, like any filter

}  // namespace

RunLoop::RunLoop(Connection& c, const RunOptions& o, std::string id, std::string runs,
                 std::string kill_note)
    : c_(c),
      o_(o),
      id_(std::move(id)),
      requester_(c),
      offline_(seconds(o.wait_s)),
      runs_(std::move(runs)),
      kill_note_(std::move(kill_note)) {}

int RunLoop::follow() {
  for (;;) {
    if (auto status = over()) return *status;
    auto e = c_.next(deadlines_.next(awaiting_reply(), offline_.deadline()));
    std::optional<int> done;
    if (!e) {
      done = on_deadline();
    } else if (e->kind == Event::Kind::message) {
      done = on_message(e->message);
    } else if (e->kind == Event::Kind::interrupt) {
      done = on_interrupt(e->signal);
    } else if (e->kind == Event::Kind::lost) {
      note("connection to the broker lost; reconnecting");
    } else if (e->kind == Event::Kind::reconnected) {
      note("reconnected");
      offline_.reconnected(Clock::now());  // every device's grace starts again
      on_reconnected();
    }
    if (!done && out().broken()) {
      // Whoever read our stdout is gone (`| head -1`): the run's output has nowhere
      // to go, so it ends as a local filter would.
      terminate();
      done = kExitBrokenPipe;
    }
    if (done) return *done;
  }
}

std::optional<int> RunLoop::on_interrupt(int sig) {
  if (sig != SIGINT) {
    // Terminal closed or we were told to stop: the run should not outlive us.
    terminate();
    return 128 + sig;
  }
  ++interrupts_;
  if (interrupts_ == 1) {
    note("sending INT to " + runs_ + " (Ctrl-C again sends KILL)");
    interrupt("INT");
  } else if (interrupts_ == 2) {
    note("sending KILL to " + runs_ + " (Ctrl-C again leaves at once)");
    interrupt("KILL");
    deadlines_.give_up(kAfterKill, kExitFailure, kill_note_);
  } else {
    return 128 + SIGINT;
  }
  return std::nullopt;
}

StartFields RunLoop::starting() {
  asked_ = true;
  correlation_ = random_hex(16);
  StartFields f;
  f.id = id_;
  f.args = o_.args;
  f.timeout_s = o_.timeout_s;
  deadlines_.start(o_);
  return f;
}

std::optional<Reply> RunLoop::our_reply(const Incoming& m) const {
  auto reply = parse_reply(m.payload);
  if (!reply) return std::nullopt;
  const std::string& correlation = c_.v5() ? m.correlation : reply->correlation;
  if (correlation != correlation_) return std::nullopt;
  return reply;
}

void RunLoop::device_status(const std::string& device, const std::string& payload,
                            std::string_view aside) {
  const bool was_offline = offline_.offline(device);
  if (offline_.status(device, payload, Clock::now())) {
    note(device + " went " + (payload.empty() ? "away" : payload) + "; waiting " +
         json(o_.wait_s).dump() + " s for it to come back" + std::string(aside));
  } else if (was_offline && payload == "online") {
    note(device + " is back online");
  }
}

}  // namespace linewire::cli
