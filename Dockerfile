# switchboard container image.
#
#   docker build -t switchboard .
#   docker run -d --name switchboard -p 29340:29340 -v switchboard-data:/data switchboard
#
# Two stages: "builder" compiles the static, pure-Go binary (CGO off; the
# goolm tag gives end-to-end encryption without libolm) and lays out the
# image's whole file tree under /rootfs; the final stage is FROM scratch and
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
	&& mkdir -p /rootfs/etc/ssl/certs /rootfs/data /rootfs/tmp \
	&& cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
	&& chmod 0700 /rootfs/data \
	&& chmod 1777 /rootfs/tmp

# The final stage: everything below this line is also what
# contrib/docker/build-local.sh builds, with its "builder" being a
# directory prepared on the host.
FROM scratch
COPY --from=builder /rootfs/usr/local/bin/switchboard /usr/local/bin/switchboard
COPY --from=builder /rootfs/etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /rootfs/tmp /tmp
COPY --from=builder --chown=10001:10001 /rootfs/data /data
# A config written on first run listens on 127.0.0.1, which nobody outside
# the container reaches: the environment overrides appservice.listen.
ENV SWITCHBOARD_APPSERVICE_LISTEN=0.0.0.0:29340
USER 10001:10001
WORKDIR /data
VOLUME /data
EXPOSE 29340
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["-c", "/data/config.yaml"]
