// The `websocket` section: the local listener of SPEC §8.
#include "config/checks.hpp"
#include "config/sections.hpp"

namespace linewire::config {

void read_websocket(Reader& r, const Entry& e, WebSocket& ws) {
  r.mapping(
      e,
      {
          {"listen", [&](const Entry& c) { assign(ws.listen, checked_text(r, c, check_listen)); }},
          {"static_dir", [&](const Entry& c) { assign(ws.static_dir, r.path(c)); }},
          {"allowed_origins", [&](const Entry& c) { assign(ws.allowed_origins, r.texts(c)); }},
          {"max_connections", [&](const Entry& c) { assign(ws.max_connections, r.integer(c, 1)); }},
          {"token_file", [&](const Entry& c) { assign(ws.token_file, r.path(c)); }},
          {"cert_file", [&](const Entry& c) { assign(ws.cert_file, r.path(c)); }},
          {"key_file", [&](const Entry& c) { assign(ws.key_file, r.path(c)); }},
      });
  // Half a TLS setup would quietly serve plain text.
  if (ws.cert_file.empty() != ws.key_file.empty())
    r.problem_at_key(e, ws.cert_file.empty()
                            ? "key_file is set but cert_file is not; set both or neither"
                            : "cert_file is set but key_file is not; set both or neither");
}

}  // namespace linewire::config
