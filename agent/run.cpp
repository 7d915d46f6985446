#include "agent/run.hpp"

#include <grp.h>
#include <pwd.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <cstdlib>

#include "agent/process.hpp"
#include "agent/state_file.hpp"
#include "protocol/names.hpp"

namespace linewire::agent {

using protocol::signal_name;

namespace asio = boost::asio;

struct Run::Timers {
  explicit Timers(asio::io_context& io) : timeout(io), grace(io) {}
  asio::steady_timer timeout;
  asio::steady_timer grace;
};

namespace {

// SPEC §5: nothing inherited but PATH, HOME and LANG. PYTHONUNBUFFERED: Python, the
// most common program on a Pi, buffers stdout on a pipe and would show every line at
// exit; with it, lines reach subscribers as they are printed. `env` may override it.
// With `tty`, TERM=dumb (no colours or cursor movement in the lines), unless `env` sets it.
std::vector<std::string> build_env(const config::Command& command, const RunOrigin& origin,
                                   const std::string& device, const std::string& run) {
  std::map<std::string, std::string> env;
  for (const char* name : {"PATH", "HOME", "LANG"})
    if (const char* v = std::getenv(name)) env[name] = v;
  if (!env.count("PATH")) env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  env["PYTHONUNBUFFERED"] = "1";
  if (command.tty) env["TERM"] = "dumb";
  for (const auto& [k, v] : command.env) env[k] = v;
  for (const auto& [k, v] : origin.env) env[k] = v;
  env["LINEWIRE_DEVICE"] = device;
  env["LINEWIRE_COMMAND"] = command.name;
  env["LINEWIRE_RUN"] = run;
  env["LINEWIRE_TRANSPORT"] = origin.transport;
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// Resolves `user`/`group` to ids; an error message when one does not exist.
std::optional<std::string> resolve_identity(const config::Command& command, ProcessSpec& spec) {
  if (!command.user.empty()) {
    struct passwd pw {};
    struct passwd* found = nullptr;
    std::vector<char> buf(16384);
    getpwnam_r(command.user.c_str(), &pw, buf.data(), buf.size(), &found);
    if (!found) return "no user '" + command.user + "'";
    spec.uid = found->pw_uid;
    spec.gid = found->pw_gid;
  }
  if (!command.group.empty()) {
    struct group gr {};
    struct group* found = nullptr;
    std::vector<char> buf(16384);
    getgrnam_r(command.group.c_str(), &gr, buf.data(), buf.size(), &found);
    if (!found) return "no group '" + command.group + "'";
    spec.gid = found->gr_gid;
  }
  return std::nullopt;
}

}  // namespace

Run::Run(asio::io_context& io, RunHost& host, ProcessLauncher& launcher,
         const config::Command& command, const config::Limits& limits, std::string id,
         RunOrigin origin)
    : io_(io),
      host_(host),
      launcher_(launcher),
      command_(command),
      limits_(limits),
      origin_(std::move(origin)),
      out_split_(limits.max_line),
      err_split_(limits.max_line),
      timers_(std::make_unique<Timers>(io)) {
  record_.run = std::move(id);
  record_.command = command.name;
  record_.transport = origin_.transport;
  record_.key = origin_.key;
}

Run::~Run() = default;

std::optional<Error> Run::start(const std::string& device, std::vector<std::string> args,
                                std::optional<std::string> stdin_text,
                                std::optional<config::Duration> timeout) {
  record_.started = Clock::now();
  record_.args = args;

  ProcessSpec spec;
  spec.executable = command_.exec.front();
  spec.args.assign(command_.exec.begin() + 1, command_.exec.end());
  spec.args.insert(spec.args.end(), args.begin(), args.end());
  spec.env = build_env(command_, origin_, device, record_.run);
  spec.cwd = command_.cwd;
  spec.tty = command_.tty;

  auto fail = [&](std::string message) {
    record_.phase = RunPhase::failed;
    record_.ended = Clock::now();
    record_.error = message;
    return Error{ErrorCode::spawn_failed, std::move(message)};
  };
  if (auto problem = resolve_identity(command_, spec)) return fail(*problem);

  Process::Callbacks callbacks;
  callbacks.on_stdout = [this](std::string_view chunk) { on_output(Stream::out, chunk); };
  callbacks.on_stderr = [this](std::string_view chunk) { on_output(Stream::err, chunk); };
  callbacks.on_exit = [this](ProcessExit e) { on_exit(e.exit_code, e.signal); };
  std::error_code ec;
  process_ = launcher_.launch(io_, spec, std::move(callbacks), ec);
  if (!process_) return fail("cannot start " + spec.executable + ": " + ec.message());
  record_.pid = process_->pid();
  start_ticks_ = process_start_ticks(record_.pid);

  if (command_.stdin_enabled) {
    stdin_open_ = true;
    if (stdin_text && !stdin_text->empty()) process_->write_stdin(std::move(*stdin_text));
  } else {
    process_->close_stdin();
  }

  std::optional<config::Duration> limit = command_.timeout;
  if (timeout && (!limit || *timeout < *limit)) limit = timeout;
  if (limit) {
    timers_->timeout.expires_after(*limit);
    timers_->timeout.async_wait([this](const boost::system::error_code& ec2) {
      if (!ec2) kill("timeout");
    });
  }
  return std::nullopt;
}

void Run::queue(StartRequest request) {
  record_.started = Clock::now();  // for a run that is dropped before it starts
  pending_ = std::move(request);
}

std::optional<Error> Run::start_queued(const std::string& device, const config::Command& now) {
  StartRequest request = std::move(*pending_);
  pending_.reset();
  command_ = now;  // a reload while it waited: it runs as configured now
  auto error =
      start(device, std::move(request.args), std::move(request.stdin_text), request.timeout);
  if (!error && pending_eof_) close_stdin();
  return error;
}

void Run::drop(std::string why) {
  pending_.reset();
  record_.phase = RunPhase::failed;
  record_.ended = Clock::now();
  record_.error = std::move(why);
  finish_sinks();
}

void Run::cancel(int sig) {
  pending_.reset();
  record_.phase = RunPhase::killed;
  record_.reason = "signal";
  record_.signal = signal_name(sig);
  record_.ended = Clock::now();
  finish_sinks();
}

void Run::attach(RunSink& sink, bool primary) { sinks_.push_back({&sink, primary}); }

void Run::detach(RunSink& sink) {
  std::erase_if(sinks_, [&](const Attached& a) { return a.sink == &sink; });
}

bool Run::primary_congested() const {
  return std::any_of(sinks_.begin(), sinks_.end(),
                     [](const Attached& a) { return a.primary && a.sink->congested(); });
}

void Run::finish_sinks() {
  auto sinks = std::move(sinks_);
  sinks_.clear();
  for (const auto& a : sinks) a.sink->on_finished(record_);
}

void Run::send_signal(int sig) {
  if (process_ && process_->signal_group(sig)) last_signal_ = sig;
}

void Run::kill(std::string reason) {
  if (finished() || !record_.reason.empty()) return;
  record_.reason = std::move(reason);
  spdlog::info("run {}: killing ({}), KILL in {} ms", record_.run, record_.reason,
               command_.kill_grace.count());
  send_signal(SIGTERM);
  // A stopped process cannot act on TERM until it is continued.
  send_signal(SIGCONT);
  last_signal_ = SIGTERM;
  timers_->grace.expires_after(command_.kill_grace);
  timers_->grace.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !finished()) send_signal(SIGKILL);
  });
}

