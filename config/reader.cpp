#include "config/reader.hpp"

#include <algorithm>
#include <charconv>
#include <map>

#include "config/checks.hpp"
#include "config/units.hpp"

namespace linewire::config {
namespace {

// yaml-cpp counts from 0, editors and compilers from 1; a node made up by yaml-cpp
// (no place in the file) has -1.
Problem at(const YAML::Mark& mark, std::string message) {
  if (mark.line < 0) return Problem{0, 0, std::move(message)};
  return Problem{mark.line + 1, mark.column + 1, std::move(message)};
}

std::string in_quotes(const std::string& text) {
  constexpr std::size_t kMax = 40;
  if (text.size() <= kMax) return "'" + text + "'";
  return "'" + text.substr(0, kMax) + "...'";
}

// What a wrong value is, for "expected X, got Y".
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return (node.Tag() == "!" ? "the quoted string " : "") + in_quotes(node.Scalar());
    default:
      return "nothing";
  }
}

// A null value has the place of whatever follows it, often the next line: point at its
// key instead.
YAML::Mark value_mark(const Entry& e) {
  if (e.value.IsDefined() && !e.value.IsNull() && e.value.Mark().line >= 0) return e.value.Mark();
  return e.key.Mark();
}

// " in broker.tls", " in command 'count'": where a key of this mapping sits.
std::string inside(const Entry& e) {
  if (!e.what.empty()) return " in " + e.what;
  if (!e.path.empty()) return " in " + e.path;
  return "";
}

std::string prefixed(const Entry& e, std::string_view message) {
  if (e.path.empty()) return std::string(message);
  return e.path + ": " + std::string(message);
}

}  // namespace

Entry Entry::child(const std::string& key_text, YAML::Node key_node, YAML::Node child_value) const {
  return Entry{path.empty() ? key_text : path + "." + key_text, "", std::move(key_node),
               std::move(child_value)};
}

Entry Entry::element(std::size_t index, YAML::Node element_value) const {
  // A list element has no key of its own: its own place stands in for one.
  YAML::Node place = element_value;
  return Entry{path + "[" + std::to_string(index) + "]", "", place, std::move(element_value)};
}

Reader::Reader(std::filesystem::path base_dir) : base_dir_(std::move(base_dir)) {}

void Reader::problem(const YAML::Mark& mark, std::string message) {
  problems_.push_back(at(mark, std::move(message)));
}

void Reader::problem(const Entry& e, std::string_view message) {
  problem(value_mark(e), prefixed(e, message));
}

void Reader::problem_at_key(const Entry& e, std::string_view message) {
  problem(e.key.Mark(), prefixed(e, message));
}

void Reader::later(std::function<void()> check) { later_.push_back(std::move(check)); }

