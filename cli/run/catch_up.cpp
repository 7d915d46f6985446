// A replay of a run's kept output, asked and taken: see catch_up.hpp.
#include "cli/run/catch_up.hpp"

#include "cli/broker/ids.hpp"

namespace linewire::cli {

using nlohmann::json;

void CatchUp::ask(std::uint64_t from_out, std::uint64_t from_err) {
  correlation_ = random_hex(16);
  from_out_ = from_out;
  from_err_ = from_err;
  requester_.replay(topic_, from_out, from_err, correlation_);
}

std::optional<CatchUp::Answer> CatchUp::on_message(const Incoming& m, const json* final_state) {
  if (correlation_.empty()) return std::nullopt;  // nothing asked: a stray message
  std::string_view leaf = std::string_view(m.topic).substr(c_.replay_topic().size());
  if (leaf == "/out" || leaf == "/err") {
    // With MQTT 3.1.1 there is no seq: the lines pass in the order they come.
    streams_.line(leaf == "/out" ? Stream::out : Stream::err, m.seq, m.payload);
    return std::nullopt;
  }
  if (!leaf.empty()) return std::nullopt;
  json doc = json::parse(m.payload, nullptr, false);
  if (!doc.is_object()) return std::nullopt;
  const std::string correlation =
      c_.v5() ? m.correlation
              : (doc.contains("correlation") && doc["correlation"].is_string()
                     ? doc["correlation"].get<std::string>()
                     : std::string());
  if (correlation != correlation_) return std::nullopt;
  correlation_.clear();
  Answer a;
  a.ok = doc.value("ok", false);
  if (!a.ok) {
    const json& e = doc.contains("error") ? doc["error"] : json();
    a.error = e.is_object() ? e.value("code", "error") + ": " + e.value("message", "") : "refused";
    return a;
  }
  a.state = doc.value("state", "");
  if (c_.v5()) {
    settle(Stream::out, doc.value("out", json()), from_out_, final_state, "lines");
    settle(Stream::err, doc.value("err", json()), from_err_, final_state, "err_lines");
  }
  return a;
}

// Lines from `from` before the first one replayed are no longer kept; when none was
// replayed of a run that ended, none from `from` on is.
void CatchUp::settle(Stream s, const json& range, std::uint64_t from, const json* final_state,
                     const char* count) {
  if (!range.is_object()) return;
  const json first = range.value("first", json());
  if (first.is_number_unsigned()) {
    if (first.get<std::uint64_t>() > from) streams_.lost_before(s, first.get<std::uint64_t>());
  } else if (final_state && final_state->is_object() &&
             final_state->value(count, json()).is_number_unsigned()) {
    const auto lines = (*final_state)[count].get<std::uint64_t>();
    if (lines >= from) streams_.lost_before(s, lines + 1);
  }
}

}  // namespace linewire::cli
