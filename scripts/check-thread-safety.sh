#!/usr/bin/env bash
# Clang's thread-safety analysis over segd's sources: every ABSL_GUARDED_BY and
# ABSL_EXCLUSIVE_LOCKS_REQUIRED is checked, and any warning fails. (The build itself uses GCC,
# which ignores the annotations.) `make test` runs it (the ThreadSafetyAnalysis test).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang++ >/dev/null 2>&1; then
  echo "check-thread-safety: clang++ is missing (scripts/install-deps.sh --test installs it)" >&2
  exit 1
fi
mapfile -t files < <(find base engine storage server -name '*.cc' | sort)
printf '%s\n' "${files[@]}" |
  xargs -P "$(nproc)" -n 4 clang++ -std=c++20 -fsyntax-only -Wthread-safety -Werror \
    -msse4.2 -mpclmul -I.
echo "${#files[@]} files: no thread-safety warning"
