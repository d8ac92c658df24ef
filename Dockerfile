# cstream image: Debian 12, two stages.
#
#   docker build -t cstream:local .          (docker-compose builds it for you)
#   docker run --rm cstream:local check scripts/aggregate.lua
#
# The build stage runs the same steps as a developer's machine — ./dev.sh,
# the project's one build script — so the image cannot build differently
# from what the tests test. The runtime stage gets only the run-time
# packages (`./dev.sh runtime-packages`: the shared libraries the binary
# links, libwebsockets' libuv plugin it loads with dlopen, lua-cjson, CA
# certificates): no compiler, no -dev package. tests/e2e/test_deploy.py
# checks both. Deployment: docs/deploy.md.
ARG DEBIAN_IMAGE=debian:12.11-slim

FROM ${DEBIAN_IMAGE} AS build
WORKDIR /src
# dev.sh alone first: the dependency layer is rebuilt only when dev.sh changes.
COPY dev.sh ./
RUN ./dev.sh deps-build
COPY . .
RUN ./dev.sh build && ./build/cstream version

FROM ${DEBIAN_IMAGE}
COPY --from=build /src/dev.sh /tmp/dev.sh
RUN /tmp/dev.sh deps-runtime && rm -rf /var/lib/apt/lists/* /tmp/dev.sh
RUN useradd --system --home-dir /opt/cstream --shell /usr/sbin/nologin cstream \
 && mkdir -p /opt/cstream && chown cstream:cstream /opt/cstream
COPY --from=build /src/build/cstream /usr/local/bin/cstream
COPY scripts/ /opt/cstream/scripts/
# Scripts are root's (read-only to the service); the working directory is
# the service's, for files cstream writes there (the ClickHouse sink's
# dead-letter file, clickhouse-dead-letter.jsonl).
WORKDIR /opt/cstream
USER cstream
# /metrics and /healthz when run with --metrics-port 9100 --metrics-host 0.0.0.0
EXPOSE 9100
ENTRYPOINT ["cstream"]
CMD ["--help"]
