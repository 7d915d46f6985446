// The pure parts of the WebSocket listener (SPEC §8): request targets, query strings,
// static file paths and content types, websocketd's CGI-style environment, origin
// checks and the /metrics text. No Beast here, so unit tests and fuzzers stay light.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/metrics.hpp"

namespace linewire::websocket {

// "%41" → "A"; nullopt for a malformed escape or an encoded NUL. In query strings
// `+` is a space.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space);

// "/count?arg=1" → {"/count", "arg=1"} (both still encoded).
// A request header's CGI variable name (`X-Foo` -> `HTTP_X_FOO`); nullopt for a name
// that cannot be one, and for Proxy and Host, which never pass as HTTP_* (httpoxy).
std::optional<std::string> header_variable(std::string_view name);

std::pair<std::string_view, std::string_view> split_target(std::string_view target);

// "a=1&arg=2&arg=x%20y" → decoded pairs in order; nullopt when an escape is malformed.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view query);

// The decoded segments of a URL path, or nullopt when it could leave its root:
// a `..` segment (also encoded), a NUL, a backslash. Empty and `.` segments vanish.
std::optional<std::vector<std::string>> path_segments(std::string_view raw_path);

// The file under `root` (already canonical) a URL path names: a directory gives its
// index.html. nullopt when it does not exist, is not a regular file, or resolves
// (through a symlink) outside root.
std::optional<std::filesystem::path> resolve_static(const std::filesystem::path& root,
                                                    std::string_view raw_path);

// By extension, lowercase; application/octet-stream when unknown.
std::string_view content_type(std::string_view path);

// What websocketd's CGI-style environment is made of.
struct RequestInfo {
  std::string remote_addr;
  std::string remote_port;
  std::string host;  // the Host header
  std::string method;
  std::string target;  // as sent: path and query
  bool tls = false;
  std::string server_software;
  std::string unique_id;
  std::string script_name;  // websocketd: "/" when it serves one program
  std::vector<std::pair<std::string, std::string>> headers;
};
std::map<std::string, std::string> cgi_env(const RequestInfo& request);

// "host:port", "[v6]:port" or "host" (then `default_port`).
std::pair<std::string, std::string> host_port(std::string_view s, std::string_view default_port);

// Where websocketd's --redirport sends a request: `http(s)://HOST:PORT/`, HOST the one
// the client asked for (its Host header without the port; `fallback_host` when it sent
// none), PORT the main listener's.
std::string redirect_location(std::string_view host_header, std::string_view fallback_host,
                              unsigned short port, bool tls);

// websocketd's --origin rules: an entry is `host`, `host:port` or `scheme://host[:port]`;
// without a port any port matches. No Origin header is allowed (only browsers send
// one, and only browsers need the check).
bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed);
// No allowed_origins configured: a browser page must come from this very listener.
bool same_origin(std::string_view origin, std::string_view host, bool tls);

// Constant-time comparison for the bearer token.
bool token_equal(std::string_view a, std::string_view b);

struct CommandGauge {
  std::string name;
  int active = 0;
};
// Prometheus text exposition format 0.0.4, `linewire_` names, a `command` label.
std::string metrics_text(const agent::Metrics& metrics, const std::vector<CommandGauge>& commands,
                         bool broker_connected, int websocket_connections);

}  // namespace linewire::websocket
