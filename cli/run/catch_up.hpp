// Asking an agent for a run's kept output (SPEC §12) and taking the answer: the lines
// (on the connection's replay topic, `/out` and `/err`) go into the run's RunStreams,
// where they meet the live ones and each is shown once, in order; the summary says
// where the kept lines began, so lines no longer held are counted as such. Used by
// `run` after a reconnect, and by `watch` and `logs`.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli/broker/connection.hpp"
#include "cli/broker/requester.hpp"
#include "cli/run/run_streams.hpp"

namespace linewire::cli {

class CatchUp {
 public:
  // How long an agent may take to answer before what came is taken as all.
  static constexpr std::chrono::seconds kWait{5};

  // `topic`: the run's `replay` request topic. The connection must be subscribed to
  // `replay_topic()/#`.
  CatchUp(Connection& c, Requester& requester, std::string topic, RunStreams& streams)
      : c_(c), requester_(requester), topic_(std::move(topic)), streams_(streams) {}

  // Asks for every kept line of stdout from `from_out` and of stderr from `from_err`.
  void ask(std::uint64_t from_out, std::uint64_t from_err);
  // From the lines after the last ones shown.
  void ask_missing() { ask(streams_.highest(Stream::out) + 1, streams_.highest(Stream::err) + 1); }
  bool under_way() const { return !correlation_.empty(); }
  void give_up() { correlation_.clear(); }

  struct Answer {
    bool ok = false;
    std::string state;  // the run's state, as the agent says
    std::string error;  // a refusal: "code: message"
  };
  // A message on the replay topic: a line (nullopt), or the answer that ends the replay.
  // `final_state`, when known, tells how many lines there were: with none replayed of
  // a run that ended, those from `from` on are no longer held.
  std::optional<Answer> on_message(const Incoming& m, const nlohmann::json* final_state);

 private:
  void settle(Stream s, const nlohmann::json& range, std::uint64_t from,
              const nlohmann::json* final_state, const char* count);

  Connection& c_;
  Requester& requester_;
  std::string topic_;
  RunStreams& streams_;
  std::string correlation_;  // of the replay under way
  std::uint64_t from_out_ = 1;
  std::uint64_t from_err_ = 1;
};

}  // namespace linewire::cli
