#!/usr/bin/env bash
# OpenOCD cross-check of one simulated chip behind one probe: Debian's unmodified openocd,
# its adapter driver (CMSIS-DAP over usb_bulk or hid, ST-Link over hla or dapdirect) and
# its stock target script, against probefarm-sim through the stand-in libusb/hidapi.
# Every step must pass:
#   1. init, reset halt: PC equals the reset vector of the demo image
#   2. reg
#   3. flash probe 0: OpenOCD reports the chip's flash size and device id
#   4. program <demo ELF> verify   (virtual time and counters printed)
#   5. flash read_bank 0 of the whole bank equals the image, 0xFF elsewhere
#   6. flash erase_sector on a sector we filled first, then flash erase_check
#   7. reset run, halt twice: PC inside the demo code, RAM counter advanced
# Usage: crosscheck.sh OPENOCD PROBEFARM_SIM FIRMWARE_DIR CHIP TARGET_CFG ERASE_SECTOR PROBE
#        ADAPTER   (PROBE: a probefarm-sim probe kind; ADAPTER: usb_bulk|hid|hla|dapdirect)
set -euo pipefail

openocd=$1 sim=$2 firmware=$3 chip=$4 cfg=$5 sector=$6 probe=$7 adapter=$8
label="$chip $probe $adapter"
elf=$firmware/demo_$chip.elf
bin=$firmware/demo_$chip.bin
source "$(dirname "$0")/lib.sh"

declare -A flash_kib=([stm32f103c8]=64 [stm32f303vc]=256 [stm32f407vg]=1024 [stm32f746ng]=1024)
declare -A idcode=([stm32f103c8]=0x20036410 [stm32f303vc]=0x10016422 [stm32f407vg]=0x10076413
  [stm32f746ng]=0x10016449)
# Address of the sector/page that step 6 erases (away from the demo image).
declare -A sector_addr=([stm32f103c8]=0x08002000 [stm32f303vc]=0x08004000
  [stm32f407vg]=0x08004000 [stm32f746ng]=0x08008000)

start_sim --board "$chip:$probe"
ocd() {
  local name=$1
  shift
  ocd_session pass "$name" "$adapter" "${serials[0]}" "$cfg" "$@"
}

reset_vector=$(od -An -tx4 -j4 -N4 "$bin" | tr -d ' ')
reset_pc=$(printf '0x%08x' $((0x$reset_vector & ~1)))
image_size=$(stat -c %s "$bin")

# Steps 1-3 run on a chip that already holds the demo, so that the reset vector is known:
# load it first with OpenOCD itself (step 4 is checked separately below).
ocd load "init" "reset halt" "program $elf verify"

ocd probe "init" "reset halt" "reg" "flash probe 0"
grep -Eq "pc \(/32\): $reset_pc" "$work/probe.log" ||
  fail "step 1: PC after reset halt is not the reset vector $reset_pc"
grep -Eq "^(r0|R0) " "$work/probe.log" || grep -Eq "\(0\) r0 " "$work/probe.log" ||
  fail "step 2: reg printed no core registers"
grep -Eq "device id = ${idcode[$chip]}" "$work/probe.log" ||
  fail "step 3: device id ${idcode[$chip]} not reported"
grep -Eq "flash size = ${flash_kib[$chip]} ?[kK]i?B" "$work/probe.log" ||
  fail "step 3: flash size ${flash_kib[$chip]} KiB not reported"

"$sim" ctl --socket "$socket" stats >"$work/stats_before.json"
ocd program "init" "reset halt" "program $elf verify"
"$sim" ctl --socket "$socket" stats >"$work/stats_after.json"
grep -q "Verified OK" "$work/program.log" || fail "step 4: program verify did not report Verified OK"
echo "== [$label] program step, simulator counters before and after:"
grep -E '"(virtual_time_us|usb_transfers|swd_transfers|bytes_programmed|pages_erased|sectors_erased|mass_erases)"' \
  "$work/stats_before.json" | tr -d ' ,' | paste -sd' '
grep -E '"(virtual_time_us|usb_transfers|swd_transfers|bytes_programmed|pages_erased|sectors_erased|mass_erases)"' \
  "$work/stats_after.json" | tr -d ' ,' | paste -sd' '

ocd readback "init" "reset halt" "flash read_bank 0 $work/bank.bin"
expected=$work/expected.bin
head -c $((flash_kib[$chip] * 1024)) /dev/zero | tr '\0' '\377' >"$expected"
dd if="$bin" of="$expected" conv=notrunc status=none
cmp "$expected" "$work/bank.bin" || fail "step 5: read_bank differs from the image padded with 0xFF"

addr=${sector_addr[$chip]}
ocd erase "init" "reset halt" "flash fillw $addr 0x12345678 4" "mdw $addr 1" \
  "flash erase_sector 0 $sector $sector" "flash erase_check 0" "mdw $addr 4"
grep -Eq "^$addr: 12345678" "$work/erase.log" || fail "step 6: fillw did not reach the sector"
grep -Eq "^$addr: ffffffff ffffffff ffffffff ffffffff" "$work/erase.log" ||
  fail "step 6: sector $sector not blank after erase_sector"
# erase_check (a blank-check algorithm run on the target) lists the sectors that are not
# erased: sector 0 holds the demo, the erased sector must not appear.
grep -q "successfully checked erase state" "$work/erase.log" || fail "step 6: erase_check failed"
grep -Eq "#\s*0: .*not erased" "$work/erase.log" ||
  fail "step 6: erase_check does not see the demo image in sector 0"
if grep -Eq "#\s*$sector: .*not erased" "$work/erase.log"; then
  fail "step 6: erase_check reports sector $sector as not erased"
fi

ocd run "init" "reset run" "sleep 200" "halt" "reg pc" "mdw 0x20002000" "resume" "sleep 200" \
  "halt" "mdw 0x20002000"
pc=$(grep -Eo "pc \(/32\): 0x[0-9a-f]+" "$work/run.log" | tail -1 | awk '{print $3}')
[ -n "$pc" ] || fail "step 7: no PC after halt"
((pc >= 0x08000000 && pc < 0x08000000 + image_size)) ||
  fail "step 7: PC $pc is outside the demo code (0x08000000 + $image_size)"
mapfile -t counts < <(grep -Eo "^0x20002000: [0-9a-f]+" "$work/run.log" | awk '{print $2}')
[ ${#counts[@]} -eq 2 ] || fail "step 7: expected two reads of the RAM counter"
((0x${counts[0]} > 0 && 0x${counts[1]} > 0x${counts[0]})) ||
  fail "step 7: RAM counter did not advance (${counts[*]})"

echo "PASS [$label] OpenOCD cross-check: reset vector $reset_pc, counter ${counts[*]}"
