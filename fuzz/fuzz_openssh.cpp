// Fuzzes the one key format read by hand (SPEC §11): the OpenSSH public key line and
// the strict base64 under it. Input: the line. Nothing may crash, leak or hit UB; a key
// that parses must print back to a line that parses to the same key, and base64 must
// round-trip exactly (one text per byte string).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "auth/base64.hpp"
#include "auth/openssh.hpp"

using namespace linewire::auth;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto key = parse_openssh_line(input);
  check(key.key.has_value() == key.error.empty());
  if (key.key) {
    const auto again = parse_openssh_line(openssh_line(*key.key, key.comment));
    check(again.key == key.key);
  }
  if (auto bytes = base64_decode(input)) check(base64_encode(*bytes) == input);
  check(base64_decode(base64_encode(input)) == std::optional<std::string>(input));
  return 0;
}
