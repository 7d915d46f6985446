// linewire: the client for people and scripts (SPEC §10). Parses the command line,
// then hands over to one subcommand; every failure ends with a message on stderr and
// exit 255, as ssh does, so that 0-254 are the remote program's own.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "cli/argv.hpp"
#include "cli/broker/signer.hpp"
#include "cli/commands/commands.hpp"
#include "cli/interrupts.hpp"
#include "cli/output/json_report.hpp"
#include "cli/output/output.hpp"
#include "cli/run/exit_status.hpp"
#include "cli/run/run_loop.hpp"
#include "protocol/broker_login.hpp"
#include "protocol/names.hpp"

using namespace linewire;
using namespace linewire::cli;

namespace {

struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// `run --json` that ends before any run was asked for (the broker unreachable, Ctrl-C
// while connecting): stdout still ends with the summary and its exit status, so a script
// reading it never finds it empty. One run: its device's error first.
void json_not_run(const RunOptions& o, bool fan_out, const std::string& why, int status) {
  Fanout::Counts counts;
  if (!fan_out) {
    out().line(json_error(o.device, "not_run", why));
    counts.targeted = counts.not_run = 1;
  }
  out().line(json_summary(counts, status));
}

void check_name(const std::string& what, const std::string& name) {
  if (!protocol::valid_name(name))
    throw Usage("bad " + what + " name '" + name +
                "': names match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
}

void check_prefix(const std::string& prefix) {
  if (prefix.empty() || prefix.front() == '/' || prefix.back() == '/' ||
      prefix.find_first_of(std::string("+#\0", 3)) != std::string::npos ||
      prefix.find("//") != std::string::npos)
    throw Usage("bad --prefix '" + prefix + "'");
}

struct Globals {
  std::string broker;
  std::string prefix = "linewire";
  std::string username;
  std::string password_file;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string protocol = "5";
  std::string key;  // signing key (SPEC §11); else $LINEWIRE_KEY
  std::string key_name;
};

Context make_context(const Globals& g) {
  Context ctx;
  const std::string url = choose_broker(g.broker, std::getenv("LINEWIRE_BROKER"));
  auto normalized = normalize_url(url);
  if (!normalized)
    throw Usage("bad broker address '" + url + "' (mqtt://, mqtts://, ws://, wss:// HOST[:PORT])");
  ctx.broker.url = *normalized;
  ctx.broker.username = g.username;
  if (!g.password_file.empty()) {
    try {
      ctx.broker.password = protocol::read_password_file(g.password_file);
    } catch (const std::exception& e) {
      throw Usage(e.what());
    }
  } else if (const char* p = std::getenv("LINEWIRE_PASSWORD"); p && *p) {
    ctx.broker.password = p;
  }
  ctx.broker.ca_file = g.ca_file;
  ctx.broker.cert_file = g.cert_file;
  ctx.broker.key_file = g.key_file;
  ctx.broker.v5 = g.protocol == "5";
  check_prefix(g.prefix);
  ctx.prefix = g.prefix;
  std::string key = g.key;
  if (key.empty())
    if (const char* k = std::getenv("LINEWIRE_KEY"); k && *k) key = k;
  if (!key.empty()) {
    try {
      ctx.signer = std::make_shared<const Signer>(Signer::load(key, g.key_name));
    } catch (const std::runtime_error& e) {
      throw Usage(e.what());
    }
  } else if (!g.key_name.empty()) {
    throw Usage("--key-name needs --key (or LINEWIRE_KEY)");
  }
  return ctx;
}

// Everything the command line said.
struct Parsed {
  Globals globals;
  std::string subcommand;
  bool json = false;
  RunOptions run;
  std::optional<double> timeout;
  std::vector<std::string> words;
  std::string device;
  std::string name;  // watch: a command or a run; kill: the run
  std::string signal = "TERM";
  double wait_s = 10;
  WatchFrom from;  // watch, logs
  bool batch_given = false;
};

int dispatch(Parsed& p) {
  try {
    if (p.subcommand == "keygen") {
      std::string line;
      try {
        line = keygen(p.name);
      } catch (const std::runtime_error& e) {
        throw Usage(e.what());
      }
      std::fputs(line.c_str(), stdout);
      std::fflush(stdout);  // leave() ends with _Exit, which flushes nothing
      note("wrote " + p.name + " (private, mode 0600) and " + p.name +
           ".pub; trust it on a device with auth.keys: " + default_key_name(p.name) +
           ": {file: " + p.name + ".pub} or the line above");
      return 0;
    }
    Context ctx = make_context(p.globals);
    install_interrupt_handlers();
    if (p.subcommand == "ls") return list_devices(ctx, p.json);
    if (p.subcommand == "runs") {
      check_name("device", p.device);
      return list_runs(ctx, p.device, p.json);
    }
    if (p.subcommand == "watch") {
      check_name("device", p.device);
      check_name("command or run", p.name);
      return watch(ctx, p.device, p.name, p.from);
    }
    if (p.subcommand == "logs") {
      check_name("device", p.device);
      check_name("run", p.name);
      return logs(ctx, p.device, p.name, p.from);
    }
    if (p.subcommand == "kill") {
      check_name("device", p.device);
      check_name("run", p.name);
      auto sig = protocol::parse_signal(p.signal);
      if (!sig)
        throw Usage("unknown signal '" + p.signal +
                    "' (TERM INT HUP KILL QUIT USR1 USR2 STOP CONT)");
      return kill_run(ctx, p.device, p.name, protocol::signal_name(*sig), p.wait_s);
    }
    RunOptions& ro = p.run;
    ro.timeout_s = p.timeout;
    const bool fan_out = ro.all || !ro.group.empty();
    if (p.words.size() < (fan_out ? 1U : 2U))
      throw Usage(fan_out ? "run --group/--all needs COMMAND [ARGS...]"
                          : "run needs DEVICE COMMAND [ARGS...]");
    auto word = p.words.begin();
    if (!fan_out) ro.device = *word++;
    ro.command = *word++;
    ro.args.assign(word, p.words.end());
    if (!fan_out) check_name("device", ro.device);
    if (!ro.group.empty()) check_name("group", ro.group);
    check_name("command", ro.command);
    if (!ro.id.empty()) check_name("run", ro.id);
    if (!fan_out && (ro.online || ro.fail_fast || p.batch_given))
      throw Usage("--online, --batch and --fail-fast go with --group or --all");
    if (p.batch_given && ro.batch == 0) throw Usage("--batch must be at least 1");
    try {
      return fan_out ? run_many(ctx, ro) : run_one(ctx, ro);
    } catch (const Failure& e) {
      if (ro.json && !RunLoop::asked()) json_not_run(ro, fan_out, e.what(), kExitFailure);
      throw;
    } catch (const Interrupted& i) {
      if (ro.json && !RunLoop::asked())
        json_not_run(ro, fan_out, "interrupted before it was started", 128 + i.signal);
      throw;
    }
  } catch (const Usage& e) {
    note(e.what());
  } catch (const Failure& e) {
    note(e.what());
  } catch (const Interrupted& i) {
    return 128 + i.signal;
  } catch (const std::exception& e) {
    note(std::string("unexpected error: ") + e.what());
  }
  return kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "linewire: run commands on linewired devices over MQTT, like ssh.\n"
      "Exit status: the remote exit code; 128+N when killed by signal N; 124 on timeout;\n"
      "255 when the device is offline, unreachable or refuses."};
  app.set_version_flag("--version", "linewire " LINEWIRE_VERSION);
  app.require_subcommand(1);
  Parsed p;
  Globals& g = p.globals;
  app.add_option("--broker", g.broker,
                 "broker URL (default: $LINEWIRE_BROKER, else mqtt://localhost:1883)");
  app.add_option("--prefix", g.prefix, "topic prefix")->capture_default_str();
  app.add_option("--username", g.username, "broker user name");
  app.add_option("--password-file", g.password_file,
                 "file whose first line is the broker password (else $LINEWIRE_PASSWORD)");
  app.add_option("--ca-file", g.ca_file, "CA certificate(s) to verify the broker (TLS)");
  app.add_option("--cert-file", g.cert_file, "client certificate (TLS)");
  app.add_option("--key-file", g.key_file, "client private key (TLS)");
  app.add_option("--key", g.key,
                 "sign every request with this Ed25519 private key (PEM); else $LINEWIRE_KEY");
  app.add_option("--key-name", g.key_name,
                 "the key's name in the devices' auth.keys (default: --key's file name "
                 "without its extension)");
  app.add_option("--protocol", g.protocol, "MQTT version")
      ->check(CLI::IsMember({"5", "3.1.1"}))
      ->capture_default_str();

  auto* ls = app.add_subcommand("ls", "list devices: name, status, version, runs, commands");
  ls->add_flag("--json", p.json, "a JSON array instead of a table");

  auto* run =
      app.add_subcommand("run", "run COMMAND on DEVICE (or on a group, or on every online device)");
  run->add_option("--timeout", p.timeout, "seconds; then TERM and exit 124")
      ->check(CLI::PositiveNumber);
  run->add_option("--id", p.run.id, "the run's id (default: a new one)");
  run->add_flag("--no-stdin", p.run.no_stdin, "do not forward stdin (the run gets an empty one)");
  auto* group = run->add_option("--group", p.run.group, "run on every device of GROUP");
  run->add_flag("--all", p.run.all, "run on every online device")->excludes(group);
  run->add_flag("--online", p.run.online,
                "with --group: leave offline members out (the summary names them as skipped)");
  auto* batch =
      run->add_option("--batch", p.run.batch,
                      "with --group/--all: at most N devices running at once; the next starts as "
                      "one finishes")
          ->check(CLI::NonNegativeNumber);
  run->add_flag("--fail-fast", p.run.fail_fast,
                "with --group/--all: start no further device after the first failure");
  run->add_flag("--json", p.run.json,
                "NDJSON on stdout: each line, each final state, each error, a summary last");
  run->add_option("--wait", p.run.wait_s,
                  "seconds to wait for replies, and for a device that went offline mid-run "
                  "to come back")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  run->add_option("words", p.words,
                  "DEVICE COMMAND [ARGS...] (COMMAND [ARGS...] with --group/--all)")
      ->required();

  auto* watch_cmd = app.add_subcommand(
      "watch", "follow a command's newest line, or a run's output until it ends");
  watch_cmd->add_option("DEVICE", p.device)->required();
  watch_cmd->add_option("NAME", p.name, "a command or a run id")->required();
  auto* from = watch_cmd->add_option("--from", p.from.line,
                                     "a run: from its line N (default: its first kept line)");
  from->check(CLI::NonNegativeNumber);
  watch_cmd->add_flag("--new", p.from.only_new, "a run: only the lines printed from now on")
      ->excludes(from);

  auto* logs_cmd = app.add_subcommand(
      "logs", "print the output the device still holds of a run, running or finished");
  logs_cmd->add_option("DEVICE", p.device)->required();
  logs_cmd->add_option("RUN", p.name)->required();
  logs_cmd->add_option("--from", p.from.line, "from its line N (default: its first kept line)")
      ->check(CLI::NonNegativeNumber);

  auto* runs = app.add_subcommand("runs", "recent runs of DEVICE, newest first");
  runs->add_option("DEVICE", p.device)->required();
  runs->add_flag("--json", p.json, "a JSON array of the run states");

  auto* kill = app.add_subcommand("kill", "send a signal (default TERM) to a run");
  kill->add_option("DEVICE", p.device)->required();
  kill->add_option("RUN", p.name)->required();
  kill->add_option("SIGNAL", p.signal, "TERM INT HUP KILL QUIT USR1 USR2 STOP CONT")
      ->capture_default_str();
  kill->add_option("--wait", p.wait_s, "seconds to wait for the reply")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  auto* keygen_cmd = app.add_subcommand(
      "keygen", "write a signing key: FILE (private, 0600) and FILE.pub (for auth.keys)");
  keygen_cmd->add_option("FILE", p.name)->required();
  // Global options may also come after the subcommand.
  for (auto* sub : {ls, run, watch_cmd, logs_cmd, runs, kill, keygen_cmd}) sub->fallthrough();

  // `run pi-7 df -h`: the remote command's flags are its own.
  std::vector<std::string> args(argv + 1, argv + argc);
  args = protect_remote_args(std::move(args), [&](std::string_view word) -> std::optional<bool> {
    std::string w(word);
    for (CLI::App* scope : {run, &app})
      if (const CLI::Option* o = scope->get_option_no_throw(w)) return o->get_expected_min() > 0;
    return std::nullopt;
  });
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitFailure;
  }
  for (auto* sub : app.get_subcommands()) p.subcommand = sub->get_name();
  p.batch_given = batch->count() > 0;
  leave(dispatch(p));
}
