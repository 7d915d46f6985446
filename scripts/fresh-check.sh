#!/usr/bin/env bash
# Runs the README's two set-up commands the way a new user meets them: on a clean
# Debian bookworm root made with debootstrap, holding nothing but a `git clone` of
# this repository's HEAD. It catches what CI cannot: CI runs on a machine that kept
# the packages of earlier runs, so a package missing from scripts/install-deps.sh
# stays hidden there until someone starts from scratch.
#
#   scripts/fresh-check.sh [OPTIONS]
#
#   --quickstart-only   run only the quick start (scripts/quickstart.sh)
#   --tests-only        run only the test command (scripts/test.sh)
#   --quick             the test command without its slow phases: LINEWIRE_ASAN=0
#                       LINEWIRE_CROSS=0 LINEWIRE_FUZZ_SECONDS=0 (packaging stays on)
#   --cross-deps ARCH   afterwards also run cross/install-deps.sh ARCH (arm64, armhf):
#                       the cross phase's packages, without its long build
#   --cross ARCH        afterwards also run `cross/build.sh ARCH --package`, as the
#                       README's Install section has a user do (install step included)
#   --keep              keep the root afterwards (its path is printed)
#   --root DIR          make the root in DIR, or reuse the root an earlier --keep left
#                       there (then it is not fresh: packages installed by the earlier
#                       run stay; the clone is moved to the new commit). Implies --keep.
#   --ref REF           the commit to clone (default HEAD; uncommitted changes are
#                       never part of the check, as they are not part of a clone)
#   --fresh             debootstrap anew instead of unpacking the cached root
#   -h, --help
#
# Environment:
#   LINEWIRE_ASAN, LINEWIRE_CROSS, LINEWIRE_FUZZ_SECONDS, LINEWIRE_PACKAGE,
#   LINEWIRE_WERROR, LINEWIRE_TEST_SLOWDOWN, CTEST_ARGS
#                       passed on to scripts/test.sh in the root (see its header)
#   LINEWIRE_FRESH_DIR  where roots and logs go (default /var/tmp; a build needs a few
#                       GB, more than a tmpfs /tmp may hold)
#   LINEWIRE_FRESH_CACHE  folder of the cached debootstrap result (default
#                       /var/cache/linewire-fresh-check); used while younger than
#                       LINEWIRE_FRESH_CACHE_DAYS (default 7) days
#   LINEWIRE_FRESH_MIRROR  the Debian mirror (default: the one this machine's apt uses)
#   LINEWIRE_FRESH_VARIANT debootstrap variant (default minbase: essential packages and
#                       apt, like Debian's container images, which CI's machines are)
#
# --quickstart-only --tests-only with --cross ARCH runs the cross build alone. Each
# command runs even when an earlier one failed (a later one may show more gaps).
#
# How the chroot differs from a real machine, and what is done about it: it shares
# this machine's kernel, network and PID namespaces, so packages are kept from
# starting daemons (policy-rc.d, see below), processes left in the root are ended by
# their root folder, and /proc, /sys, /dev, /dev/pts and a private /dev/shm are
# mounted and unmounted again by an EXIT trap, on failure and on INT/TERM too. There
# is no systemd as PID 1; nothing in the quick start or the tests needs one (the unit
# is checked with systemd-analyze verify, sysusers and tmpfiles, which do not).
#
# Needs root (debootstrap, chroot, mount). Installs debootstrap if it is missing.
# Exits non-zero if a command failed in the root; prints a summary with times, and
# the integration tests that were skipped (a skip can hide a missing package: several
# tests skip themselves when a program such as openssl or chromium is absent).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib-apt.sh
. "$repo/scripts/lib-apt.sh"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

