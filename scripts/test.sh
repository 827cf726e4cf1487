#!/usr/bin/env bash
# The whole test suite, with everything it needs installed first. This is the README's test
# command and what .ci/run calls; it must work on a fresh machine of the project's kind.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python packages used by end-to-end tests (real OTLP clients, API fuzzing, scorers).
python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt

# Debian packages: a real browser and its WebDriver for the dashboard tests, iproute2's `ss`
# as the reference for socket counts, Prometheus' promtool for the deployment checks, Go and
# Gin for the fault lab's services (lab/go, built offline in GOPATH mode against
# /usr/share/gocode by scripts/lab/run.py).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/gin-gonic/gin ] || missing+=(golang-github-gin-gonic-gin-dev)
# A C compiler for the full-disk test's preloaded ENOSPC library (tests/e2e/fault/enospc.c),
# and setpriv to run the agent as `nobody` where a test needs permissions to bite under root.
command -v cc >/dev/null 2>&1 || missing+=(gcc)
# make (and cc) build jemalloc, the agent binary's allocator (tikv-jemalloc-sys).
command -v make >/dev/null 2>&1 || missing+=(make)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# Every deployment file against its validator, and the real binary's /metrics against real
# Prometheus parsers (deploy/check.py says what each check is). The binary is the one the
# end-to-end tests use, so building it first costs the suite nothing.
cargo build --locked -p faultline
python3 deploy/check.py --binary "${CARGO_TARGET_DIR:-target}/debug/faultline"

cargo test --workspace --locked
