// Output history (docs/protocol.md §12): every out and err line of a run, with its seq,
// kept in memory so that a late or reconnecting viewer can have it again. Bounded per
// run (the command's `history` bytes) and for all runs (`limits.history`): past the
// first a run's oldest lines go; past the second the kept output of the oldest
// finished run goes whole, then the oldest lines of the oldest running run. A line
// costs its bytes plus kLineOverhead. Pure book-keeping on the agent's thread: the
// transports read it to replay (MQTT's `replay` request, WebSocket's `?from=N`).
#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace linewire::agent {

enum class Stream { out, err };

class History {
 public:
  static constexpr std::size_t kLineOverhead = 32;

  struct Line {
    Stream stream;
    std::uint64_t seq;
    std::uint64_t pos;  // the line's place among all lines the run ever kept: a cursor
    std::string text;
  };

  // One run's kept output, and what a replay's summary says of the run.
  struct Run {
    std::string command;
    std::string state;  // "queued", "running", then the final phase
    std::size_t max = 0;
    std::size_t bytes = 0;
    std::uint64_t next_pos = 0;
    std::deque<Line> lines;
    // The first kept line at or after `pos`; lines.end() when none (yet).
    std::deque<Line>::const_iterator at(std::uint64_t pos) const;
  };

  explicit History(std::size_t max_total) : max_total_(max_total) {}

  // A run the agent knows from now on (queued or started), keeping up to `max` bytes.
  void open(const std::string& run, const std::string& command, std::string state, std::size_t max);
  void set_state(const std::string& run, std::string state);
  void add(const std::string& run, Stream stream, std::uint64_t seq, std::string_view text);
  // It ended: its output is the first to go when all runs are over limits.history.
  void finish(const std::string& run, std::string state);
  // Its retained state was cleared (keep_runs): so is its output.
  void forget(const std::string& run);
  // A reload's limits.history; applies at once.
  void set_max_total(std::size_t max_total);

  const Run* find(const std::string& run) const;
  std::size_t bytes() const { return bytes_; }
  std::size_t max_total() const { return max_total_; }
  std::size_t runs() const { return runs_.size(); }

 private:
  void drop_front(Run& r);
  void enforce_total();

  std::size_t max_total_;
  std::size_t bytes_ = 0;
  std::map<std::string, Run, std::less<>> runs_;
  std::list<std::string> running_;   // in the order they opened: the oldest first
  std::list<std::string> finished_;  // in the order they ended: the oldest first
};

}  // namespace linewire::agent
