#!/usr/bin/env bash
# A short, bounded run of every fuzz target (fuzz/fuzz_targets/), so the suite notices a target that
# no longer builds, crashes at once or finds a crash quickly. Not a campaign: those run for hours
# (`cargo fuzz run -O <target>` in fuzz/).
#
# Each target starts from its seed corpus (fuzz/corpus/<target>/, read only) and runs for a fixed
# time, two at a time on two cores. Any crash fails: a panic or failed assertion, a timeout of one
# input, running out of memory. The crashing input is kept in fuzz/artifacts/<target>/ and the
# command that replays it is printed.
#
# Usage: scripts/fuzz-smoke.sh [seconds per target]     (default 10; QGW_FUZZ_JOBS=<n> parallel runs)
#
# The build is cargo-fuzz's release build with three settings for a short run, which wants a quick
# build more than a fast fuzzer: no AddressSanitizer (the code under test is safe Rust, a crash
# here is a panic; the campaigns keep ASan), opt-level 1 instead of 3 and 16 codegen units instead
# of 1. From scratch that halves the build (on 2 shared cores, 2 to 4 minutes instead of 4 to 5,
# depending on their other load), and the slowest target still runs over 1,000 inputs a second. It goes to its own directory
# (target/fuzz-smoke), so it neither spoils nor is spoiled by a campaign's build in fuzz/target.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-10}
jobs=${QGW_FUZZ_JOBS:-$(nproc)}
# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module, …); the one stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked
fi

# cargo fuzz build has no --locked: check fuzz/Cargo.lock is current first, so a stale lock file
# fails here instead of being rewritten silently.
cargo metadata --manifest-path fuzz/Cargo.toml --locked --format-version 1 >/dev/null

target_dir="$PWD/target/fuzz-smoke"
host=$(rustc -vV | sed -n 's/^host: //p')
start=$SECONDS
(
  cd fuzz
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    cargo fuzz build -O --sanitizer none --codegen-units 16 --target "$host" --target-dir "$target_dir"
)
echo "built in $((SECONDS - start)) s"
bin="$target_dir/$host/release"

mapfile -t targets < <(cd fuzz && cargo fuzz list)
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets found" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One target: new inputs go to a scratch corpus, the seeds are only read. Writes its exit code.
run() {
  local t=$1 seeds=() rc=0
  mkdir -p "$work/$t" "fuzz/artifacts/$t"
  [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t")
  # -timeout: one input taking 10 s is a hang; `timeout` bounds the process if libFuzzer itself
  # stops answering.
  timeout $((seconds + 120)) "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" "$work/$t" "${seeds[@]}" \
    >"$work/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$work/$t.rc"
}

start=$SECONDS
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run "$t" &
done
wait

failed=()
for t in "${targets[@]}"; do
  rc=$(cat "$work/$t.rc" 2>/dev/null || echo missing)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
  cov=$(grep -oE 'cov: [0-9]+' "$work/$t.log" | tail -1 || true)
  printf '%-28s %10s inputs  %-10s %s\n' "$t" "${runs:-?}" "${cov:-cov: ?}" \
    "$([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)")"
  if [ "$rc" != 0 ]; then
    failed+=("$t")
    tail -n 40 "$work/$t.log" | sed "s/^/  $t | /"
    kept=$(sed -n 's/.*Test unit written to fuzz\/\(.*\)/\1/p' "$work/$t.log" | tail -1)
    [ -z "$kept" ] || echo "  replay: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O $t $kept)"
  fi
done
echo "ran ${#targets[@]} targets for ${seconds} s each in $((SECONDS - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets failed: ${failed[*]}" >&2
  exit 1
fi
