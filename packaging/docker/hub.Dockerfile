# redforge-hub image: the web console built in a Node stage and embedded in
# a static hub binary, with towerctl, on an empty base, as a non-root user.
# From the repository root (make image does this):
#   docker build -f packaging/docker/hub.Dockerfile -t redforge/hub .
# The base images are build arguments, so a site with its own registry
# mirror can name them (--build-arg GO_IMAGE=mirror.example/golang:1.26-bookworm).
ARG NODE_IMAGE=node:22-bookworm-slim
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${NODE_IMAGE} AS console
WORKDIR /src/console
COPY console/package.json console/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY console/ ./
RUN npm run build

FROM ${GO_IMAGE} AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=console /src/console/dist/ console/dist/
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/redforge-hub ./cmd/hub \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/towerctl ./cmd/towerctl \
 && sh packaging/docker/rootfs.sh /rootfs /var/lib/redforge /out/redforge-hub /out/towerctl

# runtime: packaging/docker/image_test.go builds this stage alone from a
# rootfs made by the same rootfs.sh, on the host's binaries.
FROM scratch AS runtime
COPY --from=build /rootfs/base/ /
# COPY makes files root-owned; the data dir is created here for its owner.
COPY --from=build --chown=65532:65532 /rootfs/data/ /var/lib/redforge/
USER 65532:65532
ENV HOME=/var/lib/redforge \
    REDFORGE_HUB=http://127.0.0.1:3000 \
    REDFORGE_LISTEN=0.0.0.0:3000 \
    REDFORGE_DATA_DIR=/var/lib/redforge \
    REDFORGE_MQTT_LISTEN=0.0.0.0:1884
EXPOSE 3000 7000 1884
VOLUME ["/var/lib/redforge"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/towerctl", "--timeout", "4s", "health"]
ENTRYPOINT ["/usr/local/bin/redforge-hub"]