run_quickstart=1 run_tests=1 keep=0 root="" ref=HEAD fresh=0 cross_deps_arch="" cross_arch=""
while [ $# -gt 0 ]; do
  case $1 in
    --quickstart-only) run_tests=0 ;;
    --tests-only) run_quickstart=0 ;;
    --quick) export LINEWIRE_ASAN=0 LINEWIRE_CROSS=0 LINEWIRE_FUZZ_SECONDS=0 ;;
    --cross-deps) cross_deps_arch=${2:?--cross-deps needs an architecture} && shift ;;
    --cross) cross_arch=${2:?--cross needs an architecture} && shift ;;
    --keep) keep=1 ;;
    --root) root=${2:?--root needs a folder} && keep=1 && shift ;;
    --ref) ref=${2:?--ref needs a commit} && shift ;;
    --fresh) fresh=1 ;;
    -h | --help) usage && exit 0 ;;
    *) echo "fresh-check: unknown option '$1' (see --help)" >&2 && exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "fresh-check: needs root (debootstrap, chroot, mount)" >&2; exit 2; }

suite=bookworm
arch=$(dpkg --print-architecture)
variant=${LINEWIRE_FRESH_VARIANT:-minbase}
commit=$(git -C "$repo" rev-parse --verify "$ref^{commit}")
base_dir=${LINEWIRE_FRESH_DIR:-/var/tmp}
cache_dir=${LINEWIRE_FRESH_CACHE:-/var/cache/linewire-fresh-check}
stamp=$(date +%Y%m%d-%H%M%S)
logs=$(mktemp -d "$base_dir/linewire-fresh-check.$stamp.XXXX")
[ -n "$root" ] || root=$logs/root
mkdir -p "$root"
root=$(cd "$root" && pwd)
clone=/root/linewire # where the clone is, inside the root: a new user's home
marker=$root/.linewire-fresh-check

