#include "transports/websocket/dropin_flags.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

namespace linewire::websocket::dropin {

namespace {

enum class Kind { text, boolean, number, header };

// websocketd 0.4.1's flags (its config.go), all of them.
const std::map<std::string, Kind, std::less<>> kFlags = {
    {"port", Kind::number},        {"address", Kind::text},       {"staticdir", Kind::text},
    {"dir", Kind::text},           {"cgidir", Kind::text},        {"maxforks", Kind::number},
    {"closems", Kind::number},     {"redirport", Kind::number},   {"origin", Kind::text},
    {"sameorigin", Kind::boolean}, {"passenv", Kind::text},       {"ssl", Kind::boolean},
    {"sslcert", Kind::text},       {"sslkey", Kind::text},        {"loglevel", Kind::text},
    {"binary", Kind::boolean},     {"devconsole", Kind::boolean}, {"reverselookup", Kind::boolean},
    {"header", Kind::header},      {"header-ws", Kind::header},   {"header-http", Kind::header},
    {"version", Kind::boolean},    {"license", Kind::boolean},
};

// Go's strconv.ParseBool.
std::optional<bool> parse_bool(const std::string& s) {
  for (const char* t : {"1", "t", "T", "true", "TRUE", "True"})
    if (s == t) return true;
  for (const char* f : {"0", "f", "F", "false", "FALSE", "False"})
    if (s == f) return false;
  return std::nullopt;
}

std::optional<int> parse_int(const std::string& s) {
  try {
    std::size_t used = 0;
    int n = std::stoi(s, &used);
    if (used == s.size()) return n;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto comma = s.find(',', start);
    std::string part = s.substr(start, comma - start);
    if (!part.empty()) out.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// "Name: value" as websocketd splits it (the name in Go's canonical form, "x-foo" →
// "X-Foo"; spaces after the colon skipped). Refused: no colon, a name that is not an
// HTTP token, or a CR, LF or NUL anywhere (they would forge further header lines).
std::optional<Header> parse_header(const std::string& s, std::string& error) {
  auto colon = s.find(':');
  if (colon == std::string::npos || colon == 0) {
    error = "header \"" + s + "\" is not NAME: VALUE";
    return std::nullopt;
  }
  if (s.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
    error = "header \"" + s + "\" has a line break or NUL";
    return std::nullopt;
  }
  std::string name = s.substr(0, colon);
  bool upper = true;
  for (char& c : name) {
    auto u = static_cast<unsigned char>(c);
    if (!std::isalnum(u) && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string::npos) {
      error = "header name \"" + name + "\" is not an HTTP token";
      return std::nullopt;
    }
    c = static_cast<char>(upper ? std::toupper(u) : std::tolower(u));
    upper = c == '-';
  }
  std::size_t v = colon + 1;
  while (v < s.size() && s[v] == ' ') ++v;
  return Header{name, s.substr(v)};
}

bool is_dir(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

// The flags given, in order, as Go's flag package reads them.
struct Raw {
  std::map<std::string, std::string> last;  // name → its last value
  std::vector<std::pair<std::string, std::string>> headers;
  int addresses = 0;  // --address may be given many times in websocketd
  std::vector<std::string> rest;
  bool help = false;
};

std::optional<Raw> read_words(int argc, char** argv, std::string& error) {
  Raw raw;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.size() < 2 || a[0] != '-') break;
    std::string name = a.substr(a[1] == '-' ? 2 : 1);
    if (name.empty() || name[0] == '-' || name[0] == '=') {
      error = "bad flag syntax: " + a;
      return std::nullopt;
    }
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "h" || name == "help") {
      raw.help = true;
      continue;
    }
    auto it = kFlags.find(name);
    if (it == kFlags.end()) {
      error = "flag provided but not defined: -" + name;
      return std::nullopt;
    }
    if (it->second == Kind::boolean) {
      auto b = parse_bool(value.value_or("true"));
      if (!b) {
        error = "invalid boolean value \"" + *value + "\" for -" + name;
        return std::nullopt;
      }
      raw.last[name] = *b ? "true" : "false";
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) {
        error = "flag needs an argument: -" + name;
        return std::nullopt;
      }
      value = argv[++i];
    }
    if (it->second == Kind::header)
      raw.headers.emplace_back(name, *value);
    else
      raw.last[name] = *value;
    if (name == "address") ++raw.addresses;
  }
  for (; i < argc; ++i) raw.rest.emplace_back(argv[i]);
  return raw;
}

// Numbers and their ranges; false with `error`.
bool read_numbers(const Raw& raw, Flags& f, std::string& error) {
  struct Want {
    const char* name;
    int* out;
    int min, max;
  };
  for (const Want& w :
       {Want{"port", &f.port, 1, 65535}, Want{"maxforks", &f.maxforks, -1 << 30, 1 << 30},
        Want{"closems", &f.closems, 0, 1 << 30}, Want{"redirport", &f.redirport, 0, 65535}}) {
    auto it = raw.last.find(w.name);
    if (it == raw.last.end()) continue;
    auto n = parse_int(it->second);
    if (!n || *n < w.min || *n > w.max) {
      error = "invalid value \"" + it->second + "\" for flag -" + w.name;
      return false;
    }
    *w.out = *n;
  }
  if (f.port == 0) {
    error = "--port must be 1 to 65535";
    return false;
  }
  if (f.maxforks < 0) f.maxforks = 0;  // websocketd: zero or negative, no limit
  if (f.redirport == f.port) {
    error = "--redirport must differ from --port";
    return false;
  }
  return true;
}

// The rules websocketd checks after parsing, in its order; ours exit 2 where it exits 1
// or 4 (drop-in mode's one status for a command line it refuses).
bool check(Flags& f, std::string& error) {
  static const char* const kLevels[] = {"debug", "trace", "access", "info", "error", "fatal"};
  if (std::find(std::begin(kLevels), std::end(kLevels), f.loglevel) == std::end(kLevels)) {
    error = "incorrect --loglevel '" + f.loglevel + "' (debug, trace, access, info, error, fatal)";
    return false;
  }
  if (f.ssl && (f.sslcert.empty() || f.sslkey.empty())) {
    error = "--ssl needs --sslcert and --sslkey";
    return false;
  }
  if (!f.ssl && (!f.sslcert.empty() || !f.sslkey.empty())) {
    error = "--sslcert and --sslkey need --ssl";
    return false;
  }
  if (f.program.empty() && f.dir.empty() && f.staticdir.empty() && f.cgidir.empty()) {
    error = "no PROGRAM to serve (or --dir, --staticdir, --cgidir)";
    return false;
  }
  if (!f.program.empty() && !f.dir.empty()) {
    error = "both PROGRAM and --dir given: pick one";
    return false;
  }
  for (const auto& [flag, path] : {std::pair<const char*, const std::string&>{"dir", f.dir},
                                   {"staticdir", f.staticdir},
                                   {"cgidir", f.cgidir}}) {
    if (!path.empty() && !is_dir(path)) {
      error = "--" + std::string(flag) + " " + path + " is not a directory";
      return false;
    }
  }
  if (f.devconsole && (!f.staticdir.empty() || !f.cgidir.empty())) {
    error = "--devconsole cannot be used with --staticdir or --cgidir: pick one";
    return false;
  }
  return true;
}

}  // namespace

