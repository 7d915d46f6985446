// Reading a key file, for the agent's trusted keys (config/auth.cpp) and the client's
// signing key (cli/broker/signer.cpp) alike.
#pragma once

#include <string>

namespace linewire::auth {

// A key file is a line or a short PEM block: anything bigger is not one.
inline constexpr std::size_t kMaxKeyFile = 16 * 1024;

enum class KeyFile { public_key, private_key };

// The file's text, or empty text with `error` saying why. Only regular files: a FIFO or
// a device named by mistake must not hang or flood the reader. A private key is refused,
// as ssh refuses it, when its group or others may read it: it is no longer only its
// owner's.
std::string read_key_file(const std::string& path, KeyFile kind, std::string& error);

}  // namespace linewire::auth
