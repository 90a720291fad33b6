//! The whole gateway, deterministically: real nodes on a simulated clock and network
//! (`sim/`). Random schedules of faults and attacks, each checked for every invariant at every
//! step; a fixed set of seeds always, and a few new ones each run, printed. A failing seed is in
//! the panic message; `QGW_SIM_SEED=<seed> cargo test -p gateway --test simulation
//! simulation_random_seeds -- --nocapture` replays exactly that seed.

mod sim;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sim::schedule::Schedule;

/// Schedules run with fixed seeds on every run, in four tests so they run in parallel.
const FIXED: u64 = 2000;
/// New random schedules per run.
const RANDOM: u64 = 20;

fn run(seed: u64) {
    let schedule = Schedule::random(seed);
    let w = schedule.run();
    assert!(w.net.stats.sent > 0, "seed {seed}: nothing was sent");
}

fn fixed(quarter: u64) {
    let n = FIXED / 4;
    for seed in quarter * n..(quarter + 1) * n {
        run(seed);
    }
}

#[test]
fn simulation_fixed_seeds_1() {
    fixed(0);
}

#[test]
fn simulation_fixed_seeds_2() {
    fixed(1);
}

#[test]
fn simulation_fixed_seeds_3() {
    fixed(2);
}

#[test]
fn simulation_fixed_seeds_4() {
    fixed(3);
}

#[test]
fn simulation_random_seeds() {
    if let Some(seed) = std::env::var("QGW_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        eprintln!(
            "replaying simulation seed {seed}: {:#?}",
            Schedule::random(seed)
        );
        return run(seed);
    }
    let base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as u64;
    for k in 0..RANDOM {
        let seed = base.wrapping_add(k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        eprintln!("simulation seed {seed}");
        run(seed);
    }
}
