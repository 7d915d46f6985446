#include "agent/services.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/agent.hpp"

namespace linewire::agent {

namespace {

// A service that ran this long is healthy again: its back-off starts over.
constexpr auto kHealthy = std::chrono::seconds(60);
constexpr config::Duration kMaxRestartDelay = std::chrono::minutes(5);

}  // namespace

struct Services::Entry {
  Entry(boost::asio::io_context& io, config::Duration delay)
      : timer(io), restart_delay(delay), backoff(delay) {}
  boost::asio::steady_timer timer;
  bool wanted = true;
  config::Duration restart_delay;
  config::Duration backoff;
};

Services::Services(boost::asio::io_context& io, Start start) : io_(io), start_(std::move(start)) {}

Services::~Services() = default;

Services::Entry& Services::entry(const config::Command& command) {
  auto& e = entries_[command.name];
  if (!e) e = std::make_unique<Entry>(io_, command.restart_delay);
  e->restart_delay = command.restart_delay;
  return *e;
}

void Services::wanted(const config::Command& command) {
  Entry& e = entry(command);
  e.wanted = true;
  e.timer.cancel();
}

void Services::unwanted(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  it->second->wanted = false;
  it->second->timer.cancel();
}

bool Services::is_wanted(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() || it->second->wanted;
}

void Services::keep_only(const config::Config& config) {
  std::erase_if(entries_, [&](const auto& kv) {
    const config::Command* c = config.find_command(kv.first);
    return !c || c->mode != config::Mode::service;
  });
}

void Services::start(const config::Command& command) {
  spdlog::info("service '{}': starting", command.name);
  entry(command);
  start_now(command.name);
}

void Services::start_now(const std::string& name) {
  auto error = start_(name);
  if (!error) return;
  spdlog::warn("service '{}': {}", name, error->message);
  if (auto it = entries_.find(name); it != entries_.end())
    schedule(name, *it->second, config::Duration::zero());
}

void Services::restart_later(const config::Command& command, config::Duration ran_for) {
  schedule(command.name, entry(command), ran_for);
}

void Services::schedule(const std::string& name, Entry& e, config::Duration ran_for) {
  if (!e.wanted) return;
  if (ran_for >= kHealthy) e.backoff = e.restart_delay;
  auto delay = e.backoff;
  e.backoff = std::min(std::max(e.backoff * 2, config::Duration(1)), kMaxRestartDelay);
  spdlog::info("service '{}': restarting in {} ms", name, delay.count());
  e.timer.expires_after(delay);
  e.timer.async_wait([this, name](const boost::system::error_code& ec) {
    if (!ec) start_now(name);
  });
}

// The agent's side: services start with it, and each (re)start is a start request
// of transport `service`.
void Agent::start_services() {
  for (const auto& c : config_.commands)
    if (c.mode == config::Mode::service && services_->is_wanted(c.name) && !running(c.name))
      services_->start(c);
}

std::optional<Error> Agent::start_service(const std::string& name) {
  const config::Command* c = config_.find_command(name);
  if (shutting_down_ || !c || c->mode != config::Mode::service || running(name))
    return std::nullopt;
  RunOrigin origin;
  origin.transport = "service";
  auto result = start(*c, StartRequest{}, std::move(origin));
  if (auto* e = std::get_if<Error>(&result)) return *e;
  return std::nullopt;
}

}  // namespace linewire::agent
