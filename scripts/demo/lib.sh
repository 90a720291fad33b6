# shellcheck shell=bash
# demo.sh's process and output helpers (sourced by demo.sh, not run on its own): printing steps and
# outcomes, running commands in a site's namespace, starting background processes with their PIDs
# recorded, and the teardown that ends exactly what the demo started.
#
# Uses from demo.sh: STATE, NS_A, NS_B (or DEMO_NS, the list of namespaces, when set first, as
# scripts/demo/region.sh does), STEPS, step_no, failures, keep, LOGS_PREFIX (optional).
# Sets: last_pid (bg), BOLD, RED, OFF, DEMO_NS.
# shellcheck disable=SC2154 # the variables above are demo.sh's

[ -n "${DEMO_NS+x}" ] || DEMO_NS=("$NS_A" "$NS_B")

if [ -t 1 ]; then BOLD=$'\033[1m' RED=$'\033[1;31m' OFF=$'\033[0m'; else BOLD='' RED='' OFF=''; fi
step() { step_no=$((step_no + 1)); printf '%s[%d/%d] %s%s\n' "$BOLD" "$step_no" "$STEPS" "$*" "$OFF"; }
info() { printf '      %s\n' "$*"; }
bad() { printf '      %sFAILED: %s%s\n' "$RED" "$*" "$OFF"; failures+=("$*"); }
die() { printf '%sdemo: %s%s\n' "$RED" "$*" "$OFF" >&2; exit 1; }
in_a() { ip netns exec "$NS_A" "$@"; }
in_b() { ip netns exec "$NS_B" "$@"; }

# Ends what the demo started: the PIDs it recorded, each only while it still runs inside one of the
# demo's namespaces (so a recycled PID is never hit), then whatever is left in those namespaces
# (every process there was started by the demo), then the namespaces and the state directory.
in_demo_ns() {
  local ns n
  ns=$(ip netns identify "$1" 2>/dev/null) || return 1
  for n in "${DEMO_NS[@]}"; do [ -n "$ns" ] && [ "$ns" = "$n" ] && return 0; done
  return 1
}
teardown() {
  local pids=() pid _
  if [ -f "$STATE/pids" ]; then
    while read -r pid; do in_demo_ns "$pid" && pids+=("$pid"); done < "$STATE/pids"
  fi
  for ns in "${DEMO_NS[@]}"; do
    if ip netns list | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do pids+=("$pid"); done
    fi
  done
  if [ ${#pids[@]} -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 30); do
      alive=()
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
      [ ${#alive[@]} -eq 0 ] && break
      sleep 0.1
    done
    for pid in "${pids[@]}"; do in_demo_ns "$pid" && kill -9 "$pid" 2>/dev/null; done
  fi
  for ns in "${DEMO_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$STATE"
}

# open_state: creates $STATE and sets the traps: on exit the demo is torn down (unless it was
# kept with --keep and succeeded), and after a failure its logs, configs and facts (no keys, no
# data) are copied first to a fresh /tmp/$LOGS_PREFIX.XXXXXX, subdirectories kept.
open_state() {
  mkdir -m 700 "$STATE"
  trap cleanup_on_exit EXIT
  trap 'exit 130' INT TERM HUP
}
cleanup_on_exit() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [ "$keep" = 1 ] && [ "$status" = 0 ]; then return; fi
  if [ "$status" = 130 ]; then
    echo "interrupted: tearing down"
  elif [ "$status" != 0 ] && [ -d "$STATE" ]; then
    local saved
    saved=$(mktemp -d "/tmp/${LOGS_PREFIX:-qgw-demo-logs}.XXXXXX")
    (cd "$STATE" && find . -type f \( -name '*.log' -o -name '*.out' -o -name '*.txt' -o -name '*.json' \
      -o -name '*.yaml' -o -name '*.jsonl' \) -exec cp --parents {} "$saved" \;) 2>/dev/null || true
    echo "demo failed (exit $status); logs copied to $saved"
  fi
  teardown
}

# close_outcomes MESSAGE KEEP_GUIDE: exit 1 listing the failed outcomes, if any; else MESSAGE, then
# KEEP_GUIDE (a function) with --keep.
close_outcomes() {
  if [ ${#failures[@]} -gt 0 ]; then
    printf '%s%d outcome(s) failed:%s\n' "$RED" "${#failures[@]}" "$OFF"
    printf '  - %s\n' "${failures[@]}"
    exit 1
  fi
  echo "$1"
  if [ "$keep" = 1 ]; then
    "$2"
  else
    echo "tearing down"
  fi
}

started() { echo "$1" >> "$STATE/pids"; }
# bg NS LOG CMD...: start CMD in namespace NS in the background, output to LOG, PID recorded.
bg() {
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" "$@" < /dev/null > "$log" 2>&1 &
  started $!
  # shellcheck disable=SC2034 # read by the caller, which waits for it
  last_pid=$!
}
# listening NS PORT: true once something listens on TCP PORT in NS (up to 5 s).
listening() {
  local _
  for _ in $(seq 50); do
    [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null)" ] && return 0
    sleep 0.1
  done
  return 1
}

# packages_and_build: the Debian packages the demo uses, then qgw and qkd-kme-sim in release mode;
# sets BIN. The demo runs its own broker inside a site's namespace and uses only promtool from
# prometheus: the packages' own services are kept from starting (scripts/lib/debian.sh).
packages_and_build() {
  # shellcheck source=scripts/lib/debian.sh
  . "$REPO/scripts/lib/debian.sh"
  mapfile -t need < <(missing_debian_packages ip:iproute2 ping:iputils-ping iperf3:iperf3 curl:curl \
    python3:python3 storescu:dcmtk mosquitto:mosquitto mosquitto_pub:mosquitto-clients \
    promtool:prometheus)
  install_debian_packages demo.sh "$STATE/apt.log" "${need[@]}"
  command -v cargo > /dev/null || die "cargo not found (sudo resets PATH; try: sudo env PATH=\"\$PATH\" $0)"
  info "cargo build --release: qgw, and qkd-kme-sim with qkd-link's sim feature (a first build takes a few minutes)"
  # Two builds, so that qgw is built as deployed: without the simulator feature of qkd-link.
  { nice -n 10 cargo build --release --locked -q -p gateway --bin qgw \
      && nice -n 10 cargo build --release --locked -q -p qkd-link --features sim --bin qkd-kme-sim; } > "$STATE/build.log" 2>&1 \
    || { tail -n 30 "$STATE/build.log" >&2; die "build failed"; }
  # shellcheck disable=SC2034 # read by the caller
  BIN=$REPO/target/release
}
