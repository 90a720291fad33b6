//! The systemd notification protocol (sd_notify(3), "Type=notify"): one datagram per state
//! change to the Unix socket in `$NOTIFY_SOCKET` (a path, or an abstract name starting with `@`).
//!
//! `READY=1` once the tunnel is configured, `WATCHDOG=1` at half the interval systemd asks for in
//! `$WATCHDOG_USEC` (only if `$WATCHDOG_PID` is unset or names this process), `STATUS=` lines for
//! `systemctl status`, `STOPPING=1` on shutdown. Without `$NOTIFY_SOCKET` every call does nothing,
//! so the same binary runs under systemd, in a container or by hand.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// A connection to the service manager, or nothing when not started by one.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    next_ping: Option<Instant>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env(now: Instant) -> io::Result<Self> {
        let socket = std::env::var("NOTIFY_SOCKET").ok();
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Self::new(now, socket.as_deref(), usec.as_deref(), pid.as_deref())
    }

    /// A notifier that sends nothing (not started by systemd).
    pub fn disabled() -> Self {
        Self {
            target: None,
            watchdog: None,
            next_ping: None,
        }
    }

    /// As [`Notifier::from_env`], with the variables given (tests).
    pub fn new(
        now: Instant,
        socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
    ) -> io::Result<Self> {
        let target = match socket {
            None | Some("") => None,
            Some(path) => {
                // Non-blocking: a service manager that does not read must never stall the tunnel.
                let sock = UnixDatagram::unbound()?;
                sock.set_nonblocking(true)?;
                Some((sock, address(path)?))
            }
        };
        let ours = watchdog_pid.is_none_or(|p| p.parse() == Ok(std::process::id()));
        let watchdog = watchdog_usec
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && ours && target.is_some())
            .map(|u| Duration::from_micros(u) / 2);
        Ok(Self {
            target,
            watchdog,
            next_ping: watchdog.map(|_| now),
        })
    }

    /// Whether a service manager listens.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog ping interval (half of what systemd asked for), if a watchdog is on.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends one notification (newline-separated `KEY=value` lines) without blocking; errors
    /// (`WouldBlock` when the manager's queue is full) are returned, the caller logs them: a
    /// missing or slow service manager must never stop the tunnel.
    pub fn send(&self, state: &str) -> io::Result<()> {
        match &self.target {
            Some((sock, addr)) => sock.send_to_addr(state.as_bytes(), addr).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Sends `WATCHDOG=1` if due at `now`; returns whether it did.
    pub fn ping_if_due(&mut self, now: Instant) -> io::Result<bool> {
        let (Some(every), Some(next)) = (self.watchdog, self.next_ping) else {
            return Ok(false);
        };
        if now < next {
            return Ok(false);
        }
        self.next_ping = Some(now + every);
        self.send("WATCHDOG=1").map(|_| true)
    }

    /// When the next watchdog ping is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_ping
    }
}

fn address(path: &str) -> io::Result<SocketAddr> {
    match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        None => SocketAddr::from_pathname(path),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn listener() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (dir, sock, path.to_string_lossy().into_owned())
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_no_watchdog_runs() {
        let n = Notifier::new(Instant::now(), None, Some("1000000"), None).unwrap();
        assert!(!n.is_active());
        assert_eq!(n.watchdog_interval(), None);
        n.send("READY=1").unwrap();
    }

    #[test]
    fn ready_and_watchdog_pings_arrive_at_half_the_interval() {
        let (_dir, sock, path) = listener();
        let t = Instant::now();
        let pid = std::process::id().to_string();
        let mut n = Notifier::new(t, Some(&path), Some("2000000"), Some(&pid)).unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(1)));
        n.send("READY=1\nSTATUS=up").unwrap();
        assert_eq!(recv(&sock), "READY=1\nSTATUS=up");
        assert!(n.ping_if_due(t).unwrap());
        assert_eq!(recv(&sock), "WATCHDOG=1");
        assert!(!n.ping_if_due(t + Duration::from_millis(999)).unwrap());
        assert!(n.ping_if_due(t + Duration::from_secs(1)).unwrap());
        assert_eq!(recv(&sock), "WATCHDOG=1");
    }

    #[test]
    fn a_receiver_that_does_not_read_never_blocks_the_sender() {
        let (_dir, _sock, path) = listener();
        let n = Notifier::new(Instant::now(), Some(&path), None, None).unwrap();
        let start = Instant::now();
        let full = (0..10_000).any(|_| n.send("WATCHDOG=1").is_err());
        assert!(
            full,
            "the receiver's queue fills up and the send reports it"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_watchdog_meant_for_another_process_is_ignored() {
        let (_dir, _sock, path) = listener();
        let n = Notifier::new(Instant::now(), Some(&path), Some("2000000"), Some("1")).unwrap();
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn abstract_names_are_supported() {
        let name = format!("qgw-notify-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::new(Instant::now(), Some(&format!("@{name}")), None, None).unwrap();
        n.send("READY=1").unwrap();
        assert_eq!(recv(&sock), "READY=1");
    }
}
