// Puts one stream of a run (`out` or `err`) back in order by its `seq` user property
// (SPEC §2): a duplicate (a QoS 1 redelivery after a reconnect) is dropped, a line that
// comes early waits for the ones before it. Lines without `seq` (MQTT 3.1.1) pass as
// they come: MQTT keeps one publisher's order on a topic, but duplicates go unnoticed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace linewire::cli {

class Sequencer {
 public:
  using Emit = std::function<void(std::string_view line)>;

  // How many early lines wait for a missing one before it is given up for lost. With
  // QoS 1 and one subscription a gap only opens across a reconnect, and closes soon.
  static constexpr std::size_t kMaxWaiting = 10000;

  explicit Sequencer(Emit emit, std::size_t max_waiting = kMaxWaiting);

  // Watching a run already under way: the first `seq` seen starts the count.
  void join_late() { join_late_ = true; }
  // Only lines from `seq` on are wanted (`watch --from`): the ones before are neither
  // shown nor missed.
  void start_at(std::uint64_t seq) {
    started_ = true;
    next_ = seq == 0 ? 1 : seq;
  }

  void push(std::optional<std::uint64_t> seq, std::string line);
  // The end of the stream: waiting lines go out in order, the gaps counted as lost.
  void flush();
  // Lines before `seq` will never come (the agent no longer holds them, SPEC §12): the
  // ones waiting go out, the gaps before `seq` are counted as gone().
  void lost_before(std::uint64_t seq);
  // Lines that wait for earlier ones go out now, the gaps counted as skipped: no
  // replay will fill them (the agent did not answer one).
  void resync() {
    skip_to_first_waiting();
    drain();
  }

  std::uint64_t emitted() const { return emitted_; }
  std::uint64_t duplicates() const { return duplicates_; }
  std::uint64_t skipped() const { return skipped_; }  // seq numbers that never came
  std::uint64_t gone() const { return gone_; }        // of them, known to be no longer kept
  bool sequenced() const { return started_; }         // some line carried `seq`
  // The highest seq passed on (0 if none); with join_late, seq numbers before the
  // first one seen are not counted as skipped.
  std::uint64_t highest() const { return next_ - 1; }
  std::uint64_t first() const { return first_; }
  std::size_t waiting() const { return waiting_.size(); }

 private:
  void emit(std::string_view line);
  void drain();
  void skip_to_first_waiting();

  Emit emit_;
  std::size_t max_waiting_;
  bool join_late_ = false;
  bool started_ = false;
  std::uint64_t next_ = 1;
  std::uint64_t first_ = 0;
  std::uint64_t emitted_ = 0;
  std::uint64_t duplicates_ = 0;
  std::uint64_t skipped_ = 0;
  std::uint64_t gone_ = 0;
  std::map<std::uint64_t, std::string> waiting_;
};

}  // namespace linewire::cli
