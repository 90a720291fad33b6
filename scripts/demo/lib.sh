# shellcheck shell=bash
# demo.sh's process and output helpers (sourced by demo.sh, not run on its own): printing steps and
# outcomes, running commands in a site's namespace, starting background processes with their PIDs
# recorded, and the teardown that ends exactly what the demo started.
#
# Uses from demo.sh: STATE, NS_A, NS_B, STEPS, step_no, failures.
# Sets: last_pid (bg), BOLD, RED, OFF.
# shellcheck disable=SC2154 # the variables above are demo.sh's

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
in_demo_ns() { case "$(ip netns identify "$1" 2>/dev/null)" in "$NS_A" | "$NS_B") return 0 ;; esac; return 1; }
teardown() {
  local pids=() pid _
  if [ -f "$STATE/pids" ]; then
    while read -r pid; do in_demo_ns "$pid" && pids+=("$pid"); done < "$STATE/pids"
  fi
  for ns in "$NS_A" "$NS_B"; do
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
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_B" 2>/dev/null || true
  rm -rf "$STATE"
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
