# shellcheck shell=bash
# demo.sh's gateway set-up (sourced by demo.sh, not run on its own): each site's X25519 and ML-DSA
# keys, its qgw YAML config (hybrid: on, qkd.policy: required, a new epoch every $ROTATION s,
# metrics, and the audit block when this qgw accepts it), checked with `qgw check-config`.
#
# Uses from demo.sh: STATE, BIN, ROTATION, METRICS_PORT, AUDIT_MODE, REJECT_AFTER; die and info from lib.sh.
# Sets: audit (1 when the sites write audit logs), audit_a, audit_b (their paths, or empty).
# shellcheck disable=SC2154 # the variables above are demo.sh's

# make_keys SITE...: $STATE/SITE.key/.pub (X25519) and .mldsa/.mldsa.pub (ML-DSA-65) for each
# site, private keys 0600.
make_keys() {
  (
    umask 077
    for s in "$@"; do
      "$BIN/qgw" genkey > "$STATE/$s.key"
      "$BIN/qgw" pubkey < "$STATE/$s.key" > "$STATE/$s.pub"
      "$BIN/qgw" genkey --mldsa > "$STATE/$s.mldsa"
      "$BIN/qgw" pubkey --mldsa < "$STATE/$s.mldsa" > "$STATE/$s.mldsa.pub"
    done
  )
}

site_config() { # out site peer-site underlay peer-underlay tunnel peer-tunnel kme [audit-log]
  local out=$1 s=$2 p=$3 S=${2^^} P=${3^^}
  cat > "$out" << EOF
interface:
  name: qgw-$s
  address: $6/24
  listen_port: 51820
  private_key_file: $STATE/$s.key
  mldsa_private_key_file: $STATE/$s.mldsa
  mtu: 1420
${REJECT_AFTER:+  danger_reject_after_seconds: $REJECT_AFTER}
qkd:
  kme_url: https://$8
  sae_id: SAE_$S
  ca_file: $STATE/pki/ca.pem
  cert_file: $STATE/pki/sae_$s.pem
  key_file: $STATE/pki/sae_$s.key
peers:
  - name: site-$p
    public_key: "$(cat "$STATE/$p.pub")"
    endpoint: $5:51820
    allowed_ips: [$7/32]
    hybrid: on
    mldsa_public_key_file: $STATE/$p.mldsa.pub
    qkd: { peer_sae_id: SAE_$P, policy: required }
    rekey_after_seconds: $ROTATION
metrics:
  listen: 127.0.0.1:$METRICS_PORT
EOF
  if [ -n "${9:-}" ]; then
    # The audit trail: one hash-chained JSON record a line, with checkpoints signed by the
    # site's mldsa_private_key_file (docs/audit.md); $audit_extra: more keys of the block.
    printf 'audit:\n  path: %s\n%s' "$9" "$audit_extra" >> "$out"
  fi
}

# probe_audit: sets audit and audit_extra. The audit log is newer than some qgw builds: probe
# whether this one accepts the block, first with a checkpoint every 5 s (so that even this short
# demo's logs carry signed checkpoints), then with the path alone.
probe_audit() {
  audit=0 audit_extra=''
  case "$AUDIT_MODE" in
    off) ;;
    on | auto)
      for audit_extra in $'  checkpoint_seconds: 5\n' ''; do
        site_config "$STATE/audit-probe.yaml" a b 10.200.0.1 10.200.0.2 10.201.0.1 10.201.0.2 127.0.0.1:8441 "$STATE/audit-probe.jsonl"
        if "$BIN/qgw" check-config "$STATE/audit-probe.yaml" > "$STATE/audit-probe.log" 2>&1; then audit=1; break; fi
      done
      rm -f "$STATE/audit-probe.yaml" "$STATE/audit-probe.jsonl"
      if [ "$audit" = 0 ] && [ "$AUDIT_MODE" = on ]; then
        die "QGW_DEMO_AUDIT=on but this qgw does not accept the audit block: $(tail -n 1 "$STATE/audit-probe.log")"
      fi
      ;;
    *) die "QGW_DEMO_AUDIT must be auto, on or off" ;;
  esac
}

# write_site_configs: $STATE/site-{a,b}.yaml, both accepted by `qgw check-config`.
write_site_configs() {
  probe_audit
  audit_a='' audit_b=''
  if [ "$audit" = 1 ]; then audit_a=$STATE/site-a.audit.jsonl audit_b=$STATE/site-b.audit.jsonl; fi
  site_config "$STATE/site-a.yaml" a b 10.200.0.1 10.200.0.2 10.201.0.1 10.201.0.2 127.0.0.1:8441 "$audit_a"
  site_config "$STATE/site-b.yaml" b a 10.200.0.2 10.200.0.1 10.201.0.2 10.201.0.1 10.200.0.1:8442 "$audit_b"
  for s in a b; do
    "$BIN/qgw" check-config "$STATE/site-$s.yaml" > "$STATE/check-config-$s.log" 2>&1 \
      || die "check-config site $s: $(cat "$STATE/check-config-$s.log")"
  done
  if [ "$audit" = 1 ]; then info "audit logs: $audit_a, $audit_b"; else info "audit log: not available in this qgw build (QGW_DEMO_AUDIT=$AUDIT_MODE)"; fi
}
