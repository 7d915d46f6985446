#include "agent/agent.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <nlohmann/json.hpp>
#include <random>

#include "protocol/names.hpp"

namespace linewire::agent {

using protocol::kMaxArgLength;
using protocol::parse_signal;

namespace asio = boost::asio;
using nlohmann::json;

namespace {

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

Agent::Agent(asio::io_context& io, config::Config config, std::string version,
             ProcessLauncher& launcher)
    : io_(io),
      launcher_(launcher),
      config_(std::move(config)),
      version_(std::move(version)),
      host_(host_name()),
      started_(std::chrono::system_clock::now()),
      state_file_(config_.state_dir),
      services_(std::make_unique<Services>(
          io, [this](const std::string& name) { return start_service(name); })),
      schedule_(
          std::make_unique<Schedule>(io, [this](const std::string& name) { scheduled(name); })),
      info_(std::make_unique<Throttle>(io, std::chrono::seconds(1),
                                       [this] {
                                         if (observer_) observer_->on_info(info_document());
                                       })),
      history_(config_.limits.history) {
  compile_patterns();
}

void Agent::compile_patterns() {
  patterns_.clear();
  for (const auto& c : config_.commands)
    if (c.args) patterns_.emplace(c.name, std::regex(c.args->pattern, std::regex::ECMAScript));
}

Agent::~Agent() = default;

bool Agent::running(const std::string& command) const { return instances(command) > 0; }

int Agent::instances(const std::string& command) const {
  int n = 0;
  for (const auto& [id, run] : runs_)
    if (run->command().name == command && !run->finished()) ++n;
  return n;
}

bool Agent::has_capacity(const config::Command& command) const {
  if (static_cast<int>(runs_.size()) >= config_.limits.max_runs) return false;
  return command.max_instances == 0 || instances(command.name) < command.max_instances;
}

bool Agent::id_taken(const std::string& id) const {
  if (find_live(id)) return true;
  for (const auto& f : finished_)
    if (f == id) return true;
  return false;
}

std::string Agent::new_id() {
  // Sortable by time, and unique per device: time, a counter and a random tail.
  static std::mt19937_64 rng{std::random_device{}()};
  for (;;) {
    auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d%02d%02d-%02d%02d%02d-%llx%04llx", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<unsigned long long>(++id_counter_ & 0xfff),
                  static_cast<unsigned long long>(rng() & 0xffff));
    if (!id_taken(buf)) return buf;
  }
}

std::optional<Error> Agent::check_args(const config::Command& command,
                                       const std::vector<std::string>& args) const {
  if (args.empty()) return std::nullopt;
  if (!command.args)
    return Error{ErrorCode::args_not_allowed, "command '" + command.name + "' takes no arguments"};
  if (static_cast<int>(args.size()) > command.args->max)
    return Error{ErrorCode::bad_args, "at most " + std::to_string(command.args->max) +
                                          " argument(s) for '" + command.name + "'"};
  const auto& pattern = patterns_.at(command.name);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    bool ok = a.size() <= kMaxArgLength && a.find('\0') == std::string::npos;
    if (ok) {
      try {
        ok = std::regex_match(a, pattern);
      } catch (const std::regex_error&) {
        ok = false;  // e.g. error_complexity: refuse rather than guess
      }
    }
    if (!ok)
      return Error{ErrorCode::bad_args, "argument " + std::to_string(i + 1) +
                                            " does not match the pattern '" +
                                            command.args->pattern + "'"};
  }
  return std::nullopt;
}

const config::Command* Agent::find_command(const std::string& name,
                                           std::string_view transport) const {
  const config::Command* command = config_.find_command(name);
  if (!command || (transport == "mqtt" && !command->mqtt) ||
      (transport == "websocket" && !command->websocket))
    return nullptr;
  return command;
}

std::optional<Error> Agent::refuse_if_shutting_down() const {
  if (shutting_down_) return Error{ErrorCode::shutting_down, "the agent is shutting down"};
  return std::nullopt;
}

std::variant<Started, Error> Agent::start(const std::string& name, StartRequest request,
                                          RunOrigin origin) {
  const config::Command* command = find_command(name, origin.transport);
  if (!command)
    return Error{ErrorCode::unknown_command, "no command '" + name + "' on " + config_.device};
  return start(*command, std::move(request), std::move(origin));
}

