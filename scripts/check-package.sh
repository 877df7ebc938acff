#!/usr/bin/env bash
# Builds the .deb with cpack from BUILD_DIR and checks it without installing it: what it holds,
# what it depends on, its maintainer scripts, the systemd unit (systemd-analyze verify, when
# present), and that the packaged segd starts and answers /health from a private data directory.
# `make test` runs it (the Package test). Usage: scripts/check-package.sh BUILD_DIR
set -euo pipefail
build="$(cd "$1" && pwd)"
work="$(mktemp -d)"
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "check-package: $*" >&2; exit 1; }

(cd "$work" && cpack --config "$build/CPackConfig.cmake" -B "$work/out" >/dev/null)
deb="$(ls "$work"/out/segd_*_amd64.deb 2>/dev/null | head -1)"
[ -n "$deb" ] || fail "cpack made no .deb"

contents="$(dpkg-deb -c "$deb" | awk '{print $6}')"
for path in ./usr/bin/segd ./usr/lib/systemd/system/segd.service ./etc/default/segd \
            ./usr/share/doc/segd/README.md; do
  grep -qx "$path" <<<"$contents" || fail "$path is not in the package"
done
if grep -q -e test -e bench -e segd-load <<<"$contents"; then
  fail "the package holds tests or benchmarks: $(grep -e test -e bench <<<"$contents")"
fi
depends="$(dpkg-deb -f "$deb" Depends)"
for lib in librocksdb libabsl libroaring libsimdjson adduser; do
  grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
dpkg-deb -e "$deb" "$work/control"
for script in postinst prerm postrm; do
  [ -x "$work/control/$script" ] || fail "$script missing or not executable"
  sh -n "$work/control/$script" || fail "$script is not valid sh"
done
grep -qx /etc/default/segd "$work/control/conffiles" || fail "/etc/default/segd is no conffile"

dpkg-deb -x "$deb" "$work/root"
unit="$work/root/usr/lib/systemd/system/segd.service"
grep -qx "ExecStart=/usr/bin/segd" "$unit" || fail "the unit does not start /usr/bin/segd"
if command -v systemd-analyze >/dev/null 2>&1; then
  # Verified as installed, but pointing at the unpacked binary.
  sed "s|^ExecStart=.*|ExecStart=$work/root/usr/bin/segd|" "$unit" >"$work/segd.service"
  systemd-analyze verify "$work/segd.service" || fail "systemd-analyze rejects the unit"
fi
"$work/root/usr/bin/segd" --version | grep -q '^segd ' || fail "segd --version"
"$work/root/usr/bin/segd" --data-dir "$work/data" --port 0 --min-free-disk 0 >"$work/start" 2>&1 &
pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$work/start" 2>/dev/null && break
  sleep 0.1
done
port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$work/start")"
[ -n "$port" ] || fail "the packaged segd did not start: $(cat "$work/start")"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
grep -q '"status":"ok"' <&3 || fail "the packaged segd does not answer /health"
kill -TERM "$pid"
wait "$pid" || fail "the packaged segd did not stop cleanly"
echo "check-package: $(basename "$deb") is sound"
