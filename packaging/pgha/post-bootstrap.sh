#!/bin/sh
# Patroni runs this once, on the first primary, with a connection string.
set -eu
psql "$1" -v ON_ERROR_STOP=1 -c "CREATE DATABASE redforge OWNER redforge"
