# redforge-edge image: one static binary on an empty base, non-root, for
# linux/amd64, linux/arm64 and linux/arm/v7. With docker buildx (BuildKit
# sets TARGETARCH and TARGETVARIANT, and the Go stage cross-compiles on
# the build machine's own platform):
#   docker buildx build -f packaging/docker/edge.Dockerfile \
#     --platform linux/amd64,linux/arm64,linux/arm/v7 -t redforge/edge .
# Without buildx (the classic builder), one platform at a time:
#   docker build -f packaging/docker/edge.Dockerfile --platform linux/arm64 \
#     --build-arg TARGETARCH=arm64 -t redforge/edge:arm64 .
#   docker build -f packaging/docker/edge.Dockerfile --platform linux/arm/v7 \
#     --build-arg TARGETARCH=arm --build-arg TARGETVARIANT=v7 -t redforge/edge:armv7 .
ARG GO_IMAGE=golang:1.26-bookworm
ARG BUILDPLATFORM=linux/amd64

FROM --platform=${BUILDPLATFORM} ${GO_IMAGE} AS build
ARG TARGETARCH=amd64
ARG TARGETVARIANT=
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN GOARM="${TARGETVARIANT#v}" CGO_ENABLED=0 GOOS=linux GOARCH="${TARGETARCH}" \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/redforge-edge ./cmd/edge \
 && sh packaging/docker/rootfs.sh /rootfs /data /out/redforge-edge

# runtime: packaging/docker/image_test.go builds this stage alone.
FROM scratch AS runtime
COPY --from=build /rootfs/base/ /
# COPY makes files root-owned; the data dir is created here for its owner.
COPY --from=build --chown=65532:65532 /rootfs/data/ /data/
USER 65532:65532
ENV REDFORGE_EDGE_DATA_DIR=/data \
    REDFORGE_EDGE_MQTT_LISTEN=0.0.0.0:1883 \
    REDFORGE_EDGE_LISTEN=0.0.0.0:9464
EXPOSE 1883 9464
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/redforge-edge"]
