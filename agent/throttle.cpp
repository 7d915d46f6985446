#include "agent/throttle.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace linewire::agent {

struct Throttle::Impl {
  Impl(boost::asio::io_context& io, std::chrono::steady_clock::duration p, std::function<void()> f)
      : timer(io), period(p), fn(std::move(f)) {}
  boost::asio::steady_timer timer;
  std::chrono::steady_clock::duration period;
  std::function<void()> fn;
  std::chrono::steady_clock::time_point last{};
  bool armed = false;
};

Throttle::Throttle(boost::asio::io_context& io, std::chrono::steady_clock::duration period,
                   std::function<void()> fn)
    : impl_(std::make_unique<Impl>(io, period, std::move(fn))) {}

Throttle::~Throttle() = default;

void Throttle::request() {
  if (impl_->armed) return;
  auto next = impl_->last + impl_->period;
  if (std::chrono::steady_clock::now() >= next) return now();
  impl_->armed = true;
  impl_->timer.expires_at(next);
  impl_->timer.async_wait([impl = impl_.get()](const boost::system::error_code& ec) {
    if (ec) return;
    impl->armed = false;
    impl->last = std::chrono::steady_clock::now();
    impl->fn();
  });
}

void Throttle::now() {
  impl_->last = std::chrono::steady_clock::now();
  impl_->fn();
}

}  // namespace linewire::agent
