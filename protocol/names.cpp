#include "protocol/names.hpp"

#include <array>
#include <csignal>
#include <utility>

#include "config/checks.hpp"

namespace linewire::protocol {

namespace {

constexpr std::array<std::pair<std::string_view, int>, 9> kSignals{{
    {"TERM", SIGTERM},
    {"INT", SIGINT},
    {"HUP", SIGHUP},
    {"KILL", SIGKILL},
    {"QUIT", SIGQUIT},
    {"USR1", SIGUSR1},
    {"USR2", SIGUSR2},
    {"STOP", SIGSTOP},
    {"CONT", SIGCONT},
}};

// Splits off the first topic level of `rest`.
std::string_view next_level(std::string_view& rest) {
  auto slash = rest.find('/');
  std::string_view level = rest.substr(0, slash);
  rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
  return level;
}

}  // namespace

// The one name rule: the config checks names by it too.
bool valid_name(std::string_view name) { return config::is_valid_name(name); }

std::optional<int> parse_signal(std::string_view name) {
  if (name.substr(0, 3) == "SIG") name.remove_prefix(3);
  for (const auto& [n, sig] : kSignals)
    if (n == name) return sig;
  return std::nullopt;
}

std::string signal_name(int sig) {
  for (const auto& [n, s] : kSignals)
    if (s == sig) return std::string(n);
  switch (sig) {
    case SIGSEGV:
      return "SEGV";
    case SIGABRT:
      return "ABRT";
    case SIGPIPE:
      return "PIPE";
    case SIGALRM:
      return "ALRM";
    case SIGBUS:
      return "BUS";
    case SIGFPE:
      return "FPE";
    case SIGILL:
      return "ILL";
    default:
      return std::to_string(sig);
  }
}

Topics::Topics(std::string prefix, std::string device)
    : prefix_(std::move(prefix)),
      device_(std::move(device)),
      base_(prefix_ + "/" + device_ + "/") {}

std::string Topics::command(std::string_view command, std::string_view leaf) const {
  std::string t = base_;
  t.append("cmd/").append(command).append("/").append(leaf);
  return t;
}

std::string Topics::run(std::string_view run, std::string_view leaf) const {
  std::string t = base_;
  t.append("run/").append(run).append("/").append(leaf);
  return t;
}

std::string Topics::group_start(std::string_view group, std::string_view command) const {
  std::string t = prefix_;
  t.append("/_group/").append(group).append("/cmd/").append(command).append("/start");
  return t;
}

std::string Topics::device_filter(std::string_view kind, std::string_view leaf) const {
  std::string t = base_;
  t.append(kind).append("/+/").append(leaf);
  return t;
}

std::string Topics::group_filter(std::string_view group) const { return group_start(group, "+"); }

std::optional<RequestTopic> Topics::parse(std::string_view topic) const {
  // A trailing `/` is one more, empty, level: `.../start/` is not `.../start`.
  if (topic.empty() || topic.back() == '/') return std::nullopt;
  if (topic.substr(0, prefix_.size()) != prefix_ || topic.size() <= prefix_.size() ||
      topic[prefix_.size()] != '/')
    return std::nullopt;
  std::string_view rest = topic.substr(prefix_.size() + 1);
  std::string_view first = next_level(rest);
  if (first == "_group") {
    std::string_view group = next_level(rest);
    if (next_level(rest) != "cmd") return std::nullopt;
    std::string_view command = next_level(rest);
    if (next_level(rest) != "start" || !rest.empty()) return std::nullopt;
    return RequestTopic{RequestKind::group_start, std::string(command), std::string(group)};
  }
  if (first != device_) return std::nullopt;
  std::string_view kind = next_level(rest);
  std::string_view name = next_level(rest);
  std::string_view leaf = next_level(rest);
  if (!rest.empty()) return std::nullopt;
  if (kind == "cmd") {
    if (leaf == "start") return RequestTopic{RequestKind::start, std::string(name), {}};
    if (leaf == "stop") return RequestTopic{RequestKind::stop, std::string(name), {}};
    if (leaf == "switch") return RequestTopic{RequestKind::switch_, std::string(name), {}};
  } else if (kind == "run") {
    if (leaf == "in") return RequestTopic{RequestKind::in, std::string(name), {}};
    if (leaf == "eof") return RequestTopic{RequestKind::eof, std::string(name), {}};
    if (leaf == "signal") return RequestTopic{RequestKind::signal, std::string(name), {}};
    if (leaf == "replay") return RequestTopic{RequestKind::replay, std::string(name), {}};
  }
  return std::nullopt;
}

}  // namespace linewire::protocol
