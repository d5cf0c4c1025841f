# syntax=docker/dockerfile:1
#
# The reco image: one static binary on a distroless base, running as a non-root
# user. Every service runs it with its own target:
#
#   docker build -t toutiao-reco/reco:dev .
#   docker run --rm -p 9999:9999 toutiao-reco/reco:dev                          # all six, embedded storage
#   docker run --rm -e RECO_... toutiao-reco/reco:dev serve --target=routing    # one service
#   docker run --rm toutiao-reco/reco:dev config env                            # every config key and its env var
#
# Configuration is environment variables only (RECO_*, see `reco config env`);
# the defaults below make a container listen on all its interfaces and keep its
# state under /var/lib/reco.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: they change less often than the code, so this layer is cached.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Static (no cgo: bbolt, go-redis and the Thrift client are pure Go), stripped,
# reproducible paths.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/reco ./cmd/reco
# The state directories (models; the event log's spill of routing and
# recocenter), created here because the runtime image has no shell; named
# volumes mounted on them start with this ownership, which a volume Docker
# created itself (root's) would not give.
RUN mkdir -p /out/var/lib/reco/models /out/var/lib/reco/spill

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/reco /usr/local/bin/reco
COPY --from=build --chown=65532:65532 /out/var/lib/reco /var/lib/reco
WORKDIR /var/lib/reco
ENV RECO_SERVER_GRPC_ADDR=0.0.0.0:9999 \
    RECO_SERVER_METRICS_ADDR=0.0.0.0:9100 \
    RECO_SERVER_HTTP_ADDR=0.0.0.0:9998 \
    RECO_STORAGE_EMBEDDED_PATH=/var/lib/reco/reco.db \
    RECO_SORT_MODEL_DIR=/var/lib/reco/models
USER 65532:65532
# routing, recocenter, recall, sort, cache, nearline (gRPC), /metrics, routing's
# HTTP/JSON gateway and nearline's A/B readout; which of them a container uses
# is its RECO_SERVER_GRPC_ADDR, RECO_SERVER_METRICS_ADDR and (routing,
# nearline) RECO_SERVER_HTTP_ADDR.
EXPOSE 9999 10001 10002 10003 10004 10005 9100 9101 9102 9103 9104 9105 9998 9997
# Checks whatever address RECO_SERVER_GRPC_ADDR says this container serves on.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["/usr/local/bin/reco", "health"]
# SIGTERM: health turns NOT_SERVING, in-flight calls drain (server.drain_timeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/reco"]
CMD ["serve", "--target=all"]
