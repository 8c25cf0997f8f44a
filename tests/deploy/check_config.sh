#!/usr/bin/env bash
# deploy/probefarmd.json is a config the daemon accepts: probefarmd starts with it (on a
# simulated board) and serves the API, which the CLI then lists probes from, the command
# deploy/k8s/daemonset.yaml uses as its liveness probe. A config with an unknown key must
# be refused, so that "it started" means the file was read and checked.
# Usage: check_config.sh CONFIG PROBEFARMD PROBEFARM WEB_DIR
set -euo pipefail
config=$1 daemon=$2 cli=$3 web_dir=$4

tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    timeout 30 tail --pid="$pid" -f /dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Flags override the file: a free port instead of 8080, a scratch data dir, the source
# tree's dashboard instead of /usr/local/share.
"$daemon" --config "$config" --listen 127.0.0.1:0 --data-dir "$tmp/data" --web-dir "$web_dir" \
  --simulate stm32f103c8:stlink-v2 --time-scale 0 2>"$tmp/stderr" &
pid=$!

url=""
for _ in $(seq 600); do  # deadline: 60 s
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$tmp/stderr" | head -n 1 || true)
  [ -n "$url" ] && grep -q 'probefarmd.started' "$tmp/stderr" && break
  url=""
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  cat "$tmp/stderr"
  echo "FAIL: probefarmd did not start with $config"
  exit 1
fi

token=$(cat "$tmp/data/admin-token")
if ! timeout 60 "$cli" --server "$url" --token "$token" list >"$tmp/list" 2>&1; then
  cat "$tmp/list" "$tmp/stderr"
  echo "FAIL: probefarm list against the daemon failed"
  exit 1
fi

# The same file with one unknown key: the daemon must refuse to start.
sed 's/^{/{"no_such_key": 1,/' "$config" >"$tmp/bad.json"
status=0
timeout 60 "$daemon" --config "$tmp/bad.json" --listen 127.0.0.1:0 --data-dir "$tmp/bad-data" \
  --simulate stm32f103c8:stlink-v2 --time-scale 0 >"$tmp/bad.out" 2>&1 || status=$?
if [ "$status" -eq 0 ] || [ "$status" -eq 124 ] || ! grep -q "no_such_key" "$tmp/bad.out"; then
  cat "$tmp/bad.out"
  echo "FAIL: probefarmd did not refuse a config with an unknown key (exit status $status)"
  exit 1
fi
echo "ok: probefarmd starts with $config and serves $url; an unknown key is refused"
