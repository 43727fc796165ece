# Both binaries in one image: `silt` (server, CLI) and `silt-agent`.
#   docker build -t ghcr.io/silt-logs/silt:latest .
# Not built or published by CI yet; deploy/ refers to the tag above.

FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p silt -p silt-agent \
 && install -D -m 0755 target/release/silt target/release/silt-agent -t /out/

# Debian slim rather than distroless: the agent's journal source runs `journalctl`
# (package systemd). Runs as uid 65532 unless the pod says otherwise (the agent
# DaemonSet runs as root to read host logs).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends systemd ca-certificates \
 && rm -rf /var/lib/apt/lists/*
USER 65532:65532
COPY --from=build /out/silt /out/silt-agent /usr/local/bin/
EXPOSE 3100 9080
ENTRYPOINT ["/usr/local/bin/silt"]
CMD ["server", "--config", "/etc/silt/config.yaml"]
