//! The families the daemon's own parts add to the exposition ([`super::render`]): the audit
//! log, the control connections and the data path's offloads (docs/gateway-decisions.md §9).

use super::Text;
use crate::control::status::Status;

pub(super) fn audit(t: &mut Text, st: &Status) {
    let Some(a) = &st.audit else { return };
    t.family(
        "qgw_audit_records_total",
        "counter",
        "Audit records written.",
    );
    t.sample(&[], a.records);
    t.family(
        "qgw_audit_write_errors_total",
        "counter",
        "Audit records that could not be written.",
    );
    t.sample(&[], a.write_errors);
}

pub(super) fn control(t: &mut Text, st: &Status) {
    let name = "qgw_control_connections_dropped_total";
    let help = "Control connections the daemon closed, by socket and reason (evicted, timeout, too_large).";
    t.family(name, "counter", help);
    for (socket, reasons) in &st.control_dropped {
        for (reason, n) in reasons {
            t.sample(&[("socket", socket), ("reason", reason)], n);
        }
    }
}

pub(super) fn offloads(t: &mut Text, st: &Status) {
    let Some(o) = &st.offloads else { return };
    let name = "qgw_offload_in_use";
    t.family(
        name,
        "gauge",
        "Segmentation offloads in use (1), by name (docs/gateway-decisions.md §9).",
    );
    for offload in ["tun_vnet_hdr", "tun_tso", "tun_uso", "udp_gso", "udp_gro"] {
        let on = o.in_use.iter().any(|n| n == offload);
        t.sample(&[("offload", offload)], u8::from(on));
    }
    let name = "qgw_crypto_threads";
    t.family(
        name,
        "gauge",
        "Threads that seal and open packets, the packet thread included.",
    );
    t.sample(&[], o.crypto_threads);
    let counters = [
        (
            "qgw_tun_segmented_total",
            "TUN super-packets cut into tunnel-MTU packets.",
            o.tun_segmented,
        ),
        (
            "qgw_tun_coalesced_total",
            "Coalesced super-packets written to TUN.",
            o.tun_coalesced,
        ),
        (
            "qgw_udp_coalesced_total",
            "UDP receives that held several datagrams (UDP_GRO).",
            o.udp_coalesced,
        ),
        (
            "qgw_crypto_shared_batches_total",
            "Batches whose cipher work was shared among the crypto threads.",
            o.crypto_shared_batches,
        ),
        (
            "qgw_udp_send_dropped_total",
            "Sealed datagrams the UDP socket refused (send buffer full).",
            o.udp_send_dropped,
        ),
    ];
    for (name, help, n) in counters {
        t.family(name, "counter", help);
        t.sample(&[], n);
    }
    let name = "qgw_tun_refused_total";
    t.family(name, "counter", "TUN super-packets refused, by reason.");
    for (reason, n) in &o.tun_refused {
        t.sample(&[("reason", reason)], n);
    }
}
