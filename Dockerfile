# syntax=docker/dockerfile:1
# One image with every binary of the workspace; docker-compose.dev.yml picks
# the service with `command:`.

# --- build: compile all binaries once, in release -----------------------------
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target directory between builds, so
# a code change recompiles only the workspace crates.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        --bin gateway --bin config-center --bin token-service --bin mock-upstream \
 && mkdir -p /out \
 && for b in gateway config-center token-service mock-upstream; do cp "target/release/$b" /out/; done

# --- runtime: a small Debian with the binaries and curl for healthchecks ------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 aigw \
 && useradd --system --uid 10001 --gid aigw --home-dir /app --shell /usr/sbin/nologin aigw \
 && mkdir -p /app/data /app/journal \
 && chown aigw:aigw /app/data /app/journal
COPY --from=build /out/ /usr/local/bin/
WORKDIR /app
# Numeric, so a runtime can tell it is not root without reading /etc/passwd
# (Kubernetes' runAsNonRoot); deploy/k8s runs the pods as the same ids.
USER 10001:10001
ENV RUST_LOG=info BIND_ADDR=0.0.0.0
# The config-center keeps its SQLite file in /app/data (a volume in compose);
# the gateway journals unflushed metrics in /app/journal (JOURNAL_DIR's
# default, `journal`, relative to this working directory).
VOLUME ["/app/data"]
EXPOSE 8080 8000 9000
CMD ["gateway"]
