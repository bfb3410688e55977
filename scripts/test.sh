#!/usr/bin/env bash
# `make test`: vet, unit and integration tests with -race against real IdPs,
# then a short run of every fuzz target. Fails (never skips) when an IdP
# cannot be prepared, and fails when any test reports SKIP.
set -euo pipefail
cd "$(dirname "$0")/.."
# Fuzz by execution count, not wall time: Go 1.26 can report a spurious
# "context deadline exceeded" when a time budget ends mid-run (golang/go#75804).
FUZZTIME=${FUZZTIME:-3000x}
mkdir -p bin
log=bin/test.log

echo "== preparing real IdPs"
if [ ! -d tools/oidc/node_modules/oidc-provider ]; then
  npm ci --prefix tools/oidc --no-audit --no-fund
fi
tools/hydra/build.sh

echo "== preparing Chromium (the portal's browser test)"
if [ ! -x /usr/bin/chromium ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  if ! { command -v apt-get >/dev/null && $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium; }; then
    echo "could not install Chromium (Debian package chromium); the browser test needs /usr/bin/chromium" >&2
    exit 1
  fi
fi
/usr/bin/chromium --version 2>/dev/null

echo "== go vet"
go vet ./...
(cd examples/acmeidp && go vet ./...)

echo "== go test -race (full log: $log)"
set +e
go test -race -count=1 -v -timeout 15m ./... >"$log" 2>&1
rc=$?
set -e
grep -E '^(ok|FAIL|panic:|--- FAIL|--- SKIP|    --- FAIL|    --- SKIP)|^\s+\S+_test\.go:[0-9]+:' "$log" | grep -v -E '^\s+\S+_test\.go:[0-9]+: testidp: ' || true
passed=$(grep -c -E '^\s*--- PASS' "$log" || true)
failed=$(grep -c -E '^\s*--- FAIL' "$log" || true)
skipped=$(grep -c -E '^\s*--- SKIP' "$log" || true)
if [ "$rc" -ne 0 ]; then
  echo "go test failed (exit $rc); see $log"
  echo "tests: $passed passed, $failed failed, $skipped skipped"
  exit 1
fi
if [ "$skipped" -ne 0 ]; then
  echo "some tests were skipped; in CI a skip is a failure (a required service did not start?)"
  echo "tests: $passed passed, $failed failed, $skipped skipped"
  exit 1
fi
if [ "$passed" -eq 0 ]; then
  echo "no test ran"
  exit 1
fi

echo "== example third-party connector (examples/acmeidp, its own module)"
if ! (cd examples/acmeidp && go test -race -count=1 -v ./... >"../../bin/test-example.log" 2>&1); then
  grep -E '^(--- FAIL|FAIL|panic:)|_test\.go:[0-9]+:' bin/test-example.log || tail -30 bin/test-example.log
  echo "tests: $passed passed, 1 failed"
  exit 1
fi
ex_passed=$(grep -c -E '^\s*--- PASS' bin/test-example.log || true)
ex_skipped=$(grep -c -E '^\s*--- SKIP' bin/test-example.log || true)
if [ "$ex_skipped" -ne 0 ] || [ "$ex_passed" -eq 0 ]; then
  echo "examples/acmeidp: $ex_passed passed, $ex_skipped skipped (skips fail the run)"
  exit 1
fi
passed=$((passed + ex_passed))

echo "== fuzzing each target ($FUZZTIME executions)"
fuzzed=0
while IFS= read -r file; do
  dir=$(dirname "$file")
  for name in $(grep -o -E '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    echo "-- $name ($dir)"
    go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=100x "./$dir" >"bin/fuzz-$name.log" 2>&1 || {
      tail -n 30 "bin/fuzz-$name.log"
      echo "fuzz target $name failed; the failing input is in $dir/testdata/fuzz/$name/"
      echo "tests: $passed passed, 1 failed"
      exit 1
    }
    fuzzed=$((fuzzed + 1))
  done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz' . | sed 's|^\./||' | sort)
echo "fuzz targets run: $fuzzed"
echo "tests: $passed passed, $failed failed"
