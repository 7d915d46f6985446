// The remote command's own flags belong to it: `linewire run pi-7 df -h` must not show
// our help. CLI11 would read `-h` wherever it stands, so before parsing, a `--` goes in
// front of the first word of `run` that is not one of our options.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace linewire::cli {

// Whether an option (`--timeout`, `-h`) takes a value: true, false (a flag), or nullopt
// when it is not ours.
using TakesValue = std::function<std::optional<bool>(std::string_view option)>;

// `args` without the program name. Returns them with `--` inserted before the first
// positional word after `subcommand`, unless there is one already.
std::vector<std::string> protect_remote_args(std::vector<std::string> args,
                                             const TakesValue& takes_value,
                                             std::string_view subcommand = "run");

}  // namespace linewire::cli
