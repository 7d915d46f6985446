#include "protocol/request.hpp"

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

}  // namespace

ParsedStart parse_start(std::string_view payload) {
  ParsedStart out;
  if (payload.find_first_not_of(" \t\r\n") == std::string_view::npos) return out;
  // nlohmann stops at a NUL as at the end of input: `{}\0junk` would pass as `{}`.
  if (payload.find('\0') != std::string_view::npos) {
    out.error = bad("payload contains a NUL byte");
    return out;
  }
  // No exceptions: a parse error becomes a discarded value. Depth is bounded by the
  // payload size limit checked before (nlohmann's parser recurses per level).
  json doc = json::parse(payload.begin(), payload.end(), nullptr, false);
  if (doc.is_discarded()) {
    out.error = bad("payload is not valid JSON");
    return out;
  }
  if (!doc.is_object()) {
    out.error = bad("payload must be a JSON object");
    return out;
  }
  if (auto it = doc.find("reply_to"); it != doc.end()) {
    const std::string* topic = it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
    if (topic && !topic->empty() &&
        topic->find_first_of(std::string_view("+#\0", 3)) == std::string::npos) {
      out.request.reply_to = *topic;
    } else {
      out.error = bad("'reply_to' must be a topic name without wildcards");
      return out;
    }
  }
  if (auto it = doc.find("correlation"); it != doc.end()) {
    if (it->is_string()) {
      out.request.correlation = it->get<std::string>();
    } else {
      out.error = bad("'correlation' must be a string");
      return out;
    }
  }
  out.error = read_fields(doc, out.request);
  return out;
}

}  // namespace linewire::protocol
