#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "transports/websocket/cgi.hpp"
#include "transports/websocket/dropin_flags.hpp"
#include "transports/websocket/http_util.hpp"

using namespace linewire::websocket;
namespace fs = std::filesystem;

TEST_CASE("percent decoding refuses malformed escapes and NUL") {
  CHECK(percent_decode("a%20b+c", false) == "a b+c");
  CHECK(percent_decode("a%20b+c", true) == "a b c");
  CHECK(percent_decode("%2e%2E", false) == "..");
  CHECK_FALSE(percent_decode("%", false));
  CHECK_FALSE(percent_decode("%4", false));
  CHECK_FALSE(percent_decode("%zz", false));
  CHECK_FALSE(percent_decode("a%00b", false));
}

TEST_CASE("query strings give args in order") {
  auto [path, query] = split_target("/count?arg=1&arg=two%20words&x&token=t%2Bx");
  CHECK(path == "/count");
  auto q = parse_query(query);
  REQUIRE(q);
  REQUIRE(q->size() == 4);
  CHECK((*q)[0] == std::pair<std::string, std::string>{"arg", "1"});
  CHECK((*q)[1].second == "two words");
  CHECK((*q)[2] == std::pair<std::string, std::string>{"x", ""});
  CHECK((*q)[3].second == "t+x");
  CHECK(parse_query("")->empty());
  CHECK(parse_query("&&")->empty());
  CHECK_FALSE(parse_query("arg=%G0"));
  CHECK(split_target("/x").second.empty());
}

TEST_CASE("path segments never climb out") {
  CHECK(path_segments("/a/./b//c/") == std::vector<std::string>{"a", "b", "c"});
  CHECK(path_segments("/")->empty());
  CHECK_FALSE(path_segments("/../etc/passwd"));
  CHECK_FALSE(path_segments("/a/%2e%2e/b"));
  CHECK_FALSE(path_segments("/a/%2E%2E"));
  CHECK_FALSE(path_segments("/a%2f..%2fb"));
  CHECK_FALSE(path_segments("/a%5c..%5cb"));
  CHECK_FALSE(path_segments("/a%00"));
  CHECK(path_segments("/..foo") == std::vector<std::string>{"..foo"});
}

TEST_CASE("static files resolve inside the root only") {
  fs::path base = fs::temp_directory_path() / ("lw-static-" + std::to_string(::getpid()));
  fs::remove_all(base);
  fs::create_directories(base / "www" / "sub");
  std::ofstream(base / "www" / "index.html") << "i";
  std::ofstream(base / "www" / "sub" / "index.html") << "s";
  std::ofstream(base / "secret") << "x";
  fs::create_symlink(base / "secret", base / "www" / "out");
  fs::create_symlink(base / "www" / "index.html", base / "www" / "in");
  fs::path root = fs::canonical(base / "www");
  CHECK(resolve_static(root, "/") == root / "index.html");
  CHECK(resolve_static(root, "/sub") == root / "sub" / "index.html");
  CHECK(resolve_static(root, "/in") == root / "index.html");
  CHECK_FALSE(resolve_static(root, "/out"));
  CHECK_FALSE(resolve_static(root, "/../secret"));
  CHECK_FALSE(resolve_static(root, "/%2e%2e/secret"));
  CHECK_FALSE(resolve_static(root, "/nosuch"));
  fs::remove_all(base);
}

TEST_CASE("content types by extension") {
  CHECK(content_type("/a/index.html") == "text/html; charset=utf-8");
  CHECK(content_type("app.JS") == "text/javascript; charset=utf-8");
  CHECK(content_type("x.css") == "text/css; charset=utf-8");
  CHECK(content_type("x.svg") == "image/svg+xml");
  CHECK(content_type("x.unknown") == "application/octet-stream");
  CHECK(content_type("dir.d/noext") == "application/octet-stream");
}

