#!/bin/bash
# Smoke test of probefarm-bench (ctest bench_smoke): one small combination, probefarm only.
# Checks that the results file holds the rows with plausible values; asserts no speed
# (DESIGN.md: no timed tests). Usage: smoke_test.sh BENCH OUT
set -u
bench=$1
out=$2
rm -f "$out"
"$bench" --chips stm32f103c8 --probes cmsis-dap-v2 --scenarios S1,S3 --no-openocd --out "$out" ||
  { echo "FAIL: probefarm-bench exited $?"; exit 1; }
[ -s "$out" ] || { echo "FAIL: $out not written"; exit 1; }
cat "$out"
grep -q '^build/bin/probefarm-bench --chips stm32f103c8 --probes cmsis-dap-v2 --scenarios S1,S3 --no-openocd$' "$out" ||
  { echo "FAIL: the command line is not recorded"; exit 1; }
# Row columns: chip probe scen time KiB/s erases bytes-prog usb-xfers needs (two words,
# "1.720 chip", where it is not 0) eff
# OpenOCD ratio CPU.
row() { awk -v s="$1" '$1 == "stm32f103c8" && $2 == "cmsis-dap-v2" && $3 == s' "$out"; }
s1=$(row S1)
s3=$(row S3)
[ -n "$s1" ] || { echo "FAIL: no S1 row"; exit 1; }
[ -n "$s3" ] || { echo "FAIL: no S3 row"; exit 1; }
echo "$s1" | awk '{
  bad = ""
  if (!($4 > 0)) bad = bad " time"
  if (!($5 > 0)) bad = bad " throughput"
  if ($6 != "0") bad = bad " erases(a blank chip needs none)"
  if (!($7 >= 60000 && $7 <= 65536)) bad = bad " bytes-programmed(the 64 KiB image)"
  if (!($8 > 0)) bad = bad " usb-transfers"
  if (!($9 > 0)) bad = bad " physical-limit"
  if (!($11 > 0 && $11 <= 1)) bad = bad " efficiency(must be in (0,1])"
  if ($12 != "-" || $13 != "-") bad = bad " openocd-columns(not run)"
  if (!($14 >= 0 && $14 != "-")) bad = bad " cpu"
  if (bad != "") { print "FAIL: implausible S1 row:" bad; exit 1 }
}' || exit 1
echo "$s3" | awk '{
  bad = ""
  if (!($4 > 0)) bad = bad " time"
  if ($6 != "0") bad = bad " erases(nothing changed)"
  if ($7 != "0") bad = bad " bytes-programmed(nothing changed)"
  if ($9 != "0") bad = bad " physical-limit(nothing to do)"
  if (bad != "") { print "FAIL: implausible S3 row:" bad; exit 1 }
}' || exit 1
grep -q '^### S3 >= 20x faster than S2: NOT MEASURED' "$out" ||
  { echo "FAIL: the S3 target without S2 rows must read NOT MEASURED"; exit 1; }
echo "bench smoke: 1 passed, 0 failed"
