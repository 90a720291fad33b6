//! The daemon side of the control plane: both listeners of one interface, polled by the event loop,
//! and the dispatch of each request to [`super::status`] or [`super::uapi`].

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::metrics::Metrics;
use super::status::Status;
use super::uapi::{self, Device};
use super::{Listener, status_path, uapi_path};
use crate::proto::crypto::Entropy;
use crate::proto::interface::Interface;
use crate::proto::secret::Secret;
use crate::proto::tai64n::WallClock;

/// Connections served per listener per wake-up (the data path gets the rest of the time).
const PER_WAKE: usize = 4;

/// What the daemon adds to a [`Status`] beyond the WireGuard interface.
pub trait StatusExtra {
    /// The hybrid key agreement's view of peer `id`, if it is a hybrid peer.
    fn hybrid(&self, id: usize) -> Option<super::status::HybridView>;
    /// Fills the process, KME, audit and ops fields.
    fn annotate(&self, status: &mut Status);
}

/// The interface's control sockets and what answering them needs.
#[derive(Debug)]
pub struct Control {
    name: String,
    status: Listener,
    uapi: Option<Listener>,
    metrics: Option<Metrics>,
    /// Peer names by id.
    pub names: Vec<String>,
    private_key: Secret<32>,
    listen_port: u16,
    clock: WallClock,
    rekey_after: Option<Duration>,
}

impl Control {
    /// Binds the status socket and, if asked, the UAPI socket of interface `name` and the metrics
    /// endpoint.
    pub fn bind(
        name: &str,
        uapi: bool,
        metrics: Option<std::net::SocketAddr>,
        private_key: Secret<32>,
    ) -> std::io::Result<Self> {
        let status = Listener::bind(&status_path(name), 0o700)?;
        let uapi = match uapi {
            true => Some(Listener::bind(&uapi_path(name), 0o755)?),
            false => None,
        };
        let metrics = metrics.map(Metrics::bind).transpose()?;
        Ok(Self {
            name: name.to_owned(),
            status,
            uapi,
            metrics,
            names: Vec::new(),
            private_key,
            listen_port: 0,
            clock: super::status::wall_clock_now(),
            rekey_after: None,
        })
    }

    /// Records what the daemon decided after binding: UDP port, clock, off-spec rekey interval
    /// (applied to peers `wg set` adds).
    pub fn set_runtime(&mut self, listen_port: u16, clock: WallClock, rekey: Option<Duration>) {
        self.listen_port = listen_port;
        self.clock = clock;
        self.rekey_after = rekey;
    }

    fn status<R: Entropy>(
        &self,
        now: Instant,
        ifc: &Interface<R>,
        extra: &dyn StatusExtra,
    ) -> Status {
        let (n, p, names, c) = (&self.name, self.listen_port, &self.names, &self.clock);
        let mut st = Status::collect(now, n, p, ifc, names, c, &|id| extra.hybrid(id));
        extra.annotate(&mut st);
        st
    }

    /// The listeners' descriptors, to poll for readability (the status socket stands in for an
    /// absent one, so the caller's poll set has a fixed size).
    pub fn fds(&self) -> [BorrowedFd<'_>; 3] {
        let status = self.status.as_fd();
        [
            status,
            self.uapi.as_ref().map_or(status, AsFd::as_fd),
            self.metrics.as_ref().map_or(status, AsFd::as_fd),
        ]
    }

    /// Answers waiting requests (a few per listener). `extra` adds what the control plane does not
    /// own itself (hybrid state, ops tracker, KME and audit counters).
    pub fn serve<R: Entropy>(
        &mut self,
        now: Instant,
        ifc: &mut Interface<R>,
        extra: &dyn StatusExtra,
    ) {
        for _ in 0..PER_WAKE {
            let Some((stream, route)) = self.metrics.as_ref().and_then(Metrics::accept) else {
                break;
            };
            Metrics::respond(stream, route, &self.status(now, ifc, extra));
        }
        for _ in 0..PER_WAKE {
            let Some((mut s, req)) = self.status.accept() else {
                break;
            };
            let answer = match req {
                Ok(r) if r.trim() == "status" => {
                    let st = self.status(now, ifc, extra);
                    serde_json::to_string(&st).unwrap_or_default() + "\n"
                }
                Ok(_) => "{\"error\":\"unknown request\"}\n".to_owned(),
                Err(e) => {
                    debug!(error = %e, "status request unreadable");
                    continue;
                }
            };
            let _ = s.write_all(answer.as_bytes());
        }
        for _ in 0..PER_WAKE {
            let Some((mut s, req)) = self.uapi.as_ref().and_then(Listener::accept) else {
                break;
            };
            let Ok(req) = req else { continue };
            let mut dev = Device {
                private_key: &self.private_key,
                listen_port: self.listen_port,
                names: &mut self.names,
                clock: &self.clock,
            };
            let (answer, added) = uapi::handle(&req, now, ifc, &mut dev);
            for id in added {
                if let (Some(d), Some(p)) = (self.rekey_after, ifc.peer_mut(id)) {
                    p.set_rekey_after_time(d);
                }
                info!(
                    peer = self.names.get(id).map_or("?", String::as_str),
                    "peer added over UAPI"
                );
            }
            if req.starts_with("set=1") {
                info!(answer = answer.trim(), "UAPI set");
            }
            let _ = s.write_all(answer.as_bytes());
        }
    }
}
