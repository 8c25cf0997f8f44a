#!/usr/bin/env bash
# OpenOCD judges `probefarm option-bytes set` and `probefarm protect`: after probefarm
# changes user bits, data bytes and write protection, OpenOCD's own readers show the same
# values: `stm32f1x options_read 0` on the F103, `stm32f2x options_read 0` on the F407, and
# `flash info 0` (protected / not protected per WRP group or sector) on both. No RDP change
# here: a mass erase through OpenOCD would make the test slow (tests/cli covers RDP).
# Usage: option_bytes.sh OPENOCD PROBEFARM_SIM PROBEFARM
set -euo pipefail

openocd=$1 sim=$2 probefarm=$3
label="option-bytes"
source "$(dirname "$0")/lib.sh"

start_sim --board stm32f103c8:cmsis-dap-v2 --board stm32f407vg:cmsis-dap-v2
f1=${serials[0]}
f4=${serials[1]}

pf() {
  echo "== [$label] probefarm $*"
  "$probefarm" "$@" || fail "probefarm $* failed"
}

# ---- STM32F103: USER (WDG_SW, nRST_STOP), DATA0/DATA1, WRP groups 1 and 3 ----------------
pf --probe "$f1" option-bytes set WDG_SW=0 nRST_STOP=0 DATA0=0x42 DATA1=0x17 WRP=0xFFFFFFF5 --yes
pf --probe "$f1" --json option-bytes >"$work/f1.json"
grep -q '"WRP": 4294967285' "$work/f1.json" || fail "probefarm does not read back WRP 0xFFFFFFF5"
ocd_session pass f1_options usb_bulk "$f1" stm32f1x init "reset halt" "stm32f1x options_read 0" \
  "flash info 0"
expect_log f1_options "write protection register = 0xfffffff5" "OpenOCD reads another WRPR"
expect_log f1_options "read protection: off" "OpenOCD sees read protection"
expect_log f1_options "watchdog: hardware" "OpenOCD does not see WDG_SW=0"
expect_log f1_options "stop mode: reset generated upon entry" "OpenOCD does not see nRST_STOP=0"
expect_log f1_options "standby mode: no reset generated upon entry" "OpenOCD sees nRST_STDBY changed"
expect_log f1_options "user data = 0x1742" "OpenOCD reads other DATA0/DATA1"
expect_log f1_options "#  1: 0x00001000 \(0x1000 4kB\) protected" "OpenOCD: group 1 not protected"
expect_log f1_options "#  3: 0x00003000 \(0x1000 4kB\) protected" "OpenOCD: group 3 not protected"
expect_log f1_options "#  2: 0x00002000 \(0x1000 4kB\) not protected" "OpenOCD: group 2 protected"

# Back to the factory values through protect --clear and option-bytes set.
pf --probe "$f1" protect --clear
pf --probe "$f1" option-bytes set WDG_SW=1 nRST_STOP=1 DATA0=0xFF DATA1=0xFF --yes
ocd_session pass f1_defaults usb_bulk "$f1" stm32f1x init "reset halt" "stm32f1x options_read 0"
expect_log f1_defaults "write protection register = 0xffffffff" "WRP not cleared for OpenOCD"
expect_log f1_defaults "watchdog: software" "WDG_SW not restored for OpenOCD"
expect_log f1_defaults "user data = 0xffff" "DATA0/DATA1 not restored for OpenOCD"

# ---- STM32F407: BOR_LEV, nRST_STDBY, nWRP sector 3 ---------------------------------------
pf --probe "$f4" option-bytes set BOR_LEV=1 nRST_STDBY=0 --yes
pf --probe "$f4" protect --set 0x0800C000 16K
ocd_session pass f4_options usb_bulk "$f4" stm32f4x init "reset halt" "stm32f2x options_read 0" \
  "flash info 0"
# RM0090 3.9.6: user byte 0xEC with BOR_LEV 01 and nRST_STDBY 0 is 0x64.
expect_log f4_options "stm32f2x user_options 0x64" "OpenOCD reads other user option bits"
expect_log f4_options "#  3: 0x0000c000 \(0x4000 16kB\) protected" "OpenOCD: sector 3 not protected"
expect_log f4_options "#  2: 0x00008000 \(0x4000 16kB\) not protected" "OpenOCD: sector 2 protected"
reject_log f4_options "#  4: .*\) protected" "OpenOCD: sector 4 protected"

pf --probe "$f4" protect --clear 0x0800C000 16K
ocd_session pass f4_cleared usb_bulk "$f4" stm32f4x init "reset halt" "flash info 0"
expect_log f4_cleared "#  3: 0x0000c000 \(0x4000 16kB\) not protected" "sector 3 still protected"
echo "PASS [$label]"