bool Run::signal(int sig) {
  if (finished() || !process_) return false;
  return process_->signal_group(sig);
}

std::optional<Error> Run::write_line(std::string_view line) {
  if (!command_.stdin_enabled)
    return Error{ErrorCode::bad_request, "command '" + command_.name + "' takes no stdin"};
  if (pending_) {
    // Queued: the lines wait in the run (bounded by limits.buffer) and are written
    // first thing when it starts; a client sends stdin as soon as it hears "queued".
    if (pending_eof_)
      return Error{ErrorCode::bad_request, "stdin of run '" + record_.run + "' is closed"};
    std::string& text =
        pending_->stdin_text ? *pending_->stdin_text : pending_->stdin_text.emplace();
    if (text.size() + line.size() + 1 > limits_.buffer)
      return Error{ErrorCode::busy,
                   "stdin waiting for queued run '" + record_.run + "' is over limits.buffer"};
    text.append(line);
    text.push_back('\n');
    return std::nullopt;
  }
  if (!stdin_open_)
    return Error{ErrorCode::bad_request, "stdin of run '" + record_.run + "' is closed"};
  std::string data(line);
  data.push_back('\n');
  process_->write_stdin(std::move(data));
  return std::nullopt;
}

std::optional<Error> Run::close_stdin() {
  if (pending_) {
    pending_eof_ = true;  // closed right after it starts, once its waiting lines are written
    return std::nullopt;
  }
  if (stdin_open_) {
    stdin_open_ = false;
    process_->close_stdin();
  }
  return std::nullopt;
}

