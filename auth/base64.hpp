// Standard base64 with padding (RFC 4648 §4), strict: the encoding of a signed request
// (SPEC §11) and of an OpenSSH key. Exactly one text decodes to a given byte string, so
// nothing can hide in whitespace, missing padding or unused bits.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace linewire::auth {

std::string base64_encode(std::string_view bytes);

// nullopt unless `text` is canonical base64: a multiple of 4 characters of the
// standard alphabet, `=` only as the final padding, and zero padding bits.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace linewire::auth
