// The `auth` section: the keys whose signed requests a device trusts (SPEC §11).
#include "config/checks.hpp"
#include "config/sections.hpp"

namespace linewire::config {
namespace {

// A key is an inline OpenSSH line or {file: PATH}.
void read_key(Reader& r, const Entry& e, TrustedKey& key) {
  if (!e.value.IsMap()) {
    if (auto line = checked_text(r, e, check_openssh_key)) key.openssh = std::move(*line);
    return;
  }
  bool has_file = false;
  r.mapping(e, {
                   {"file",
                    [&](const Entry& f) {
                      has_file = true;
                      assign(key.file, r.path(f));
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
