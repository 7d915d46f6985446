// The OpenSSH public key line, "ssh-ed25519 BASE64 [COMMENT]" (as in ~/.ssh/*.pub and
// authorized_keys): the one key format read by hand (SPEC §11). A pure function on
// text, shared by the config (which refuses a bad key with its line and column) and
// fuzzed (fuzz/fuzz_openssh.cpp).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace linewire::auth {

using PublicKeyBytes = std::array<unsigned char, 32>;  // a raw Ed25519 public key

struct OpensshKey {
  std::optional<PublicKeyBytes> key;  // set when the line is a valid ssh-ed25519 key
  std::string comment;                // what follows the key, if anything
  std::string error;                  // why it is not, when key is empty
};

// One line; a trailing line ending and surrounding blanks are ignored. The base64 blob
// must be exactly string("ssh-ed25519") string(32 bytes), as RFC 8709 defines it.
OpensshKey parse_openssh_line(std::string_view line);

// "ssh-ed25519 BASE64 COMMENT" (no comment when empty).
std::string openssh_line(const PublicKeyBytes& key, std::string_view comment);

}  // namespace linewire::auth
