//! The daemon's KME bridge against the real simulator over mutual TLS on loopback: a master
//! fetches a key for its slave, the slave resolves it by ID on its own KME, both hold the same
//! bytes, the key is gone afterwards, and an unknown ID is a `NotFound` — all without blocking the
//! caller, which only polls the wake-up descriptor (as the packet thread does). A site that asks
//! its KME nothing (no request submitted) still follows its reachability through its status probe.
//! A bridge with two KMEs (docs/protocol.md §6.3) sends each request to the KME it names and keeps
//! each KME's counters apart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netns;

use std::time::{Duration, Instant};

use gateway::daemon::{KmeBridge, KmeSetup, Probe};
use gateway::hybrid::{QkdFailure, RequestId};
use gateway::node::{KmeId, KmeOp, KmeReply, KmeRequest, PeerId, Prefetched};
use netns::kme::{Kmes, start_sim, write_pki};
use qkd_link::{ClientConfig, FetchGate, PrefetchConfig, RetryPolicy, SaeId};

/// Both KMEs on loopback ports the system picks, a fast link and plenty of stored key.
const LOOPBACK: Kmes = Kmes {
    a: "127.0.0.1:0",
    b: "127.0.0.1:0",
    rate_bps: 1_000_000,
    max_key_count: 1000,
    initial_key_count: 100,
};

fn sae(s: &str) -> SaeId {
    SaeId::new(s).expect("valid SAE ID")
}

/// A client of `kme` in the simulator `sim` as SAE `id`, with the certificate `file`, no retries.
fn client_config(
    sim: &netns::kme::Sim,
    dir: &std::path::Path,
    file: &str,
    id: &str,
    kme: &str,
) -> ClientConfig {
    let mut cfg = ClientConfig::new(
        sim.kme_url(kme),
        sae(id),
        dir.join("ca.pem"),
        dir.join(format!("{file}.pem")),
        dir.join(format!("{file}.key")),
    );
    cfg.retry = RetryPolicy::none();
    cfg
}

/// Waits (bounded) for one result, polling the wake-up descriptor as the event loop does.
fn wait(bridge: &KmeBridge) -> KmeReply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut fds = [nix::poll::PollFd::new(
            bridge.wake_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
        if let Some(result) = bridge.drain().pop() {
            return result;
        }
        assert!(Instant::now() < deadline, "no KME result within 10 s");
    }
}

#[test]
fn master_and_slave_get_the_same_key_once_through_the_bridge() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_pki(dir.path());
    let sim = start_sim(None, &LOOPBACK, dir.path());
    let client = |file: &str, id: &str, kme: &str| client_config(&sim, dir.path(), file, id, kme);
    let timeout = Duration::from_secs(2);
    let master = KmeBridge::start(
        client("sae_a", "SAE_A", "KME_A"),
        vec![PrefetchConfig::new(sae("SAE_B"))],
        FetchGate::default(),
        None,
        timeout,
    )
    .expect("master bridge");
    let slave = KmeBridge::start(
        client("sae_b", "SAE_B", "KME_B"),
        vec![],
        FetchGate::default(),
        None,
        timeout,
    )
    .expect("slave bridge");

    let request = |peer, id, op| KmeRequest {
        peer: PeerId::new(peer),
        id: RequestId(id),
        kme: KmeId::FIRST,
        op,
    };
    let fetch = KmeOp::Fetch {
        slave: sae("SAE_B"),
        prefetched: Prefetched::Use,
    };
    master.submit(request(0, 7, fetch));
    let fetched = wait(&master);
    assert_eq!((fetched.peer, fetched.id), (PeerId::new(0), RequestId(7)));
    let fetched = fetched.result.expect("a key from the prefetch pool");
    let ids = fetched.key_ids().to_vec();
    assert_eq!(fetched.key().len(), 32, "256-bit keys");

    let resolve = |key_ids| KmeOp::Resolve {
        master: sae("SAE_A"),
        key_ids,
    };
    slave.submit(request(3, 9, resolve(ids.clone())));
    let resolved = wait(&slave);
    assert_eq!((resolved.peer, resolved.id), (PeerId::new(3), RequestId(9)));
    let resolved = resolved.result.expect("the same key at KME_B");
    assert_eq!(resolved.key_ids(), ids.as_slice());
    assert!(
        resolved.key().ct_eq(fetched.key()),
        "equal bytes at both ends"
    );

    slave.submit(request(3, 10, resolve(ids)));
    assert_eq!(
        wait(&slave).result.err(),
        Some(QkdFailure::NotFound),
        "delivered exactly once"
    );
    let unknown = keymix::KeyId::from_random_bytes([9; 16]);
    slave.submit(request(3, 11, resolve(vec![unknown])));
    assert_eq!(wait(&slave).result.err(), Some(QkdFailure::NotFound));
    assert!(master.metrics().snapshot().keys_fetched >= 1);
    drop((master, slave, sim));
}

