# oortd and the oort CLI in a small image: built in a Rust image, run as a
# non-root user on Debian slim, data in a volume, health through grpc.health.v1.
#   docker build -t oort .
#   docker run -p 9081:9081 -v oort-data:/var/lib/oort oort
# The build step is scripts/build-release.sh, the same script CI runs.

FROM rust:1.95-slim-bookworm AS build
# librdkafka (the kafka connector) is built from source by its crate: make, a C++ compiler, perl, python3,
# and OpenSSL's headers (TLS and SASL SCRAM to brokers), found with pkg-config.
RUN apt-get update && apt-get install -y --no-install-recommends make g++ perl python3 libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/build-release.sh

FROM debian:bookworm-slim
# The system's CA certificates: TLS to brokers and services (rustls-platform-verifier reads them);
# OpenSSL's library, which librdkafka links for TLS to Kafka.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /var/lib/oort --shell /usr/sbin/nologin oort \
    && mkdir -p /var/lib/oort && chown oort:oort /var/lib/oort
COPY --from=build /src/target/dist/oortd /src/target/dist/oort /usr/local/bin/
USER oort
WORKDIR /var/lib/oort
VOLUME /var/lib/oort
# gRPC API, HTTP push, Prometheus metrics.
EXPOSE 9081 10081 9090
# The API listens on the container's interfaces in plaintext, which oortd
# refuses unless told: docker-compose.yml publishes it on the host's loopback
# only. Beyond one host, mount a certificate and set OORT_TLS_CERT and
# OORT_TLS_KEY instead (and drop OORT_ALLOW_INSECURE_LISTEN). Every call but
# health needs a token: the admin token is generated at the first start into
# /var/lib/oort/admin.token, where `oort` in the container finds it
# (docker compose exec oortd oort stream list), or set OORT_AUTH_TOKEN.
# /metrics, on a non-loopback address, needs the token too.
ENV OORT_LISTEN=0.0.0.0:9081 \
    OORT_ALLOW_INSECURE_LISTEN=true \
    OORT_DATA_DIR=/var/lib/oort \
    OORT_HTTP_PUSH_LISTEN=0.0.0.0:10081 \
    OORT_METRICS_LISTEN=0.0.0.0:9090 \
    OORT_SERVER=127.0.0.1:9081
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["oort", "health"]
ENTRYPOINT ["oortd"]
