// The envelope of a signed request (SPEC §11), pure parsing and building: a JSON
// object {"signed": B64(INNER), "key": NAME, "sig": B64(SIG)} published in place of a
// plain request, SIG being the Ed25519 signature of
// "linewire-sig-v1\n" + TOPIC + "\n" + INNER. Nothing here checks signatures or time:
// verifier.hpp does, in SPEC order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/names.hpp"
#include "protocol/request.hpp"

namespace linewire::protocol {

// The bytes a signature covers.
std::string signed_message(std::string_view topic, std::string_view inner);

// Whether a payload is meant as a signed request: a JSON object with a `signed` or a
// `sig` member. Such a payload is never taken as a plain request (a stdin line that
// looks like one must be sent signed, or it is refused as a bad envelope).
bool is_envelope(std::string_view payload);

struct Envelope {
  std::string inner;  // decoded INNER, as signed
  std::string key;    // the key's name
  std::string sig;    // decoded, 64 bytes
};

// Exactly the three string fields, a valid key name, canonical base64, a 64-byte
// signature. Errors are bad_request: the envelope itself is malformed.
std::variant<Envelope, Error> parse_envelope(std::string_view payload);

// Where a refusal goes when INNER asks (MQTT 3.1.1): read before anything is verified
// so that even a refused request is answered where its sender listens, as for a plain
// request (SPEC §3). Empty when INNER names none or cannot be read.
struct ReplyFields {
  std::string reply_to;
  std::optional<std::string> correlation;
};
ReplyFields inner_reply_fields(std::string_view inner);

struct Inner {
  std::int64_t ts = 0;  // milliseconds since the Unix epoch
  std::string nonce;
  ReplyFields reply;
  // The plain payload INNER stands for: a start's JSON object (its §3 fields and the
  // reply fields), the `in` line, the signal name, ON/OFF; empty for stop and eof.
  std::string plain;
  // INNER's fields do not fit the topic (an unknown field, `line` missing, ...). Kept
  // apart so that it is reported where a plain payload's fields are (SPEC §3's order).
  std::optional<Error> fields_error;
};

// INNER must be a JSON object with an integer `ts` and a `nonce` of 8-64 characters of
// [A-Za-z0-9_-]; an error here (bad_request) means the signer sent garbage.
std::variant<Inner, Error> parse_inner(std::string_view inner, RequestKind kind);

// What a client publishes: the envelope of `inner` (a JSON object's text) signed for
// `topic` with `sig` (the signature of signed_message(topic, inner)).
std::string make_envelope(std::string_view inner, std::string_view key, std::string_view sig);

}  // namespace linewire::protocol