# --- the mirror --------------------------------------------------------------------
# The one this machine's apt uses (deb822 sources first, then the one-line format),
# since a machine may reach no other (this project's machines reach only it).
host_sources=/etc/apt/sources.list.d/debian.sources
mirror_of_host() {
  if [ -f "$host_sources" ]; then
    awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i !~ /security/) {print $i; exit}}' "$host_sources"
  elif [ -f /etc/apt/sources.list ]; then
    awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list
  fi
}
mirror=${LINEWIRE_FRESH_MIRROR:-$(mirror_of_host)}
mirror=${mirror:-http://deb.debian.org/debian}

# --- summary and cleanup, whatever happens -----------------------------------------
summary=()
failed=0
record() { # record NAME START RC
  local took=$((SECONDS - $2))
  if [ "$3" -eq 0 ]; then
    summary+=("$(printf '%-12s ok      %5ds' "$1" "$took")")
  else
    summary+=("$(printf '%-12s FAILED  %5ds  (exit %d)' "$1" "$took" "$3")")
    failed=1
  fi
}

# The chroot shares this machine's PID namespace: whatever the commands left running
# in it (a broker, a daemon a package started) would keep the mounts busy. Only
# processes whose root is this root are ended: they can only have been started here.
kill_root_processes() {
  local sig=$1 pid found=1
  for pid in /proc/[0-9]*; do
    [ "$(readlink "$pid/root" 2>/dev/null)" = "$root" ] || continue
    kill "-$sig" "${pid#/proc/}" 2>/dev/null && found=0
  done
  return $found
}

# Every mount point under the root, deepest first (/proc/self/mountinfo's 5th field;
# octal escapes such as \040 are left as they are: the roots made here have none).
mounts_under_root() {
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 {print $5}' /proc/self/mountinfo | sort -r
}

cleanup() {
  local rc=$? m _
  trap - EXIT INT TERM
  if kill_root_processes TERM; then
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      sleep 0.5
      kill_root_processes 0 || break
    done
    kill_root_processes KILL || true
  fi
  for m in $(mounts_under_root); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
  if [ -n "$(mounts_under_root)" ]; then
    echo "fresh-check: still mounted under $root; not removing it:" >&2
    mounts_under_root >&2
  elif [ "$keep" = 1 ]; then
    echo "fresh-check: root kept in $root (reuse it with --root $root)"
  else
    # --one-file-system: never follows into anything still mounted in the root.
    rm -rf --one-file-system "$root"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- debootstrap --------------------------------------------------------------------
if missing_packages debootstrap gpgv debian-archive-keyring; then
  echo "fresh-check: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
      install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# The cache holds the root as debootstrap left it (a tarball of the whole tree, not
# debootstrap's --make-tarball of .debs): unpacking takes seconds where installing the
# base system again takes minutes. It is keyed by suite, variant, architecture and
# mirror, and made anew once it is a week old so the base does not drift far behind the
# mirror (what scripts/install-deps.sh installs always comes from the mirror, fresh).
mirror_key=$(printf '%s' "$mirror" | md5sum | cut -c1-8)
cached=$cache_dir/$suite-$variant-$arch-$mirror_key.tar.gz
t=$SECONDS
if [ -f "$marker" ]; then
  echo "==> reusing the root in $root (NOT fresh: packages of earlier runs are in it)"
  summary+=("$(printf '%-12s reused' root)")
else
  if [ -n "$(ls -A "$root")" ]; then
    echo "fresh-check: $root is neither empty nor a root made by fresh-check" >&2
    exit 2
  fi
  if [ "$fresh" = 0 ] && [ -f "$cached" ] &&
    [ -n "$(find "$cached" -mtime "-${LINEWIRE_FRESH_CACHE_DAYS:-7}")" ]; then
    echo "==> unpacking the cached $suite root ($cached) into $root"
    tar -C "$root" --numeric-owner -xzpf "$cached"
    record root "$t" 0
  else
    echo "==> debootstrap --variant=$variant $suite $root $mirror (log: $logs/debootstrap.log)"
    rc=0
    debootstrap --variant="$variant" --arch="$arch" "$suite" "$root" "$mirror" \
      >"$logs/debootstrap.log" 2>&1 || rc=$?
    record debootstrap "$t" "$rc"
    if [ "$rc" -ne 0 ]; then
      tail -n 30 "$logs/debootstrap.log" >&2
      exit 1
    fi
    mkdir -p "$cache_dir"
    tar -C "$root" --numeric-owner --one-file-system -czf "$cached.tmp" . && mv "$cached.tmp" "$cached"
  fi

  # apt as this machine has it: the same sources (debootstrap wrote only the base
  # suite; a Debian machine also has its -updates and -security suites)...
  if [ -f "$host_sources" ] && [ -z "${LINEWIRE_FRESH_MIRROR:-}" ]; then
    cp "$host_sources" "$root/etc/apt/sources.list.d/debian.sources"
    rm -f "$root/etc/apt/sources.list"
  fi
  # ...and the same tolerance for a dated mirror: one that serves a snapshot has
  # Release files past their Valid-Until, which this machine's apt is told to accept.
  # Without this, apt-get update fails in the root for a reason no user's machine has.
  apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy) ' \
    >"$root/etc/apt/apt.conf.d/99fresh-check-host" || rm -f "$root/etc/apt/apt.conf.d/99fresh-check-host"
  # Packages' maintainer scripts must not start daemons: the chroot shares this
  # machine's network and PID namespaces, so mosquitto's and rabbitmq-server's would
  # take the machine's :1883, :5672 and :4369 and outlive the check. Debian's container
  # images, which CI runs on, ship this same policy-rc.d; on a machine with systemd
  # the daemons do start, and the tests are written not to mind (own brokers on free
  # ports), which this check therefore does not show.
  printf '#!/bin/sh\n# fresh-check: no daemons in this chroot\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  echo "made by scripts/fresh-check.sh on $stamp from $mirror" >"$marker"
fi
# Name resolution as this machine has it now (a cached root may be older).
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
grep -qw localhost "$root/etc/hosts" 2>/dev/null ||
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >>"$root/etc/hosts"

# --- the clone -------------------------------------------------------------------------
t=$SECONDS
if [ -d "$root$clone/.git" ]; then
  # A reused root: the same clone moved to the commit asked for; its build folders
  # (ignored by git) stay, so the next build is incremental.
  git -C "$root$clone" fetch -q "$repo" "$commit"
  git -C "$root$clone" checkout -q --force --detach "$commit"
  git -C "$root$clone" clean -q -fd
else
  git clone -q --no-hardlinks "$repo" "$root$clone"
  git -C "$root$clone" checkout -q --detach "$commit"
fi
echo "==> $clone in the root: $(git -C "$root$clone" log -1 --format='%h %s' | cut -c1-100)"
record clone "$t" 0

# --- the mounts a running system has -----------------------------------------------------
# /proc is this machine's (same PID namespace): the tests read /proc/PID of the
# processes they start, which works the same. /dev/shm is a tmpfs of the root's own.
mount -t proc proc "$root/proc"
mount --bind /sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"

# in_root NAME COMMAND: runs COMMAND (a shell line) in the clone as root, with the
# environment of a fresh login: nothing of this shell's but the variables test.sh
# documents. stdin is /dev/null, as in CI: nothing may wait for an answer.
in_root() {
  local name=$1 cmd=$2 var rc=0 t=$SECONDS
  local env=(HOME=/root USER=root LOGNAME=root SHELL=/bin/bash LANG=C.UTF-8
    TERM="${TERM:-dumb}" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    # pytest prints why each test was skipped, so the summary can list skips
    PYTEST_ADDOPTS=-rs)
  for var in LINEWIRE_ASAN LINEWIRE_CROSS LINEWIRE_FUZZ_SECONDS LINEWIRE_PACKAGE \
    LINEWIRE_WERROR LINEWIRE_TEST_SLOWDOWN CTEST_ARGS; do
    [ -z "${!var+set}" ] || env+=("$var=${!var}")
  done
  echo
  echo "==> [$name] $cmd   (log: $logs/$name.log)"
  # In the background, with `wait`: bash runs a trap only after the foreground command
  # ends, while `wait` returns at once on a signal, so a TERM (or a timeout) cleans up
  # now rather than after the whole test run.
  (chroot "$root" /usr/bin/env -i "${env[@]}" /bin/bash -c "cd $clone && $cmd" \
    </dev/null 2>&1 | tee "$logs/$name.log") &
  wait $! || rc=$?
  record "$name" "$t" "$rc"
  return "$rc"
}

if [ "$run_quickstart" = 1 ]; then
  in_root quickstart scripts/quickstart.sh || true
fi
if [ "$run_tests" = 1 ]; then
  if in_root test scripts/test.sh; then :; fi
  # test.sh's own phase times, kept for the summary
  test_phases=$(sed -n '/^==> summary$/,$p' "$logs/test.log" | sed '1d;/^all passed$/d;/^FAILED$/d')
fi
if [ -n "$cross_deps_arch" ]; then
  in_root cross-deps "cross/install-deps.sh $cross_deps_arch" || true
fi
if [ -n "$cross_arch" ]; then
  in_root "cross-$cross_arch" "cross/build.sh $cross_arch --package" || true
fi

# --- summary --------------------------------------------------------------------------------
echo
echo "==> fresh-check summary ($suite $variant $arch, $mirror, commit ${commit:0:12})"
printf '  %s\n' "${summary[@]}"
if [ -n "${test_phases:-}" ]; then
  echo "  scripts/test.sh's phases:"
  printf '%s\n' "$test_phases" | sed 's/^/  /'
fi
# ctest keeps every test's output (also of those that passed) in LastTest.log.
skips=$(cat "$root$clone"/build*/Testing/Temporary/LastTest.log 2>/dev/null |
  grep -E '^SKIPPED \[' | sed -E 's/^SKIPPED \[[0-9]+\] //' | sort -u || true)
if [ -n "$skips" ]; then
  echo "  skipped integration tests (is a package missing?):"
  printf '%s\n' "$skips" | sed 's/^/    /'
fi
echo "  logs: $logs"
if [ "$failed" -ne 0 ]; then
  echo "FAILED"
  exit 1
fi
echo "all passed"
