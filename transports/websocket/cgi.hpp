// The pure parts of drop-in mode's --dir and --cgidir (SPEC §8.6): which program a URL
// path names (never one outside the folder), the CGI/1.1 environment of a --cgidir
// script, and the head of its answer. No Beast here, so unit tests and fuzzers stay light.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "transports/websocket/http_util.hpp"

namespace linewire::websocket {

struct ScriptMatch {
  enum class Status { found, not_found, not_executable };
  Status status = Status::not_found;
  std::filesystem::path file;  // canonical: inside the root
  std::string script_name;     // the URL path that names it: "/sub/name"
  std::string path_info;       // the rest of the path, decoded: "" or "/a/b"
};

// The program under `root` (canonical) that a URL path names, as websocketd's --dir
// walks it: folders are walked into, the first regular file is the program, and with
// `path_info` the segments after it are its PATH_INFO (without, as --cgidir, the path
// must end at the file). Not found: a missing name, a folder at the end, any segment
// that is `..` (also percent-encoded), holds a NUL, a slash or a backslash once decoded,
// a malformed escape, a path too long for the system, and anything that resolves
// (through a symlink) outside root. A file found that is not executable by us:
// not_executable.
ScriptMatch find_script(const std::filesystem::path& root, std::string_view raw_path,
                        bool path_info);

// The environment of a --cgidir script, as Go's net/http/cgi (websocketd's CGI) makes
// it: SERVER_SOFTWARE, SERVER_NAME (the Host without port), SERVER_PORT,
// SERVER_PROTOCOL, GATEWAY_INTERFACE=CGI/1.1, REQUEST_METHOD, QUERY_STRING, REQUEST_URI,
// PATH_INFO (the decoded path, whole), SCRIPT_NAME=/, SCRIPT_FILENAME, REMOTE_ADDR,
// REMOTE_HOST, REMOTE_PORT, HTTP_HOST, HTTPS=on with TLS, CONTENT_LENGTH and
// CONTENT_TYPE when the request has them, and HTTP_* per header (not Proxy).
std::map<std::string, std::string> cgi11_env(const RequestInfo& request,
                                             const std::filesystem::path& script,
                                             std::size_t content_length);

// Where the head of a CGI script's output ends: the offset of the body after the blank
// line (`\n\n` or `\r\n\r\n`), or npos while it has not come yet.
std::size_t cgi_head_end(std::string_view output);

// A script's head, read as Go's CGI host reads it: `Status: NNN reason` sets the
// status, `Location:` without a Status is 302, neither needs a Content-Type; lines
// without a colon or with a bad name are skipped. nullopt (an answer of 500) with the
// reason in `error` when there is no header at all, no Content-Type, or a bad Status.
struct CgiHead {
  int status = 200;
  std::string reason;  // from Status, else empty (the standard one)
  std::vector<std::pair<std::string, std::string>> headers;
};
std::optional<CgiHead> parse_cgi_head(std::string_view head, std::string& error);

}  // namespace linewire::websocket
