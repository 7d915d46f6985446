#include "protocol/request.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "protocol/names.hpp"

namespace linewire::protocol {

using nlohmann::json;

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::bad_request:
      return "bad_request";
    case ErrorCode::unknown_command:
      return "unknown_command";
    case ErrorCode::args_not_allowed:
      return "args_not_allowed";
    case ErrorCode::bad_args:
      return "bad_args";
    case ErrorCode::duplicate_id:
      return "duplicate_id";
    case ErrorCode::busy:
      return "busy";
    case ErrorCode::spawn_failed:
      return "spawn_failed";
    case ErrorCode::shutting_down:
      return "shutting_down";
    case ErrorCode::unknown_run:
      return "unknown_run";
    case ErrorCode::unauthorized:
      return "unauthorized";
  }
  return "bad_request";
}

namespace {

Error bad(std::string message) { return Error{ErrorCode::bad_request, std::move(message)}; }

std::optional<Error> read_fields(const json& doc, StartRequest& req) {
  for (const auto& [key, value] : doc.items()) {
    if (key == "reply_to" || key == "correlation") continue;  // read before
    if (key == "id") {
      if (!value.is_string()) return bad("'id' must be a string");
      const auto& id = value.get_ref<const std::string&>();
      if (!valid_name(id)) return bad("'id' must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
      req.id = id;
    } else if (key == "args") {
      if (!value.is_array()) return bad("'args' must be an array of strings");
      for (const auto& a : value) {
        if (!a.is_string()) return bad("'args' must be an array of strings");
        req.args.push_back(a.get<std::string>());
      }
    } else if (key == "stdin") {
      if (!value.is_string()) return bad("'stdin' must be a string");
      req.stdin_text = value.get<std::string>();
    } else if (key == "timeout") {
      if (!value.is_number()) return bad("'timeout' must be a number of seconds");
      double s = value.get<double>();
      if (!std::isfinite(s) || s <= 0 || s > 1e9) return bad("'timeout' must be positive");
      req.timeout = config::Duration(static_cast<long long>(std::ceil(s * 1000)));
    } else {
      return bad("unknown field '" + key + "'");
    }
  }
  return std::nullopt;
}

// The JSON object a payload must be (an empty payload is none: nullopt and no error),
// then its reply fields, read first so that even a refused request is answered where
// its sender listens (SPEC §3).
std::optional<json> read_object(std::string_view payload, std::string& reply_to,
                                std::optional<std::string>& correlation,
                                std::optional<Error>& error) {
  if (payload.find_first_not_of(" \t\r\n") == std::string_view::npos) return std::nullopt;
  // nlohmann stops at a NUL as at the end of input: `{}\0junk` would pass as `{}`.
  if (payload.find('\0') != std::string_view::npos) {
    error = bad("payload contains a NUL byte");
    return std::nullopt;
  }
  // No exceptions: a parse error becomes a discarded value. Depth is bounded by the
  // payload size limit checked before (nlohmann's parser recurses per level).
  json doc = json::parse(payload.begin(), payload.end(), nullptr, false);
  if (doc.is_discarded()) {
    error = bad("payload is not valid JSON");
    return std::nullopt;
  }
  if (!doc.is_object()) {
    error = bad("payload must be a JSON object");
    return std::nullopt;
  }
  if (auto it = doc.find("reply_to"); it != doc.end()) {
    const std::string* topic = it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
    if (!topic || topic->empty() ||
        topic->find_first_of(std::string_view("+#\0", 3)) != std::string::npos) {
      error = bad("'reply_to' must be a topic name without wildcards");
      return std::nullopt;
    }
    reply_to = *topic;
  }
  if (auto it = doc.find("correlation"); it != doc.end()) {
    if (!it->is_string()) {
      error = bad("'correlation' must be a string");
      return std::nullopt;
    }
    correlation = it->get<std::string>();
  }
  return doc;
}

// A `from` line number: a non-negative integer (0 reads as 1).
std::optional<std::uint64_t> line_number(const json& value) {
  if (value.is_number_unsigned()) return std::max<std::uint64_t>(1, value.get<std::uint64_t>());
  if (value.is_number_integer() && value.get<std::int64_t>() >= 0)
    return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(value.get<std::int64_t>()));
  return std::nullopt;
}

std::optional<Error> read_replay_fields(const json& doc, ReplayRequest& req) {
  for (const auto& [key, value] : doc.items()) {
    if (key == "reply_to" || key == "correlation") continue;  // read before
    if (key == "from") {
      constexpr const char* kFrom =
          "'from' must be a line number (an integer from 0 up) or {\"out\": N, \"err\": M}";
      if (value.is_object()) {
        for (const auto& [stream, n] : value.items()) {
          auto number = line_number(n);
          if (!number || (stream != "out" && stream != "err")) return bad(kFrom);
          (stream == "out" ? req.from_out : req.from_err) = *number;
        }
      } else if (auto number = line_number(value)) {
        req.from_out = req.from_err = *number;
      } else {
        return bad(kFrom);
      }
    } else if (key == "streams") {
      constexpr const char* kStreams = "'streams' must be an array of \"out\" and \"err\"";
      if (!value.is_array() || value.empty()) return bad(kStreams);
      req.out = req.err = false;
      for (const auto& stream : value) {
        if (stream == "out")
          req.out = true;
        else if (stream == "err")
          req.err = true;
        else
          return bad(kStreams);
      }
    } else {
      return bad("unknown field '" + key + "' (from, streams, reply_to, correlation)");
    }
  }
  return std::nullopt;
}

}  // namespace

ParsedStart parse_start(std::string_view payload) {
  ParsedStart out;
  auto doc = read_object(payload, out.request.reply_to, out.request.correlation, out.error);
  if (doc) out.error = read_fields(*doc, out.request);
  return out;
}

ParsedReplay parse_replay(std::string_view payload) {
  ParsedReplay out;
  auto doc = read_object(payload, out.request.reply_to, out.request.correlation, out.error);
  if (doc) out.error = read_replay_fields(*doc, out.request);
  return out;
}

}  // namespace linewire::protocol
