#!/usr/bin/env bash
# probefarm and OpenOCD judge each other on the same simulated board:
#   1. probefarm flashes the demo firmware; OpenOCD's verify_image accepts it.
#   2. OpenOCD programs a different image (random bytes); `probefarm verify` accepts it,
#      and `probefarm verify` of the demo, which is no longer there, fails with exit 8.
# Usage: probefarm_crosscheck.sh OPENOCD PROBEFARM_SIM PROBEFARM FIRMWARE_DIR CHIP TARGET_CFG
#                                PROBE ADAPTER
set -euo pipefail

openocd=$1 sim=$2 probefarm=$3 firmware=$4 chip=$5 cfg=$6 probe=$7 adapter=$8
label="probefarm-crosscheck $chip $probe $adapter"
source "$(dirname "$0")/lib.sh"

start_sim --board "$chip:$probe"
serial=${serials[0]}
demo=$firmware/demo_$chip.elf

echo "== [$label] probefarm flash $demo"
"$probefarm" --probe "$serial" flash "$demo" --reset || fail "probefarm flash failed"
ocd_session pass verify_demo "$adapter" "$serial" "$cfg" init "reset halt" "verify_image $demo"
expect_log verify_demo "verified [0-9]+ bytes" "OpenOCD did not verify probefarm's image"

random=$work/random.bin
head -c 20480 /dev/urandom >"$random"
ocd_session pass program_random "$adapter" "$serial" "$cfg" init "reset halt" \
  "program $random 0x08000000 verify"
expect_log program_random "Verified OK|verified [0-9]+ bytes" "OpenOCD did not program the image"

echo "== [$label] probefarm verify (OpenOCD's image)"
"$probefarm" --probe "$serial" verify "$random" --address 0x08000000 ||
  fail "probefarm verify rejected what OpenOCD programmed"
"$probefarm" --probe "$serial" verify "$random" --address 0x08000000 --readback ||
  fail "probefarm read-back verify rejected what OpenOCD programmed"
rc=0
"$probefarm" --probe "$serial" verify "$demo" || rc=$?
[ $rc -eq 8 ] || fail "probefarm verify of an image that is not in flash exited $rc, not 8"
echo "PASS [$label]"
