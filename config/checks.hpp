// Rules for single configuration values that need no YAML: names, topic prefixes,
// addresses. Each check_* returns why the text is wrong, or nullopt when it is fine.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace linewire::config {

// SPEC §1: ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$, for devices, commands, groups and keys.
bool is_valid_name(std::string_view name);
inline constexpr std::string_view kNameRule =
    "1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit";

// A POSIX-style environment variable name: [A-Za-z_][A-Za-z0-9_]*.
bool is_env_name(std::string_view name);

// A topic prefix: one or more topic levels, without wildcards.
std::optional<std::string> check_prefix(std::string_view prefix);

// SCHEME://HOST[:PORT][/PATH], a path only for ws:// and wss://.
std::optional<std::string> check_broker_url(std::string_view url);

// HOST:PORT, an IPv6 host in brackets ([::1]:8080).
std::optional<std::string> check_listen(std::string_view listen);

// A Home Assistant template (value_template) that Jinja could parse, as far as its
// delimiters go: every `{{ }}`, `{% %}` and `{# #}` closed, brackets and quotes balanced
// inside them, no empty `{{ }}`, and block tags (if/for/...) paired with their end tags.
// Not a Jinja parser: it catches what makes Home Assistant drop an entity (a template that
// does not compile) without a Python dependency. The message gives the 1-based character.
std::optional<std::string> check_jinja(std::string_view text);

// The candidate that `word` most likely misspells (at most two edits, one for short
// words), for "did you mean" hints.
std::optional<std::string> closest(std::string_view word,
                                   const std::vector<std::string_view>& candidates);

}  // namespace linewire::config
