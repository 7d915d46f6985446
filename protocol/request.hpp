// Requests from the network (SPEC §3): parsing and validation into a value or an
// error code with a message. Nothing here throws on input, whatever it is.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace linewire::protocol {

enum class ErrorCode {
  bad_request,
  unknown_command,
  args_not_allowed,
  bad_args,
  duplicate_id,
  busy,
  spawn_failed,
  shutting_down,
  unknown_run,
  unauthorized,
};

std::string_view to_string(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
};

struct StartRequest {
  std::optional<std::string> id;
  std::vector<std::string> args;
  std::optional<std::string> stdin_text;
  std::optional<config::Duration> timeout;
  // MQTT 3.1.1 reply destination (fields `reply_to`, `correlation`).
  std::string reply_to;
  std::optional<std::string> correlation;
};

struct ParsedStart {
  StartRequest request;        // as much as could be read, reply_to included
  std::optional<Error> error;  // the first problem found
};

// An empty payload is an empty request. The reply fields are read first so that
// even a refused request can be answered where its sender listens.
ParsedStart parse_start(std::string_view payload);

// A replay request (SPEC §12): empty, or {"from": N, "streams": ["out", "err"]}.
// `from` may also give each stream its own first line, {"out": N, "err": M}, which is
// what a client that resumes after a reconnect needs (it saw up to different lines of
// each). 0 is taken as 1: seq starts at 1.
struct ReplayRequest {
  std::uint64_t from_out = 1;
  std::uint64_t from_err = 1;
  bool out = true;
  bool err = true;
  std::string reply_to;  // MQTT 3.1.1 reply destination, as for a start
  std::optional<std::string> correlation;
};

struct ParsedReplay {
  ReplayRequest request;
  std::optional<Error> error;
};

ParsedReplay parse_replay(std::string_view payload);

// The longest single argument accepted: std::regex recurses per character, so an
// unbounded argument could exhaust the stack of a pattern match.
inline constexpr std::size_t kMaxArgLength = 4096;

}  // namespace linewire::protocol
