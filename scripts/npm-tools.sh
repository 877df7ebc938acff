#!/usr/bin/env bash
# Installs the npm tools pinned in tools/api/package-lock.json (Redocly CLI, Stoplight Prism,
# swagger-ui-dist) into tools/api/node_modules, with `npm ci`: exactly the locked versions,
# no install scripts. Does nothing when they are installed from the same lock file already.
# The build runs it (segd serves swagger-ui-dist at /docs); `make test` uses the other two.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../tools/api" && pwd)"
stamp="$dir/node_modules/.segd-installed-lock"
if [ -f "$stamp" ] && cmp -s "$stamp" "$dir/package-lock.json"; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "segd: npm is missing (apt-get install nodejs npm, or run scripts/install-deps.sh)" >&2
  exit 1
fi
echo "segd: installing the pinned npm tools into tools/api/node_modules"
(cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
cp "$dir/package-lock.json" "$stamp"
