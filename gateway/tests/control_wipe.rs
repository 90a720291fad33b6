//! UAPI requests and answers carry private and preshared keys in hex (`wg set … private-key`,
//! `preshared-key`; `wg show` prints the private key), and none of them may outlive its
//! connection in freed memory (issue 11, property 10; docs/design.md §5). This test binary's global
//! allocator inspects every block as it is freed, while a test is watching, for a private key: its
//! two hex halves and its bytes.
//!
//! It follows a `set=1` request through the control plane's own buffers: the connection state
//! machine (`gateway::control::conn`: the growing request buffer, the answer being written), the
//! event loop on a real Unix socket (`gateway::control::server`), and the UAPI handler
//! (`gateway::control::uapi`: parsing, the `get=1` answer). Not reached: the event loop's read
//! chunk, which is on the stack (wiped when a connection's turn ends, never freed), and the
//! kernel's socket buffers. Technique: qkd-link/tests/wipe.rs.
#![allow(unsafe_code)] // a test-only global allocator that reads blocks before freeing them
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use gateway::control::Listener;
use gateway::control::conn::Conn;
use gateway::control::server::{Answer, Drops, Server, Socket};
use gateway::control::status::Status;
use gateway::control::uapi::{self, Device, Plan, Target};
use gateway::proto::secret::Secret;
use zeroize::Zeroizing;

/// The private key (its bytes are readable text, so a copy is easy to recognise).
const KEY: &[u8; 32] = b"QGW-UAPI-WIPE-TEST-PRIVATE-KEY!!";
const KEY_HEX: &str = "5147572d554150492d574950452d544553542d505249564154452d4b45592121";
/// A copy of either half of the key in hex, or of its bytes, is a leak.
const MARKERS: [&[u8]; 3] = [
    KEY_HEX.as_bytes().split_at(32).0,
    KEY_HEX.as_bytes().split_at(32).1,
    KEY,
];

/// Whether freed blocks are searched now.
static WATCHING: AtomicBool = AtomicBool::new(false);
/// Freed blocks that held a marker.
static FOUND: AtomicUsize = AtomicUsize::new(0);
/// One watching test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Whether the `len` bytes at `ptr` hold `marker` anywhere.
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes.
unsafe fn holds(ptr: *const u8, len: usize, marker: &[u8]) -> bool {
    // Bytes never written are read as whatever the allocator left there; volatile, so the reads
    // of a block about to be freed are not optimised away.
    let byte = |i: usize| unsafe { std::ptr::read_volatile(ptr.add(i)) };
    (0..(len + 1).saturating_sub(marker.len()))
        .any(|at| marker.iter().zip(at..).all(|(m, i)| byte(i) == *m))
}

struct Inspecting;

unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes until it is freed below.
        if WATCHING.load(Ordering::SeqCst)
            && MARKERS
                .iter()
                .any(|m| unsafe { holds(ptr, layout.size(), m) })
        {
            FOUND.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

/// Holds off the other tests of this binary: a test frees copies of the key outside
/// [`freed_with_key`] (building its request, checking the hex), and another test's watch would
/// count them. Taken first by every test.
fn alone() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` while freed blocks are searched for the key; how many held it.
fn freed_with_key(f: impl FnOnce()) -> usize {
    FOUND.store(0, Ordering::SeqCst);
    WATCHING.store(true, Ordering::SeqCst);
    f();
    WATCHING.store(false, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

/// A `wg set` as `wg` sends it: the private key first, then a peer with the key as its preshared
/// key and enough allowed IPs (about 10 KiB) that the request arrives in several reads and the
/// buffer reading it grows several times after the key is in it.
fn set_request() -> Zeroizing<Vec<u8>> {
    let mut r = Zeroizing::new(Vec::with_capacity(16 << 10));
    for part in [
        "set=1\nprivate_key=",
        KEY_HEX,
        "\npublic_key=",
        &"ab".repeat(32),
    ] {
        r.extend_from_slice(part.as_bytes());
    }
    r.extend_from_slice(b"\npreshared_key=");
    r.extend_from_slice(KEY_HEX.as_bytes());
    for i in 0..400 {
        let line = format!("\nallowed_ip=10.{}.{}.0/24", i / 256, i % 256);
        r.extend_from_slice(line.as_bytes());
    }
    r.extend_from_slice(b"\n\n");
    r
}

#[test]
fn a_connection_leaves_no_key_of_its_request_or_answer_in_freed_memory() {
    let _alone = alone();
    let request = set_request();
    let found = freed_with_key(|| {
        let (now, limits) = (Instant::now(), Socket::Uapi.limits());
        let mut conn = Conn::new(now, &limits);
        let mut pieces = request.chunks(1000);
        let got = loop {
            let piece = pieces.next().unwrap();
            if let Some(got) = conn.received(piece, &limits).unwrap() {
                break got;
            }
        };
        assert!(got[..] == request[..]);
        // The answer holds the key too, as a `get=1` answer does.
        conn.respond(now, got, &limits);
        while !conn.wrote(1000) {}
        drop(conn);
    });
    assert_eq!(found, 0, "freed blocks held the key");
}

/// Answers with the request, key and all.
struct Echo;

impl Answer for Echo {
    fn answer(&mut self, _: Socket, request: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(request.len()));
        out.extend_from_slice(request);
        out
    }
}

#[test]
fn the_event_loop_leaves_no_key_of_a_request_or_answer_in_freed_memory() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wg0.sock");
    let request = set_request();
    let mut answer = Zeroizing::new(vec![0u8; request.len() + 1]);
    let found = freed_with_key(|| {
        let listener = Listener::bind(&path, 0o700).unwrap();
        let drops = std::sync::Arc::new(Drops::new(&[Socket::Uapi]));
        let mut server = Server::new(vec![(Socket::Uapi, listener)], drops);
        let (mut stop, stopped) = UnixStream::pair().unwrap();
        let thread = std::thread::spawn(move || server.run(stopped.as_fd(), &mut Echo));
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(&request).unwrap();
        let mut got = 0;
        loop {
            match client.read(&mut answer[got..]).unwrap() {
                0 => break,
                n => got += n,
            }
        }
        assert!(answer[..got] == request[..], "answered {got} bytes");
        stop.write_all(&[1]).unwrap();
        thread.join().unwrap();
    });
    assert_eq!(found, 0, "freed blocks held the key");
}

/// A node that takes every plan and has no peers.
struct Node;

impl Target for Node {
    fn status(&mut self) -> Status {
        Status::default()
    }

    fn apply(&mut self, plan: Plan) -> Result<(), i32> {
        assert!(plan.private_key.is_some() && plan.peers[0].psk.is_some());
        Ok(())
    }
}

#[test]
fn the_uapi_handler_leaves_no_key_of_a_set_or_get_in_freed_memory() {
    let _alone = alone();
    let request = set_request();
    let private_key = Secret::new(*KEY);
    let device = Device {
        private_key: &private_key,
        listen_port: 51820,
    };
    assert_eq!(uapi::hex(KEY), KEY_HEX);
    let found = freed_with_key(|| {
        let set = std::str::from_utf8(&request).unwrap();
        assert_eq!(*uapi::handle(set, &device, &mut Node), "errno=0\n\n");
        let get = uapi::handle("get=1\n\n", &device, &mut Node);
        assert!(get.starts_with("private_key=") && get[12..76] == *KEY_HEX);
    });
    assert_eq!(found, 0, "freed blocks held the key");
}
