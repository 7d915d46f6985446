#include "transports/websocket/http_util.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <system_error>

namespace linewire::websocket {

namespace fs = std::filesystem;

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// CGI values are one line: websocketd turns CR and LF into spaces and trims.
std::string one_line(std::string_view v) {
  std::string out;
  for (char c : v)
    if (c != '\0') out.push_back(c == '\r' || c == '\n' ? ' ' : c);
  auto first = out.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  return out.substr(first, out.find_last_not_of(" \t") - first + 1);
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') return std::nullopt;
      out.push_back(decoded);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::string> header_variable(std::string_view name) {
  std::string key = "HTTP_";
  if (name.empty()) return std::nullopt;
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c)))
      key.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    else if (c == '-' || c == '_')
      key.push_back('_');
    else
      return std::nullopt;
  }
  // HTTP_PROXY would tell the child's HTTP libraries to use a proxy the client chose
  // ("httpoxy"): that header is not passed on. Host is SERVER_NAME and SERVER_PORT
  // already, and websocketd (Go) has no HTTP_HOST either.
  if (key == "HTTP_PROXY" || key == "HTTP_HOST") return std::nullopt;
  return key;
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

std::optional<std::vector<std::pair<std::string, std::string>>> parse_query(
    std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!key || !value) return std::nullopt;
    out.emplace_back(std::move(*key), std::move(*value));
  }
  return out;
}

std::optional<std::vector<std::string>> path_segments(std::string_view raw_path) {
  std::vector<std::string> out;
  while (!raw_path.empty()) {
    auto slash = raw_path.find('/');
    std::string_view raw = raw_path.substr(0, slash);
    raw_path = slash == std::string_view::npos ? std::string_view{} : raw_path.substr(slash + 1);
    auto seg = percent_decode(raw, false);
    if (!seg) return std::nullopt;
    // An encoded slash or backslash would make one segment two on the filesystem.
    if (seg->find_first_of("/\\") != std::string::npos) return std::nullopt;
    if (*seg == "..") return std::nullopt;
    if (seg->empty() || *seg == ".") continue;
    out.push_back(std::move(*seg));
  }
  return out;
}

std::optional<fs::path> resolve_static(const fs::path& root, std::string_view raw_path) {
  auto segments = path_segments(raw_path);
  if (!segments) return std::nullopt;
  fs::path p = root;
  for (const auto& s : *segments) p /= s;
  std::error_code ec;
  if (fs::is_directory(p, ec)) p /= "index.html";
  // Symlinks are followed, but where they lead must still be inside root.
  fs::path real = fs::canonical(p, ec);
  if (ec || !fs::is_regular_file(real, ec)) return std::nullopt;
  auto [r, _] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  if (r != root.end()) return std::nullopt;
  return real;
}

std::string_view content_type(std::string_view path) {
  static const std::map<std::string, std::string_view, std::less<>> types = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".ico", "image/x-icon"},
      {".wasm", "application/wasm"},
      {".woff2", "font/woff2"},
      {".xml", "application/xml"},
      {".pdf", "application/pdf"},
  };
  auto slash = path.find_last_of('/');
  auto dot = path.find_last_of('.');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash))
    return "application/octet-stream";
  auto it = types.find(lower(path.substr(dot)));
  return it == types.end() ? "application/octet-stream" : it->second;
}

std::pair<std::string, std::string> host_port(std::string_view s, std::string_view default_port) {
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return {std::string(s), std::string(default_port)};
    std::string host(s.substr(1, close - 1));
    if (close + 1 < s.size() && s[close + 1] == ':')
      return {host, std::string(s.substr(close + 2))};
    return {host, std::string(default_port)};
  }
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || s.find(':') != colon)
    return {std::string(s), std::string(default_port)};
  return {std::string(s.substr(0, colon)), std::string(s.substr(colon + 1))};
}

