// Ed25519 through OpenSSL 3's EVP (SPEC §11): public keys to verify with, private keys
// to sign with, PEM in and out. Nothing cryptographic is written by hand here.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/openssh.hpp"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY, kept out of every includer

namespace linewire::auth {

inline constexpr std::size_t kSignatureSize = 64;

struct PkeyFree {
  void operator()(evp_pkey_st* key) const;
};
using Pkey = std::unique_ptr<evp_pkey_st, PkeyFree>;

// A key a device trusts.
class PublicKey {
 public:
  // nullopt when OpenSSL refuses the bytes.
  static std::optional<PublicKey> from_bytes(const PublicKeyBytes& bytes);

  // Whether `signature` is this key's Ed25519 signature of `message`.
  bool verify(std::string_view message, std::string_view signature) const;

 private:
  explicit PublicKey(Pkey key) : key_(std::move(key)) {}
  std::shared_ptr<evp_pkey_st> key_;
};

// What a key file holds: an OpenSSH line, or a PEM public key ("BEGIN PUBLIC KEY",
// SubjectPublicKeyInfo, as `openssl pkey -pubout` writes). The key, or why not.
struct ReadKey {
  std::optional<PublicKeyBytes> key;
  std::string error;
};
ReadKey parse_public_key_text(std::string_view text);

// A client's signing key.
class PrivateKey {
 public:
  static PrivateKey generate();
  // PEM, PKCS#8 ("BEGIN PRIVATE KEY", as `openssl genpkey -algorithm ed25519` writes).
  // Throws std::runtime_error with a reason when it is not an Ed25519 private key.
  static PrivateKey from_pem(std::string_view pem);

  std::string sign(std::string_view message) const;  // 64 bytes
  PublicKeyBytes public_bytes() const;
  std::string pem() const;  // PKCS#8

 private:
  explicit PrivateKey(Pkey key) : key_(std::move(key)) {}
  std::shared_ptr<evp_pkey_st> key_;
};

// `n` bytes from OpenSSL's CSPRNG.
std::string random_bytes(std::size_t n);

}  // namespace linewire::auth
