// Signed requests (SPEC §11): base64, the OpenSSH key line, Ed25519 through OpenSSL,
// the envelope, the nonce memory and the Verifier's checks in SPEC order.
#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/auth_policy.hpp"
#include "agent/nonce_cache.hpp"
#include "agent/verifier.hpp"
#include "auth/base64.hpp"
#include "auth/keys.hpp"
#include "auth/openssh.hpp"
#include "protocol/signed_request.hpp"

using namespace linewire;
using nlohmann::json;
using protocol::ErrorCode;
using protocol::RequestKind;
using namespace std::chrono_literals;

namespace {

// A real key's line (RFC 8709 blob: string "ssh-ed25519", string of 32 bytes).
const std::string kAliceLine =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIABFecenpo/dUt0uXXh6ZQK6fsXERFlIXby54MsRZSMU alice@laptop";

std::string blob_line(const std::string& blob) {
  return "ssh-ed25519 " + auth::base64_encode(blob);
}

std::string ssh_string(const std::string& s) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>(s.size() >> shift & 0xff));
  return out + s;
}

}  // namespace

TEST_CASE("base64 is strict and canonical", "[auth]") {
  CHECK(auth::base64_encode("") == "");
  CHECK(auth::base64_encode("f") == "Zg==");
  CHECK(auth::base64_encode("fo") == "Zm8=");
  CHECK(auth::base64_encode("foo") == "Zm9v");
  CHECK(auth::base64_decode("Zm9vYmE=") == std::optional<std::string>("fooba"));
  CHECK(auth::base64_decode("") == std::optional<std::string>(""));
  CHECK_FALSE(auth::base64_decode("Zm9"));     // no padding
  CHECK_FALSE(auth::base64_decode("Zh=="));    // non-zero padding bits
  CHECK_FALSE(auth::base64_decode("Zm9=v"));   // = inside
  CHECK_FALSE(auth::base64_decode("Zm 9v"));   // whitespace
  CHECK_FALSE(auth::base64_decode("Zm9v\n"));  // line ending
  CHECK_FALSE(auth::base64_decode("Zm-_"));    // base64url is another alphabet
  CHECK_FALSE(auth::base64_decode("===="));
  for (int n = 0; n < 40; ++n) {
    std::string bytes;
    for (int i = 0; i < n; ++i) bytes.push_back(static_cast<char>(i * 37 + n));
    CHECK(auth::base64_decode(auth::base64_encode(bytes)) == std::optional<std::string>(bytes));
  }
}

TEST_CASE("the OpenSSH line parser takes ssh-ed25519 keys only", "[auth]") {
  auto k = auth::parse_openssh_line(kAliceLine);
  REQUIRE(k.key);
  CHECK(k.comment == "alice@laptop");
  CHECK(auth::openssh_line(*k.key, "alice@laptop") == kAliceLine);
  CHECK(auth::parse_openssh_line(kAliceLine + "\n").key == k.key);
  CHECK(auth::parse_openssh_line("  " + kAliceLine.substr(0, 80) + "\r\n").key == k.key);
  CHECK(auth::parse_openssh_line("ssh-ed25519\t" + kAliceLine.substr(12)).key == k.key);

  auto error = [](const std::string& line) {
    auto r = auth::parse_openssh_line(line);
    CHECK_FALSE(r.key);
    return r.error;
  };
  CHECK(error("") == "expected an OpenSSH line starting with 'ssh-ed25519 '");
  CHECK(error("ssh-rsa AAAAB3NzaC1yc2E=") ==
        "is a ssh-rsa key; only ssh-ed25519 keys are supported");
  CHECK(error("from=\"x\" " + kAliceLine) ==
        "expected an OpenSSH line starting with 'ssh-ed25519 '");
  CHECK(error("ssh-ed25519") == "has no key after 'ssh-ed25519 '");
  CHECK(error("ssh-ed25519 AAAA$") == "the key after 'ssh-ed25519 ' is not valid base64");
  CHECK(error(kAliceLine + "\n" + kAliceLine) ==
        "holds more than one line; expected one 'ssh-ed25519 ...' line");
  const std::string key32(32, 'k');
  CHECK(auth::parse_openssh_line(blob_line(ssh_string("ssh-ed25519") + ssh_string(key32))).key);
  CHECK(error(blob_line(ssh_string("ssh-rsa") + ssh_string(key32))) ==
        "the key's data does not start with its type 'ssh-ed25519'");
  CHECK(error(blob_line(ssh_string("ssh-ed25519") + ssh_string(key32.substr(1)))) ==
        "the key's data does not hold a 32-byte Ed25519 key");
  CHECK(error(blob_line(ssh_string("ssh-ed25519") + ssh_string(key32) + "x")) ==
        "the key's data has bytes after the key");
  // A length that runs past the end, and a huge one.
  CHECK_FALSE(
      auth::parse_openssh_line(blob_line(ssh_string("ssh-ed25519") + "\0\0\0\x40" + key32)).key);
  CHECK_FALSE(auth::parse_openssh_line(blob_line("\xff\xff\xff\xff" + std::string(8, 'x'))).key);
  CHECK_FALSE(auth::parse_openssh_line(std::string(10000, 'a')).key);
}

