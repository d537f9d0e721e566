#!/usr/bin/env bash
# Installs what Drover needs to build and test, from Debian's packages (and
# npm, for the JS SDK the end-to-end tests use). Idempotent: it installs only
# what is missing, and runs `apt-get update` only when something is.
set -euo pipefail

PACKAGES=(
  g++ cmake ninja-build pkg-config python3
  libboost1.81-dev libboost-json1.81-dev
  libsqlite3-dev libssl-dev libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev
  awscli    # AWS CLI v2 (/usr/bin/aws), a real client for the end-to-end tests
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
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
