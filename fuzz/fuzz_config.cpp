// Fuzzes the configuration loader (config/load.hpp load_string) with arbitrary YAML:
// every input must end in a Config or a list of problems, never a crash, an uncaught
// exception, a leak or UB.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/load.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string yaml(reinterpret_cast<const char*>(data), size);
  auto result = linewire::config::load_string(yaml, "/nonexistent/fuzz.yaml", "fuzzhost");
  // Exactly one of: a config, or at least one problem.
  if (result.config.has_value() == !result.problems.empty()) std::abort();
  for (const auto& p : result.problems) {
    if (p.message.empty() || p.line < 0 || p.column < 0) std::abort();
    (void)linewire::config::format(p, "fuzz.yaml");
  }
  return 0;
}