TEST_CASE("Ed25519 through OpenSSL: sign, verify, PEM", "[auth]") {
  const auto key = auth::PrivateKey::generate();
  const auto pub = auth::PublicKey::from_bytes(key.public_bytes());
  REQUIRE(pub);
  const auto sig = key.sign("message");
  CHECK(sig.size() == 64);
  CHECK(pub->verify("message", sig));
  CHECK_FALSE(pub->verify("messagE", sig));
  CHECK_FALSE(pub->verify("message", sig.substr(1)));
  auto flipped = sig;
  flipped[10] = static_cast<char>(flipped[10] ^ 1);
  CHECK_FALSE(pub->verify("message", flipped));
  const auto other = auth::PrivateKey::generate();
  CHECK_FALSE(pub->verify("message", other.sign("message")));

  const auto pem = key.pem();
  CHECK(pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0) == 0);
  CHECK(auth::PrivateKey::from_pem(pem).public_bytes() == key.public_bytes());
  CHECK_THROWS_AS(auth::PrivateKey::from_pem("garbage"), std::runtime_error);

  const auto line = auth::openssh_line(key.public_bytes(), "me");
  CHECK(auth::parse_public_key_text(line + "\n").key == key.public_bytes());
  CHECK(auth::parse_public_key_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .error.find("is not a PEM public key") == 0);
}

TEST_CASE("envelopes: exactly three strings, canonical base64, a 64-byte signature", "[auth]") {
  const std::string sig = auth::base64_encode(std::string(64, 's'));
  const std::string inner = auth::base64_encode("{}");
  auto env = [&](const json& doc) { return protocol::parse_envelope(doc.dump()); };
  auto error = [&](const json& doc) {
    auto r = env(doc);
    REQUIRE(std::holds_alternative<protocol::Error>(r));
    CHECK(std::get<protocol::Error>(r).code == ErrorCode::bad_request);
    return std::get<protocol::Error>(r).message;
  };
  auto ok = env({{"signed", inner}, {"key", "alice"}, {"sig", sig}});
  REQUIRE(std::holds_alternative<protocol::Envelope>(ok));
  CHECK(std::get<protocol::Envelope>(ok).inner == "{}");
  CHECK(std::get<protocol::Envelope>(ok).key == "alice");

  CHECK(error({{"signed", inner}, {"key", "alice"}, {"sig", sig}, {"x", "y"}}) ==
        "unknown field 'x' in the envelope (signed, key, sig only)");
  CHECK(error({{"signed", inner}, {"key", 1}, {"sig", sig}}) ==
        "envelope field 'key' must be a string");
  CHECK(error({{"signed", inner}, {"sig", sig}}) == "the envelope has no 'key'");
  CHECK(error({{"signed", inner}, {"key", "a/b"}, {"sig", sig}}) ==
        "envelope 'key' is not a valid key name");
  CHECK(error({{"signed", "e30"}, {"key", "a"}, {"sig", sig}}) ==
        "envelope 'signed' is not valid base64 (standard, padded)");
  CHECK(error({{"signed", inner}, {"key", "a"}, {"sig", auth::base64_encode("short")}}) ==
        "envelope 'sig' is not an Ed25519 signature (64 bytes)");
  CHECK(std::holds_alternative<protocol::Error>(protocol::parse_envelope("[1]")));

  CHECK(protocol::is_envelope(R"({"signed": "", "key": "", "sig": ""})"));
  CHECK(protocol::is_envelope(R"( {"sig": 1})"));
  CHECK_FALSE(protocol::is_envelope(R"({"id": "x"})"));
  CHECK_FALSE(protocol::is_envelope("a plain line with \"sig\""));
  CHECK_FALSE(protocol::is_envelope(""));
  CHECK(protocol::signed_message("t/x", "{}") == "linewire-sig-v1\nt/x\n{}");
}

