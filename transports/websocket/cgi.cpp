#include "transports/websocket/cgi.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <system_error>

namespace linewire::websocket {

namespace fs = std::filesystem;

namespace {

bool inside(const fs::path& root, const fs::path& real) {
  auto [r, _] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  return r == root.end();
}

std::string join(const std::vector<std::string>& segments, std::size_t from, std::size_t to) {
  std::string out;
  for (std::size_t i = from; i < to; ++i) out += "/" + segments[i];
  return out;
}

std::string trim(std::string_view s) {
  auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return std::string(s.substr(first, s.find_last_not_of(" \t") - first + 1));
}

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

}  // namespace

ScriptMatch find_script(const fs::path& root, std::string_view raw_path, bool path_info) {
  ScriptMatch m;
  auto segments = path_segments(raw_path);
  if (!segments || segments->empty()) return m;
  fs::path p = root;
  for (std::size_t i = 0; i < segments->size(); ++i) {
    p /= (*segments)[i];
    std::error_code ec;
    auto st = fs::status(p, ec);  // follows symlinks: where they lead is checked below
    if (ec || !fs::exists(st)) return m;
    const bool last = i + 1 == segments->size();
    if (fs::is_directory(st)) {
      if (last) return m;  // a folder is no program
      continue;
    }
    if (!fs::is_regular_file(st) || (!last && !path_info)) return m;
    fs::path real = fs::canonical(p, ec);
    if (ec || !inside(root, real)) return m;
    m.file = std::move(real);
    m.script_name = join(*segments, 0, i + 1);
    m.path_info = join(*segments, i + 1, segments->size());
    m.status = ::access(m.file.c_str(), X_OK) == 0 ? ScriptMatch::Status::found
                                                   : ScriptMatch::Status::not_executable;
    return m;
  }
  return m;
}

std::map<std::string, std::string> cgi11_env(const RequestInfo& r, const fs::path& script,
                                             std::size_t content_length) {
  std::map<std::string, std::string> env;
  auto [server_name, server_port] = host_port(r.host, r.tls ? "443" : "80");
  auto [path, query] = split_target(r.target);
  auto decoded = percent_decode(path, false);
  env["SERVER_SOFTWARE"] = r.server_software;
  env["SERVER_NAME"] = server_name;
  env["SERVER_PORT"] = server_port;
  env["SERVER_PROTOCOL"] = "HTTP/1.1";
  env["GATEWAY_INTERFACE"] = "CGI/1.1";
  env["REQUEST_METHOD"] = r.method;
  env["QUERY_STRING"] = std::string(query);
  env["REQUEST_URI"] = r.target;
  // websocketd's CGI host has no script root: the whole path is PATH_INFO and the
  // script's name is "/". Kept, so scripts written for it read the same values.
  env["PATH_INFO"] = decoded ? *decoded : std::string(path);
  env["SCRIPT_NAME"] = "/";
  env["SCRIPT_FILENAME"] = script.string();
  env["REMOTE_ADDR"] = r.remote_addr;
  env["REMOTE_HOST"] = r.remote_addr;
  env["REMOTE_PORT"] = r.remote_port;
  env["HTTP_HOST"] = r.host;
  if (r.tls) env["HTTPS"] = "on";
  if (content_length > 0) env["CONTENT_LENGTH"] = std::to_string(content_length);
  for (const auto& [name, value] : r.headers) {
    // HTTP_HOST is set above; HTTP_PROXY never passes (httpoxy, header_variable).
    auto env_name = header_variable(name);
    if (!env_name) continue;
    const std::string& key = *env_name;
    if (key == "HTTP_CONTENT_TYPE") env["CONTENT_TYPE"] = value;
    auto& slot = env[key];
    if (!slot.empty()) slot += key == "HTTP_COOKIE" ? "; " : ", ";
    slot += value;
  }
  return env;
}

std::size_t cgi_head_end(std::string_view output) {
  std::size_t pos = 0;
  for (;;) {
    auto nl = output.find('\n', pos);
    if (nl == std::string_view::npos) return std::string_view::npos;
    std::string_view line = output.substr(pos, nl - pos);
    if (line.empty() || line == "\r") return nl + 1;
    pos = nl + 1;
  }
}

std::optional<CgiHead> parse_cgi_head(std::string_view head, std::string& error) {
  CgiHead out;
  int lines = 0;
  bool status = false;
  bool location = false;
  bool content_type = false;
  while (!head.empty()) {
    auto nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    head = nl == std::string_view::npos ? std::string_view{} : head.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    ++lines;
    auto colon = line.find(':');
    if (colon == std::string_view::npos || !token(line.substr(0, colon))) continue;
    std::string_view name = line.substr(0, colon);
    std::string value = trim(line.substr(colon + 1));
    if (iequal(name, "Status")) {
      int code = 0;
      bool digits = value.size() >= 3 && std::all_of(value.begin(), value.begin() + 3, [](char c) {
                      return std::isdigit(static_cast<unsigned char>(c));
                    });
      if (digits) code = std::stoi(value.substr(0, 3));
      if (code < 200 || code > 599) {
        error = "bad Status \"" + value + "\"";
        return std::nullopt;
      }
      out.status = code;
      out.reason = trim(std::string_view(value).substr(3));
      status = true;
      continue;
    }
    location = location || iequal(name, "Location");
    content_type = content_type || iequal(name, "Content-Type");
    out.headers.emplace_back(std::string(name), std::move(value));
  }
  if (lines == 0) {
    error = "no headers";
    return std::nullopt;
  }
  if (!status && location) {
    out.status = 302;
  } else if (!status && !content_type) {
    error = "no Content-Type header";
    return std::nullopt;
  }
  return out;
}

}  // namespace linewire::websocket
