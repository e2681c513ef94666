# redforge-edge image (a static binary on an empty base).
#   docker build -f packaging/docker/edge.Dockerfile -t redforge/edge .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/redforge-edge ./cmd/edge

FROM scratch
COPY --from=build /out/redforge-edge /redforge-edge
USER 10001
EXPOSE 1883 9464
VOLUME /data
ENTRYPOINT ["/redforge-edge", "--data-dir", "/data", "--listen", "0.0.0.0:9464"]
