//! The clinical scenario in simulated time (the delays are simulated, so the checks are
//! deterministic): at 200 Mbit/s an imaging flood fills the link while vital signs and an
//! RTP-like video stream run alongside; and the 2 ms burst keeps the link full when the caller
//! only polls every millisecond, as the daemon does.

use std::time::{Duration, Instant};

use super::*;

const MTU: usize = 1420;
const OVERHEAD: usize = 60;
const RATE: u64 = 200_000_000;

fn sched(t0: Instant) -> EgressScheduler {
    let config = EgressConfig {
        rate_bps: RATE,
        mtu: MTU,
        overhead: OVERHEAD,
        seed: 11,
    };
    EgressScheduler::new(config, t0)
}

/// A periodic flow: class, packet length, period.
struct Periodic {
    class: ClassId,
    len: usize,
    period: Duration,
    next: Instant,
}

/// Runs `secs` seconds: the periodic flows, and imaging kept at `imaging_backlog` packets
/// queued; releases at every `poll` (or exactly at `next_release` when `poll` is zero).
/// Returns each class's stats and the per-packet delays of the periodic flows.
fn run(
    flows: &mut [Periodic],
    imaging_backlog: u64,
    poll: Duration,
    secs: u64,
) -> ([ClassStats; 4], Vec<Vec<Duration>>) {
    let t0 = flows.first().map_or_else(Instant::now, |f| f.next);
    let mut s = sched(t0);
    let end = t0 + Duration::from_secs(secs);
    let mut now = t0;
    let mut out = vec![0u8; MTU];
    let mut sent_at: Vec<Vec<Instant>> = flows.iter().map(|_| Vec::new()).collect();
    let mut delays: Vec<Vec<Duration>> = flows.iter().map(|_| Vec::new()).collect();
    let mut packet = vec![0u8; MTU];
    while now < end {
        for (i, f) in flows.iter_mut().enumerate() {
            while f.next <= now {
                packet[0] = i as u8;
                s.enqueue(f.next, f.class, &i, &packet[..f.len])
                    .expect("queued");
                sent_at[i].push(f.next);
                f.next += f.period;
            }
        }
        let img = ClassId::Imaging.index();
        while s.stats(now)[img].queued_packets < imaging_backlog {
            packet[0] = 0xff;
            s.enqueue(now, ClassId::Imaging, &"dicom", &packet[..MTU])
                .expect("queued");
        }
        while s.dequeue_into(now, &mut out).is_some() {
            if let Some(at) = sent_at.get_mut(usize::from(out[0])) {
                let sent = at.remove(0);
                delays[usize::from(out[0])].push(now - sent);
            }
        }
        let next_arrival = flows.iter().map(|f| f.next).min().unwrap_or(end);
        let release = s.next_release().unwrap_or(end).max(now);
        now = if poll.is_zero() {
            next_arrival
                .min(release)
                .max(now + Duration::from_micros(1))
        } else {
            now + poll
        };
    }
    (s.stats(now), delays)
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() * 99 / 100]
}

#[test]
fn vital_signs_and_video_stay_fast_while_imaging_fills_the_link() {
    let t0 = Instant::now();
    let mut flows = [
        // MQTT vital signs: 200 bytes every 20 ms.
        Periodic {
            class: ClassId::Telemonitoring,
            len: 200,
            period: Duration::from_millis(20),
            next: t0,
        },
        // RTP-like video: 1200 bytes every 2.4 ms (4 Mbit/s).
        Periodic {
            class: ClassId::Telemedicine,
            len: 1200,
            period: Duration::from_micros(2400),
            next: t0,
        },
    ];
    let (stats, delays) = run(&mut flows, 200, Duration::ZERO, 5);
    let [vitals, video] = [delays[0].clone(), delays[1].clone()];
    assert!(vitals.len() > 200 && video.len() > 2000);
    // Vital signs wait at most for the packet on the wire and the bucket: well under 1 ms.
    assert!(p99(vitals) < Duration::from_millis(1));
    // Video jitter: the spread of its delays, far below the 5 ms target.
    let min = *video.iter().min().expect("video");
    let jitter = p99(video.iter().map(|d| *d - min).collect());
    assert!(
        jitter < Duration::from_millis(1),
        "video jitter p99 {jitter:?}"
    );
    // Imaging gets what is left: at least 90 % of the remaining capacity (wire bytes).
    let wire = |st: &ClassStats, len: usize| {
        st.packets as f64 * (len.next_multiple_of(16).min(MTU) + OVERHEAD) as f64 * 8.0
    };
    let others = wire(&stats[0], 200) + wire(&stats[1], 1200);
    let imaging = wire(&stats[2], MTU);
    let remaining = RATE as f64 * 5.0 - others;
    assert!(
        imaging > 0.9 * remaining,
        "imaging {imaging:.0} of {remaining:.0} bits"
    );
}

#[test]
fn a_millisecond_poll_keeps_the_link_full() {
    let mut none: [Periodic; 0] = [];
    let (stats, _) = run(&mut none, 400, Duration::from_millis(1), 2);
    let img = &stats[ClassId::Imaging.index()];
    let bits = img.packets as f64 * (MTU + OVERHEAD) as f64 * 8.0;
    assert!(
        bits > 0.99 * RATE as f64 * 2.0,
        "{bits:.0} bits in 2 s at {RATE} bit/s"
    );
}
