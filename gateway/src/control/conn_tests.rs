//! The connection state machine on a simulated clock: framing, size cap, whole-phase deadlines,
//! partial writes, the table's eviction of the oldest connection, and the request buffer's bound.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use super::*;

/// `bytes` as a request or an answer.
fn message(bytes: &[u8]) -> Message {
    Zeroizing::new(bytes.to_vec())
}

const LIMITS: Limits = Limits {
    framing: Framing::BlankLine,
    max_request: 64,
    request_time: Duration::from_secs(2),
    response_time: Duration::from_secs(2),
    max_connections: 3,
};

#[test]
fn a_request_ends_at_its_blank_line_even_split_across_reads() {
    let t = Instant::now();
    let mut c = Conn::new(t, &LIMITS);
    assert_eq!(c.received(b"get=1\n", &LIMITS), Ok(None));
    let request = c.received(b"\nignored", &LIMITS).unwrap().unwrap();
    assert_eq!(*request, b"get=1\n\n");
    let mut c = Conn::new(t, &LIMITS);
    assert_eq!(c.received(b"\n", &LIMITS), Ok(Some(message(b"\n"))));
    let mut c = Conn::new(t, &LIMITS);
    for byte in b"get=1\n" {
        assert_eq!(c.received(&[*byte], &LIMITS), Ok(None));
    }
    assert_eq!(c.received(b"\n", &LIMITS), Ok(Some(message(b"get=1\n\n"))));
}

#[test]
fn a_half_closed_client_has_sent_its_request() {
    let mut c = Conn::new(Instant::now(), &LIMITS);
    assert_eq!(c.ended(), None, "nothing arrived");
    c.received(b"status", &LIMITS).unwrap();
    assert_eq!(c.ended(), Some(message(b"status")));
}

#[test]
fn a_request_over_the_cap_is_refused_whether_or_not_it_ends() {
    let t = Instant::now();
    let mut c = Conn::new(t, &LIMITS);
    assert_eq!(c.received(&[b'a'; 65], &LIMITS), Err(Dropped::TooLarge));
    let mut c = Conn::new(t, &LIMITS);
    let mut long = vec![b'a'; 63];
    long.extend_from_slice(b"\n\n");
    assert_eq!(c.received(&long, &LIMITS), Err(Dropped::TooLarge));
    let mut c = Conn::new(t, &LIMITS);
    long.truncate(62);
    long.extend_from_slice(b"\n\n");
    assert!(
        c.received(&long, &LIMITS).unwrap().is_some(),
        "64 bytes fit"
    );
}

#[test]
fn the_request_deadline_counts_from_accept_not_from_the_last_byte() {
    let t = Instant::now();
    let mut c = Conn::new(t, &LIMITS);
    // One byte every 400 ms: each read is quick, the request never completes.
    for i in 1..5u32 {
        let now = t + Duration::from_millis(400) * i;
        c.received(b"a", &LIMITS).unwrap();
        assert!(!c.expired(now), "{now:?}");
    }
    assert_eq!(c.deadline(), t + LIMITS.request_time);
    assert!(c.expired(t + LIMITS.request_time));
}

#[test]
fn the_answer_has_its_own_deadline_and_is_written_in_parts() {
    let t = Instant::now();
    let mut c = Conn::new(t, &LIMITS);
    c.received(b"status\n\n", &LIMITS).unwrap().unwrap();
    let answered = t + Duration::from_millis(1900);
    c.respond(answered, message(b"0123456789"), &LIMITS);
    assert!(!c.is_reading());
    assert_eq!(c.deadline(), answered + LIMITS.response_time);
    assert!(!c.wrote(4));
    assert_eq!(c.unsent(), b"456789");
    assert_eq!(
        c.received(b"more", &LIMITS),
        Ok(None),
        "ignored while writing"
    );
    assert!(c.wrote(6));
    assert!(c.unsent().is_empty());
}

#[test]
fn a_full_table_evicts_its_oldest_connection() {
    let t = Instant::now();
    let mut table = Table::new(LIMITS);
    for id in 0..3 {
        assert_eq!(table.admit(t + Duration::from_millis(id), id), None);
    }
    assert_eq!(table.admit(t, 3), Some(0), "the oldest makes room");
    assert_eq!(table.admit(t, 4), Some(1));
    let ids: Vec<u64> = table.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids, [2, 3, 4]);
    assert_eq!(table.len(), 3);
}

#[test]
fn expired_connections_leave_the_table() {
    let t = Instant::now();
    let mut table = Table::new(LIMITS);
    table.admit(t, "slow");
    table.admit(t + Duration::from_secs(1), "new");
    let (conn, _) = table.get_mut(1).unwrap();
    conn.received(b"status\n\n", &LIMITS).unwrap();
    conn.respond(t + Duration::from_secs(1), message(b"x"), &LIMITS);
    assert_eq!(table.next_deadline(), Some(t + LIMITS.request_time));
    assert!(table.expire(t + Duration::from_millis(1999)).is_empty());
    assert_eq!(table.expire(t + LIMITS.request_time), ["slow"]);
    assert_eq!(table.next_deadline(), Some(t + Duration::from_secs(3)));
    assert_eq!(table.expire(t + Duration::from_secs(3)), ["new"]);
    assert!(table.is_empty());
}

#[test]
fn the_request_buffer_never_grows_past_the_cap() {
    let limits = Limits {
        max_request: 256 << 10,
        ..LIMITS
    };
    let mut c = Conn::new(Instant::now(), &limits);
    let capacity = |c: &Conn| match &c.phase {
        Phase::Reading(buf) => buf.capacity(),
        Phase::Writing { out, .. } => out.capacity(),
    };
    let chunk = [b'a'; 4096];
    for _ in 0..(256 >> 2) {
        assert_eq!(c.received(&chunk, &limits), Ok(None));
        assert!(
            capacity(&c) <= limits.max_request + 1,
            "capacity {}",
            capacity(&c)
        );
    }
    assert_eq!(c.received(&chunk, &limits), Err(Dropped::TooLarge));
    assert!(
        capacity(&c) <= limits.max_request + 1,
        "capacity {}",
        capacity(&c)
    );
}
