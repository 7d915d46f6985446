// Local stdin to a run (SPEC §10): one `in` message per line, `eof` at the end. A
// thread of its own, since reading a terminal blocks; it publishes through the
// Requester (Paho is thread-safe) and holds back while many lines are unacknowledged,
// so a large file on stdin is read as fast as the broker takes it, not into memory.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "cli/broker/requester.hpp"

namespace linewire::cli {

class StdinForwarder {
 public:
  StdinForwarder(Connection& connection, Requester& requester, std::string in_topic,
                 std::string eof_topic);
  ~StdinForwarder();
  StdinForwarder(const StdinForwarder&) = delete;
  StdinForwarder& operator=(const StdinForwarder&) = delete;

  void start();
  // Stops reading (within a tick) and joins the thread.
  void stop();

 private:
  void loop();
  bool send_line(std::string_view line);

  Connection& connection_;
  Requester& requester_;
  std::string in_topic_;
  std::string eof_topic_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace linewire::cli
