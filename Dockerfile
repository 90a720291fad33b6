# syntax=docker/dockerfile:1
#
# qgw container image: the `qgw` gateway (entrypoint) and the `qkd-kme-sim` KME simulator.
#
# Build (BuildKit; the cargo registry and target directory are cache mounts):
#   docker build -t qgw:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# Run a site gateway. qgw creates a TUN interface and routes, so it needs CAP_NET_ADMIN and
# /dev/net/tun; it runs as root inside the container with every other capability dropped.
# Host networking puts the tunnel interface and its routes on the host, where the hospital LAN
# traffic is routed (the usual way to run a site gateway):
#   docker run -d --name qgw-site-a --restart unless-stopped --network host \
#     --cap-drop ALL --cap-add NET_ADMIN --device /dev/net/tun \
#     --security-opt no-new-privileges --read-only --tmpfs /run:mode=0755 \
#     -v /etc/qgw:/etc/qgw:ro -v /var/log/qgw:/var/log/qgw \
#     qgw:0.1.0 up --config /etc/qgw/site-a.yaml
# With bridged networking (labs/tests: the interface then lives in the container's namespace):
#   docker run ... --cap-add NET_ADMIN --device /dev/net/tun -v /etc/qgw:/etc/qgw:ro \
#     -p 51820:51820/udp qgw:0.1.0 up --config /etc/qgw/qgw0.yaml
# Key files in /etc/qgw must be owned by root, mode 0600 (qgw refuses group/world-readable keys;
# without CAP_DAC_OVERRIDE root reads only files it owns). Status: docker exec qgw-site-a qgw status
#
# The simulator (no privileges needed):
#   docker run -d --name kme-sim --user 65534:65534 --no-healthcheck --network host \
#     -v /srv/kme-sim:/etc/kme-sim:ro --entrypoint qkd-kme-sim \
#     qgw:0.1.0 serve --config /etc/kme-sim/kme-sim.yaml --pki /etc/kme-sim/pki
#
# docs/operations.md has the full guide.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Only the workspace members (see .dockerignore): bench/ and fuzz/ are outside the workspace.
COPY Cargo.toml Cargo.lock ./
COPY keymix keymix
COPY qkd-link qkd-link
COPY gateway gateway
# The binaries are copied out of the cached target directory, which is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p gateway --bin qgw \
 && cargo build --release --locked -p qkd-link --features sim --bin qkd-kme-sim \
 && install -D -m 0755 target/release/qgw /out/qgw \
 && install -D -m 0755 target/release/qkd-kme-sim /out/qkd-kme-sim

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://example.invalid/qgw
LABEL org.opencontainers.image.title="qgw" \
      org.opencontainers.image.description="Hybrid post-quantum + QKD WireGuard-compatible VPN gateway for hospital site links, with the qkd-kme-sim ETSI GS QKD 014 KME simulator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# iproute2: qgw configures its interface with ip(8). Nothing else: the binaries link only glibc
# and libgcc_s (both in the base image); TLS to the KME trusts only qkd.ca_file, so no
# ca-certificates; qgw reaps its ip(8) children and handles SIGTERM itself, so no init (tini).
# Versions are not pinned: the Debian security archive replaces them (rebuild to update).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /out/qgw /out/qkd-kme-sim /usr/local/bin/

# Liveness from the metrics endpoint (`metrics.listen` in the config; set QGW_HEALTH_ADDR to it,
# IPv4 or host name). No curl in the image: bash's /dev/tcp sends the request.
ENV QGW_HEALTH_ADDR=127.0.0.1:9586
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>\"/dev/tcp/${QGW_HEALTH_ADDR%:*}/${QGW_HEALTH_ADDR##*:}\" && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 4 line <&3 && [[ $line == *' 200 '* ]]"]

# WireGuard UDP port and the metrics port of the example configs.
EXPOSE 51820/udp 9586/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["qgw"]
CMD ["up", "--config", "/etc/qgw/qgw0.yaml"]
