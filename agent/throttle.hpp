// At most once per period: `request()` runs the function now if the last run is a
// period ago, else once at the end of the period, however many requests came meanwhile.
// For `info`, refreshed when runs start or end at most once a second (SPEC §6).
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace boost::asio {
class io_context;
}

namespace linewire::agent {

class Throttle {
 public:
  Throttle(boost::asio::io_context& io, std::chrono::steady_clock::duration period,
           std::function<void()> fn);
  ~Throttle();
  Throttle(const Throttle&) = delete;
  Throttle& operator=(const Throttle&) = delete;

  void request();
  // Runs it now, whenever it last ran; a pending run at the period's end still comes.
  void now();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace linewire::agent
