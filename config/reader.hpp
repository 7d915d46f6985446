// Typed reads out of yaml-cpp nodes that never throw: each wrong value becomes a
// Problem with its place, and reading goes on, so that one pass reports all of them.
// Internal to config/.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "config/load.hpp"

namespace linewire::config {

// A value in the file and the names that messages give it.
struct Entry {
  std::string path;  // "broker.tls.ca_file"; empty for the whole document
  std::string what;  // for a mapping: how "unknown key 'x' in WHAT" names it; empty: path
  YAML::Node key;    // the key the value sits under (the document itself at the top)
  YAML::Node value;

  Entry child(const std::string& key_text, YAML::Node key_node, YAML::Node child_value) const;
  Entry element(std::size_t index, YAML::Node element_value) const;  // "groups[1]"
};

// Keeps the default when a read failed (the failure is already a problem).
template <typename T, typename U>
void assign(T& out, std::optional<U> value) {
  if (value) out = std::move(*value);
}

class Reader {
 public:
  using Handler = std::function<void(const Entry&)>;
  using Handlers = std::vector<std::pair<std::string_view, Handler>>;

  // Relative paths resolve against base_dir.
  explicit Reader(std::filesystem::path base_dir);

  void problem(const YAML::Mark& mark, std::string message);
  void problem(const Entry& e, std::string_view message);  // "PATH: MESSAGE", at the value
  void problem_at_key(const Entry& e, std::string_view message);
  // Checks that need the whole file read first (references between sections).
  void later(std::function<void()> check);
  bool empty() const { return problems_.empty(); }  // no problem so far
  // Runs the later checks; every problem, in file order.
  std::vector<Problem> finish();

  // Calls `each` for every key of a mapping in file order. Reports a value that is no
  // mapping, duplicate keys and keys that are no strings itself. Null reads as {}.
  bool entries(const Entry& e, const Handler& each);
  // The same with a handler per known key; any other key is reported as unknown.
  bool mapping(const Entry& e, const Handlers& handlers);
  // The elements of a list; null reads as [].
  std::optional<std::vector<Entry>> list(const Entry& e);

  std::optional<std::string> text(const Entry& e, bool allow_empty = false);
  std::optional<std::string> path(const Entry& e);                // resolved against base_dir
  std::optional<std::string> name(const Entry& e);                // SPEC §1
  std::optional<std::vector<std::string>> texts(const Entry& e);  // non-empty strings
  std::optional<std::vector<std::string>> names(const Entry& e);  // names, none twice
  std::optional<int> integer(const Entry& e, int min, int max = std::numeric_limits<int>::max());
  std::optional<bool> boolean(const Entry& e);
  std::optional<Duration> duration(const Entry& e, Duration min = Duration::zero(),
                                   Duration max = Duration::max());
  std::optional<std::size_t> size(const Entry& e, std::size_t min = 0);
  template <typename T>
  std::optional<T> choice(const Entry& e,
                          std::initializer_list<std::pair<std::string_view, T>> options);

  // A path from the file made absolute: relative ones against base_dir.
  std::string resolve(const std::string& path) const;

 private:
  std::optional<std::string> scalar(const Entry& e, std::string_view expected);
  std::optional<std::size_t> choice_index(const Entry& e,
                                          const std::vector<std::string_view>& names);

  std::filesystem::path base_dir_;
  std::vector<Problem> problems_;
  std::vector<std::function<void()>> later_;
};

template <typename T>
std::optional<T> Reader::choice(const Entry& e,
                                std::initializer_list<std::pair<std::string_view, T>> options) {
  std::vector<std::string_view> names;
  for (const auto& option : options) names.push_back(option.first);
  const auto index = choice_index(e, names);
  if (!index) return std::nullopt;
  return (options.begin() + *index)->second;
}

}  // namespace linewire::config