TEST_CASE("INNER: ts, nonce and the fields of each topic", "[auth]") {
  auto inner = [](const json& doc, RequestKind kind) {
    return protocol::parse_inner(doc.dump(), kind);
  };
  auto error = [&](const json& doc, RequestKind kind) {
    auto r = inner(doc, kind);
    REQUIRE(std::holds_alternative<protocol::Error>(r));
    return std::get<protocol::Error>(r).message;
  };
  auto fields_error = [&](const json& doc, RequestKind kind) {
    auto r = inner(doc, kind);
    REQUIRE(std::holds_alternative<protocol::Inner>(r));
    auto e = std::get<protocol::Inner>(r).fields_error;
    REQUIRE(e);
    return e->message;
  };
  const json base = {{"ts", 1700000000000}, {"nonce", "abcdefgh"}};
  auto with = [&](json extra) {
    json d = base;
    d.update(extra);
    return d;
  };
  auto start = std::get<protocol::Inner>(
      inner(with({{"id", "r1"}, {"reply_to", "x/y"}}), RequestKind::start));
  CHECK(start.ts == 1700000000000);
  CHECK(start.nonce == "abcdefgh");
  CHECK(start.reply.reply_to == "x/y");
  CHECK(json::parse(start.plain) == json({{"id", "r1"}, {"reply_to", "x/y"}}));
  CHECK(std::get<protocol::Inner>(inner(with({{"line", "hi"}}), RequestKind::in)).plain == "hi");
  CHECK(std::get<protocol::Inner>(inner(with({{"signal", "INT"}}), RequestKind::signal)).plain ==
        "INT");
  CHECK(std::get<protocol::Inner>(inner(with({{"state", "OFF"}}), RequestKind::switch_)).plain ==
        "OFF");
  CHECK(std::get<protocol::Inner>(inner(base, RequestKind::eof)).plain.empty());

  CHECK(error({{"nonce", "abcdefgh"}}, RequestKind::stop).find("'ts' must be an integer") !=
        std::string::npos);
  CHECK(error(with({{"ts", 1.5}}), RequestKind::stop).find("'ts' must be an integer") !=
        std::string::npos);
  CHECK(error(with({{"ts", "1"}}), RequestKind::stop).find("'ts' must be an integer") !=
        std::string::npos);
  CHECK(error(with({{"ts", -1}}), RequestKind::stop).find("out of range") != std::string::npos);
  CHECK(error(with({{"nonce", "short"}}), RequestKind::stop).find("'nonce'") != std::string::npos);
  CHECK(error(with({{"nonce", "has space!"}}), RequestKind::stop).find("'nonce'") !=
        std::string::npos);
  CHECK(error(with({{"nonce", std::string(65, 'n')}}), RequestKind::stop).find("'nonce'") !=
        std::string::npos);
  CHECK(error(with({{"reply_to", "a/#"}}), RequestKind::stop).find("reply_to") !=
        std::string::npos);
  CHECK(std::holds_alternative<protocol::Error>(protocol::parse_inner("[]", RequestKind::stop)));
  CHECK(std::holds_alternative<protocol::Error>(
      protocol::parse_inner(std::string("{}\0x", 4), RequestKind::stop)));

  CHECK(fields_error(with({{"line", "x"}}), RequestKind::eof) ==
        "unknown field 'line' in the signed request");
  CHECK(fields_error(base, RequestKind::in) == "a signed 'in' needs 'line' (a string)");
  CHECK(fields_error(with({{"signal", 9}}), RequestKind::signal) ==
        "a signed 'signal' needs 'signal' (a signal name)");
  CHECK(fields_error(with({{"state", "on"}}), RequestKind::switch_) ==
        "a signed 'switch' needs 'state': ON or OFF");
}

