#!/usr/bin/env bash
# linewire's quick start, end to end on one machine (Debian bookworm):
#   1. installs the dependencies and builds linewired (reusing build/ if present);
#   2. starts a private mosquitto on a free loopback port, with its own config in a
#      temporary folder (a system broker on :1883, if any, is not touched);
#   3. starts linewired with examples/linewire.yaml, its broker url pointed at that
#      port (see "the config copy" below);
#   4. waits for linewire/quickstart/status = online, then runs `count 5` with
#      mosquitto's own clients: mosquitto_sub watches the run's topics, mosquitto_rr
#      sends the start request and prints the agent's reply;
#   5. prints every message of the run and its final state, stops linewired (status
#      becomes offline) and mosquitto, and removes everything it created.
# Every wait is bounded; on failure it prints the logs of mosquitto and linewired.
#
# The config copy: linewired has no option to override the broker url, and relative
# paths in a config (exec: [./count.sh]) resolve against the config file's own
# folder. So the copy, with only broker.url replaced (sed), is written next to the
# original as examples/.quickstart.yaml (gitignored) and removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

config=examples/linewire.yaml
config_copy=examples/.quickstart.yaml
build_dir=${LINEWIRE_BUILD_DIR:-build}
run_id=quickstart-1
client=quickstart

step() { printf '\n==> %s\n' "$*"; }
die() {
  printf '\nquickstart: %s\n' "$*" >&2
  for log in "${work:-}/mosquitto.log" "${work:-}/linewired.log"; do
    [ -s "$log" ] && { printf '\n--- %s\n' "${log##*/}" >&2; cat "$log" >&2; }
  done
  exit 1
}

# --- 1. dependencies and build ---------------------------------------------------
step "installing dependencies (scripts/install-deps.sh)"
scripts/install-deps.sh

step "building linewired in $build_dir/"
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" -G Ninja >/dev/null
fi
cmake --build "$build_dir" --target linewired
linewired=$build_dir/linewired

# The topics come from the example config: device and prefix.
yaml_value() { sed -n "s/^$1:[[:space:]]*\([^[:space:]#]*\).*/\1/p" "$config" | head -n1; }
device=$(yaml_value device)
prefix=$(yaml_value prefix)
if [ -z "$device" ] || [ -z "$prefix" ]; then
  die "could not read device and prefix from $config"
fi
base=$prefix/$device

# --- cleanup, whatever happens -----------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/linewire-quickstart.XXXXXX")
mosquitto_pid="" agent_pid="" sub_pid=""
# stop PID SECONDS: SIGTERM, then SIGKILL if it is still there after SECONDS.
stop() {
  local pid=$1 deadline=$((SECONDS + $2))
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  stop_rc=0
  wait "$pid" 2>/dev/null || stop_rc=$?
}
cleanup() {
  [ -z "$sub_pid" ] || stop "$sub_pid" 2
  [ -z "$agent_pid" ] || stop "$agent_pid" 10
  [ -z "$mosquitto_pid" ] || stop "$mosquitto_pid" 5
  sub_pid="" agent_pid="" mosquitto_pid=""
  rm -rf "$work"
  rm -f "$config_copy"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 2. a private mosquitto --------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
broker=(-h 127.0.0.1 -p "$port")
cat >"$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
CONF
step "starting mosquitto on 127.0.0.1:$port (config: $work/mosquitto.conf)"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
mosquitto_pid=$!
deadline=$((SECONDS + 10))
until timeout 2 mosquitto_pub "${broker[@]}" -t "$prefix/_client/$client/ping" -n 2>/dev/null; do
  kill -0 "$mosquitto_pid" 2>/dev/null || die "mosquitto exited"
  [ "$SECONDS" -lt "$deadline" ] || die "mosquitto did not accept connections within 10 s"
  sleep 0.2
done

# --- 3. linewired ----------------------------------------------------------------
sed "s|^\([[:space:]]*url:[[:space:]]*\)[^[:space:]#]*|\1mqtt://127.0.0.1:$port|" \
  "$config" >"$config_copy"
grep -q "mqtt://127.0.0.1:$port" "$config_copy" || die "could not set broker.url in $config_copy"
step "starting $linewired --config $config_copy  (= $config with url mqtt://127.0.0.1:$port)"
"$linewired" --config "$config_copy" >"$work/linewired.log" 2>&1 &
agent_pid=$!

# --- 4. wait for presence, then run a command -----------------------------------
deadline=$((SECONDS + 15))
status=""
while [ "$status" != online ]; do
  kill -0 "$agent_pid" 2>/dev/null || die "linewired exited"
  [ "$SECONDS" -lt "$deadline" ] || die "no 'online' on $base/status within 15 s"
  status=$(timeout 5 mosquitto_sub "${broker[@]}" -t "$base/status" -C 1 -W 1 2>/dev/null || true)
done
echo "$base/status: $status"

step "\$ mosquitto_sub -p $port -v -t '$base/run/$run_id/#' &"
# It also listens on a ready topic of its own, so we know it has subscribed before
# the request goes out (else it could miss the first lines).
ready_topic=$prefix/_client/$client/ready
mosquitto_sub "${broker[@]}" -v -t "$base/run/$run_id/#" -t "$ready_topic" >"$work/run.txt" 2>&1 &
sub_pid=$!
deadline=$((SECONDS + 10))
until grep -q "^$ready_topic " "$work/run.txt"; do
  [ "$SECONDS" -lt "$deadline" ] || die "mosquitto_sub did not subscribe within 10 s"
  timeout 2 mosquitto_pub "${broker[@]}" -t "$ready_topic" -m ready 2>/dev/null || true
  sleep 0.2
done

request="{\"id\":\"$run_id\",\"args\":[\"5\"]}"
step "\$ mosquitto_rr -p $port -t $base/cmd/count/start -e $prefix/_client/$client/reply -m '$request'"
reply=$(timeout 10 mosquitto_rr "${broker[@]}" -V mqttv5 -W 5 -t "$base/cmd/count/start" \
  -e "$prefix/_client/$client/reply" -m "$request") || die "no reply to the start request within 5 s"
echo "$reply"
case $reply in *'"ok":true'*) ;; *) die "the agent refused the request" ;; esac

# --- 5. the run's messages and final state ---------------------------------------
# The final state is published after every output line, so once it is here, so is
# the whole output.
final_re="^$base/run/$run_id/state .*\"state\": *\"(exited|killed|failed|lost)\""
deadline=$((SECONDS + 30))
until grep -Eq "$final_re" "$work/run.txt"; do
  [ "$SECONDS" -lt "$deadline" ] || die "no final state within 30 s; received: $(cat "$work/run.txt")"
  sleep 0.2
done
stop "$sub_pid" 2
sub_pid=""
step "what mosquitto_sub received (topic, then payload)"
grep -v "^$ready_topic " "$work/run.txt"

step "output lines"
sed -n "s|^$base/run/$run_id/out ||p" "$work/run.txt"
step "final state"
grep -E "$final_re" "$work/run.txt" | tail -n1 | cut -d' ' -f2- | python3 -m json.tool

step "stopping linewired (SIGTERM)"
stop "$agent_pid" 10
agent_pid=""
echo "linewired exited with status $stop_rc"
[ "$stop_rc" -eq 0 ] || die "linewired should exit 0 after SIGTERM"
status=$(timeout 5 mosquitto_sub "${broker[@]}" -t "$base/status" -C 1 -W 2 2>/dev/null || true)
echo "$base/status: $status"
step "linewired's log"
cat "$work/linewired.log"

cleanup
step "done: mosquitto stopped, $work and $config_copy removed"
