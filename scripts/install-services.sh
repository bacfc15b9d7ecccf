#!/usr/bin/env bash
# Installs what the tests start or talk to, idempotently: PostgreSQL and
# Redis from Debian's packages, the tansu Kafka-protocol broker from
# crates.io (cached in ~/.cargo/bin), the kafka-python client used to
# cross-check Eddy's Kafka connector, the aiosmtpd SMTP server the email
# receiver's test sends to, the OpenTelemetry protobuf definitions the
# OTLP trace receiver decodes with, the C libraries librdkafka builds
# against, and Chromium with its WebDriver for the dashboard's browser
# test. Tests start their own server instances on free loopback ports (see
# crates/eddy-testkit) and stop them when they end.
#
#   scripts/install-services.sh            everything
#   scripts/install-services.sh --no-broker  skip the (slow) broker build
set -euo pipefail

broker=1
[ "${1:-}" = "--no-broker" ] && broker=0

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=()
have_pkg() { dpkg -s "$1" >/dev/null 2>&1; }
for p in postgresql redis-server redis-tools libssl-dev zlib1g-dev pkg-config make chromium chromium-driver; do
  have_pkg "$p" || packages+=("$p")
done
if [ ${#packages[@]} -gt 0 ]; then
  echo "installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # The package starts a cluster on the default port; tests run their own.
  as_root service postgresql stop >/dev/null 2>&1 || true
  as_root service redis-server stop >/dev/null 2>&1 || true
fi

python3 -c 'import kafka, snappy, lz4, zstandard, aiosmtpd, opentelemetry.proto' 2>/dev/null ||
  python3 -m pip install -q 'kafka-python==3.0.*' python-snappy lz4 zstandard 'aiosmtpd==1.4.*' \
    'opentelemetry-proto==1.45.*'

if [ "$broker" = 1 ] && ! command -v tansu >/dev/null && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
  echo "building the tansu broker (about 15 minutes on 2 cores, once)"
  cargo install tansu --version 0.6.0 --locked --features dynostore --quiet
fi
