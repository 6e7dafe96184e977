# syntax=docker/dockerfile:1
# lalo — container image. Build: docker build -t lalo .   Run: see docker-compose.yml and the README.
#
# Stage 1 builds the release binary with the Rust toolchain the crate asks for (rust-version 1.94, lancedb's minimum)
# and protoc with protobuf's .proto includes (for the retrieval index's protobuf code) and libclang (for pg_query's bindings). Stage 2 is a slim Debian of the same release,
# so the binary's glibc matches, with only CA certificates, curl for the health check, and a
# non-root user.

ARG RUST_VERSION=1.94
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole source tree (.dockerignore keeps target/, data/ and client modules out): the binary
# embeds lalo.toml, policies/ and catalog/docs/ as its demo defaults, and Cargo.toml names tests/.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin lalo \
 && install -D -m 0755 target/release/lalo /out/lalo

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 lalo \
 && useradd --system --uid 10001 --gid lalo --home-dir /var/lib/lalo --shell /usr/sbin/nologin lalo \
 && install -d -o lalo -g lalo -m 0750 /var/lib/lalo
COPY --from=builder /out/lalo /usr/local/bin/lalo
# Defaults baked into the image; docker-compose.yml mounts the same files from the repository
# read-only, so editing them on the host needs no rebuild (policies reload on change).
COPY deploy/lalo.toml /etc/lalo/lalo.toml
COPY policies/ /etc/lalo/policies/
COPY catalog/ /etc/lalo/catalog/
COPY dialects/ /etc/lalo/dialects/
COPY deploy/catalog/sources.toml /etc/lalo/catalog/sources.toml

USER lalo:lalo
WORKDIR /var/lib/lalo
# Generated demo data and the audit log; keep it on a volume so the audit chain survives restarts.
VOLUME ["/var/lib/lalo"]
# 6432: PostgreSQL wire protocol. 6480: /healthz, /readyz, /metrics, /mcp.
EXPOSE 6432 6480
ENV LALO_LOG=info
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:6480/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/lalo"]
CMD ["serve", "--config", "/etc/lalo/lalo.toml"]
