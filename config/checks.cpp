#include "config/checks.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace linewire::config {
namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// HOST[:PORT] or [V6][:PORT]. Only the shape: whether a name resolves is a runtime
// matter, and the agent may start before the network does.
std::optional<std::string> check_host_port(std::string_view text, bool port_required) {
  std::string_view host;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return "an IPv6 address lacks its closing ']'";
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    if (host.find(':') == std::string_view::npos) return "only IPv6 addresses go in brackets";
  } else {
    const auto colon = text.find(':');
    host = text.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : text.substr(colon);
    if (rest.find(':', 1) != std::string_view::npos)
      return "write an IPv6 address in brackets, as in [::1]:8080";
  }
  if (host.empty()) return "the host is missing";
  for (const char c : host)
    if (!is_alnum(c) && c != '.' && c != '-' && c != '_' && c != ':' && c != '%')
      return "the host '" + std::string(host) + "' has a character a host name cannot have";
  if (rest.empty()) {
    if (port_required) return "the port is missing (HOST:PORT)";
    return std::nullopt;
  }
  if (rest.front() != ':') return "expected ':' and a port after the host";
  const auto port_text = rest.substr(1);
  int port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() ||
      port < 1 || port > 65535)
    return "the port must be a number from 1 to 65535, not '" + std::string(port_text) + "'";
  return std::nullopt;
}

// Optimal string alignment distance: a swap of two neighbours counts as one edit,
// the most common typo ("tiemout").
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

bool is_valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || !is_alnum(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_alnum(c) || c == '_' || c == '.' || c == '-'; });
}

bool is_env_name(std::string_view name) {
  if (name.empty() || (name.front() >= '0' && name.front() <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return is_alnum(c) || c == '_'; });
}

std::optional<std::string> check_prefix(std::string_view prefix) {
  if (prefix.empty()) return "it is empty";
  for (const char c : prefix) {
    if (c == '+' || c == '#') return "it contains the MQTT wildcard '" + std::string(1, c) + "'";
    if (c == '\0') return "it contains a NUL character";
  }
  if (prefix.front() == '/' || prefix.back() == '/') return "it starts or ends with '/'";
  if (prefix.find("//") != std::string_view::npos) return "it has an empty level ('//')";
  // Brokers keep $-topics for themselves ($SYS) and '#' subscriptions skip them.
  if (prefix.front() == '$') return "it starts with '$', which brokers reserve";
  return std::nullopt;
}

std::optional<std::string> check_broker_url(std::string_view url) {
  static constexpr std::array<std::string_view, 6> kSchemes = {"mqtt", "mqtts", "ws",
                                                               "wss",  "tcp",   "ssl"};
  const auto sep = url.find("://");
  if (sep == std::string_view::npos)
    return "expected SCHEME://HOST[:PORT], with scheme mqtt, mqtts, ws, wss, tcp or ssl";
  const auto scheme = url.substr(0, sep);
  if (std::find(kSchemes.begin(), kSchemes.end(), scheme) == kSchemes.end())
    return "unknown scheme '" + std::string(scheme) +
           "' (expected mqtt, mqtts, ws, wss, tcp or ssl)";
  auto rest = url.substr(sep + 3);
  const auto path_at = rest.find('/');
  const auto authority = rest.substr(0, path_at);
  if (authority.find('@') != std::string_view::npos)
    return "put the user name in broker.username and the password in broker.password_file, "
           "not in the URL";
  if (path_at != std::string_view::npos && scheme != "ws" && scheme != "wss")
    return "only ws:// and wss:// URLs have a path";
  if (auto why = check_host_port(authority, false)) return why;
  return std::nullopt;
}

std::optional<std::string> check_listen(std::string_view listen) {
  return check_host_port(listen, true);
}

std::optional<std::string> closest(std::string_view word,
                                   const std::vector<std::string_view>& candidates) {
  const std::size_t allowed = word.size() <= 4 ? 1 : 2;
  std::optional<std::string> best;
  std::size_t best_distance = allowed + 1;
  for (const auto candidate : candidates) {
    const auto d = edit_distance(word, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(candidate);
    }
  }
  return best;
}

namespace {

std::string at_char(std::size_t i) { return " (at character " + std::to_string(i + 1) + ")"; }

// Jinja tags that open a block closed by `end{tag}`; `set` only without `=` (set x %}...).
bool opens_block(std::string_view tag, std::string_view body) {
  static constexpr std::array<std::string_view, 8> kBlocks = {
      "if", "for", "macro", "call", "filter", "with", "block", "autoescape"};
  if (tag == "set") return body.find('=') == std::string_view::npos;
  return std::find(kBlocks.begin(), kBlocks.end(), tag) != kBlocks.end();
}

// A tag's body without whitespace control (`{%-`, `-%}`, `+`) and spaces.
std::string_view trimmed(std::string_view body) {
  const auto is_trim = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '-' || c == '+';
  };
  while (!body.empty() && is_trim(body.front())) body.remove_prefix(1);
  while (!body.empty() && is_trim(body.back())) body.remove_suffix(1);
  return body;
}

