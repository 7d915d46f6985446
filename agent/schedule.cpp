#include "agent/schedule.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <random>

#include "agent/agent.hpp"

namespace linewire::agent {

config::Duration tick_offset(config::Duration period, std::uint64_t n, double random01) {
  const auto jitter = std::chrono::duration_cast<config::Duration>(
      std::chrono::duration<double, std::milli>(period) * 0.1 * random01);
  return period * static_cast<config::Duration::rep>(n) + jitter;
}

struct Schedule::Entry {
  Entry(boost::asio::io_context& io, config::Duration p)
      : timer(io), period(p), base(std::chrono::steady_clock::now()) {}
  boost::asio::steady_timer timer;
  config::Duration period;
  std::chrono::steady_clock::time_point base;
  std::uint64_t next = 1;  // the tick the timer waits for
  std::uint64_t generation = 0;
};

Schedule::Schedule(boost::asio::io_context& io, Tick tick) : io_(io), tick_(std::move(tick)) {}

Schedule::~Schedule() = default;

void Schedule::apply(const config::Config& config) {
  std::erase_if(entries_, [&](const auto& kv) {
    const config::Command* c = config.find_command(kv.first);
    if (c && c->every) return false;
    spdlog::info("schedule '{}': stopped", kv.first);
    return true;  // the timer's destructor cancels its wait
  });
  for (const auto& c : config.commands) {
    if (!c.every) continue;
    auto& e = entries_[c.name];
    if (e && e->period == *c.every) continue;
    e = std::make_unique<Entry>(io_, *c.every);
    e->generation = ++generations_;
    spdlog::info("schedule '{}': every {} ms", c.name, c.every->count());
    arm(c.name, *e);
  }
}

void Schedule::stop() { entries_.clear(); }

void Schedule::arm(const std::string& name, Entry& e) {
  static std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> random01(0.0, 1.0);
  const auto due = e.base + tick_offset(e.period, e.next, random01(rng));
  e.timer.expires_at(due);
  // By name and generation, not by pointer: a wait that has already completed cannot be
  // cancelled, so a reload (or the shutdown) may destroy the entry while its handler is
  // queued; the handler then finds it gone or replaced and does nothing.
  e.timer.async_wait([this, name, generation = e.generation](const boost::system::error_code& ec) {
    if (ec) return;
    auto it = entries_.find(name);
    if (it == entries_.end() || it->second->generation != generation) return;
    Entry* entry = it->second.get();
    ++entry->next;
    // A tick that came very late (a suspended machine) does not fire the missed ones.
    const auto now = std::chrono::steady_clock::now();
    while (entry->base + entry->period * static_cast<config::Duration::rep>(entry->next) < now)
      ++entry->next;
    arm(name, *entry);
    tick_(name);
  });
}

void Agent::start_schedule() {
  schedule_started_ = true;
  schedule_->apply(config_);
}

// The agent's side: a tick is a start of transport `schedule`, skipped (and counted) when
// the command is at max_instances, whatever on_busy says (SPEC §5); also when the device
// is at max_runs, so that a tick never queues or replaces either.
void Agent::scheduled(const std::string& name) {
  const config::Command* c = config_.find_command(name);
  if (shutting_down_ || !c || !c->every) return;
  auto& m = metrics_.commands[name];
  ++m.schedule_ticks;
  if (!has_capacity(*c)) {
    ++m.schedule_skipped;
    const bool command_full = c->max_instances > 0 && instances(name) >= c->max_instances;
    spdlog::info("schedule '{}': tick skipped, {}", name,
                 command_full ? "at max_instances (" + std::to_string(c->max_instances) + ")"
                              : config_.device + " is at max_runs (" +
                                    std::to_string(config_.limits.max_runs) + ")");
    return;
  }
  RunOrigin origin;
  origin.transport = "schedule";
  // A failed start (spawn_failed) is published as a failed run of its own.
  auto result = start(*c, StartRequest{}, std::move(origin));
  if (auto* error = std::get_if<Error>(&result))
    spdlog::warn("schedule '{}': {}", name, error->message);
}

}  // namespace linewire::agent