std::vector<Problem> Reader::finish() {
  for (const auto& check : later_) check();
  later_.clear();
  // Sections are read in file order, but some checks (a missing key, a pair of values
  // that disagree) are made after the section: sort, keeping equal places in order.
  std::stable_sort(problems_.begin(), problems_.end(), [](const Problem& a, const Problem& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return std::move(problems_);
}

bool Reader::entries(const Entry& e, const Handler& each) {
  if (e.value.IsNull()) return true;
  if (!e.value.IsMap()) {
    problem(e, "expected a mapping (KEY: VALUE lines), got " + describe(e.value));
    return false;
  }
  const std::string where = inside(e);
  std::map<std::string, int> seen;  // key -> its line
  for (const auto& kv : e.value) {
    const YAML::Node& key = kv.first;
    if (!key.IsScalar()) {
      problem(key.Mark(), "a key" + where + " is " + describe(key) + ", not a plain string");
      continue;
    }
    const auto [it, inserted] = seen.emplace(key.Scalar(), key.Mark().line + 1);
    if (!inserted) {
      // yaml-cpp would silently keep the first: one of the two is a mistake.
      problem(key.Mark(), "duplicate key " + in_quotes(key.Scalar()) + where + " (first on line " +
                              std::to_string(it->second) + ")");
      continue;
    }
    each(e.child(key.Scalar(), key, kv.second));
  }
  return true;
}

bool Reader::mapping(const Entry& e, const Handlers& handlers) {
  return entries(e, [&](const Entry& child) {
    const std::string key = child.key.Scalar();
    for (const auto& [name, handler] : handlers) {
      if (name == key) {
        handler(child);
        return;
      }
    }
    std::vector<std::string_view> known;
    for (const auto& handler : handlers) known.push_back(handler.first);
    std::string message = "unknown key " + in_quotes(key);
    message += e.path.empty() ? " at the top level" : inside(e);
    if (auto hint = closest(key, known)) message += " (did you mean '" + *hint + "'?)";
    problem(child.key.Mark(), message);
  });
}

std::optional<std::vector<Entry>> Reader::list(const Entry& e) {
  std::vector<Entry> out;
  if (e.value.IsNull()) return out;
  if (!e.value.IsSequence()) {
    problem(e, "expected a list ([a, b] or '- a' lines), got " + describe(e.value));
    return std::nullopt;
  }
  std::size_t i = 0;
  for (const auto& element : e.value) out.push_back(e.element(i++, element));
  return out;
}

std::optional<std::string> Reader::scalar(const Entry& e, std::string_view expected) {
  if (!e.value.IsScalar()) {
    problem(e, "expected " + std::string(expected) + ", got " + describe(e.value));
    return std::nullopt;
  }
  return e.value.Scalar();
}

std::optional<std::string> Reader::text(const Entry& e, bool allow_empty) {
  auto value = scalar(e, "a string");
  if (!value) return std::nullopt;
  if (!allow_empty && value->empty()) {
    problem(e, "is empty");
    return std::nullopt;
  }
  // A NUL would cut the string short wherever it reaches C (exec, paths, topics).
  if (value->find('\0') != std::string::npos) {
    problem(e, "contains a NUL character");
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> Reader::path(const Entry& e) {
  auto value = text(e);
  if (!value) return std::nullopt;
  return resolve(*value);
}

std::optional<std::string> Reader::name(const Entry& e) {
  auto value = text(e);
  if (!value) return std::nullopt;
  if (!is_valid_name(*value)) {
    problem(e, in_quotes(*value) + " is not a valid name (" + std::string(kNameRule) + ")");
    return std::nullopt;
  }
  return value;
}

std::optional<std::vector<std::string>> Reader::texts(const Entry& e) {
  const auto elements = list(e);
  if (!elements) return std::nullopt;
  std::vector<std::string> out;
  bool ok = true;
  for (const auto& element : *elements) {
    if (auto value = text(element))
      out.push_back(std::move(*value));
    else
      ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::vector<std::string>> Reader::names(const Entry& e) {
  const auto elements = list(e);
  if (!elements) return std::nullopt;
  std::vector<std::string> out;
  bool ok = true;
  for (const auto& element : *elements) {
    auto value = name(element);
    if (!value) {
      ok = false;
    } else if (std::find(out.begin(), out.end(), *value) != out.end()) {
      problem(element, in_quotes(*value) + " is listed twice");
      ok = false;
    } else {
      out.push_back(std::move(*value));
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<int> Reader::integer(const Entry& e, int min, int max) {
  const auto value = scalar(e, "an integer");
  if (!value) return std::nullopt;
  int n = 0;
  const auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
  // A quoted "5" is a string in YAML: taking it as a number would hide a type slip.
  if (e.value.Tag() == "!" || value->empty() || end != value->data() + value->size() ||
      ec == std::errc::invalid_argument) {
    problem(e, "expected an integer, got " + describe(e.value));
    return std::nullopt;
  }
  if (ec == std::errc::result_out_of_range || n < min || n > max) {
    if (max == std::numeric_limits<int>::max())
      problem(e, "must be at least " + std::to_string(min) + ", not " + *value);
    else
      problem(e, "must be from " + std::to_string(min) + " to " + std::to_string(max) + ", not " +
                     *value);
    return std::nullopt;
  }
  return n;
}

std::optional<bool> Reader::boolean(const Entry& e) {
  const auto value = scalar(e, "true or false");
  if (!value) return std::nullopt;
  bool b = false;
  if (e.value.Tag() == "!" || !YAML::convert<bool>::decode(e.value, b)) {
    problem(e, "expected true or false, got " + describe(e.value));
    return std::nullopt;
  }
  return b;
}

std::optional<Duration> Reader::duration(const Entry& e, Duration min, Duration max) {
  constexpr std::string_view kExpected = "a duration such as 500ms, 30s, 5m or 1h";
  const auto value = scalar(e, kExpected);
  if (!value) return std::nullopt;
  const auto d = parse_duration(*value);
  if (!d) {
    problem(e, "expected " + std::string(kExpected) + ", got " + describe(e.value));
    return std::nullopt;
  }
  if (*d < min) {
    problem(e, "must be at least " + format_duration(min) + ", not " + *value);
    return std::nullopt;
  }
  if (*d > max) {
    problem(e, "must be at most " + format_duration(max) + ", not " + *value);
    return std::nullopt;
  }
  return d;
}

std::optional<std::size_t> Reader::size(const Entry& e, std::size_t min) {
  constexpr std::string_view kExpected = "a size such as 65536, 64KiB or 8MiB";
  const auto value = scalar(e, kExpected);
  if (!value) return std::nullopt;
  const auto bytes = parse_size(*value);
  if (!bytes) {
    problem(e, "expected " + std::string(kExpected) + ", got " + describe(e.value));
    return std::nullopt;
  }
  if (*bytes < min) {
    problem(e, "must be at least " + format_size(min) + ", not " + *value);
    return std::nullopt;
  }
  return bytes;
}

std::optional<std::size_t> Reader::choice_index(const Entry& e,
                                                const std::vector<std::string_view>& names) {
  std::string list;
  for (const auto name : names) list += (list.empty() ? "" : ", ") + std::string(name);
  const auto value = scalar(e, "one of " + list);
  if (!value) return std::nullopt;
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == *value) return i;
  std::string message = "expected one of " + list + ", got " + describe(e.value);
  if (auto hint = closest(*value, names)) message += " (did you mean '" + *hint + "'?)";
  problem(e, message);
  return std::nullopt;
}

std::string Reader::resolve(const std::string& path) const {
  const std::filesystem::path p(path);
  if (p.is_absolute()) return path;
  // "./x" reads better in the file than in logs; ".." stays, since through a symlink
  // it is not the same as dropping the component before it.
  std::filesystem::path out = base_dir_;
  for (const auto& part : p)
    if (part != "." && !part.empty()) out /= part;
  return out.string();
}

}  // namespace linewire::config
