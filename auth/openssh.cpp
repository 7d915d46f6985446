#include "auth/openssh.hpp"

#include <algorithm>
#include <cstdint>

#include "auth/base64.hpp"

namespace linewire::auth {

namespace {

constexpr std::string_view kType = "ssh-ed25519";
constexpr std::size_t kMaxLine = 8192;  // far beyond any key line; refuse garbage early

bool blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (blank(s.front()) || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() && (blank(s.back()) || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

// The next space-separated word of `s`, which it consumes with the blanks after it.
std::string_view word(std::string_view& s) {
  const auto end = std::find_if(s.begin(), s.end(), blank);
  const auto w = s.substr(0, static_cast<std::size_t>(end - s.begin()));
  s.remove_prefix(w.size());
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  return w;
}

// An SSH wire string (uint32 big-endian length, then the bytes), consumed from `blob`.
std::optional<std::string_view> ssh_string(std::string_view& blob) {
  if (blob.size() < 4) return std::nullopt;
  std::size_t n = 0;
  for (int i = 0; i < 4; ++i)
    n = n << 8 | static_cast<unsigned char>(blob[static_cast<std::size_t>(i)]);
  blob.remove_prefix(4);
  if (n > blob.size()) return std::nullopt;
  auto s = blob.substr(0, n);
  blob.remove_prefix(n);
  return s;
}

OpensshKey fail(std::string why) {
  OpensshKey k;
  k.error = std::move(why);
  return k;
}

}  // namespace

OpensshKey parse_openssh_line(std::string_view line) {
  if (line.size() > kMaxLine) return fail("is too long for an OpenSSH key line");
  line = trim(line);
  if (line.find_first_of("\r\n") != std::string_view::npos)
    return fail("holds more than one line; expected one 'ssh-ed25519 ...' line");
  if (line.find('\0') != std::string_view::npos) return fail("contains a NUL byte");
  const auto type = word(line);
  if (type != kType) {
    if (type.rfind("ssh-", 0) == 0 || type.rfind("ecdsa-", 0) == 0 || type.rfind("sk-", 0) == 0)
      return fail("is a " + std::string(type) + " key; only ssh-ed25519 keys are supported");
    return fail("expected an OpenSSH line starting with 'ssh-ed25519 '");
  }
  const auto b64 = word(line);
  if (b64.empty()) return fail("has no key after 'ssh-ed25519 '");
  auto blob_text = base64_decode(b64);
  if (!blob_text) return fail("the key after 'ssh-ed25519 ' is not valid base64");
  std::string_view blob = *blob_text;
  const auto inner_type = ssh_string(blob);
  if (!inner_type || *inner_type != kType)
    return fail("the key's data does not start with its type 'ssh-ed25519'");
  const auto key = ssh_string(blob);
  if (!key || key->size() != 32) return fail("the key's data does not hold a 32-byte Ed25519 key");
  if (!blob.empty()) return fail("the key's data has bytes after the key");
  OpensshKey out;
  PublicKeyBytes bytes{};
  std::copy(key->begin(), key->end(), bytes.begin());
  out.key = bytes;
  out.comment = std::string(line);
  return out;
}

std::string openssh_line(const PublicKeyBytes& key, std::string_view comment) {
  std::string blob;
  auto put = [&](std::string_view s) {
    const auto n = static_cast<std::uint32_t>(s.size());
    for (int shift = 24; shift >= 0; shift -= 8)
      blob.push_back(static_cast<char>(n >> shift & 0xff));
    blob.append(s);
  };
  put(kType);
  put(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
  std::string out = std::string(kType) + " " + base64_encode(blob);
  if (!comment.empty()) out.append(" ").append(comment);
  return out;
}

}  // namespace linewire::auth
