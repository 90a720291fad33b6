//! The control plane's protocols: two Unix stream sockets per interface and the metrics endpoint,
//! served by the daemon's control thread (`crate::daemon::control`) from the status the node
//! publishes, so no client ever reaches the packet thread.
//!
//! | socket | protocol | who |
//! |---|---|---|
//! | `/run/qgw/<iface>.sock` (dir 0700, socket 0600) | `status\n\n` → one JSON [`status::Status`] | `qgw status` |
//! | `/var/run/wireguard/<iface>.sock` (socket 0600) | WireGuard cross-platform UAPI, [`uapi`] | `wg show`, `wg set` |
//!
//! Both are root-only. Several `qgw` instances run side by side, one socket pair per interface; a
//! socket left behind by a killed instance is detected (nobody answers a connect) and replaced, and
//! a live one makes startup fail. Requests are read with a short timeout and a size cap, so a stuck
//! or hostile client costs the control thread at most [`IO_TIMEOUT`] per connection.

pub mod exposition;
pub mod metrics;
pub mod status;
pub mod uapi;

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

/// Directory of the `qgw status` sockets (override with `QGW_RUN_DIR`).
pub const STATUS_DIR: &str = "/run/qgw";
/// Directory of the UAPI sockets, fixed by the cross-platform interface (wireguard.com/xplatform).
pub const UAPI_DIR: &str = "/var/run/wireguard";
/// Longest time one control request may take to arrive or be written.
pub const IO_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest accepted request (a `set=1` with many allowed IPs fits easily).
pub const MAX_REQUEST: usize = 256 * 1024;

/// The directory of the status sockets: `QGW_RUN_DIR` if set, else [`STATUS_DIR`].
pub fn status_dir() -> PathBuf {
    std::env::var_os("QGW_RUN_DIR").map_or_else(|| PathBuf::from(STATUS_DIR), PathBuf::from)
}

/// The status socket path for interface `name`.
pub fn status_path(name: &str) -> PathBuf {
    status_dir().join(format!("{name}.sock"))
}

/// The UAPI socket path for interface `name`.
pub fn uapi_path(name: &str) -> PathBuf {
    Path::new(UAPI_DIR).join(format!("{name}.sock"))
}

/// A listening control socket; the socket file is removed on drop.
#[derive(Debug)]
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// Binds `path` with mode 0600 (its directory is created with `dir_mode` if missing). Fails if
    /// another process answers on `path`; replaces a stale socket file.
    pub fn bind(path: &Path, dir_mode: u32) -> io::Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("/"));
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is served by a running process", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        // Bind under a temporary name, restrict it, then rename: the socket is never reachable
        // with looser permissions.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, path)?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
        })
    }

    /// The socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next waiting connection with its request read (zeroizing: it may carry keys), or
    /// `None` if nobody is waiting. Errors concern one client only.
    pub fn accept(&self) -> Option<(UnixStream, io::Result<Zeroizing<String>>)> {
        let (mut stream, _) = self.listener.accept().ok()?;
        let request = prepare(&stream).and_then(|()| read_request(&mut stream));
        Some((stream, request))
    }
}

impl std::os::fd::AsFd for Listener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn prepare(stream: &UnixStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))
}

/// Reads up to an empty line (`\n\n`) or end of stream, at most [`MAX_REQUEST`] bytes.
///
/// A UAPI `set=1` carries private and preshared keys in hex, so the request lives in zeroizing
/// memory only: the read chunk is wiped, the buffer grows by copying into a new zeroizing buffer
/// (the old one is wiped as it drops), and the bytes become the returned string without a copy.
pub fn read_request(stream: &mut impl Read) -> io::Result<Zeroizing<String>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(256));
    let mut chunk = Zeroizing::new([0u8; 4096]);
    loop {
        if buf.ends_with(b"\n\n") || buf.as_slice() == b"\n" {
            break;
        }
        let n = stream.read(&mut chunk[..])?;
        if n == 0 {
            break;
        }
        if buf.len() + n > MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request too large",
            ));
        }
        if buf.len() + n > buf.capacity() {
            let want = (buf.len() + n).max(2 * buf.capacity()).min(MAX_REQUEST);
            let mut bigger = Zeroizing::new(Vec::with_capacity(want));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    match String::from_utf8(std::mem::take(&mut *buf)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
        }
    }
}

/// Sends `request` to the socket at `path` and returns the whole answer (client side).
pub fn query(path: &Path, request: &str) -> io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("qgw-ctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn binds_root_only_replaces_stale_and_refuses_live_sockets() {
        let d = scratch("bind");
        let path = d.join("x.sock");
        let l = Listener::bind(&path, 0o700).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&d), mode(&path)), (0o700, 0o600));
        let e = Listener::bind(&path, 0o700).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        // A stale socket file (its listener gone without cleanup) is replaced.
        std::mem::forget(l);
        let stale = UnixListener::bind(d.join("y.sock")).unwrap();
        drop(stale);
        let again = Listener::bind(&d.join("y.sock"), 0o700).unwrap();
        drop(again);
        assert!(!d.join("y.sock").exists(), "removed on drop");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn requests_end_at_a_blank_line_or_eof_and_are_capped() {
        let mut r: &[u8] = b"get=1\n\nignored";
        assert_eq!(read_request(&mut r).unwrap().as_str(), "get=1\n\nignored");
        let mut r: &[u8] = b"status";
        assert_eq!(read_request(&mut r).unwrap().as_str(), "status");
        let big = vec![b'a'; MAX_REQUEST + 10];
        assert!(read_request(&mut big.as_slice()).is_err());
    }

    /// A `set=1` carries private and preshared keys in hex: the request is read into a zeroizing
    /// string, so it is wiped when dropped. (The memory itself is not inspected.)
    #[test]
    fn requests_are_read_into_zeroizing_strings() {
        let mut r: &[u8] = b"set=1\nprivate_key=abab\n\n";
        let request: zeroize::Zeroizing<String> = read_request(&mut r).unwrap();
        assert_eq!(request.as_str(), "set=1\nprivate_key=abab\n\n");
        let mut r: &[u8] = b"set=1\n\xff\n\n";
        assert!(read_request(&mut r).is_err(), "not UTF-8");
    }
}
