# shellcheck shell=bash
# Sourced by the scripts that install Debian packages (scripts/install-deps.sh,
# cross/install-deps.sh, bench/run.sh): which packages are missing, and sudo only when
# not root.

# shellcheck disable=SC2034 # used by the scripts that source this file
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# missing_packages PKG...: sets the array `missing` to the PKGs that dpkg does not list
# as installed; true when there is any.
missing_packages() {
  missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ]
}
