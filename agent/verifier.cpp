#include "agent/verifier.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "agent/auth_policy.hpp"

namespace linewire::agent {

using protocol::Envelope;
using protocol::inner_reply_fields;
using protocol::is_envelope;
using protocol::parse_envelope;
using protocol::parse_inner;
using protocol::signed_message;

namespace {

std::chrono::milliseconds skew_of(const config::Config& c) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(c.auth.max_skew);
}

Checked refused(ErrorCode code, std::string message, ReplyFields reply = {}) {
  Checked c;
  c.error = Error{code, std::move(message)};
  c.reply = std::move(reply);
  return c;
}

std::string seconds_text(std::int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3gs", static_cast<double>(ms) / 1000.0);
  return buf;
}

}  // namespace

Verifier::Verifier(const config::Config& config)
    : config_(&config), nonces_(2 * config.auth.max_skew) {
  reconfigure(config);
}

void Verifier::reconfigure(const config::Config& config) {
  config_ = &config;
  keys_.clear();
  for (const auto& k : config.auth.keys) {
    // The config decoded every key; OpenSSL refusing one would be a bug, and then
    // that key verifies nothing (its requests are refused as unknown).
    if (auto key = auth::PublicKey::from_bytes(k.public_key))
      keys_.emplace(k.name, std::move(*key));
    else
      spdlog::error("auth: OpenSSL refuses key '{}'; its requests will be refused", k.name);
  }
  nonces_.set_ttl(2 * config.auth.max_skew);
}

Checked Verifier::check(std::string_view topic, RequestKind kind, std::string_view payload,
                        const config::Command* target) {
  const auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  return check(topic, kind, payload, target, wall, NonceCache::Clock::now());
}

Checked Verifier::check(std::string_view topic, RequestKind kind, std::string_view payload,
                        const config::Command* target, std::int64_t wall_now_ms,
                        NonceCache::Clock::time_point now) {
  if (!is_envelope(payload)) {
    const bool ok =
        target ? accepts_unsigned(*config_, *target) : accepts_unsigned_unknown(*config_);
    if (!ok) {
      if (target && !target->keys.empty())
        return refused(ErrorCode::unauthorized, "unsigned request: command '" + target->name +
                                                    "' needs a signature by one of its keys");
      return refused(ErrorCode::unauthorized,
                     "unsigned request: auth.require is on, so a signature is required");
    }
    Checked c;
    c.verified = Verified{{}, std::string(payload), std::nullopt, {}};
    return c;
  }

  auto parsed = parse_envelope(payload);
  if (auto* e = std::get_if<Error>(&parsed))
    return refused(e->code, "malformed signed request: " + e->message);
  auto& env = std::get<Envelope>(parsed);
  auto reply = inner_reply_fields(env.inner);

  // 1. The key is trusted.
  auto key = keys_.find(env.key);
  if (key == keys_.end())
    return refused(ErrorCode::unauthorized, "unknown key '" + env.key + "': not in auth.keys",
                   std::move(reply));
  // 2. Its signature of exactly these bytes on exactly this topic.
  if (!key->second.verify(signed_message(topic, env.inner), env.sig))
    return refused(ErrorCode::unauthorized,
                   "bad signature: not signed by key '" + env.key + "' for this topic and content",
                   std::move(reply));

  auto inner = parse_inner(env.inner, kind);
  if (auto* e = std::get_if<Error>(&inner)) return refused(e->code, e->message, std::move(reply));
  auto& in = std::get<Inner>(inner);

  // 3. Fresh: within max_skew either way (ts is bounded by parse_inner: no overflow).
  const auto skew = skew_of(*config_).count();
  const std::int64_t off = wall_now_ms - in.ts;
  if (off > skew || -off > skew)
    return refused(ErrorCode::unauthorized,
                   "stale timestamp: ts is " + seconds_text(std::llabs(off)) +
                       (off > 0 ? " behind" : " ahead of") + " the device's clock, over max_skew " +
                       seconds_text(skew),
                   std::move(in.reply));
  // 4. Not seen before from this key.
  switch (nonces_.insert(env.key, in.nonce, now)) {
    case NonceCache::Result::fresh:
      break;
    case NonceCache::Result::replayed:
      return refused(ErrorCode::unauthorized,
                     "replayed nonce: key '" + env.key + "' already used nonce '" + in.nonce + "'",
                     std::move(in.reply));
    case NonceCache::Result::full:
      return refused(ErrorCode::unauthorized,
                     "nonce memory full: over " + std::to_string(nonces_.capacity()) +
                         " signed requests within 2 x max_skew; try again later",
                     std::move(in.reply));
  }
  Checked c;
  c.verified = Verified{env.key, std::move(in.plain), std::move(in.fields_error), in.reply};
  c.reply = std::move(in.reply);
  return c;
}

std::optional<Error> Verifier::check_command_keys(const Verified& v,
                                                  const config::Command& command) const {
  if (command.keys.empty()) return std::nullopt;
  if (v.key.empty())  // unsigned: refused by check() already; kept for safety of callers
    return Error{ErrorCode::unauthorized, "unsigned request: command '" + command.name +
                                              "' needs a signature by one of its keys"};
  for (const auto& k : command.keys)
    if (k == v.key) return std::nullopt;
  return Error{ErrorCode::unauthorized,
               "key '" + v.key + "' is not in the keys of command '" + command.name + "'"};
}

}  // namespace linewire::agent
