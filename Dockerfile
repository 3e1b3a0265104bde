# One multi-stage build for both services: `docker build --target ingestion-storer .` or
# `--target ingestion-reloader`. The runtime images hold the stripped release binary, CA certificates
# and nothing else (no shell, no package manager), and run as a non-root user. No HEALTHCHECK: in
# Kubernetes the chart's probes on /-/health/* do that job (docker-compose.yml declares its own).
# The development machines have no Docker engine: deploy/image/build-offline.sh builds the same
# layout with buildah, and tests/deploy/test_image.py runs the binaries inside it as user 65532.
FROM rust:1.95-bookworm AS build
# Link zlib statically: the distroless runtime has glibc and libgcc, not libz.
ENV LIBZ_SYS_STATIC=1
# The build context has no .git: pass `--build-arg BSS_GIT_REVISION=$(git rev-parse --short=12 HEAD)`
# for --version, the start-up log line and bss_build_info to name the revision.
ARG BSS_GIT_REVISION=unknown
ENV BSS_GIT_REVISION=${BSS_GIT_REVISION}
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ingestion-storer -p ingestion-reloader -p bss-cli \
 && mkdir -p /out && cp target/release/ingestion-storer target/release/ingestion-reloader target/release/bss /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS ingestion-storer
COPY --from=build /out/ingestion-storer /app/ingestion-storer
# The operations toolkit runs with the storer's configuration: shipped beside it (the organizer CronJob
# and `kubectl debug` sessions use it).
COPY --from=build /out/bss /app/bss
USER 65532:65532
EXPOSE 3000 9090
ENTRYPOINT ["/app/ingestion-storer"]

FROM gcr.io/distroless/cc-debian12:nonroot AS ingestion-reloader
COPY --from=build /out/ingestion-reloader /app/ingestion-reloader
USER 65532:65532
EXPOSE 3000 9090
ENTRYPOINT ["/app/ingestion-reloader"]
