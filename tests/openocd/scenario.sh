#!/usr/bin/env bash
# OpenOCD against the failures users meet (the seeds), reproduced on probefarm-sim:
#   swd_off   firmware turns the SWD pins into GPIOs: OpenOCD cannot examine the chip with
#             reset_config none, and can with connect_assert_srst (seed 004)
#   swd_off_stlink  the same through an ST-Link V2-1 (hla), as in the seed
#   unplug    the probe is unplugged while OpenOCD reads: OpenOCD reports an error,
#             probefarm-sim survives, and after a replug a fresh OpenOCD run works
#   f1_protect, f4_protect
#             read protection: lock, power cycle, OpenOCD sees the chip protected and cannot
#             read flash; unlock mass-erases; after a power cycle a new program works
#   v2_speed  2000 kHz is not in the ST-Link V2's clock table: OpenOCD says which speed it
#             uses instead
# Usage: scenario.sh OPENOCD PROBEFARM_SIM FIRMWARE_DIR SCENARIO
set -euo pipefail

openocd=$1 sim=$2 firmware=$3 scenario=$4
label=$scenario
source "$(dirname "$0")/lib.sh"

# first_word FILE: the first little-endian 32-bit word of a binary, as OpenOCD's mdw prints it.
first_word() { od -An -tx4 -N4 "$1" | tr -d ' '; }

under_reset="reset_config srst_only srst_nogate connect_assert_srst"

# swd_off PROBE ADAPTER SERIAL
swd_off() {
  local chip=stm32f407vg probe=$1 adapter=$2 serial=$3
  start_sim --board "$chip:$probe:$serial" --swd-off "$serial"
  local s=(pass load "$adapter" "$serial" stm32f4x -x "$under_reset")
  ocd_session "${s[@]}" init "reset halt" "program $firmware/demo_$chip.elf verify"
  expect_log load "Verified OK" "connect under reset could not program the blank chip"

  # Powered up again, the demo runs and takes the SWD pins away.
  ctl power "$serial" cycle
  ocd_session any plain "$adapter" "$serial" stm32f4x init "reset halt" "mdw 0x08000000"
  expect_log plain "Error connecting DP|cannot read IDR|jtag status contains invalid mode value|unable to connect to the target" \
    "plain OpenOCD did not report that it cannot reach the DP"
  reject_log plain "^0x08000000: " "plain OpenOCD read flash although SWD is off"

  local word
  word=$(first_word "$firmware/demo_$chip.bin")
  ocd_session pass rescue "$adapter" "$serial" stm32f4x -x "$under_reset" init "reset halt" \
    "mdw 0x08000000"
  expect_log rescue "^0x08000000: $word" "connect under reset did not read the image back"
  expect_log rescue "halted due to" "connect under reset did not halt the core"
}

unplug() {
  local chip=stm32f407vg serial=PFSIM01F407VG
  start_sim --board "$chip:cmsis-dap-v2"
  local before
  before=$(ctl stats | grep -Eo '"usb_transfers": [0-9]+' | grep -Eo '[0-9]+')
  # A long read: the whole 1 MiB bank, over and over.
  ocd_session any reading usb_bulk "$serial" stm32f4x init "reset halt" \
    "for {set i 0} {\$i < 50} {incr i} { flash read_bank 0 $work/bank.bin }" &
  local ocd_pid=$! now=0
  for _ in $(seq 600); do
    now=$(ctl stats | grep -Eo '"usb_transfers": [0-9]+' | grep -Eo '[0-9]+')
    [ "$now" -gt $((before + 2000)) ] && break
    sleep 0.05
  done
  [ "$now" -gt $((before + 2000)) ] || fail "OpenOCD never got going ($now USB transfers)"
  ctl unplug "$serial"
  wait "$ocd_pid"
  reject_log reading "shutdown command invoked" "OpenOCD finished the reads before the unplug"
  expect_log reading "Error" "OpenOCD did not report an error when the probe went away"
  kill -0 "$sim_pid" 2>/dev/null || fail "probefarm-sim died with the unplug"

  ocd_session any gone usb_bulk "$serial" stm32f4x init
  expect_log gone "Error" "OpenOCD found the unplugged probe"

  ctl replug "$serial"
  ocd_session pass again usb_bulk "$serial" stm32f4x init "reset halt" "mdw 0x08000000"
  expect_log again "halted due to" "a fresh OpenOCD run after the replug did not halt the core"
}

# protect CHIP TARGET_CFG DRIVER PREFIX LOCKED_REGEX: PREFIX is how the driver names itself
# in its lock/unlock messages.
protect() {
  local chip=$1 cfg=$2 driver=$3 prefix=$4 locked=$5
  start_sim --board "$chip:cmsis-dap-v2"
  local serial=${serials[0]} elf=$firmware/demo_$chip.elf
  ocd_session pass lock usb_bulk "$serial" "$cfg" init "reset halt" "$driver options_read 0" \
    "program $elf verify" "$driver lock 0"
  expect_log lock "Verified OK" "the demo was not programmed"
  expect_log lock "$prefix locked" "$driver lock did not report success"
  ctl power "$serial" cycle

  # Read protection is loaded at power-on; with a debugger attached flash is out of reach.
  ocd_session any locked usb_bulk "$serial" "$cfg" init "reset halt" "$driver options_read 0" \
    "mdw 0x08000000"
  expect_log locked "$locked" "OpenOCD does not report the chip as protected"
  expect_log locked "Failed to read memory at 0x08000000" "flash was not shut off from the debugger"
  reject_log locked "^0x08000000: " "OpenOCD read flash on a protected chip"

  local erases
  erases=$(ctl stats | grep -Eo '"mass_erases": [0-9]+' | grep -Eo '[0-9]+')
  ocd_session pass unlock usb_bulk "$serial" "$cfg" init "reset halt" "$driver unlock 0"
  expect_log unlock "$prefix unlocked" "$driver unlock did not report success"
  [ "$(ctl stats | grep -Eo '"mass_erases": [0-9]+' | grep -Eo '[0-9]+')" -eq $((erases + 1)) ] ||
    fail "leaving read protection did not mass-erase the chip"
  ctl power "$serial" cycle

  ocd_session pass again usb_bulk "$serial" "$cfg" init "reset halt" "mdw 0x08000000" \
    "program $elf verify"
  expect_log again "^0x08000000: ffffffff" "flash is not blank after the unlock"
  expect_log again "Verified OK" "a new program after the unlock failed"
}

v2_speed() {
  start_sim --board stm32f103c8:stlink-v2
  ocd_session pass speed hla "${serials[0]}" stm32f1x init "adapter speed 2000" "adapter speed"
  expect_log speed "Unable to match requested speed 2000 kHz, using 1800 kHz" \
    "OpenOCD did not say that the V2 falls back to 1800 kHz"
  expect_log speed "^adapter speed: 1800 kHz" "the adapter does not run at 1800 kHz"
}

case $scenario in
  swd_off) swd_off cmsis-dap-v2 usb_bulk PFSIM01F407VG ;;
  swd_off_stlink) swd_off stlink-v2-1 hla 504630314634303756475F5F ;;
  f1_protect) protect stm32f103c8 stm32f1x stm32f1x stm32x "read protection: on" ;;
  f4_protect) protect stm32f407vg stm32f4x stm32f2x stm32f2x "Device Security Bit Set" ;;
  unplug | v2_speed) "$scenario" ;;
  *) fail "unknown scenario '$scenario'" ;;
esac
echo "PASS [$label]"
