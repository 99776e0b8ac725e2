# Multi-stage build: compile with the Rust toolchain, run from a small Debian image as non-root.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --shell /usr/sbin/nologin iocsink \
    && mkdir -p /etc/iocsink /var/log/iocsink /var/cache/iocsink \
    && chown iocsink /var/log/iocsink /var/cache/iocsink
COPY --from=build /src/target/release/iocsink /usr/local/bin/iocsink
# Port 53 without root: the binary gets CAP_NET_BIND_SERVICE, the process runs as iocsink.
RUN setcap cap_net_bind_service=+ep /usr/local/bin/iocsink
COPY config/feeds /etc/iocsink/feeds
USER iocsink
WORKDIR /var/lib/iocsink
EXPOSE 53/udp 53/tcp 9153/tcp
# Healthy while the DNS side answers (any answer, even SERVFAIL, means the process serves).
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["/usr/local/bin/iocsink", "probe", "--server", "127.0.0.1:53"]
# Mount your config at /etc/iocsink/iocsink.toml (deploy/iocsink.toml is one; deploy/compose.yaml
# runs it), e.g.:
#   docker run -v $PWD/my.toml:/etc/iocsink/iocsink.toml:ro -p 53:53/udp -p 53:53/tcp iocsink
ENTRYPOINT ["/usr/local/bin/iocsink"]
CMD ["serve", "--config", "/etc/iocsink/iocsink.toml"]
