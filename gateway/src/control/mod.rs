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
//! a live one makes startup fail. All of them are served by one non-blocking event loop
//! ([`server`]) that bounds each connection's request size and the time for its whole request and
//! whole answer ([`conn`]), and the connections open per socket; so a stuck or hostile client
//! costs other clients at most its connection slot, and the packet thread nothing.

pub mod conn;
pub mod exposition;
pub mod metrics;
pub mod server;
pub mod status;
mod status_classes;
mod status_sources;
pub mod uapi;

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Directory of the `qgw status` sockets (override with `QGW_RUN_DIR`).
pub const STATUS_DIR: &str = "/run/qgw";
/// Directory of the UAPI sockets, fixed by the cross-platform interface (wireguard.com/xplatform).
pub const UAPI_DIR: &str = "/var/run/wireguard";
/// Largest accepted request on the control sockets (a `set=1` with many allowed IPs fits easily).
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

    /// The next waiting connection (`WouldBlock` when none waits).
    pub fn accept(&self) -> io::Result<UnixStream> {
        self.listener.accept().map(|(s, _)| s)
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
}
