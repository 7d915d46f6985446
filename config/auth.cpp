// The `auth` section: the keys whose signed requests a device trusts (SPEC §11).
// Every key is decoded here, files read too, so that a key the agent could not use is a
// config error with its line and column (and --check-config exits 2), never a surprise
// at the first request.
#include "auth/key_file.hpp"
#include "auth/keys.hpp"
#include "config/checks.hpp"
#include "config/sections.hpp"

namespace linewire::config {
namespace {

void read_key_from_file(Reader& r, const Entry& f, TrustedKey& key) {
  auto path = r.path(f);
  if (!path) return;
  key.file = *path;
  std::string error;
  const auto text = auth::read_key_file(key.file, auth::KeyFile::public_key, error);
  if (!error.empty()) {
    r.problem(f, "cannot read the key file " + key.file + ": " + error);
    return;
  }
  auto read = auth::parse_public_key_text(text);
  if (!read.key) {
    r.problem(f, "the key file " + key.file + " " + read.error);
    return;
  }
  key.public_key = *read.key;
}

// A key is an inline OpenSSH line or {file: PATH}.
void read_key(Reader& r, const Entry& e, TrustedKey& key) {
  if (!e.value.IsMap()) {
    auto line = r.text(e);
    if (!line) return;
    auto parsed = auth::parse_openssh_line(*line);
    if (!parsed.key) {
      r.problem(e, "'" + *line + "' is not valid: " + parsed.error);
      return;
    }
    key.openssh = std::move(*line);
    key.public_key = *parsed.key;
    return;
  }
  bool has_file = false;
  r.mapping(e, {
                   {"file",
                    [&](const Entry& f) {
                      has_file = true;
                      read_key_from_file(r, f, key);
                    }},
               });
  if (!has_file) r.problem_at_key(e, "needs a file, or an inline 'ssh-ed25519 ...' line instead");
}

}  // namespace

void read_auth(Reader& r, const Entry& e, Auth& auth) {
  std::optional<Entry> require;
  r.mapping(
      e,
      {
          {"keys",
           [&](const Entry& keys) {
             r.entries(keys, [&](const Entry& k) {
               TrustedKey key;
               key.name = k.key.Scalar();
               if (!is_valid_name(key.name))
                 r.problem_at_key(k, "is not a valid key name (" + std::string(kNameRule) + ")");
               read_key(r, k, key);
               auth.keys.push_back(std::move(key));
             });
           }},
          {"require",
           [&](const Entry& c) {
             require = c;
             assign(auth.require, r.boolean(c));
           }},
          {"max_skew",
           [&](const Entry& c) { assign(auth.max_skew, r.duration(c, std::chrono::seconds(1))); }},
      });
  // Nothing could ever run: surely not what was meant.
  if (auth.require && auth.keys.empty() && require)
    r.problem(*require, "is true but auth.keys is empty, so every request would be refused");
}

}  // namespace linewire::config
