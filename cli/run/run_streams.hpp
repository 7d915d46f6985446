// The output side of one run as the client sees it: `out` and `err` each through a
// Sequencer, and at the final state a check of what arrived against the state's
// `lines`/`err_lines` (SPEC §4), which is all MQTT 3.1.1 has to detect a loss with.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/run/sequencer.hpp"

namespace linewire::cli {

enum class Stream { out, err };

class RunStreams {
 public:
  using Emit = std::function<void(Stream, std::string_view line)>;

  // `join_late`: the run was under way before we listened (watch), so lines before
  // the first one seen are not missing.
  explicit RunStreams(Emit emit, bool join_late = false);

  void line(Stream stream, std::optional<std::uint64_t> seq, std::string text);

  // The final state arrived: every line still waiting goes out, in order. Returns what
  // stderr should say about lines that never came or came twice (empty when all is well).
  std::vector<std::string> finish(const nlohmann::json& final_state);

  std::uint64_t emitted(Stream stream) const;
  // Lines known to be no longer held by the agent (Sequencer::gone).
  std::uint64_t gone(Stream stream) const {
    return stream == Stream::out ? out_.gone() : err_.gone();
  }
  // The highest seq shown of `stream`, 0 if none.
  std::uint64_t highest(Stream stream) const;
  // See Sequencer::lost_before and start_at.
  void lost_before(Stream stream, std::uint64_t seq) { of(stream).lost_before(seq); }
  void resync() {
    out_.resync();
    err_.resync();
  }
  void start_at(std::uint64_t seq) {
    out_.start_at(seq);
    err_.start_at(seq);
  }
  // The final state `doc` counts lines not shown yet (a gap, or the last ones): a
  // replay (SPEC §12) may still bring them. Only with seq numbers (MQTT 5).
  bool incomplete(const nlohmann::json& final_state) const;

 private:
  Sequencer& of(Stream stream) { return stream == Stream::out ? out_ : err_; }
  std::optional<std::string> check(const Sequencer& s, const nlohmann::json& doc, const char* key,
                                   std::string_view what) const;

  bool join_late_;
  Sequencer out_;
  Sequencer err_;
};

}  // namespace linewire::cli
