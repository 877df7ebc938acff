#!/usr/bin/env bash
# Fails, naming the files, if any C++ source of segd differs from what clang-format (with the
# checked-in .clang-format) makes of it. `make test` runs it; to fix: scripts/check-format.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find base engine storage server bench tests tools/embed \
  \( -name '*.cc' -o -name '*.h' -o -name '*.js' \) -not -path 'tests/fuzz/corpus/*' | sort)
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "not formatted with clang-format ($(clang-format --version)):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "run scripts/check-format.sh --fix" >&2
  exit 1
fi
echo "${#files[@]} files formatted"