TEST_CASE("CGI environment as websocketd builds it") {
  RequestInfo r;
  r.remote_addr = "127.0.0.1";
  r.remote_port = "5555";
  r.host = "example.test:8080";
  r.method = "GET";
  r.target = "/count/extra?arg=1";
  r.server_software = "linewired";
  r.script_name = "/count";
  r.headers = {{"User-Agent", "t\r\nInjected: 1"},
               {"X-Multi", "a"},
               {"x-multi", "b"},
               {"Proxy", "http://evil"},
               {"Host", "example.test:8080"},
               {"Bad Name", "v"}};
  auto env = cgi_env(r);
  CHECK(env["SERVER_NAME"] == "example.test");
  CHECK(env["SERVER_PORT"] == "8080");
  CHECK(env["SCRIPT_NAME"] == "/count");
  CHECK(env["QUERY_STRING"] == "arg=1");
  CHECK(env["REQUEST_URI"] == "/count/extra?arg=1");
  CHECK(env["REMOTE_PORT"] == "5555");
  CHECK(env["HTTP_USER_AGENT"] == "t  Injected: 1");
  CHECK(env["HTTP_X_MULTI"] == "a, b");
  CHECK(env.count("HTTP_PROXY") == 0);
  CHECK(env.count("HTTP_HOST") == 0);
  CHECK(env.count("HTTP_BAD NAME") == 0);
  CHECK(env.count("HTTPS") == 0);
  CHECK(env.count("AUTH_TYPE") == 1);
  r.tls = true;
  r.host = "h";
  env = cgi_env(r);
  CHECK(env["HTTPS"] == "on");
  CHECK(env["SERVER_PORT"] == "443");
}

