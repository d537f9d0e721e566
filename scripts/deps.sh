#!/usr/bin/env bash
# Installs what Drover needs to build and test, from Debian's packages (and
# npm, for the JS SDK the end-to-end tests use). Idempotent: it installs only
# what is missing, and runs `apt-get update` only when something is.
set -euo pipefail

PACKAGES=(
  g++ cmake ninja-build pkg-config python3
  libboost1.81-dev libboost-json1.81-dev
  libsqlite3-dev libpq-dev libssl-dev libspdlog-dev libfmt-dev libcli11-dev libzstd-dev libjemalloc-dev
  libgtest-dev libgmock-dev
  awscli    # AWS CLI v2 (/usr/bin/aws), a real client for the end-to-end tests
  bubblewrap umoci  # job sandboxes over local images; OCI image layouts
  busybox-static    # the tests build a tiny image from it
  tar
  postgresql        # a throwaway PostgreSQL server for the PostgreSQL store's tests (scripts/pg.sh)
  # The fuzz stage (fuzz/run.sh): clang 14 and its runtimes. libFuzzer and the
  # sanitizer runtimes (libclang_rt.fuzzer*.a, asan, ubsan) come from
  # libclang-rt-14-dev, which clang only recommends (and we install without).
  clang libclang-rt-14-dev llvm  # llvm: llvm-symbolizer, for readable sanitizer stacks
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js + npm run the JS SDK end-to-end tests.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
# boto3/botocore: the image's pip ones (1.43) are preferred; Debian's are the fallback.
python3 -c 'import boto3, botocore' 2>/dev/null || missing+=(python3-boto3 python3-botocore)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# The JS SDK (@aws-sdk/client-batch, @aws-sdk/client-cloudwatch-logs) for the
# end-to-end tests, from the npm registry, at the versions package-lock.json pins.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$root/tests/js/package-lock.json" ] && [ ! -d "$root/tests/js/node_modules/@aws-sdk/client-batch" ]; then
  echo "deps: installing the JS SDK (npm ci in tests/js)"
  (cd "$root/tests/js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
