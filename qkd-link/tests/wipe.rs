//! Key bytes from a KME reply do not outlive their use in freed memory that qkd-link handles:
//! this test binary's global allocator inspects every block as it is freed, while a test is
//! watching, for a test's markers (a key in Base64 and its bytes, or the raw reply).
//!
//! What it covers is qkd-link's own handling: the Key container parser (ETSI GS QKD 014 §6.3)
//! and the body reader given the frames of a body. hyper's connection read buffer and rustls'
//! record buffers are not reached by either (qkd-link/README.md, "Keys").
#![allow(unsafe_code)] // a test-only global allocator that reads blocks before freeing them
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use qkd_link::api::parse::{KeyExpectation, parse_key_container};
use zeroize::Zeroizing;

/// The key: 32 bytes whose Base64 holds `/`, which a JSON encoder may escape as `\/`.
const KEY: &[u8; 32] = b"QGW-WIPE-TEST-KEY\xff\xff\xfe-0123456789+";
const KEY_B64: &str = "UUdXLVdJUEUtVEVTVC1LRVn///4tMDEyMzQ1Njc4OSs=";
const KEY_B64_ESCAPED: &str = r"UUdXLVdJUEUtVEVTVC1LRVn\/\/\/4tMDEyMzQ1Njc4OSs=";
const KEY_ID: &str = "4b36ad7d-1a70-4e0c-9d4c-2b4e6a0f7f11";

const NOTHING: &[&[u8]] = &[];
const PARSED: &[&[u8]] = &[KEY_B64.as_bytes(), KEY];
const RAW: &[&[u8]] = &[b"UUdXLVdJUEUtVEVTVC1LRVn"];

/// Which markers freed blocks are searched for: an index into [`WATCHES`].
static WATCH: AtomicUsize = AtomicUsize::new(0);
const WATCHES: [&[&[u8]]; 3] = [NOTHING, PARSED, RAW];
/// Freed blocks that held a marker.
static FOUND: AtomicUsize = AtomicUsize::new(0);
/// One watching test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Inspecting;

unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let markers = WATCHES[WATCH.load(Ordering::SeqCst)];
        if !markers.is_empty() {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes until the call below. Bytes
            // never written are read as whatever the allocator left there (volatile, so the
            // reads are not assumed away).
            let held = |m: &[u8]| {
                layout.size() >= m.len()
                    && (0..=layout.size() - m.len()).any(|at| {
                        (m.iter().enumerate())
                            .all(|(i, b)| unsafe { std::ptr::read_volatile(ptr.add(at + i)) } == *b)
                    })
            };
            if markers.iter().any(|m| held(m)) {
                FOUND.fetch_add(1, Ordering::SeqCst);
            }
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

/// Runs `f` while freed blocks are searched for `WATCHES[watch]`; how many held one.
fn watching(watch: usize, f: impl FnOnce()) -> usize {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    FOUND.store(0, Ordering::SeqCst);
    WATCH.store(watch, Ordering::SeqCst);
    f();
    WATCH.store(0, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

/// A Key container with the key's `/` escaped as `\/` (valid JSON, and what some encoders write).
fn container() -> Zeroizing<Vec<u8>> {
    let mut body = Zeroizing::new(Vec::with_capacity(256));
    for part in [
        r#"{"keys":[{"key_ID":""#,
        KEY_ID,
        r#"","key":""#,
        KEY_B64_ESCAPED,
        r#""}]}"#,
    ] {
        body.extend_from_slice(part.as_bytes());
    }
    body
}

#[test]
fn a_parsed_key_container_leaves_no_key_in_freed_memory() {
    let body = container();
    let expect = KeyExpectation {
        number: 1,
        size_bits: Some(256),
        ids: None,
    };
    let found = watching(1, || {
        let keys = parse_key_container(&body, &expect).unwrap();
        assert_eq!(keys[0].expose(), KEY);
        drop(keys);
    });
    assert_eq!(found, 0, "freed blocks held the key (Base64 or bytes)");
}

/// A body that hands out the given frames.
struct Frames(VecDeque<Bytes>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

#[test]
fn a_read_body_leaves_no_reply_in_freed_memory() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let body = container();
    // Three frames, each its own allocation, the key whole in the middle one.
    let at = body.windows(3).position(|w| w == b"UUd").unwrap();
    let end = at + KEY_B64_ESCAPED.len();
    let frames = [&body[..at], &body[at..end], &body[end..]]
        .map(|part| Bytes::from(part.to_vec()))
        .into_iter()
        .collect();
    let found = watching(2, || {
        let read = runtime.block_on(qkd_link::client::read_body(Frames(frames), 1 << 20));
        assert_eq!(read.unwrap().as_slice(), body.as_slice());
    });
    assert_eq!(found, 0, "freed blocks held the reply");
}
