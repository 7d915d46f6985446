// A run's stdout and stderr in seq order, checked against its final state: see run_streams.hpp.
#include "cli/run/run_streams.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

namespace linewire::cli {

using nlohmann::json;

RunStreams::RunStreams(Emit emit, bool join_late)
    : join_late_(join_late),
      out_([emit](std::string_view l) { emit(Stream::out, l); }),
      err_([emit](std::string_view l) { emit(Stream::err, l); }) {
  if (join_late_) {
    out_.join_late();
    err_.join_late();
  }
}

void RunStreams::line(Stream stream, std::optional<std::uint64_t> seq, std::string text) {
  of(stream).push(seq, std::move(text));
}

std::uint64_t RunStreams::emitted(Stream stream) const {
  return stream == Stream::out ? out_.emitted() : err_.emitted();
}

std::uint64_t RunStreams::highest(Stream stream) const {
  return stream == Stream::out ? out_.highest() : err_.highest();
}

bool RunStreams::incomplete(const json& doc) const {
  auto short_of = [&](const Sequencer& s, const char* key) {
    auto it = doc.is_object() ? doc.find(key) : doc.end();
    if (it == doc.end() || !it->is_number_unsigned()) return false;
    return s.waiting() > 0 || it->get<std::uint64_t>() > s.highest();
  };
  return short_of(out_, "lines") || short_of(err_, "err_lines");
}

std::vector<std::string> RunStreams::finish(const json& doc) {
  out_.flush();
  err_.flush();
  std::vector<std::string> notes;
  if (auto n = check(out_, doc, "lines", "stdout")) notes.push_back(std::move(*n));
  if (auto n = check(err_, doc, "err_lines", "stderr")) notes.push_back(std::move(*n));
  return notes;
}

std::optional<std::string> RunStreams::check(const Sequencer& s, const json& doc, const char* key,
                                             std::string_view what) const {
  auto it = doc.is_object() ? doc.find(key) : doc.end();
  if (it == doc.end() || !it->is_number_integer() || it->get<long long>() < 0) return std::nullopt;
  const auto lines = it->get<std::uint64_t>();
  std::uint64_t missing = 0;
  if (s.sequenced()) {
    missing = s.skipped() + (lines > s.highest() ? lines - s.highest() : 0);
  } else if (join_late_) {
    return std::nullopt;  // without seq there is no telling what came before us
  } else if (s.emitted() > lines) {
    return std::to_string(s.emitted() - lines) + " " + std::string(what) +
           " line(s) more than the run wrote: duplicates after a reconnect (MQTT 3.1.1 " +
           "cannot tell them apart)";
  } else {
    missing = lines - s.emitted();
  }
  if (missing == 0) return std::nullopt;
  const std::uint64_t gone = std::min(s.gone(), missing);
  std::string n = std::to_string(missing) + " of " + std::to_string(lines) + " " +
                  std::string(what) + " line(s) were lost";
  if (gone == missing) return n + ": the agent no longer held them (its output history)";
  if (gone > 0)
    return n + " (" + std::to_string(gone) + " no longer held by the agent, " +
           std::to_string(missing - gone) + " did not arrive)";
  return std::to_string(missing) + " of " + std::to_string(lines) + " " + std::string(what) +
         " line(s) did not arrive";
}

}  // namespace linewire::cli