std::string_view first_word(std::string_view body) {
  std::size_t n = 0;
  while (n < body.size() && (is_alnum(body[n]) || body[n] == '_')) ++n;
  return body.substr(0, n);
}

// From just after `{{` or `{%`: where its closing `}}` or `%}` starts, outside strings and
// brackets (Jinja's lexer balances them too, so `{{ {'a': 1}}}` ends at the last `}}`).
// Sets `why` instead when the tag is broken.
std::size_t tag_end(std::string_view t, std::size_t from, char close, std::string& why) {
  std::string open_brackets;
  for (std::size_t j = from; j < t.size(); ++j) {
    const char c = t[j];
    if (c == '\'' || c == '"') {
      std::size_t k = j + 1;
      while (k < t.size() && t[k] != c) k += t[k] == '\\' ? 2 : 1;
      if (k >= t.size()) {
        why = std::string("a string opened with ") + c + " is never closed" + at_char(j);
        return std::string_view::npos;
      }
      j = k;
    } else if (open_brackets.empty() && c == close && j + 1 < t.size() && t[j + 1] == '}') {
      return j;
    } else if (c == '(' || c == '[' || c == '{') {
      open_brackets.push_back(c);
    } else if (c == ')' || c == ']' || c == '}') {
      const char want = c == ')' ? '(' : c == ']' ? '[' : '{';
      if (open_brackets.empty() || open_brackets.back() != want) {
        why = std::string("unexpected '") + c + "'" + at_char(j);
        return std::string_view::npos;
      }
      open_brackets.pop_back();
    }
  }
  why = std::string("'{") + (close == '}' ? '{' : '%') + "' is never closed with '" + close + "}'" +
        at_char(from - 2);
  return std::string_view::npos;
}

}  // namespace

std::optional<std::string> check_jinja(std::string_view t) {
  std::vector<std::pair<std::string_view, std::size_t>> blocks;  // open block tags, where
  std::size_t i = 0;
  while ((i = t.find('{', i)) != std::string_view::npos && i + 1 < t.size()) {
    const std::size_t open = i;
    const char kind = t[open + 1];
    if (kind == '#') {
      const auto end = t.find("#}", open + 2);
      if (end == std::string_view::npos)
        return "a comment '{#' is never closed with '#}'" + at_char(open);
      i = end + 2;
      continue;
    }
    if (kind != '{' && kind != '%') {
      ++i;  // a literal brace, as in a JSON template
      continue;
    }
    std::string why;
    const auto end = tag_end(t, open + 2, kind == '{' ? '}' : '%', why);
    if (end == std::string_view::npos) return why;
    i = end + 2;
    const auto body = trimmed(t.substr(open + 2, end - open - 2));
    if (kind == '{') {
      if (body.empty()) return "an empty '{{ }}'" + at_char(open);
      continue;
    }
    const auto tag = first_word(body);
    if (tag.empty()) return "a '{% %}' without a tag name" + at_char(open);
    if (tag == "raw") {
      // Nothing inside is Jinja: skip to the end tag.
      const auto close = t.find("endraw", i);
      const auto after = close == std::string_view::npos ? close : t.find("%}", close);
      if (after == std::string_view::npos)
        return "'{% raw %}' is never closed with '{% endraw %}'" + at_char(open);
      i = after + 2;
    } else if (opens_block(tag, body)) {
      blocks.emplace_back(tag, open);
    } else if (tag.starts_with("end")) {
      if (blocks.empty() || blocks.back().first != tag.substr(3))
        return "'{% " + std::string(tag) + " %}' closes no '{% " + std::string(tag.substr(3)) +
               " %}'" + at_char(open);
      blocks.pop_back();
    } else if ((tag == "elif" || tag == "else") &&
               (blocks.empty() || (blocks.back().first != "if" && blocks.back().first != "for"))) {
      return "'{% " + std::string(tag) + " %}' outside an if or for" + at_char(open);
    }
  }
  if (!blocks.empty())
    return "'{% " + std::string(blocks.back().first) + " %}' is never closed with '{% end" +
           std::string(blocks.back().first) + " %}'" + at_char(blocks.back().second);
  return std::nullopt;
}

}  // namespace linewire::config
