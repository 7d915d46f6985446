// NDJSON lines of `run --json`: see json_report.hpp.
#include "cli/output/json_report.hpp"

#include "auth/base64.hpp"

namespace linewire::cli {

using nlohmann::json;
// Keys in the order SPEC §10 gives them (device, run, then what the line is about), not
// sorted: a person reading the NDJSON, or a script printing it, sees the device first.
using ordered = nlohmann::ordered_json;

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // cut short
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      return false;
    i += n + 1;
  }
  return true;
}

std::string json_line(std::string_view device, std::string_view run, bool err,
                      std::optional<std::uint64_t> seq, std::string_view text) {
  ordered doc = {{"device", device},
                 {"run", run},
                 {"stream", err ? "err" : "out"},
                 {"seq", seq ? ordered(*seq) : ordered(nullptr)}};
  if (valid_utf8(text))
    doc["line"] = text;
  else
    doc["line_b64"] = auth::base64_encode(text);
  return doc.dump();
}

std::string json_final(std::string_view device, std::string_view run, const json& state) {
  return ordered{{"device", device}, {"run", run}, {"final", ordered(state)}}.dump();
}

std::string json_error(std::string_view device, std::string_view code, std::string_view message) {
  return ordered{{"device", device}, {"error", {{"code", code}, {"message", message}}}}.dump(
      -1, ' ', false, ordered::error_handler_t::replace);
}

std::string json_summary(const Fanout::Counts& c, int exit_status) {
  return ordered{{"summary",
                  {{"targeted", c.targeted},
                   {"ok", c.ok},
                   {"failed", c.failed},
                   {"offline", c.offline},
                   {"no_answer", c.no_answer},
                   {"not_run", c.not_run},
                   {"skipped", c.skipped},
                   {"exit_status", exit_status}}}}
      .dump();
}

std::optional<std::string> json_entry_error(const Fanout::Entry& e) {
  using Phase = Fanout::Phase;
  switch (e.phase) {
    case Phase::finished:
      return std::nullopt;
    case Phase::refused: {
      // note: "refused: CODE[: MESSAGE]"
      std::string_view rest =
          std::string_view(e.note).substr(e.note.rfind("refused: ", 0) == 0 ? 9 : 0);
      auto colon = rest.find(": ");
      std::string code(colon == std::string_view::npos ? rest : rest.substr(0, colon));
      std::string message(colon == std::string_view::npos ? "" : rest.substr(colon + 2));
      return json_error(e.device, code, message);
    }
    case Phase::offline:
      return json_error(e.device, "offline", "offline, not run");
    case Phase::no_answer:
      return json_error(e.device, "no_answer", "no answer");
    case Phase::not_run:
      return json_error(e.device, "not_run", "not run: " + e.note);
    case Phase::skipped:
      return std::nullopt;  // left out on purpose: the summary counts it
    default:
      return json_error(e.device, "lost",
                        e.note.empty() ? "the end of its run is unknown" : e.note);
  }
}

}  // namespace linewire::cli