std::map<std::string, std::string> cgi_env(const RequestInfo& r) {
  std::map<std::string, std::string> env;
  auto [server_name, server_port] = host_port(r.host, r.tls ? "443" : "80");
  auto [path, query] = split_target(r.target);
  env["SERVER_SOFTWARE"] = r.server_software;
  env["REMOTE_ADDR"] = r.remote_addr;
  env["REMOTE_HOST"] = r.remote_addr;  // no reverse lookups, as websocketd by default
  env["REMOTE_PORT"] = r.remote_port;
  env["SERVER_NAME"] = one_line(server_name);
  env["SERVER_PORT"] = one_line(server_port);
  env["SERVER_PROTOCOL"] = "HTTP/1.1";
  env["GATEWAY_INTERFACE"] = "websocketd-CGI/0.1";  // what websocketd 0.4.1 sets
  env["REQUEST_METHOD"] = r.method;
  env["SCRIPT_NAME"] = r.script_name;
  auto decoded = percent_decode(path, false);
  env["PATH_INFO"] = one_line(decoded ? *decoded : std::string(path));
  env["PATH_TRANSLATED"] = env["PATH_INFO"];
  env["QUERY_STRING"] = one_line(query);
  env["REQUEST_URI"] = one_line(r.target);
  env["UNIQUE_ID"] = r.unique_id;
  // Set empty so nothing of the kind leaks in (websocketd does the same).
  for (const char* name :
       {"AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "REMOTE_IDENT", "REMOTE_USER"})
    env[name] = "";
  if (r.tls) env["HTTPS"] = "on";
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : r.headers) {
    auto env_name = header_variable(name);
    if (!env_name) continue;
    const std::string& key = *env_name;
    auto& slot = headers[key];
    slot += slot.empty() ? one_line(value) : ", " + one_line(value);
  }
  env.merge(headers);
  return env;
}

std::string redirect_location(std::string_view host_header, std::string_view fallback_host,
                              unsigned short port, bool tls) {
  // websocketd gives no answer at all when the Host header has no port; this does.
  auto [name, ignored] = host_port(host_header.empty() ? fallback_host : host_header, "");
  if (name.find(':') != std::string::npos) name = "[" + name + "]";  // IPv6
  return std::string(tls ? "https://" : "http://") + name + ":" + std::to_string(port) + "/";
}

bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed) {
  if (origin.empty()) return true;
  auto sep = origin.find("://");
  if (sep == std::string_view::npos) return false;
  std::string scheme = lower(origin.substr(0, sep));
  std::string_view rest = origin.substr(sep + 3);
  rest = rest.substr(0, rest.find('/'));
  auto [host, port] = host_port(rest, scheme == "https" ? "443" : "80");
  host = lower(host);
  for (std::string_view entry : allowed) {
    if (auto s = entry.find("://"); s != std::string_view::npos) {
      if (lower(entry.substr(0, s)) != scheme) continue;
      entry = entry.substr(s + 3);
    }
    while (!entry.empty() && entry.back() == '/') entry.remove_suffix(1);
    auto [ahost, aport] = host_port(entry, "");
    if (lower(ahost) == host && (aport.empty() || aport == port)) return true;
  }
  return false;
}

bool same_origin(std::string_view origin, std::string_view host, bool tls) {
  if (origin.empty()) return true;
  auto [h, p] = host_port(host, tls ? "443" : "80");
  return origin_allowed(origin, {std::string(tls ? "https://" : "http://") + h + ":" + p});
}

bool token_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

namespace {

// Prometheus label values escape backslash, double quote and newline.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"')
      out.push_back('\\'), out.push_back(c);
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

}  // namespace

std::string metrics_text(const agent::Metrics& metrics, const std::vector<CommandGauge>& commands,
                         bool broker_connected, int websocket_connections) {
  std::set<std::string> names;
  std::map<std::string, int> active;
  for (const auto& c : commands) {
    names.insert(c.name);
    active[c.name] = c.active;
  }
  for (const auto& [name, m] : metrics.commands) names.insert(name);
  auto find = [&](const std::string& name) {
    auto it = metrics.commands.find(name);
    return it == metrics.commands.end() ? agent::CommandMetrics{} : it->second;
  };
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& n : names)
      out +=
          std::string(name) + "{command=\"" + label(n) + "\"} " + std::to_string(value(n)) + "\n";
  };
  family("linewire_runs_started_total", "counter", "Runs started, by command.",
         [&](const std::string& n) { return find(n).runs_started; });
  family("linewire_runs_active", "gauge", "Runs running now, by command.",
         [&](const std::string& n) { return active.count(n) ? active[n] : 0; });
  family("linewire_lines_published_total", "counter",
         "Output lines handed to the transports, by command.",
         [&](const std::string& n) { return find(n).lines; });
  family("linewire_dropped_lines_total", "counter",
         "Output lines dropped (overflow: drop, max_output) by finished runs, by command.",
         [&](const std::string& n) { return find(n).dropped; });
  family("linewire_schedule_skipped_total", "counter",
         "Ticks of `every` that started nothing: the command was busy (SPEC §5), by command.",
         [&](const std::string& n) { return find(n).schedule_skipped; });
  out +=
      "# HELP linewire_broker_reconnects_total Broker connections lost.\n"
      "# TYPE linewire_broker_reconnects_total counter\n"
      "linewire_broker_reconnects_total " +
      std::to_string(metrics.reconnects) +
      "\n"
      "# HELP linewire_broker_connected 1 while connected to the broker.\n"
      "# TYPE linewire_broker_connected gauge\n"
      "linewire_broker_connected " +
      std::string(broker_connected ? "1" : "0") +
      "\n"
      "# HELP linewire_history_bytes Output kept for replay, all runs together.\n"
      "# TYPE linewire_history_bytes gauge\n"
      "linewire_history_bytes " +
      std::to_string(metrics.history_bytes) +
      "\n"
      "# HELP linewire_replays_total Replays of kept output served.\n"
      "# TYPE linewire_replays_total counter\n"
      "linewire_replays_total " +
      std::to_string(metrics.replays) +
      "\n"
      "# HELP linewire_websocket_connections WebSocket connections open now.\n"
      "# TYPE linewire_websocket_connections gauge\n"
      "linewire_websocket_connections " +
      std::to_string(websocket_connections) + "\n";
  return out;
}

}  // namespace linewire::websocket