std::optional<Parsed> parse(int argc, char** argv, std::string& error) {
  auto raw = read_words(argc, argv, error);
  if (!raw) return std::nullopt;
  Parsed parsed;
  if (raw->help) {
    parsed.action = Parsed::Action::help;
    return parsed;
  }
  auto on = [&](const char* name) {
    auto it = raw->last.find(name);
    return it != raw->last.end() && it->second == "true";
  };
  auto text = [&](const char* name) {
    auto it = raw->last.find(name);
    return it == raw->last.end() ? std::string() : it->second;
  };
  // websocketd answers --version and --license before it checks anything else.
  if (on("version")) parsed.action = Parsed::Action::version;
  if (on("license")) parsed.action = Parsed::Action::license;
  if (parsed.action != Parsed::Action::serve) return parsed;

  Flags& f = parsed.flags;
  if (!read_numbers(*raw, f, error)) return std::nullopt;
  if (raw->addresses > 1) {
    // websocketd listens on each; one listener here, and silently dropping the others
    // would leave a client on them refused with no word why.
    error = "--address given more than once: linewired listens on one address";
    return std::nullopt;
  }
  f.address = text("address");
  f.staticdir = text("staticdir");
  f.dir = text("dir");
  f.cgidir = text("cgidir");
  f.origins = split_commas(text("origin"));
  f.sameorigin = on("sameorigin");
  f.passenv = split_commas(text("passenv"));
  f.ssl = on("ssl");
  f.sslcert = text("sslcert");
  f.sslkey = text("sslkey");
  if (raw->last.count("loglevel")) f.loglevel = text("loglevel");
  f.binary = on("binary");
  f.devconsole = on("devconsole");
  f.reverselookup = on("reverselookup");
  for (const auto& [flag, value] : raw->headers) {
    auto header = parse_header(value, error);
    if (!header) return std::nullopt;
    (flag == "header-http" ? f.headers_http : f.headers_ws).push_back(std::move(*header));
  }
  f.program = std::move(raw->rest);
  if (!check(f, error)) return std::nullopt;
  return parsed;
}

