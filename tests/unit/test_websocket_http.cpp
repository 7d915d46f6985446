#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

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