std::variant<Started, Error> Agent::start(const config::Command& found, StartRequest request,
                                          RunOrigin origin) {
  if (auto e = refuse_if_shutting_down()) return *e;
  const config::Command* command = &found;
  const std::string& name = command->name;
  if (auto e = check_args(*command, request.args)) return *e;
  if (request.stdin_text && !command->stdin_enabled)
    return Error{ErrorCode::bad_request, "command '" + name + "' takes no stdin"};
  std::string id;
  if (request.id) {
    if (id_taken(*request.id))
      return Error{ErrorCode::duplicate_id,
                   "run '" + *request.id + "' already exists on " + config_.device};
    id = *request.id;
  } else {
    id = new_id();
  }

  const bool service = command->mode == config::Mode::service;
  if (service && running(name))
    return Error{ErrorCode::busy, "service '" + name + "' is already running"};
  // A service started by request is wanted again, and a pending restart is cancelled;
  // only once the start goes ahead: a refused one must not cancel the restart.
  auto wanted = [&] {
    if (service) services_->wanted(*command);
  };

  if (!has_capacity(*command)) {
    bool command_full = command->max_instances > 0 && instances(name) >= command->max_instances;
    if (command->on_busy == config::OnBusy::replace && instances(name) > 0) {
      // Kill the oldest run of the command, then start (SPEC §5): the new run waits
      // at the head of the queue until the old one is gone, so the two never overlap.
      Run* oldest = nullptr;
      for (auto& [rid, run] : runs_)
        if (run->command().name == name && run->record().reason.empty() &&
            (!oldest || run->record().started < oldest->record().started))
          oldest = run.get();
      std::string replaces;
      if (oldest) {
        replaces = oldest->id();
        oldest->kill("replaced");
      }
      wanted();
      auto run = make_run(*command, id, std::move(origin));
      run->queue(std::move(request));
      queue_.push_front(std::move(run));
      spdlog::info("run {}: starts once '{}' is gone", id, replaces.empty() ? name : replaces);
      return Started{id, 0, false, replaces};
    }
    if (command->on_busy == config::OnBusy::queue) {
      int waiting = 0;
      for (const auto& q : queue_)
        if (q->command().name == name) ++waiting;
      if (waiting < command->queue_max) {
        wanted();
        auto run = make_run(*command, id, std::move(origin));
        run->queue(std::move(request));
        history_.set_state(id, "queued");
        queue_.push_back(std::move(run));
        spdlog::info("run {}: queued ({} waiting for '{}')", id, waiting + 1, name);
        return Started{id, 0, true, {}};
      }
      return Error{ErrorCode::busy,
                   "queue of '" + name + "' is full (" + std::to_string(command->queue_max) + ")"};
    }
    return Error{ErrorCode::busy, command_full ? "'" + name + "' is at max_instances (" +
                                                     std::to_string(command->max_instances) + ")"
                                               : config_.device + " is at max_runs (" +
                                                     std::to_string(config_.limits.max_runs) + ")"};
  }
  wanted();
  const bool by_request = origin.transport != "service";
  auto run = make_run(*command, id, std::move(origin));
  auto error = run->start(config_.device, std::move(request.args), std::move(request.stdin_text),
                          request.timeout);
  auto result = launched(std::move(run), std::move(error));
  // A service asked for that could not start (its program missing for now, say) is
  // still wanted: retried with back-off, as one the agent started itself (Services
  // retries those).
  if (service && by_request && std::holds_alternative<Error>(result))
    services_->restart_later(*command, config::Duration::zero());
  return result;
}

std::unique_ptr<Run> Agent::make_run(const config::Command& command, const std::string& id,
                                     RunOrigin origin) {
  history_.open(id, command.name, "running", command.history);
  return std::make_unique<Run>(io_, static_cast<RunHost&>(*this), launcher_, command,
                               config_.limits, id, std::move(origin));
}

std::variant<Started, Error> Agent::launched(std::unique_ptr<Run> run, std::optional<Error> error) {
  const std::string id = run->id();
  if (error) {
    spdlog::warn("run {}: {}", id, error->message);
    if (observer_) observer_->on_state(*run, state_document(run->record()), true);
    run->finish_sinks();
    remember_finished(run->record());
    return *error;
  }
  const std::string command = run->command().name;
  Run& r = *run;
  runs_.emplace(id, std::move(run));
  history_.set_state(id, "running");
  ++metrics_.commands[command].runs_started;
  save_state();
  spdlog::info("run {}: started '{}' pid {}", id, command, r.record().pid);
  if (observer_) observer_->on_state(r, state_document(r.record()), false);
  running_changed(command);
  info_changed();
  return Started{id, r.record().pid, false, {}};
}

// `cmd/{c}/running` only when it changes: a queued run taking a freed slot keeps it ON.
void Agent::running_changed(const std::string& command) {
  const bool now = running(command);
  if (now == running_published_.contains(command)) return;
  if (now)
    running_published_.insert(command);
  else
    running_published_.erase(command);
  if (observer_) observer_->on_running(command, now);
}

