# Build a static binary, then ship it alone on a minimal non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/panelsync ./cmd/panelsync

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/panelsync /usr/local/bin/panelsync
# Metrics listen on every interface of the container, for a scraper on the
# container network; publish only 8080 to the outside.
ENV PANELSYNC_ADDR=:8080 \
    PANELSYNC_METRICS_ADDR=:9090 \
    PANELSYNC_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080 9090
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/panelsync"]
CMD ["serve"]
