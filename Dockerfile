# Build a static binary, then ship it alone on a minimal non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/panelsync ./cmd/panelsync \
    && mkdir /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/panelsync /usr/local/bin/panelsync
# The data folder belongs to the user the server runs as: a new volume
# mounted there takes this ownership, so the server can write to it.
COPY --from=build --chown=65532:65532 /out/data /data
# Metrics listen on every interface of the container, for a scraper on the
# container network; publish only 8080 to the outside.
ENV PANELSYNC_ADDR=:8080 \
    PANELSYNC_METRICS_ADDR=:9090 \
    PANELSYNC_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080 9090
USER nonroot:nonroot
# The image has no shell or HTTP client: the binary checks its own /readyz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/panelsync", "ready"]
ENTRYPOINT ["/usr/local/bin/panelsync"]
CMD ["serve"]