Run* Agent::find_live(const std::string& id) const {
  if (auto it = runs_.find(id); it != runs_.end()) return it->second.get();
  for (const auto& q : queue_)
    if (q->id() == id) return q.get();
  return nullptr;
}

std::optional<Error> Agent::stop(const config::Command& command) {
  if (auto e = refuse_if_shutting_down()) return e;
  const std::string& name = command.name;
  drop_queued([&](const Run& q) { return q.command().name == name; }, "stopped while queued");
  services_->unwanted(name);  // stays stopped until started (SPEC §2)
  for (auto& [id, run] : runs_)
    if (run->command().name == name) run->kill("stop");
  return std::nullopt;
}

const config::Command* Agent::command_of_known_run(const std::string& id) const {
  if (const config::Command* c = command_of_run(id)) return c;
  const History::Run* kept = history_.find(id);
  return kept ? config_.find_command(kept->command) : nullptr;
}

const config::Command* Agent::command_of_run(const std::string& id) const {
  auto it = runs_.find(id);
  return it == runs_.end() || it->second->finished() ? nullptr : &it->second->command();
}

std::optional<Error> Agent::write_stdin(const std::string& id, std::string_view line) {
  if (auto e = refuse_if_shutting_down()) return e;
  Run* run = find_live(id);  // a queued run keeps the lines until it starts
  if (!run || run->finished())
    return Error{ErrorCode::unknown_run, "no running run '" + id + "' on " + config_.device};
  return run->write_line(line);
}

std::optional<Error> Agent::close_stdin(const std::string& id) {
  if (auto e = refuse_if_shutting_down()) return e;
  Run* run = find_live(id);  // a queued run closes it right after it starts
  if (run && !run->finished()) return run->close_stdin();
  // A run that has ended has no stdin left to close: what `eof` asks is already so.
  // `linewire run DEV cmd </dev/null` sends `eof` as the reply comes, and a quick run
  // may end before it arrives; an `unknown_run` on errors/ for that would be noise
  // people alert on. The client cannot avoid the race, so the agent stays quiet.
  if (run || std::find(finished_.begin(), finished_.end(), id) != finished_.end()) {
    spdlog::debug("run {}: eof after the run ended; nothing to close", id);
    return std::nullopt;
  }
  return Error{ErrorCode::unknown_run, "no running run '" + id + "' on " + config_.device};
}

std::optional<Error> Agent::signal(const std::string& id, std::string_view name) {
  if (auto e = refuse_if_shutting_down()) return e;
  auto sig = parse_signal(name);
  if (!sig)
    return Error{ErrorCode::bad_request,
                 "unknown signal; use TERM INT HUP KILL QUIT USR1 USR2 STOP CONT"};
  auto queued = std::find_if(queue_.begin(), queue_.end(),
                             [&](const std::unique_ptr<Run>& r) { return r->id() == id; });
  if (queued != queue_.end()) {
    // No process yet. A signal whose default action ends a process cancels the start
    // (Ctrl-C on a queued `linewire run` must not leave it to start later); the others
    // have nothing to act on.
    if (*sig == SIGSTOP || *sig == SIGCONT || *sig == SIGUSR1 || *sig == SIGUSR2)
      return Error{ErrorCode::bad_request, "run '" + id +
                                               "' is queued, not started: only TERM, INT, "
                                               "HUP, QUIT or KILL apply (they cancel it)"};
    auto run = std::move(*queued);
    queue_.erase(queued);
    spdlog::info("run {}: cancelled by {} while it was queued", id, std::string(name));
    run->cancel(*sig);
    forget_queued(std::move(run));
    save_state();
    return std::nullopt;
  }
  auto it = runs_.find(id);
  if (it == runs_.end() || !it->second->signal(*sig))
    return Error{ErrorCode::unknown_run, "no running run '" + id + "' on " + config_.device};
  return std::nullopt;
}

void Agent::on_run_line(Run& run, Stream stream, std::string_view line, std::uint64_t seq) {
  ++metrics_.commands[run.command().name].lines;
  history_.add(run.id(), stream, seq, line);
  metrics_.history_bytes = history_.bytes();
  if (observer_) observer_->on_line(run, stream, line, seq);
}

void Agent::on_run_output(Run& run) {
  if ((run.command().overflow == config::Overflow::block && output_congested()) ||
      run.primary_congested())
    run.pause_output();
}

bool Agent::attach(const std::string& id, RunSink& sink, bool primary) {
  Run* run = find_live(id);
  if (!run || run->finished()) return false;
  run->attach(sink, primary);
  return true;
}

