# ackcheck in a container: the binary plus what it needs to install and start brokers itself
# (Java and Maven for Kafka, Pulsar and Kafka Streams; Go for NATS and Toxiproxy; Python for
# LocalStack through uv; iproute2 and nftables for partitions; RabbitMQ comes from apt when a run
# needs it, as root). Against brokers something else runs, use `run --external` with the
# presets in workloads/external/.
#
#   docker build -t ackcheck .
#   docker run --rm --privileged -v ackcheck-home:/var/lib/ackcheck ackcheck run workloads/quickstart.toml
#
# --privileged only for partition campaigns (network namespaces and nftables need it).
# NOT BUILT on the project's machine, which has no Docker engine; see README "Containers".

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM golang:1.24-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        openjdk-17-jdk-headless maven python3 python3-pip python3-venv \
        iproute2 nftables procps ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ackcheck /usr/local/bin/ackcheck
COPY workloads /opt/ackcheck/workloads
WORKDIR /opt/ackcheck
ENV ACKCHECK_HOME=/var/lib/ackcheck
VOLUME /var/lib/ackcheck
ENTRYPOINT ["ackcheck"]
CMD ["--help"]
