// Puts a `--` before the remote command's words, so CLI11 leaves them alone: see argv.hpp.
#include "cli/argv.hpp"

namespace linewire::cli {

namespace {

bool is_option(std::string_view word) { return word.size() > 1 && word.front() == '-'; }

// How many words the option at `word` uses: 2 when its value is the next word.
std::size_t option_width(std::string_view word, const TakesValue& takes_value) {
  if (word.find('=') != std::string_view::npos) return 1;  // --timeout=5
  auto value = takes_value(word);
  return value.value_or(false) ? 2 : 1;
}

}  // namespace

std::vector<std::string> protect_remote_args(std::vector<std::string> args,
                                             const TakesValue& takes_value,
                                             std::string_view subcommand) {
  std::size_t i = 0;
  bool inside = false;
  while (i < args.size()) {
    const std::string& word = args[i];
    if (word == "--") return args;
    if (is_option(word)) {
      i += option_width(word, takes_value);
      continue;
    }
    if (!inside) {
      if (word != subcommand) return args;  // another subcommand: nothing to protect
      inside = true;
      ++i;
      continue;
    }
    args.insert(args.begin() + static_cast<std::ptrdiff_t>(i), "--");
    return args;
  }
  return args;
}

}  // namespace linewire::cli