/// Waits (bounded) until the bridge's KME reachability is `reachable` after at least `requests`
/// requests; returns the requests made by then.
fn reachable_after(bridge: &KmeBridge, reachable: bool, requests: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = bridge.metrics().snapshot();
        if s.kme_reachable == reachable && s.requests >= requests {
            return s.requests;
        }
        assert!(
            Instant::now() < deadline,
            "KME reachable={} after {} requests, expected {reachable} after {requests}",
            s.kme_reachable,
            s.requests
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_idle_site_probes_its_kme_without_spending_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_pki(dir.path());
    let mut sim = start_sim(None, &LOOPBACK, dir.path());
    let mut cfg = ClientConfig::new(
        sim.kme_url("KME_B"),
        sae("SAE_B"),
        dir.path().join("ca.pem"),
        dir.path().join("sae_b.pem"),
        dir.path().join("sae_b.key"),
    );
    cfg.retry = RetryPolicy::none();
    let probe = Probe {
        peer: sae("SAE_A"),
        every: Duration::from_millis(100),
    };
    let slave = KmeBridge::start(
        cfg,
        vec![],
        FetchGate::default(),
        Some(probe),
        Duration::from_secs(1),
    )
    .expect("slave bridge");
    let made = reachable_after(&slave, true, 1);
    assert_eq!(
        slave.metrics().snapshot().keys_fetched,
        0,
        "a probe spends no key"
    );
    sim.stop_and_join();
    reachable_after(&slave, false, made + 1);
}

#[test]
fn a_bridge_with_two_kmes_asks_the_kme_each_request_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_pki(dir.path());
    let sim = start_sim(None, &LOOPBACK, dir.path());
    let setup = |name: &str, file: &str, id: &str, kme: &str, slave: Option<&str>| KmeSetup {
        name: name.to_owned(),
        config: client_config(&sim, dir.path(), file, id, kme),
        masters_for: slave
            .map(|s| PrefetchConfig::new(sae(s)))
            .into_iter()
            .collect(),
        gate: FetchGate::default(),
        probe: None,
    };
    // One process holding both ends' clients: KME 0 is A's, KME 1 is B's.
    let kmes = vec![
        setup("east", "sae_a", "SAE_A", "KME_A", Some("SAE_B")),
        setup("west", "sae_b", "SAE_B", "KME_B", None),
    ];
    let bridge = KmeBridge::start_many(kmes, Duration::from_secs(2)).expect("bridge");
    let west = KmeId::new(1).expect("a second KME");
    let request = |id, kme, op| KmeRequest {
        peer: PeerId::new(0),
        id: RequestId(id),
        kme,
        op,
    };
    let fetch = KmeOp::Fetch {
        slave: sae("SAE_B"),
        prefetched: Prefetched::Use,
    };
    bridge.submit(request(1, KmeId::FIRST, fetch));
    let fetched = wait(&bridge).result.expect("a key from east's pool");
    let resolve = KmeOp::Resolve {
        master: sae("SAE_A"),
        key_ids: fetched.key_ids().to_vec(),
    };
    bridge.submit(request(2, west, resolve));
    let resolved = wait(&bridge).result.expect("the same key from west");
    assert!(resolved.key().ct_eq(fetched.key()), "equal bytes");
    let names: Vec<_> = bridge
        .all_metrics()
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, ["east", "west"]);
    let [(_, east), (_, west)] = bridge.all_metrics() else {
        panic!("two KMEs");
    };
    assert!(east.snapshot().keys_fetched >= 1, "east fetched");
    assert_eq!(west.snapshot().keys_fetched, 1, "west resolved one key");
    drop((bridge, sim));
}
