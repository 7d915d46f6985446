// What a signed request costs (SPEC §11), printed for bench/README.md: Ed25519 sign
// and verify through OpenSSL's EVP, the agent's whole check of a signed start request
// (envelope, signature, INNER, clock, nonce), and the memory of a full nonce cache.
//
//   bench_sign_verify [ITERATIONS]      (default 20000)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "agent/nonce_cache.hpp"
#include "agent/verifier.hpp"
#include "auth/keys.hpp"
#include "protocol/signed_request.hpp"

using namespace linewire;
using Clock = std::chrono::steady_clock;

namespace {

template <typename F>
double micros_per_call(int n, F&& f) {
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) f(i);
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / n;
}

// RssAnon from /proc/self/status in KiB: the private memory that grows with the cache.
long rss_anon_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("RssAnon:", 0) == 0) return std::atol(line.c_str() + 8);
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 20000;
  // First, while the heap is fresh: a flood of fresh nonces within one window fills
  // the cache to its cap, then is refused.
  const long before = rss_anon_kib();
  agent::NonceCache cache(std::chrono::seconds(120));
  const auto t = agent::NonceCache::Clock::now();
  std::size_t full = 0;
  for (std::size_t i = 0; i < 4 * cache.capacity(); ++i)
    if (cache.insert("alice", "flood-nonce-" + std::to_string(i), t) ==
        agent::NonceCache::Result::full)
      ++full;
  const long after = rss_anon_kib();

  const auto key = auth::PrivateKey::generate();
  const auto pub = auth::PublicKey::from_bytes(key.public_bytes());
  const std::string message = protocol::signed_message(
      "linewire/pi-1/cmd/count/start", R"({"args":["5"],"nonce":"Qx1v4bK9n2PzT0yW8aLc3A","ts":1})");
  const std::string sig = key.sign(message);

  volatile bool sink = false;
  const double sign_us = micros_per_call(n, [&](int) { sink = !key.sign(message).empty(); });
  const double verify_us = micros_per_call(n, [&](int) { sink = pub->verify(message, sig); });

  // The agent's whole check of a signed start: built beforehand, each with its own nonce.
  config::Config config;
  config.auth.keys.push_back({"alice", "", "", key.public_bytes()});
  config::Command count;
  count.name = "count";
  config.commands.push_back(count);
  const std::string topic = "linewire/pi-1/cmd/count/start";
  const auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  std::vector<std::string> envelopes;
  envelopes.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const std::string inner = R"({"args":["5"],"id":"run-)" + std::to_string(i) +
                              R"(","nonce":"nonce-)" + std::to_string(100000 + i) + R"(","ts":)" +
                              std::to_string(wall) + "}";
    envelopes.push_back(
        protocol::make_envelope(inner, "alice", key.sign(protocol::signed_message(topic, inner))));
  }
  agent::Verifier verifier(config);
  int refused = 0;
  const double check_us = micros_per_call(n, [&](int i) {
    auto c = verifier.check(topic, protocol::RequestKind::start,
                            envelopes[static_cast<std::size_t>(i)], &config.commands[0]);
    refused += c.verified ? 0 : 1;
  });
  const double unsigned_us = micros_per_call(n, [&](int) {
    auto c = verifier.check(topic, protocol::RequestKind::start, R"({"args":["5"]})",
                            &config.commands[0]);
    refused += c.verified ? 0 : 1;
  });

  std::printf("iterations                     %d\n", n);
  std::printf("Ed25519 sign (client)          %.1f us\n", sign_us);
  std::printf("Ed25519 verify (EVP)           %.1f us\n", verify_us);
  std::printf("agent check, signed start      %.1f us  (envelope, verify, INNER, ts, nonce)\n",
              check_us);
  std::printf("agent check, unsigned start    %.2f us\n", unsigned_us);
  std::printf("refused (must be 0)            %d\n", refused);
  std::printf("nonce cache after %zu fresh nonces: %zu entries (cap %zu), %zu refused as full\n",
              4 * cache.capacity(), cache.size(), cache.capacity(), full);
  std::printf("nonce cache memory when full   %ld KiB RssAnon (%.0f bytes/entry)\n", after - before,
              static_cast<double>(after - before) * 1024.0 / static_cast<double>(cache.size()));
  if (!sink) std::printf("the last verify failed\n");
  return refused == 0 && sink ? 0 : 1;
}
