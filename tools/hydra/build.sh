#!/usr/bin/env bash
# Builds Ory Hydra v2.3.0 (with SQLite, for the in-memory DSN) into
# tools/hydra/hydra. The binary is also kept in the user cache
# (~/.cache/kmgate/) so a fresh clone on the same machine does not
# rebuild it; a machine without it builds from the Go module proxy
# (~3 minutes cold on 2 cores; needs gcc for cgo).
set -euo pipefail
cd "$(dirname "$0")"
want=v2.3.0
has_version() { # binary; grep -q in a pipe would SIGPIPE hydra under pipefail
  local v
  v=$("$1" version 2>/dev/null) || return 1
  [[ $v == *"$want"* ]]
}
if [ -x ./hydra ] && has_version ./hydra; then
  exit 0
fi
cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/kmgate
cached=$cache_dir/hydra-$want-$(go env GOOS)-$(go env GOARCH)-$(go env GOVERSION)-$(sha256sum go.sum | cut -c1-12)
if [ -x "$cached" ] && has_version "$cached"; then
  cp "$cached" ./hydra
  exit 0
fi
echo "building Ory Hydra $want (first time on this machine, ~3 minutes)..." >&2
CGO_ENABLED=1 go build -tags sqlite,sqlite_omit_load_extension \
  -ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$want" -o hydra.tmp github.com/ory/hydra/v2
mv hydra.tmp hydra
mkdir -p "$cache_dir"
cp hydra "$cached.tmp" && mv "$cached.tmp" "$cached"
