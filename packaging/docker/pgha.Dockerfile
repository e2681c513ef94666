# The highly available PostgreSQL of docker-compose.yml's "ha" profile, from
# Debian's packages as the test environment has them: Patroni 3.0 with
# PostgreSQL 15, etcd 3.4, PgBouncer. One image, three roles (the compose
# services choose the command). From the repository root:
#   docker build -f packaging/docker/pgha.Dockerfile -t redforge/pgha .
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE}
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		patroni postgresql-15 etcd-server etcd-client pgbouncer python3-psycopg2 ca-certificates curl \
	&& rm -rf /var/lib/apt/lists/* \
	&& mkdir -p /data && chown postgres:postgres /data
ENV PATH=/usr/lib/postgresql/15/bin:$PATH
USER postgres
WORKDIR /data
