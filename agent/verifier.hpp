// The checks of signed requests (SPEC §11), in the SPEC's order: the key is trusted,
// the signature verifies for this topic, `ts` is within max_skew of now, the nonce is
// fresh for the key; then, once the transport knows the command, the command's `keys`
// name the key. An unsigned request where a signature is required is refused too.
// Every refusal is `unauthorized` with a message naming the check that failed; a
// malformed envelope is `bad_request`.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "agent/nonce_cache.hpp"
#include "auth/keys.hpp"
#include "config/config.hpp"
#include "protocol/names.hpp"
#include "protocol/request.hpp"
#include "protocol/signed_request.hpp"

namespace linewire::agent {

using protocol::Error;
using protocol::ErrorCode;
using protocol::Inner;
using protocol::ReplyFields;
using protocol::RequestKind;

// A request that passed the checks, as the plain request it stands for.
struct Verified {
  std::string key;                    // the signing key's name; empty when it was not signed
  std::string payload;                // the plain payload (SPEC §2, §3)
  std::optional<Error> fields_error;  // see Inner::fields_error
  ReplyFields reply;                  // from INNER (signed requests only)
};

struct Checked {
  std::optional<Verified> verified;  // set when it passed
  Error error{ErrorCode::unauthorized, {}};
  ReplyFields reply;  // where a refusal may go, from INNER (see inner_reply_fields)
};

class Verifier {
 public:
  explicit Verifier(const config::Config& config);

  // SIGHUP: new keys and settings; the nonce memory stays, so a reload opens no replay.
  void reconfigure(const config::Config& config);

  // `target`: the command the request is for (the run's command for in, eof and
  // signal), or nullptr when there is none; `wall_now_ms` is the Unix time in ms.
  Checked check(std::string_view topic, RequestKind kind, std::string_view payload,
                const config::Command* target, std::int64_t wall_now_ms,
                NonceCache::Clock::time_point now);
  Checked check(std::string_view topic, RequestKind kind, std::string_view payload,
                const config::Command* target);

  // The last check: a command with `keys` runs only for those.
  std::optional<Error> check_command_keys(const Verified& v, const config::Command& command) const;

  std::size_t remembered_nonces() const { return nonces_.size(); }

 private:
  const config::Config* config_;
  std::map<std::string, auth::PublicKey, std::less<>> keys_;
  NonceCache nonces_;
};

}  // namespace linewire::agent