void Agent::detach(const std::string& id, RunSink& sink) {
  Run* run = find_live(id);
  if (!run) return;  // it ended: its sinks were told and forgotten
  run->detach(sink);
  resume_run(id);  // a primary that left holds nothing back any more
}

void Agent::resume_run(const std::string& id) {
  auto it = runs_.find(id);
  if (it == runs_.end() || it->second->primary_congested()) return;
  Run& run = *it->second;
  if (run.command().overflow == config::Overflow::block && output_congested()) return;
  run.resume_output();
}

bool Agent::kill(const std::string& id, std::string reason) {
  auto it = runs_.find(id);
  if (it == runs_.end() || it->second->finished()) return false;
  it->second->kill(std::move(reason));
  return true;
}

bool Agent::output_congested() const { return observer_ && observer_->congested(); }

void Agent::resume_output() {
  for (auto& [id, run] : runs_) {
    if (output_congested()) return;
    if (!run->primary_congested()) run->resume_output();
  }
}

void Agent::on_run_finished(Run& run) {
  const auto& r = run.record();
  spdlog::info("run {}: {}{}{} after {} ms, {} lines", r.run, to_string(r.phase),
               r.exit_code ? " code " + std::to_string(*r.exit_code) : "",
               r.reason.empty() ? "" : " (" + r.reason + ", " + r.signal + ")",
               std::chrono::duration_cast<std::chrono::milliseconds>(r.ended - r.started).count(),
               r.lines);
  if (observer_) observer_->on_state(run, state_document(r), true);
  metrics_.commands[r.command].dropped += r.dropped;
  run.finish_sinks();
  std::string id = r.run;
  std::string command = r.command;
  remember_finished(r);
  // The Run is inside its process's callback now: destroy it once that returns.
  auto node = runs_.extract(id);
  asio::post(io_, [owned = std::shared_ptr<Run>(std::move(node.mapped()))] {});
  save_state();
  info_changed();
  if (const config::Command* c = config_.find_command(command);
      c && c->mode == config::Mode::service && !shutting_down_)
    services_->restart_later(*c, std::chrono::duration_cast<config::Duration>(r.ended - r.started));
  // A queued start takes the freed slot first, so `running` does not flicker OFF and ON.
  if (!shutting_down_) start_queued();
  running_changed(command);
  if (shutting_down_ && runs_.empty() && shutdown_done_) {
    auto done = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    done();
  }
}

void Agent::start_queued() {
  for (auto it = queue_.begin(); it != queue_.end();) {
    const config::Command* command = config_.find_command((*it)->command().name);
    if (!command || !has_capacity(*command)) {
      ++it;  // a removed command's runs are dropped by the reload itself
      continue;
    }
    std::unique_ptr<Run> run = std::move(*it);
    queue_.erase(it);
    spdlog::info("run {}: starting from the queue", run->id());
    auto error = run->start_queued(config_.device, *command);
    launched(std::move(run), std::move(error));
    it = queue_.begin();  // a start may have changed capacity for everyone
  }
}

// A queued start that will never run still ends (SPEC §4): whoever was told
// "queued": true (or attached a WebSocket to it) waits for a final state.
void Agent::drop_queued(const std::function<bool(const Run&)>& which, const std::string& why) {
  std::vector<std::unique_ptr<Run>> dropped;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (which(**it)) {
      dropped.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& run : dropped) {
    spdlog::info("run {}: {}", run->id(), why);
    run->drop(why);
    forget_queued(std::move(run));
  }
  if (!dropped.empty()) save_state();  // once, not per run (an SD card's wear)
}

// A queued run that ended without starting: its final state, then remembered as any
// finished run is. The caller saves the state file.
void Agent::forget_queued(std::unique_ptr<Run> run) {
  if (observer_) observer_->on_record_final(run->record(), state_document(run->record()));
  remember_finished(run->record());
}

void Agent::shutdown(std::function<void()> done) {
  shutting_down_ = true;
  schedule_->stop();
  drop_queued([](const Run&) { return true; }, "linewired shut down while it was queued");
  if (runs_.empty()) {
    done();
    return;
  }
  shutdown_done_ = std::move(done);
  for (auto& [id, run] : runs_) {
    run->resume_output();
    run->kill("shutdown");
  }
}

void Agent::kill_now() {
  for (auto& [id, run] : runs_) run->signal(SIGKILL);
}

void Agent::info_changed() {
  if (observer_) info_->request();
}

void Agent::publish_info() { info_->now(); }

}  // namespace linewire::agent