TEST_CASE("the nonce memory forgets after its ttl and is bounded", "[auth]") {
  using Clock = agent::NonceCache::Clock;
  const Clock::time_point t0{};
  agent::NonceCache cache(120s, 1000);
  using R = agent::NonceCache::Result;
  CHECK(cache.insert("alice", "nonce-001", t0) == R::fresh);
  CHECK(cache.insert("alice", "nonce-001", t0 + 119s) == R::replayed);
  CHECK(cache.insert("bob", "nonce-001", t0 + 1s) == R::fresh);      // per key
  CHECK(cache.insert("alice", "nonce-001", t0 + 120s) == R::fresh);  // forgotten, then new
  CHECK(cache.size() == 2);

  // A flood of fresh nonces within the window: the cap holds, then refuses.
  for (int i = 0; cache.size() < 1000; ++i)
    REQUIRE(cache.insert("alice", "flood-" + std::to_string(i), t0 + 130s) == R::fresh);
  CHECK(cache.insert("alice", "one-more-nonce", t0 + 130s) == R::full);
  CHECK(cache.size() == 1000);
  // A replay is still a replay when full.
  CHECK(cache.insert("alice", "flood-5", t0 + 130s) == R::replayed);
  // Once the window passes, everything is forgotten.
  CHECK(cache.insert("alice", "later-nonce", t0 + 251s) == R::fresh);
  CHECK(cache.size() == 1);

  // A steady flood over ten windows never holds more than one window's worth.
  agent::NonceCache flood(10s, 1'000'000);
  std::size_t peak = 0;
  for (int i = 0; i < 20000; ++i) {
    REQUIRE(flood.insert("k", "n" + std::to_string(i) + "-nonce", t0 + i * 5ms) == R::fresh);
    peak = std::max(peak, flood.size());
  }
  CHECK(peak == 2000);  // 10 s at one per 5 ms
}

namespace {

struct Fixture {
  config::Config config;
  auth::PrivateKey alice = auth::PrivateKey::generate();
  auth::PrivateKey bob = auth::PrivateKey::generate();
  auth::PrivateKey mallory = auth::PrivateKey::generate();
  std::int64_t now_ms = 1'800'000'000'000;
  agent::NonceCache::Clock::time_point now{};
  std::string topic = "lw/pi/cmd/reboot/start";

  Fixture() {
    config.auth.require = true;
    config.auth.max_skew = 60s;
    config.auth.keys.push_back({"alice", "", "", alice.public_bytes()});
    config.auth.keys.push_back({"bob", "", "", bob.public_bytes()});
    config::Command reboot;
    reboot.name = "reboot";
    reboot.keys = {"alice"};
    config::Command uptime;
    uptime.name = "uptime";
    uptime.unsigned_ok = true;
    config::Command plain;
    plain.name = "plain";
    config.commands = {reboot, uptime, plain};
  }

  std::string envelope(const auth::PrivateKey& key, const std::string& name, json inner,
                       const std::string& for_topic) const {
    const auto text = inner.dump();
    return protocol::make_envelope(text, name, key.sign(protocol::signed_message(for_topic, text)));
  }
  json inner(std::int64_t ts, const std::string& nonce = "nonce-0001") const {
    return {{"ts", ts}, {"nonce", nonce}};
  }
};

}  // namespace

