// `every: DURATION` (SPEC §5): the agent starts such a command itself, the first time one
// period after start-up (or after a reload that set or changed the period), each time with
// up to 10 % random delay so that a fleet does not fire at once.
//
// No drift: tick n is due at base + n × period + its own jitter, so neither the jitter nor
// a late wake-up carries over to the next tick. A failing command keeps its schedule (no
// back-off): the period already bounds how often it runs (at least 1 s), and a sensor must
// recover at its next tick once the cause is fixed; each failure is a final state (and a
// Home Assistant event) of its own.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "config/config.hpp"

namespace boost::asio {
class io_context;
}

namespace linewire::agent {

// When tick n (1-based) is due after the schedule's base, for `random01` in [0, 1):
// n periods plus a delay of up to a tenth of one.
config::Duration tick_offset(config::Duration period, std::uint64_t n, double random01);

class Schedule {
 public:
  using Tick = std::function<void(const std::string& command)>;

  Schedule(boost::asio::io_context& io, Tick tick);
  ~Schedule();
  Schedule(const Schedule&) = delete;
  Schedule& operator=(const Schedule&) = delete;

  // Follows the config: a new or changed period starts over from now, an unchanged one
  // keeps its phase, a removed one (or a command that is gone) stops.
  void apply(const config::Config& config);
  // Shutdown: no tick any more.
  void stop();

 private:
  struct Entry;
  void arm(const std::string& name, Entry& e);

  boost::asio::io_context& io_;
  Tick tick_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;
  std::uint64_t generations_ = 0;  // each entry's own number, for its timer's handler
};

}  // namespace linewire::agent