void Run::pause_output() {
  if (paused_ || !process_) return;
  paused_ = true;
  process_->pause_output();
}

void Run::resume_output() {
  flush_held(false);
  if (!paused_ || !process_) return;
  paused_ = false;
  process_->resume_output();
}

void Run::on_output(Stream stream, std::string_view chunk) {
  auto& splitter = stream == Stream::out ? out_split_ : err_split_;
  splitter.feed(chunk, [&](std::string_view line) { emit(stream, line); });
  host_.on_run_output(*this);
}

void Run::emit(Stream stream, std::string_view line) {
  if (stream == Stream::err) {
    if (command_.stderr_mode == config::StderrMode::discard) return;
    if (command_.stderr_mode == config::StderrMode::log) {
      spdlog::info("run {} stderr: {}", record_.run, line);
      return;
    }
  }
  // Every line printed gets its number, published or not: a consumer sees where lines
  // were dropped as a gap in `seq`, and `lines` = received + dropped.
  std::uint64_t seq = stream == Stream::out ? ++record_.lines : ++record_.err_lines;
  // Past max_output every further line goes, short or not (SPEC §5).
  if (record_.truncated ||
      (command_.max_output && output_bytes_ + line.size() > *command_.max_output)) {
    record_.truncated = true;
    ++record_.dropped;
    return;
  }
  output_bytes_ += line.size();
  if (command_.overflow == config::Overflow::drop && (!held_.empty() || host_.output_congested())) {
    hold(stream, line, seq);
    return;
  }
  deliver(stream, line, seq);
}

// A line to the agent (and so the transports), then to each sink. A sink may detach
// itself while it hears a line: the loop goes over a copy.
void Run::deliver(Stream stream, std::string_view line, std::uint64_t seq) {
  host_.on_run_line(*this, stream, line, seq);
  if (sinks_.empty()) return;
  auto sinks = sinks_;
  for (const auto& a : sinks) a.sink->on_line(stream, line, seq);
}

// overflow: drop (SPEC §5): while the broker is behind, lines wait here, and past
// this run's share of limits.buffer the oldest go.
void Run::hold(Stream stream, std::string_view line, std::uint64_t seq) {
  held_.push_back({stream, seq, std::string(line)});
  held_bytes_ += line.size() + kHeldOverhead;
  const std::size_t budget = limits_.buffer / 8;
  while (held_bytes_ > budget && !held_.empty()) {
    held_bytes_ -= held_.front().line.size() + kHeldOverhead;
    held_.pop_front();
    ++record_.dropped;
  }
}

void Run::flush_held(bool all) {
  while (!held_.empty() && (all || !host_.output_congested())) {
    Held h = std::move(held_.front());
    held_.pop_front();
    held_bytes_ -= h.line.size() + kHeldOverhead;
    deliver(h.stream, h.line, h.seq);
  }
}

void Run::on_exit(int exit_code, int sig) {
  out_split_.finish([&](std::string_view line) { emit(Stream::out, line); });
  err_split_.finish([&](std::string_view line) { emit(Stream::err, line); });
  flush_held(true);  // the final state comes after every line that was kept
  timers_->timeout.cancel();
  timers_->grace.cancel();
  stdin_open_ = false;
  record_.ended = Clock::now();
  if (exit_code >= 0) record_.exit_code = exit_code;
  if (!record_.reason.empty()) {
    // We asked it to end: say why, even if it caught the signal and exited.
    record_.phase = RunPhase::killed;
    record_.signal = signal_name(sig > 0 ? sig : last_signal_);
  } else if (sig > 0) {
    record_.phase = RunPhase::killed;
    record_.reason = "signal";
    record_.signal = signal_name(sig);
  } else {
    record_.phase = RunPhase::exited;
  }
  host_.on_run_finished(*this);  // may destroy this Run
}

}  // namespace linewire::agent
