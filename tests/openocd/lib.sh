# Shared by the OpenOCD tests: start probefarm-sim, run OpenOCD sessions against it, fail
# with a message. Source it after setting: openocd, sim, label.
# Every OpenOCD session runs with its servers disabled and a time limit; its log is kept in
# $work/<name>.log and echoed, so a failing ctest shows what OpenOCD said.

work=$(mktemp -d)
sim_pid=""
socket=$work/sim.sock
cleanup() {
  if [ -n "$sim_pid" ]; then
    kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL [$label] $*" >&2
  exit 1
}

# start_sim ARGS...: serves the boards given as probefarm-sim arguments (without --socket)
# and waits until it is listening. Sets `serials` to the serials it printed, in order.
start_sim() {
  "$sim" --socket "$socket" --time-scale 0 "$@" >"$work/sim.out" 2>&1 &
  sim_pid=$!
  local boards=0 arg
  for arg in "$@"; do [ "$arg" = --board ] && boards=$((boards + 1)); done
  for _ in $(seq 100); do
    [ "$(wc -l <"$work/sim.out")" -ge "$boards" ] && break
    kill -0 "$sim_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ "$(wc -l <"$work/sim.out")" -ge "$boards" ] ||
    fail "probefarm-sim did not start: $(cat "$work/sim.out")"
  mapfile -t serials < <(awk '{print $1}' "$work/sim.out")
  eval "$("$sim" env --socket "$socket")"
}

stop_sim() {
  kill "$sim_pid" && wait "$sim_pid" || true
  sim_pid=""
}

ctl() {
  "$sim" ctl --socket "$socket" "$@" || fail "probefarm-sim ctl $* failed"
}

# adapter_args ADAPTER SERIAL: the OpenOCD interface arguments for one of the adapter
# configurations we test.
adapter_args() {
  case $1 in
    usb_bulk) iface=(-f interface/cmsis-dap.cfg -c "cmsis_dap_backend usb_bulk" -c "transport select swd") ;;
    hid) iface=(-f interface/cmsis-dap.cfg -c "cmsis_dap_backend hid" -c "transport select swd") ;;
    hla) iface=(-f interface/stlink.cfg) ;;
    dapdirect) iface=(-f interface/stlink-dap.cfg -c "transport select dapdirect_swd") ;;
    *) fail "unknown adapter configuration '$1'" ;;
  esac
  iface+=(-c "adapter serial $2")
}

# ocd_session EXPECT NAME ADAPTER SERIAL TARGET_CFG [-x PRE_INIT_CMD]... CMD...: one OpenOCD
# session. EXPECT is "pass" (OpenOCD must exit 0) or "any". Commands after -x run before
# the target script (adapter speed, reset_config, ...).
ocd_session() {
  local expect=$1 name=$2 adapter=$3 serial=$4 cfg=$5
  shift 5
  adapter_args "$adapter" "$serial"
  local args=("${iface[@]}" -c "gdb_port disabled" -c "tcl_port disabled" -c "telnet_port disabled")
  while [ "${1:-}" = -x ]; do
    args+=(-c "$2")
    shift 2
  done
  args+=(-f "target/$cfg.cfg")
  local c
  for c in "$@"; do args+=(-c "$c"); done
  args+=(-c shutdown)
  echo "== [$label] openocd ($adapter, $serial): $*"
  local rc=0
  timeout 600 "$openocd" "${args[@]}" >"$work/$name.log" 2>&1 || rc=$?
  cat "$work/$name.log"
  [ "$expect" = pass ] && [ $rc -ne 0 ] && fail "openocd session '$name' failed (exit $rc)"
  [ $rc -ne 124 ] || fail "openocd session '$name' timed out"
  return 0
}

# expect_log NAME REGEX MESSAGE / reject_log NAME REGEX MESSAGE
expect_log() { grep -Eq "$2" "$work/$1.log" || fail "$3"; }
reject_log() { if grep -Eq "$2" "$work/$1.log"; then fail "$3"; fi; }