TEST_CASE("origins: websocketd's --origin rules and same-origin") {
  std::vector<std::string> allowed = {"good.example:8000", "https://secure.example", "any.example"};
  CHECK(origin_allowed("", allowed));
  CHECK(origin_allowed("http://good.example:8000", allowed));
  CHECK_FALSE(origin_allowed("http://good.example:8001", allowed));
  CHECK(origin_allowed("https://secure.example", allowed));
  CHECK_FALSE(origin_allowed("http://secure.example", allowed));
  CHECK(origin_allowed("http://any.example:1234", allowed));
  CHECK_FALSE(origin_allowed("http://evil.example", allowed));
  CHECK_FALSE(origin_allowed("null", allowed));
  CHECK(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080", false));
  CHECK_FALSE(same_origin("http://127.0.0.1:8081", "127.0.0.1:8080", false));
  CHECK_FALSE(same_origin("http://evil.example", "127.0.0.1:8080", false));
  CHECK(same_origin("https://h", "h", true));
  CHECK(host_port("[::1]:80", "1") == std::pair<std::string, std::string>{"::1", "80"});
  CHECK(host_port("::1", "1") == std::pair<std::string, std::string>{"::1", "1"});
}

TEST_CASE("bearer token comparison") {
  CHECK(token_equal("abc", "abc"));
  CHECK_FALSE(token_equal("abc", "abd"));
  CHECK_FALSE(token_equal("abc", "abcd"));
  CHECK_FALSE(token_equal("", "a"));
}

TEST_CASE("metrics in Prometheus text format") {
  linewire::agent::Metrics m;
  m.commands["count"].runs_started = 3;
  m.commands["count"].lines = 42;
  m.commands["count"].dropped = 2;
  m.reconnects = 1;
  auto text = metrics_text(m, {{"count", 1}, {"we\"ird", 0}}, true, 5);
  CHECK(text.find("# TYPE linewire_runs_started_total counter\n") != std::string::npos);
  CHECK(text.find("linewire_runs_started_total{command=\"count\"} 3\n") != std::string::npos);
  CHECK(text.find("linewire_runs_active{command=\"count\"} 1\n") != std::string::npos);
  CHECK(text.find("linewire_lines_published_total{command=\"count\"} 42\n") != std::string::npos);
  CHECK(text.find("linewire_dropped_lines_total{command=\"count\"} 2\n") != std::string::npos);
  CHECK(text.find("linewire_runs_active{command=\"we\\\"ird\"} 0\n") != std::string::npos);
  CHECK(text.find("linewire_broker_reconnects_total 1\n") != std::string::npos);
  CHECK(text.find("linewire_broker_connected 1\n") != std::string::npos);
  CHECK(text.find("linewire_websocket_connections 5\n") != std::string::npos);
  CHECK(text.back() == '\n');
}

// ---- websocketd drop-in's --dir and --cgidir (cgi.hpp) ----

TEST_CASE("a script path names a program inside the root only") {
  fs::path base = fs::temp_directory_path() / ("lw-scripts-" + std::to_string(::getpid()));
  fs::remove_all(base);
  fs::create_directories(base / "root" / "sub");
  auto write = [](const fs::path& p, fs::perms perms) {
    std::ofstream(p) << "#!/bin/sh\n";
    fs::permissions(p, perms);
  };
  write(base / "root" / "run.sh", fs::perms::owner_all);
  write(base / "root" / "sub" / "deep.sh", fs::perms::owner_all);
  write(base / "root" / "data.txt", fs::perms::owner_read | fs::perms::owner_write);
  write(base / "outside.sh", fs::perms::owner_all);
  fs::create_symlink(base / "outside.sh", base / "root" / "escape");
  fs::create_symlink(base, base / "root" / "up");
  fs::create_symlink(base / "root" / "run.sh", base / "root" / "alias");
  const fs::path root = fs::canonical(base / "root");
  using S = ScriptMatch::Status;

  auto m = find_script(root, "/sub/deep.sh/a/b%20c", true);
  CHECK(m.status == S::found);
  CHECK(m.file == root / "sub" / "deep.sh");
  CHECK(m.script_name == "/sub/deep.sh");
  CHECK(m.path_info == "/a/b c");
  CHECK(find_script(root, "/run.sh", true).path_info.empty());
  CHECK(find_script(root, "/alias", true).file == root / "run.sh");  // a symlink inside is fine
  // --cgidir: the path must end at the file.
  CHECK(find_script(root, "/run.sh/extra", false).status == S::not_found);
  CHECK(find_script(root, "/run.sh", false).status == S::found);
  CHECK(find_script(root, "/data.txt", true).status == S::not_executable);
  for (const char* bad : {"/", "/sub", "/sub/", "/nosuch", "/escape", "/up/outside.sh",
                          "/../outside.sh", "/sub/%2e%2e/run.sh", "/sub%2f..%2frun.sh",
                          "/..%5coutside.sh", "/run.sh%00", "/%zz", "/%252e%252e/outside.sh"})
    CHECK(find_script(root, bad, true).status == S::not_found);
  CHECK(find_script(root, "/" + std::string(5000, 'a'), true).status == S::not_found);
  fs::remove_all(base);
}

TEST_CASE("a CGI script's environment as Go's CGI host makes it") {
  RequestInfo r;
  r.remote_addr = "10.0.0.5";
  r.remote_port = "4567";
  r.host = "example.test:8080";
  r.method = "POST";
  r.target = "/sub/x.cgi?a=1&b=%20";
  r.server_software = "linewired";
  r.headers = {{"Content-Type", "text/plain"},
               {"Cookie", "a=1"},
               {"Cookie", "b=2"},
               {"Proxy", "evil"},
               {"X-Thing", "v"},
               {"Host", "example.test:8080"}};
  auto env = cgi11_env(r, "/srv/cgi/sub/x.cgi", 5);
  CHECK(env["GATEWAY_INTERFACE"] == "CGI/1.1");
  CHECK(env["SERVER_NAME"] == "example.test");
  CHECK(env["SERVER_PORT"] == "8080");
  CHECK(env["PATH_INFO"] == "/sub/x.cgi");
  CHECK(env["SCRIPT_NAME"] == "/");
  CHECK(env["SCRIPT_FILENAME"] == "/srv/cgi/sub/x.cgi");
  CHECK(env["QUERY_STRING"] == "a=1&b=%20");
  CHECK(env["CONTENT_LENGTH"] == "5");
  CHECK(env["CONTENT_TYPE"] == "text/plain");
  CHECK(env["HTTP_COOKIE"] == "a=1; b=2");
  CHECK(env["HTTP_HOST"] == "example.test:8080");
  CHECK(env["HTTP_X_THING"] == "v");
  CHECK(env.count("HTTP_PROXY") == 0);
  CHECK(env.count("HTTPS") == 0);
  CHECK(cgi11_env(r, "/x", 0).count("CONTENT_LENGTH") == 0);
}

TEST_CASE("a CGI script's head") {
  CHECK(cgi_head_end("A: b\n\nbody") == 6);
  CHECK(cgi_head_end("A: b\r\n\r\nbody") == 8);
  CHECK(cgi_head_end("A: b\r\n") == std::string::npos);
  std::string error;
  auto h = parse_cgi_head("Status: 418 Teapot\r\nContent-Type: text/x\r\nbogus line\r\n", error);
  REQUIRE(h);
  CHECK(h->status == 418);
  CHECK(h->reason == "Teapot");
  REQUIRE(h->headers.size() == 1);
  CHECK(h->headers[0] == std::pair<std::string, std::string>{"Content-Type", "text/x"});
  auto loc = parse_cgi_head("Location: http://x/\n", error);
  REQUIRE(loc);
  CHECK(loc->status == 302);
  CHECK(parse_cgi_head("Content-Type: text/plain\n", error)->status == 200);
  CHECK_FALSE(parse_cgi_head("X-Only: 1\n", error));
  CHECK(error == "no Content-Type header");
  CHECK_FALSE(parse_cgi_head("", error));
  CHECK_FALSE(parse_cgi_head("Status: abc\nContent-Type: x\n", error));
  CHECK_FALSE(parse_cgi_head("Status: 99\nContent-Type: x\n", error));
}

// ---- websocketd drop-in's command line (dropin_flags.hpp) ----

namespace {
std::optional<dropin::Parsed> parse(std::vector<std::string> args, std::string& error) {
  args.insert(args.begin(), "linewired");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return dropin::parse(static_cast<int>(argv.size()), argv.data(), error);
}
}  // namespace

TEST_CASE("drop-in flags as Go's flag package reads them") {
  std::string error;
  auto p = parse({"-port", "8080", "--binary", "--header=x-one: 1", "--header-ws", "X-Two:2",
                  "--header-http=X-Three:  3", "--maxforks=-1", "--", "/bin/cat", "-x"},
                 error);
  REQUIRE(p);
  const auto& f = p->flags;
  CHECK(f.port == 8080);
  CHECK(f.binary);
  CHECK(f.maxforks == 0);
  CHECK(f.program == std::vector<std::string>{"/bin/cat", "-x"});
  REQUIRE(f.headers_ws.size() == 2);
  CHECK(f.headers_ws[0] == dropin::Header{"X-One", "1"});
  CHECK(f.headers_ws[1] == dropin::Header{"X-Two", "2"});
  CHECK(f.headers_http[0] == dropin::Header{"X-Three", "3"});
  // A boolean takes no separate value: the next word is the program.
  p = parse({"--port=1", "--binary", "true"}, error);
  REQUIRE(p);
  CHECK(p->flags.program == std::vector<std::string>{"true"});
  CHECK(parse({"--port=1", "--binary=F", "/bin/cat"}, error)->flags.binary == false);
  CHECK(parse({"--port=1", "--version"}, error)->action == dropin::Parsed::Action::version);
  CHECK(parse({"--port=1", "-h"}, error)->action == dropin::Parsed::Action::help);
}

TEST_CASE("drop-in command lines refused") {
  std::string error;
  for (std::vector<std::string> bad : {
           std::vector<std::string>{"--port=1", "--nosuch", "/bin/cat"},
           {"--port=0", "/bin/cat"},
           {"--port=1", "--binary=maybe", "/bin/cat"},
           {"--port=1"},
           {"--port=1", "--dir=/", "/bin/cat"},
           {"--port=1", "--dir=/nonexistent-dir"},
           {"--port=1", "--devconsole", "--staticdir=/", "/bin/cat"},
           {"--port=1", "--header=nocolon", "/bin/cat"},
           {"--port=1", "--header=Bad Name: x", "/bin/cat"},
           {"--port=1", "--header=X: a\r\nInjected: 1", "/bin/cat"},
           {"--port=1", "--sslcert=x", "/bin/cat"},
           {"--port=1", "--ssl", "/bin/cat"},
           {"--port=1", "--loglevel=loud", "/bin/cat"},
           {"--port=1", "--redirport=1", "/bin/cat"},
           {"--port=1", "--address=a", "--address=b", "/bin/cat"},
           {"--port=1", "--port"},
       }) {
    error.clear();
    CHECK_FALSE(parse(bad, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("the location --redirport answers with") {
  CHECK(redirect_location("example.com:8081", "127.0.0.1", 8080, false) ==
        "http://example.com:8080/");
  CHECK(redirect_location("example.com", "127.0.0.1", 443, true) == "https://example.com:443/");
  CHECK(redirect_location("[::1]:81", "::1", 80, false) == "http://[::1]:80/");
  CHECK(redirect_location("", "127.0.0.1", 80, false) == "http://127.0.0.1:80/");
}
