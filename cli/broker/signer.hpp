// The client's side of signed requests (SPEC §11): `--key FILE` (or LINEWIRE_KEY)
// signs every request the client sends, in Requester. Thread-safe: the stdin forwarder
// signs on its own thread while the main thread may sign a signal.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "auth/keys.hpp"

namespace linewire::cli {

class Signer {
 public:
  Signer(auth::PrivateKey key, std::string name) : key_(std::move(key)), name_(std::move(name)) {}

  // Reads an Ed25519 private key (PEM, PKCS#8) that only its owner can read, as ssh
  // insists. `name` empty: the file's name without its extension. Throws
  // std::runtime_error with a message for the user.
  static Signer load(const std::string& file, std::string name);

  // The envelope standing for a request whose fields are `fields` (a JSON object's
  // text, without ts and nonce), to be published on `topic`.
  std::string envelope(const std::string& topic, std::string_view fields) const;

  const std::string& name() const { return name_; }

 private:
  auth::PrivateKey key_;
  std::string name_;
};

// "keys/alice.pem" → "alice" (SPEC §11: --key-name's default).
std::string default_key_name(const std::string& file);

// A fresh nonce: 22 characters of base64url (128 random bits).
std::string new_nonce();

// `linewire keygen FILE`: FILE (mode 0600, PEM PKCS#8) and FILE.pub (an OpenSSH line
// whose comment is the key's default name). Never overwrites; throws
// std::runtime_error. Returns the public line.
std::string keygen(const std::string& file);

}  // namespace linewire::cli
