#include "protocol/signed_request.hpp"

#include <nlohmann/json.hpp>

#include "auth/base64.hpp"
#include "auth/keys.hpp"

namespace linewire::protocol {

using nlohmann::json;

namespace {

Error bad(std::string message) { return Error{ErrorCode::bad_request, std::move(message)}; }

// No exceptions: a parse error becomes a discarded value. nlohmann stops at a NUL as
// at the end of input, so a NUL is refused first.
std::optional<json> parse_object(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  json doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  return doc;
}

bool valid_nonce(const std::string& n) {
  if (n.size() < 8 || n.size() > 64) return false;
  for (char c : n)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-'))
      return false;
  return true;
}

bool valid_reply_topic(const std::string& t) {
  return !t.empty() && t.find_first_of(std::string_view("+#\0", 3)) == std::string::npos;
}

// The fields INNER carries for each topic besides ts, nonce and the reply fields.
std::optional<Error> plain_from(const json& doc, RequestKind kind, std::string& plain) {
  auto only = [&](std::string_view field) -> std::optional<Error> {
    for (const auto& [key, value] : doc.items()) {
      if (key == "ts" || key == "nonce" || key == "reply_to" || key == "correlation") continue;
      if (key != field) return bad("unknown field '" + key + "' in the signed request");
    }
    return std::nullopt;
  };
  auto text = [&](const char* field) -> std::optional<std::string> {
    auto it = doc.find(field);
    if (it == doc.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  switch (kind) {
    case RequestKind::start:
    case RequestKind::group_start:
    case RequestKind::replay: {
      json rest = json::object();
      for (const auto& [key, value] : doc.items())
        if (key != "ts" && key != "nonce") rest[key] = value;
      plain = rest.dump();  // INNER parsed as valid UTF-8, so this cannot throw
      return std::nullopt;
    }
    case RequestKind::in:
      if (auto e = only("line")) return e;
      if (auto line = text("line")) {
        plain = std::move(*line);
        return std::nullopt;
      }
      return bad("a signed 'in' needs 'line' (a string)");
    case RequestKind::signal:
      if (auto e = only("signal")) return e;
      if (auto name = text("signal")) {
        plain = std::move(*name);
        return std::nullopt;
      }
      return bad("a signed 'signal' needs 'signal' (a signal name)");
    case RequestKind::switch_:
      if (auto e = only("state")) return e;
      if (auto state = text("state"); state && (*state == "ON" || *state == "OFF")) {
        plain = std::move(*state);
        return std::nullopt;
      }
      return bad("a signed 'switch' needs 'state': ON or OFF");
    case RequestKind::stop:
    case RequestKind::eof:
      return only("");
  }
  return bad("not a request topic");
}

}  // namespace

std::string signed_message(std::string_view topic, std::string_view inner) {
  std::string m;
  m.reserve(16 + topic.size() + 1 + inner.size());
  m.append("linewire-sig-v1\n").append(topic).append("\n").append(inner);
  return m;
}

bool is_envelope(std::string_view payload) {
  const auto first = payload.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || payload[first] != '{') return false;
  // Cheap before parsing: every `in` line passes through here.
  if (payload.find("\"sig") == std::string_view::npos) return false;
  auto doc = parse_object(payload);
  return doc && (doc->contains("signed") || doc->contains("sig"));
}

std::variant<Envelope, Error> parse_envelope(std::string_view payload) {
  auto doc = parse_object(payload);
  if (!doc) return bad("a signed request must be a JSON object");
  Envelope e;
  for (const auto& [key, value] : doc->items()) {
    if (key != "signed" && key != "key" && key != "sig")
      return bad("unknown field '" + key + "' in the envelope (signed, key, sig only)");
    if (!value.is_string()) return bad("envelope field '" + key + "' must be a string");
  }
  for (const char* field : {"signed", "key", "sig"})
    if (!doc->contains(field)) return bad(std::string("the envelope has no '") + field + "'");
  e.key = (*doc)["key"].get<std::string>();
  if (!valid_name(e.key)) return bad("envelope 'key' is not a valid key name");
  auto inner = auth::base64_decode((*doc)["signed"].get_ref<const std::string&>());
  if (!inner) return bad("envelope 'signed' is not valid base64 (standard, padded)");
  auto sig = auth::base64_decode((*doc)["sig"].get_ref<const std::string&>());
  if (!sig) return bad("envelope 'sig' is not valid base64 (standard, padded)");
  if (sig->size() != auth::kSignatureSize)
    return bad("envelope 'sig' is not an Ed25519 signature (64 bytes)");
  e.inner = std::move(*inner);
  e.sig = std::move(*sig);
  return e;
}

ReplyFields inner_reply_fields(std::string_view inner) {
  ReplyFields r;
  auto doc = parse_object(inner);
  if (!doc) return r;
  if (auto it = doc->find("reply_to"); it != doc->end() && it->is_string()) {
    const auto& topic = it->get_ref<const std::string&>();
    if (!valid_reply_topic(topic)) return r;
    r.reply_to = topic;
    if (auto c = doc->find("correlation"); c != doc->end() && c->is_string())
      r.correlation = c->get<std::string>();
  }
  return r;
}

std::variant<Inner, Error> parse_inner(std::string_view text, RequestKind kind) {
  auto doc = parse_object(text);
  if (!doc) return bad("the signed request's INNER is not a JSON object");
  Inner in;
  auto ts = doc->find("ts");
  if (ts == doc->end() || !(ts->is_number_integer()))
    return bad("the signed request's 'ts' must be an integer (milliseconds since 1970)");
  // Far beyond any clock, and |now - ts| cannot overflow.
  if (ts->is_number_unsigned() ? ts->get<std::uint64_t>() > std::uint64_t{1} << 62
                               : ts->get<std::int64_t>() < 0)
    return bad("the signed request's 'ts' is out of range");
  in.ts = ts->get<std::int64_t>();
  auto nonce = doc->find("nonce");
  if (nonce == doc->end() || !nonce->is_string() ||
      !valid_nonce(nonce->get_ref<const std::string&>()))
    return bad("the signed request's 'nonce' must be 8 to 64 of A-Z a-z 0-9 _ -");
  in.nonce = nonce->get<std::string>();
  if (auto it = doc->find("reply_to"); it != doc->end()) {
    if (!it->is_string() || !valid_reply_topic(it->get_ref<const std::string&>()))
      return bad("'reply_to' must be a topic name without wildcards");
    in.reply.reply_to = it->get<std::string>();
  }
  if (auto it = doc->find("correlation"); it != doc->end()) {
    if (!it->is_string()) return bad("'correlation' must be a string");
    in.reply.correlation = it->get<std::string>();
  }
  in.fields_error = plain_from(*doc, kind, in.plain);
  return in;
}

std::string make_envelope(std::string_view inner, std::string_view key, std::string_view sig) {
  json doc = {
      {"signed", auth::base64_encode(inner)}, {"key", key}, {"sig", auth::base64_encode(sig)}};
  return doc.dump();
}

}  // namespace linewire::protocol
