# redforge-hub image. Build from the repository root:
#   docker build -f packaging/docker/hub.Dockerfile -t redforge/hub .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/redforge-hub ./cmd/hub \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/towerctl ./cmd/towerctl

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home /var/lib/redforge redforge \
 && mkdir -p /var/lib/redforge && chown redforge /var/lib/redforge
COPY --from=build /out/ /usr/local/bin/
USER redforge
EXPOSE 3000 7000 1884
VOLUME /var/lib/redforge
ENTRYPOINT ["/usr/local/bin/redforge-hub", "--data-dir", "/var/lib/redforge", "--mqtt-listen", "0.0.0.0:1884"]
