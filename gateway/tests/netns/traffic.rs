//! Traffic made and observed by the test process itself. Made from threads that entered a
//! namespace with `setns(CLONE_NEWNET)`: a TCP transfer checked by SHA-256 at both ends, and a
//! bounded flood of handshake initiations with a valid mac1 (so they reach the load check) that
//! counts the cookie replies it gets back. Observed: a `tcpdump` capture on the underlay, the UDP
//! payloads in it, and the kernel's IP counters. Every loop is bounded in count and time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use ring::digest::{Context, SHA256};

use super::lab::Lab;
use super::wait_for;

/// Longest a transfer may take in total.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(120);
/// Longest a single read or write may stall.
const STALL: Duration = Duration::from_secs(20);

/// Runs `f` on a new thread inside namespace `ns` and returns its result.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in(ns, f)
        .join()
        .expect("thread inside the namespace panicked")
}

/// Starts `f` on a new thread that first enters namespace `ns`.
pub fn spawn_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends `bytes` of random data from namespace `from_ns` to `to` (a tunnel address in namespace
/// `to_ns`, where a receiver is started first) and returns both ends' SHA-256 digests and the
/// receiver's byte count.
pub fn tcp_transfer(
    to_ns: &str,
    from_ns: &str,
    to: SocketAddr,
    bytes: usize,
) -> (String, String, usize) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let to_ns = to_ns.to_owned();
    let receiver = std::thread::spawn(move || {
        in_netns(&to_ns, move || {
            let l = TcpListener::bind(to).expect("bind receiver");
            ready_tx.send(()).expect("signal ready");
            let (mut s, _) = l.accept().expect("accept");
            s.set_read_timeout(Some(STALL)).expect("timeout");
            let (mut ctx, mut buf, mut n) = (Context::new(&SHA256), vec![0u8; 1 << 16], 0);
            let start = Instant::now();
            loop {
                assert!(start.elapsed() < TRANSFER_DEADLINE, "receive took too long");
                let k = s.read(&mut buf).expect("read (stalled?)");
                if k == 0 {
                    break;
                }
                ctx.update(&buf[..k]);
                n += k;
            }
            (hex(ctx.finish().as_ref()), n)
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("receiver ready");
    let sent = in_netns(from_ns, move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(10)).expect("connect");
        s.set_write_timeout(Some(STALL)).expect("timeout");
        let (mut ctx, mut buf, mut left) = (Context::new(&SHA256), vec![0u8; 1 << 16], bytes);
        let start = Instant::now();
        while left > 0 {
            assert!(start.elapsed() < TRANSFER_DEADLINE, "send took too long");
            let k = left.min(buf.len());
            getrandom::fill(&mut buf[..k]).expect("random");
            s.write_all(&buf[..k]).expect("write (stalled?)");
            ctx.update(&buf[..k]);
            left -= k;
        }
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
        hex(ctx.finish().as_ref())
    });
    let (got, n) = receiver.join().expect("receiver thread");
    (sent, got, n)
}

/// Sends `total` handshake initiations (at most `per_sec` per second, stopping after `max_time`)
/// from namespace `ns` to `to`, whose static public key is `responder_pub`. The messages are
/// garbage except for a valid mac1, so a responder not under load tries (and fails) to open them
/// and one under load answers with a cookie reply. Returns the cookie replies received.
pub fn handshake_flood(
    ns: &str,
    to: SocketAddr,
    responder_pub: [u8; 32],
    total: usize,
    per_sec: usize,
    max_time: Duration,
) -> usize {
    in_netns(ns, move || {
        use gateway::proto::constants::{LABEL_MAC1, MAC_LEN};
        use gateway::proto::crypto::{hash, mac};
        let mac1_key = hash(&[LABEL_MAC1, &responder_pub]);
        let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
        sock.set_nonblocking(true).expect("nonblocking");
        let (mut sent, mut replies, start) = (0usize, 0usize, Instant::now());
        let mut msg = [0u8; 148];
        let mut buf = [0u8; 256];
        while sent < total && start.elapsed() < max_time {
            let due = (start.elapsed().as_secs_f64() * per_sec as f64) as usize;
            while sent < due.min(total) {
                getrandom::fill(&mut msg[4..116]).expect("random");
                msg[..4].copy_from_slice(&[1, 0, 0, 0]);
                let m1 = mac(&mac1_key, &[&msg[..116]]);
                msg[116..116 + MAC_LEN].copy_from_slice(&m1);
                let _ = sock.send_to(&msg, to);
                sent += 1;
            }
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                replies += usize::from(n == 64 && buf[0] == 3);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(200));
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            replies += usize::from(n == 64 && buf[0] == 3);
        }
        replies
    })
}

/// Pings a → b and b → a, `count` each (payload `size`, with DF, if given), over IPv4 and then,
/// with `v6`, over IPv6; asserts that every ping is answered, naming the direction (and showing
/// site a's log when a → b fails).
#[track_caller]
pub fn assert_pings_both_ways(lab: &Lab, count: u32, size: Option<u32>, v6: bool) {
    let mut families = vec![("10.201.0.2", "10.201.0.1", "")];
    if v6 {
        families.push(("fd00:201::2", "fd00:201::1", " over IPv6"));
    }
    for (b, a, over) in families {
        let log = || lab.log("qa.log");
        assert!(lab.ping(&lab.a, b, count, size), "a -> b{over}: {}", log());
        assert!(lab.ping(&lab.b, a, count, size), "b -> a{over}");
    }
}

/// [`tcp_transfer`] of `bytes` from `from_ns` to `to` (in `to_ns`), asserting that the receiver
/// got all of them and that both ends' SHA-256 digests agree.
#[track_caller]
pub fn assert_tcp_transfer(to_ns: &str, from_ns: &str, to: &str, bytes: usize, what: &str) {
    let (sent, got, n) = tcp_transfer(to_ns, from_ns, to.parse().unwrap(), bytes);
    assert_eq!((n, &got), (bytes, &sent), "{what}: SHA-256 differs");
}

/// iperf3 for 2 s a → b, then b → a, through the tunnel; asserts that each run reports a result.
/// Each server is a process of the lab (so it is stopped even if its client never comes) that
/// exits by itself after its one client.
#[track_caller]
pub fn assert_iperf_both_ways(lab: &mut Lab) {
    let (a, b) = (lab.a.clone(), lab.b.clone());
    for (server_ns, client_ns, server_ip) in [(&b, &a, "10.201.0.2"), (&a, &b, "10.201.0.1")] {
        let log = format!("iperf3-{server_ip}.log");
        let server = ["iperf3", "-s", "-1", "--forceflush", "-B", server_ip];
        lab.spawn(server_ns, &server, &log);
        wait_for("iperf3 to listen", Duration::from_secs(10), || {
            lab.log(&log).contains("Server listening")
        });
        let client = ["timeout", "30", "iperf3", "-c", server_ip, "-t", "2", "-J"];
        let out = lab.check(client_ns, &client);
        assert!(out.contains("\"sum_received\""), "no iperf3 result: {out}");
    }
}

/// Floods site a's qgw (10.200.0.1:51820, public key `pub_a`) from site b with 1600 initiations
/// at 200 per second (10 s at most) and, 1.5 s into the flood, pings a (10.201.0.1) from b until
/// it answers (20 s at most), which needs a handshake under load. Asserts that the flood got more
/// than 100 cookie replies (so a was under load); returns whether a answered and that count.
#[track_caller]
pub fn handshake_under_flood(lab: &Lab, pub_a: &str) -> (bool, usize) {
    let key = gateway::config::parse_key(pub_a).unwrap();
    let ns = lab.b.clone();
    let to = "10.200.0.1:51820".parse().unwrap();
    let flood = std::thread::spawn(move || {
        handshake_flood(&ns, to, key, 1600, 200, Duration::from_secs(10))
    });
    std::thread::sleep(Duration::from_millis(1500));
    let up = lab.ping_until(&lab.b, "10.201.0.1", Duration::from_secs(20));
    let replies = flood.join().expect("flood thread");
    assert!(replies > 100, "the flood got only {replies} cookie replies");
    (up, replies)
}

/// Starts `tcpdump` on `dev` in `ns`, writing packets that match `filter` to the scratch file
/// `pcap`, and waits until it listens; returns its [`Lab::spawn`] handle (stop it with SIGTERM).
pub fn capture(lab: &mut Lab, ns: &str, dev: &str, filter: &str, pcap: &str) -> usize {
    let path = lab.dir.join(pcap);
    let path = path.to_str().unwrap().to_owned();
    let args = ["tcpdump", "-i", dev, "-U", "-n", "-w", &path, filter];
    let h = lab.spawn(ns, &args, "tcpdump.log");
    wait_for("tcpdump to listen", Duration::from_secs(10), || {
        lab.log("tcpdump.log").contains("listening on")
    });
    h
}

/// UDP payloads from `src` to `dst` (IPv4) in a classic pcap file of an Ethernet (veth) capture.
pub fn udp_payloads(pcap: &[u8], src: [u8; 4], dst: [u8; 4]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 24; // global header
    while at + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..(at + 16 + len).min(pcap.len())];
        at += 16 + len;
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[9] != 17 || ip[12..16] != src || ip[16..20] != dst || ip.len() < ihl + 8 {
            continue;
        }
        out.push(ip[ihl + 8..].to_vec());
    }
    out
}