const char* usage() {
  return R"(usage: linewired --port=PORT [flags] PROGRAM [ARGS...]
       linewired --port=PORT [flags] --dir=DIR
websocketd drop-in mode: websocketd 0.4.1's flags, no config file, no MQTT.

  --port=PORT              where to listen (required here: it selects drop-in mode)
  --address=ADDR           the address to listen on (default 127.0.0.1; websocketd:
                           every address). Once only: linewired has one listener
  --dir=DIR                ws://HOST/NAME runs DIR/NAME (subfolders too; the rest of
                           the path is PATH_INFO)
  --binary                 stdout bytes as binary messages, unsplit; messages in as
                           raw stdin bytes (text messages get a newline)
  --staticdir=DIR          plain GETs serve files from DIR (no directory listings)
  --cgidir=DIR             plain HTTP requests run CGI/1.1 scripts in DIR
  --devconsole             a page at every plain GET to talk to the program from a
                           browser (not with --staticdir or --cgidir)
  --maxforks=N             at most N programs (WebSockets and CGI) at once; 429 past
  --closems=MS             the grace between TERM and KILL when a client leaves
                           (default 5000)
  --origin=HOST[:PORT],..  browser origins allowed to connect (403 otherwise)
  --sameorigin             only pages from this very server may connect
  --header="N: V"          a header on WebSocket upgrade answers (repeatable; as
                           websocketd 0.4.1, which puts it there only)
  --header-ws="N: V"       a header on WebSocket upgrade answers (repeatable)
  --header-http="N: V"     a header on plain HTTP answers (repeatable)
  --redirport=PORT         also listen on PORT (plain HTTP) and redirect every
                           request to this server's root, 301
  --reverselookup          REMOTE_HOST is the client's name from reverse DNS
  --passenv=VAR,...        pass these variables of linewired's own to programs
                           (PATH, HOME and LANG always are)
  --ssl --sslcert=F --sslkey=F   TLS (wss:// and https://)
  --loglevel=LEVEL         debug, trace, access (default), info, error, fatal
  --version                print the version and exit
  --license                print the licence note and exit
  --help                   print this and exit

Every flag takes websocketd's spellings: -flag=v, --flag=v, --flag v. See the
README, "Coming from websocketd", for each difference from websocketd and why.
)";
}

}  // namespace linewire::websocket::dropin
