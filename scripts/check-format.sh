#!/usr/bin/env bash
# Checks that every tracked C++ file (*.cpp, *.hpp) is formatted as .clang-format
# says. Lists the files that are not and exits 1; fix them with
#   clang-format -i FILE...
# CLANG_FORMAT picks the binary (default: clang-format; CI has version 14).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

clang_format=${CLANG_FORMAT:-clang-format}
command -v "$clang_format" >/dev/null || {
  echo "check-format: $clang_format not found (scripts/install-deps.sh installs it)" >&2
  exit 2
}

# git's failure inside <(...) would not stop the script: it would check no file and
# pass. So ask git first, and refuse an empty list.
command -v git >/dev/null || {
  echo "check-format: git not found (scripts/install-deps.sh installs it)" >&2
  exit 2
}
mapfile -t files < <(git ls-files -- '*.cpp' '*.hpp')
if [ ${#files[@]} -eq 0 ]; then
  echo "check-format: git ls-files lists no C++ file (not a git clone?)" >&2
  exit 2
fi
offenders=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue  # deleted in the work tree but still in the index
  "$clang_format" --dry-run --Werror "$f" >/dev/null 2>&1 || offenders+=("$f")
done

if [ ${#offenders[@]} -gt 0 ]; then
  echo "check-format: ${#offenders[@]} of ${#files[@]} files are not formatted:" >&2
  printf '  %s\n' "${offenders[@]}" >&2
  echo "fix with: $clang_format -i ${offenders[*]}" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
