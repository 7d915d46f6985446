#include "agent/nonce_cache.hpp"

#include <openssl/evp.h>

#include <cstring>
#include <string>

namespace linewire::agent {

NonceCache::Result NonceCache::insert(std::string_view key, std::string_view nonce,
                                      Clock::time_point now) {
  forget_expired(now);
  std::string material;
  material.reserve(key.size() + 1 + nonce.size());
  material.append(key).append("\n").append(nonce);
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  Digest d{};
  if (EVP_Digest(material.data(), material.size(), hash, &n, EVP_sha256(), nullptr) != 1 ||
      n < sizeof d)
    return Result::full;  // cannot tell: refuse rather than risk a replay
  std::memcpy(d.data(), hash, sizeof d);
  if (seen_.count(d)) return Result::replayed;
  if (seen_.size() >= capacity_) return Result::full;
  seen_.insert(d);
  expiries_.emplace(now + ttl_, d);
  return Result::fresh;
}

void NonceCache::forget_expired(Clock::time_point now) {
  while (!expiries_.empty() && expiries_.top().first <= now) {
    seen_.erase(expiries_.top().second);
    expiries_.pop();
  }
}

}  // namespace linewire::agent
