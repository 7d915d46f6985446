// The replay memory of signed requests (SPEC §11): which nonces each key used within
// the last 2 × max_skew. A request older than max_skew is refused by its `ts` anyway,
// so an entry is only needed that long; after that it is forgotten.
//
// Bounded twice: by time, and by a hard cap on entries. Only requests whose signature
// verified reach this memory, so only holders of trusted keys can fill it; when one
// does (more than `capacity` requests within 2 × max_skew), further signed requests
// are refused until entries expire. Forgetting early instead would let a captured
// request be replayed: refusing is the safe side.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <queue>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace linewire::agent {

class NonceCache {
 public:
  using Clock = std::chrono::steady_clock;
  // 65536 entries of about 85 bytes: some 5.3 MiB when full (bench/README.md).
  static constexpr std::size_t kDefaultCapacity = 65536;

  explicit NonceCache(Clock::duration ttl, std::size_t capacity = kDefaultCapacity)
      : ttl_(ttl), capacity_(capacity) {}

  enum class Result { fresh, replayed, full };

  // Remembers (key, nonce) until now + ttl, unless it is remembered already.
  Result insert(std::string_view key, std::string_view nonce, Clock::time_point now);

  void set_ttl(Clock::duration ttl) { ttl_ = ttl; }
  std::size_t size() const { return seen_.size(); }
  std::size_t capacity() const { return capacity_; }

 private:
  // 128 bits of SHA-256(key "\n" nonce): a fixed size per entry whatever the nonce's
  // length, and a collision (a fresh request taken for a replay) is out of reach.
  using Digest = std::array<std::uint64_t, 2>;
  struct DigestHash {
    std::size_t operator()(const Digest& d) const { return static_cast<std::size_t>(d[0]); }
  };
  using Expiry = std::pair<Clock::time_point, Digest>;

  void forget_expired(Clock::time_point now);

  Clock::duration ttl_;
  std::size_t capacity_;
  std::unordered_set<Digest, DigestHash> seen_;
  // Soonest expiry on top. The ttl is the same for all entries but can change on a
  // reload, so arrival order is not expiry order.
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<>> expiries_;
};

}  // namespace linewire::agent
