#include "auth/keys.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace linewire::auth {

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

Bio memory_bio(std::string_view text) {
  if (text.size() > 1 << 20) return nullptr;
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

}  // namespace

void PkeyFree::operator()(evp_pkey_st* key) const { EVP_PKEY_free(key); }

std::optional<PublicKey> PublicKey::from_bytes(const PublicKeyBytes& bytes) {
  Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes.data(), bytes.size()));
  if (!key) {
    ERR_clear_error();
    return std::nullopt;
  }
  return PublicKey(std::move(key));
}

bool PublicKey::verify(std::string_view message, std::string_view signature) const {
  if (signature.size() != kSignatureSize) return false;
  MdCtx ctx(EVP_MD_CTX_new());
  // Ed25519 is one-shot: no digest (NULL), the whole message in EVP_DigestVerify.
  const bool ok = ctx &&
                  EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) == 1 &&
                  EVP_DigestVerify(ctx.get(), bytes_of(signature), signature.size(),
                                   bytes_of(message), message.size()) == 1;
  ERR_clear_error();
  return ok;
}

ReadKey parse_public_key_text(std::string_view text) {
  ReadKey out;
  if (text.find("-----BEGIN") == std::string_view::npos) {
    auto k = parse_openssh_line(text);
    out.key = k.key;
    out.error = std::move(k.error);
    return out;
  }
  Bio bio = memory_bio(text);
  Pkey key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  if (!key) {
    out.error = "is not a PEM public key (expected BEGIN PUBLIC KEY) or an OpenSSH line";
    return out;
  }
  if (EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
    out.error = "holds a PEM public key that is not Ed25519";
    return out;
  }
  PublicKeyBytes bytes{};
  std::size_t n = bytes.size();
  if (EVP_PKEY_get_raw_public_key(key.get(), bytes.data(), &n) != 1 || n != bytes.size()) {
    ERR_clear_error();
    out.error = "holds an Ed25519 key OpenSSL cannot read";
    return out;
  }
  out.key = bytes;
  return out;
}

PrivateKey PrivateKey::generate() {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) throw std::runtime_error("OpenSSL could not generate an Ed25519 key");
  return PrivateKey(std::move(key));
}

PrivateKey PrivateKey::from_pem(std::string_view pem) {
  Bio bio = memory_bio(pem);
  // No passphrase callback: an encrypted key fails here rather than prompting.
  Pkey key(bio ? PEM_read_bio_PrivateKey(
                     bio.get(), nullptr, [](char*, int, int, void*) { return -1; }, nullptr)
               : nullptr);
  ERR_clear_error();
  if (!key)
    throw std::runtime_error(
        "is not an unencrypted PEM private key (as `linewire keygen` or `openssl genpkey "
        "-algorithm ed25519` write it)");
  if (EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519)
    throw std::runtime_error("is not an Ed25519 key");
  return PrivateKey(std::move(key));
}

std::string PrivateKey::sign(std::string_view message) const {
  MdCtx ctx(EVP_MD_CTX_new());
  std::string sig(kSignatureSize, '\0');
  std::size_t n = sig.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &n, bytes_of(message),
                     message.size()) != 1 ||
      n != kSignatureSize) {
    ERR_clear_error();
    throw std::runtime_error("OpenSSL could not sign");
  }
  return sig;
}

PublicKeyBytes PrivateKey::public_bytes() const {
  PublicKeyBytes bytes{};
  std::size_t n = bytes.size();
  if (EVP_PKEY_get_raw_public_key(key_.get(), bytes.data(), &n) != 1 || n != bytes.size())
    throw std::runtime_error("OpenSSL could not give the public key");
  return bytes;
}

std::string PrivateKey::pem() const {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    throw std::runtime_error("OpenSSL could not write the key");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("OpenSSL has no randomness");
  return out;
}

}  // namespace linewire::auth
