#!/usr/bin/env bash
# deploy/probefarmd.service passes `systemd-analyze verify` with no complaint, and its
# sandbox stays as tight as written (`systemd-analyze security` exposure at most 2.0).
# verify checks that ExecStart's binary exists, so it runs on a copy of the unit whose
# ExecStart points at this build's probefarmd instead of /usr/local/bin.
# Usage: check_unit.sh UNIT_FILE BUILD_BIN_DIR
set -euo pipefail
unit=$1
bin_dir=$(realpath "$2")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

grep -q '^ExecStart=/usr/local/bin/probefarmd ' "$unit" ||
  { echo "FAIL: $unit has no 'ExecStart=/usr/local/bin/probefarmd ...' line to rewrite"; exit 1; }
sed "s#^ExecStart=/usr/local/bin/#ExecStart=${bin_dir}/#" "$unit" >"$tmp/probefarmd.service"

# verify reports unknown keys and bad values as warnings with exit status 0, so its output
# counts too. Only lines about our file: on some hosts it also grumbles about system units.
status=0
out=$(systemd-analyze verify --man=no "$tmp/probefarmd.service" 2>&1) || status=$?
ours=$(grep -F 'probefarmd.service' <<<"$out" || true)
if [ "$status" -ne 0 ] || [ -n "$ours" ]; then
  echo "$out"
  echo "FAIL: systemd-analyze verify rejected $unit (exit status $status)"
  exit 1
fi

# --offline (systemd 252) scores the unit file without a running systemd. 20 is an exposure
# of 2.0 on systemd's 0-10 scale; the unit scores about 1.6.
if ! systemd-analyze security --offline=true --threshold=20 "$tmp/probefarmd.service" >"$tmp/security.txt" 2>&1; then
  cat "$tmp/security.txt"
  echo "FAIL: the unit's exposure is above 2.0: a hardening option was lost"
  exit 1
fi
echo "ok: $unit verifies; $(tail -n 1 "$tmp/security.txt")"
