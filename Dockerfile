# switchboard container image.
#
#   docker build -t switchboard .
#   docker run -d --name switchboard -p 29340:29340 -v switchboard-data:/data switchboard
#
# Two stages: "builder" compiles the static, pure-Go binary (CGO off; the
# goolm tag gives end-to-end encryption without libolm) and lays out the
# image's file trees under /rootfs and /userfs; the final stage is FROM scratch and
# holds nothing but that tree: the binary, the CA certificates, an empty
# /data (config, database, SMS spool) and /tmp. Where base images cannot be
# pulled, contrib/docker/build-local.sh builds the binary on the host and
# runs this file's final stage unchanged (see docs/guide/install.md).

ARG GO_IMAGE=golang:1.26

FROM ${GO_IMAGE} AS builder
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# docker build --build-arg VERSION=1.2.3 sets what `switchboard version` prints.
ARG VERSION
RUN CGO_ENABLED=0 go build -tags goolm -trimpath \
		-ldflags "-s -w ${VERSION:+-X main.Version=$VERSION}" \
		-o /rootfs/usr/local/bin/switchboard ./cmd/switchboard \
	&& mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /userfs/data \
	&& cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
	&& chmod 1777 /rootfs/tmp \
	&& chmod 0700 /userfs/data

# The final stage: everything from here on is also what
# contrib/docker/build-local.sh builds, its "builder" then being /rootfs
# (root's files) and /userfs (the container user's) prepared on the host.
# Each tree is copied whole so that the directories keep their modes.
FROM scratch
COPY --from=builder /rootfs/ /
COPY --from=builder --chown=10001:10001 /userfs/ /
# A config written on first run listens on 127.0.0.1, which nobody outside
# the container reaches: the environment overrides appservice.listen.
ENV SWITCHBOARD_APPSERVICE_LISTEN=0.0.0.0:29340
USER 10001:10001
WORKDIR /data
VOLUME /data
EXPOSE 29340
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["-c", "/data/config.yaml"]
