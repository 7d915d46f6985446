// websocketd's command line, read as websocketd 0.4.1 reads it (Go's flag package), for
// drop-in mode (SPEC §8.6). Pure: no Asio or Beast, so it is cheap to test.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace linewire::websocket::dropin {

using Header = std::pair<std::string, std::string>;  // name, value

// Every websocketd flag, checked. What is absent keeps these defaults.
struct Flags {
  int port = 0;
  std::string address;  // empty: 127.0.0.1 (SPEC §8: loopback unless told)
  std::string staticdir;
  std::string dir;     // --dir: one endpoint per program in it
  std::string cgidir;  // --cgidir: CGI/1.1 scripts over plain HTTP
  int maxforks = 0;    // runs (WebSockets and CGI scripts) at once; 0 or less: no limit
  int closems = 0;     // the kill grace in ms; 0: the agent's default
  int redirport = 0;   // a second port that redirects to this one; 0: none
  std::vector<std::string> origins;
  bool sameorigin = false;
  std::vector<std::string> passenv;
  bool ssl = false;
  std::string sslcert, sslkey;
  std::string loglevel = "access";
  bool binary = false;
  bool devconsole = false;
  bool reverselookup = false;
  std::vector<Header> headers_ws;    // --header and --header-ws: on the 101 only (as 0.4.1)
  std::vector<Header> headers_http;  // --header-http: on every plain HTTP answer
  std::vector<std::string> program;  // PROGRAM ARGS; empty with --dir
};

// What the command line asks for: serve, or print something and exit 0.
struct Parsed {
  enum class Action { serve, help, version, license } action = Action::serve;
  Flags flags;
};

// nullopt with the reason in `error` (the caller prints it and the usage, and exits
// 2). Flags are Go's: -name=v, --name=v, -name v; a boolean takes no separate value;
// the first word that is not a flag, or `--`, ends them.
std::optional<Parsed> parse(int argc, char** argv, std::string& error);

// The usage text: every websocketd flag, and what drop-in mode does with it.
const char* usage();

}  // namespace linewire::websocket::dropin
