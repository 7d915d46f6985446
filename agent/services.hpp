// `mode: service` commands (SPEC §5): started with the agent, restarted after they exit
// with a back-off (restart_delay, doubling up to 5 minutes, back to restart_delay after a
// run of a minute or more), and left stopped after a `stop` until the next start.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "protocol/request.hpp"

namespace boost::asio {
class io_context;
}

namespace linewire::agent {

using protocol::Error;

class Services {
 public:
  // Starts the service `name` now if it should run (the agent decides: not shutting
  // down, still a service, not running); an error means it could not, and it is tried
  // again after the back-off.
  using Start = std::function<std::optional<Error>(const std::string& name)>;

  Services(boost::asio::io_context& io, Start start);
  ~Services();
  Services(const Services&) = delete;
  Services& operator=(const Services&) = delete;

  // A start request for it: wanted again, a pending restart cancelled.
  void wanted(const config::Command& command);
  // A `stop`: it stays stopped until it is started again.
  void unwanted(const std::string& name);
  bool is_wanted(const std::string& name) const;
  // After a reload: forget the ones that are gone or no longer services.
  void keep_only(const config::Config& config);

  // Starts it now, and again after the back-off if that fails.
  void start(const config::Command& command);
  // Its run ended after `ran_for`: start it again after the back-off, unless stopped.
  void restart_later(const config::Command& command, config::Duration ran_for);

 private:
  struct Entry;
  Entry& entry(const config::Command& command);
  void start_now(const std::string& name);
  void schedule(const std::string& name, Entry& e, config::Duration ran_for);

  boost::asio::io_context& io_;
  Start start_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;
};

}  // namespace linewire::agent
