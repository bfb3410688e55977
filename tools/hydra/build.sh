#!/usr/bin/env bash
# Builds Ory Hydra v2.3.0 (with SQLite for the in-memory DSN) into
# tools/hydra/hydra, once; later runs reuse the binary.
set -euo pipefail
cd "$(dirname "$0")"
if [ -x ./hydra ] && ./hydra version 2>/dev/null | grep -q v2.3.0; then
  exit 0
fi
echo "building Ory Hydra v2.3.0 (first time only, ~3 minutes)..." >&2
CGO_ENABLED=1 go build -tags sqlite,sqlite_omit_load_extension \
  -ldflags "-X github.com/ory/hydra/v2/driver/config.Version=v2.3.0" -o hydra.tmp github.com/ory/hydra/v2
mv hydra.tmp hydra