/// The kernel's `FragCreates` counter in `ns` (`/proc/net/snmp`): IP fragments it made.
pub fn frag_creates(lab: &Lab, ns: &str) -> String {
    let snmp = lab.check(ns, &["cat", "/proc/net/snmp"]);
    let ip: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Ip:")).collect();
    let (names, values) = (ip[0].split_whitespace(), ip[1].split_whitespace());
    let frag = names.zip(values).find(|(k, _)| *k == "FragCreates");
    frag.unwrap().1.to_owned()
}

/// Sends `count` numbered UDP datagrams of `len` bytes (≥ 8: the number, then a pattern derived
/// from it) from `from_ns` to `to` (in `to_ns`) in bursts of 64, and returns how many arrived
/// intact, how many arrived damaged and how many twice. The receiver has a 4 MiB buffer and stops
/// after 2 s of silence.
pub fn udp_burst(
    to_ns: &str,
    from_ns: &str,
    to: SocketAddr,
    count: u32,
    len: usize,
) -> (usize, usize, usize) {
    let pattern = |seq: u32, buf: &mut [u8]| {
        buf[..4].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in buf.iter_mut().enumerate().skip(4) {
            *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
        }
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = spawn_in(to_ns, move || {
        let sock = UdpSocket::bind(to).expect("bind receiver");
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &(4 << 20))
            .expect("receive buffer");
        sock.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        ready_tx.send(()).expect("signal ready");
        let (mut seen, mut damaged, mut twice) = (vec![false; count as usize], 0, 0);
        let (mut buf, mut want) = (vec![0u8; 65536], vec![0u8; len]);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            let Ok(n) = sock.recv(&mut buf) else { break };
            if n < 4 {
                damaged += 1;
                continue;
            }
            let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
            pattern(seq, &mut want);
            match seen.get_mut(seq as usize) {
                Some(s) if n == len && buf[..n] == want[..] => {
                    twice += usize::from(*s);
                    *s = true;
                }
                _ => damaged += 1,
            }
        }
        (seen.iter().filter(|s| **s).count(), damaged, twice)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("receiver ready");
    in_netns(from_ns, move || {
        let sock = UdpSocket::bind((if to.is_ipv4() { "0.0.0.0" } else { "::" }, 0)).unwrap();
        let mut buf = vec![0u8; len];
        for seq in 0..count {
            pattern(seq, &mut buf);
            sock.send_to(&buf, to).expect("send");
            if seq % 64 == 63 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    receiver.join().expect("receiver thread")
}