TEST_CASE("the verifier's checks, in SPEC order", "[auth]") {
  Fixture f;
  agent::Verifier v(f.config);
  const auto* reboot = f.config.find_command("reboot");
  auto check = [&](const std::string& payload, const config::Command* target = nullptr) {
    return v.check(f.topic, RequestKind::start, payload, target ? target : reboot, f.now_ms, f.now);
  };
  auto refusal = [&](const agent::Checked& c) {
    REQUIRE_FALSE(c.verified);
    CHECK(c.error.code == ErrorCode::unauthorized);
    return c.error.message;
  };

  auto good = check(f.envelope(f.alice, "alice", f.inner(f.now_ms), f.topic));
  REQUIRE(good.verified);
  CHECK(good.verified->key == "alice");
  CHECK(good.verified->payload == "{}");
  CHECK_FALSE(v.check_command_keys(*good.verified, *reboot));

  // 1. unknown key comes before the signature (a wrong signature too)
  CHECK(refusal(check(f.envelope(f.mallory, "mallory", f.inner(f.now_ms), "other"))) ==
        "unknown key 'mallory': not in auth.keys");
  // 2. signature: another key under a trusted name, another topic, tampered INNER
  CHECK(refusal(check(f.envelope(f.mallory, "alice", f.inner(f.now_ms, "nonce-0002"), f.topic)))
            .rfind("bad signature", 0) == 0);
  CHECK(refusal(check(f.envelope(f.alice, "alice", f.inner(f.now_ms, "nonce-0002"),
                                 "lw/pi/cmd/x/start")))
            .rfind("bad signature", 0) == 0);
  {
    auto text = f.inner(f.now_ms, "nonce-0002").dump();
    auto sig = f.alice.sign(protocol::signed_message(f.topic, text));
    text[text.size() - 2] = '3';  // "nonce-0003"
    CHECK(refusal(check(protocol::make_envelope(text, "alice", sig))).rfind("bad signature", 0) ==
          0);
  }
  // A bad signature comes before a stale ts.
  CHECK(refusal(check(f.envelope(f.mallory, "alice", f.inner(0), f.topic)))
            .rfind("bad signature", 0) == 0);
  // 3. ts: just inside either way passes, just outside refused
  CHECK(check(f.envelope(f.alice, "alice", f.inner(f.now_ms - 60000, "nonce-edge1"), f.topic))
            .verified);
  CHECK(check(f.envelope(f.alice, "alice", f.inner(f.now_ms + 60000, "nonce-edge2"), f.topic))
            .verified);
  CHECK(refusal(check(
            f.envelope(f.alice, "alice", f.inner(f.now_ms - 60001, "nonce-old1"), f.topic))) ==
        "stale timestamp: ts is 60s behind the device's clock, over max_skew 60s");
  CHECK(refusal(check(
            f.envelope(f.alice, "alice", f.inner(f.now_ms + 90000, "nonce-new1"), f.topic))) ==
        "stale timestamp: ts is 90s ahead of the device's clock, over max_skew 60s");
  // A stale ts is refused before its nonce is remembered: it can be sent again fresh.
  CHECK(check(f.envelope(f.alice, "alice", f.inner(f.now_ms, "nonce-old1"), f.topic)).verified);
  // 4. the nonce
  CHECK(refusal(check(f.envelope(f.alice, "alice", f.inner(f.now_ms - 5), f.topic))) ==
        "replayed nonce: key 'alice' already used nonce 'nonce-0001'");
  CHECK(check(f.envelope(f.bob, "bob", f.inner(f.now_ms), f.topic)).verified);  // bob's own nonce
  // 5. the command's keys
  auto by_bob = check(f.envelope(f.bob, "bob", f.inner(f.now_ms, "nonce-bob2"), f.topic));
  REQUIRE(by_bob.verified);
  auto e = v.check_command_keys(*by_bob.verified, *reboot);
  REQUIRE(e);
  CHECK(e->code == ErrorCode::unauthorized);
  CHECK(e->message == "key 'bob' is not in the keys of command 'reboot'");

  // Unsigned where a signature is required.
  CHECK(refusal(check("{}")) ==
        "unsigned request: command 'reboot' needs a signature by one of its keys");
  CHECK(refusal(check("{}", f.config.find_command("plain"))) ==
        "unsigned request: auth.require is on, so a signature is required");
  CHECK(refusal(v.check(f.topic, RequestKind::start, "{}", nullptr, f.now_ms, f.now)) ==
        "unsigned request: auth.require is on, so a signature is required");
  CHECK(check("{}", f.config.find_command("uptime")).verified);
  // Malformed envelopes are bad requests.
  auto bad = check(R"({"signed": "x", "key": "alice", "sig": "y"})");
  REQUIRE_FALSE(bad.verified);
  CHECK(bad.error.code == ErrorCode::bad_request);

  // Reload: a key removed is unknown; the nonce memory stays (no replay after SIGHUP).
  f.config.auth.keys.pop_back();
  v.reconfigure(f.config);
  CHECK(refusal(check(f.envelope(f.bob, "bob", f.inner(f.now_ms, "nonce-bob3"), f.topic))) ==
        "unknown key 'bob': not in auth.keys");
  CHECK(refusal(check(f.envelope(f.alice, "alice", f.inner(f.now_ms), f.topic)))
            .rfind("replayed", 0) == 0);
}

TEST_CASE("accepts_unsigned: the predicate Home Assistant discovery uses", "[auth]") {
  Fixture f;
  const auto& c = f.config;
  CHECK_FALSE(agent::accepts_unsigned(c, *c.find_command("reboot")));
  CHECK(agent::accepts_unsigned(c, *c.find_command("uptime")));
  CHECK_FALSE(agent::accepts_unsigned(c, *c.find_command("plain")));
  f.config.auth.require = false;
  CHECK(agent::accepts_unsigned(c, *c.find_command("plain")));
  CHECK_FALSE(agent::accepts_unsigned(c, *c.find_command("reboot")));
}
