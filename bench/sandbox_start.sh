#!/usr/bin/env bash
# How long it takes to start a trivial process in each sandbox Drover could use:
# a plain fork+exec (the floor), bubblewrap over an overlay of an image (what
# Drover does), and runc over the same root filesystem. Needs root, busybox-static,
# bubblewrap and runc (apt-get install runc). Usage: bash bench/sandbox_start.sh [N]
set -euo pipefail
n=${1:-100}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
rootfs=$dir/rootfs
mkdir -p "$rootfs"/{bin,proc,dev,tmp,etc}
cp "$(command -v busybox)" "$rootfs/bin/busybox"
ln -s busybox "$rootfs/bin/true"

ms() { echo $(( ($(date +%s%N) - $1) / 1000 )); }  # microseconds since $1
measure() {  # name, command...
  local name=$1; shift
  local t0 total=0
  for _ in $(seq "$n"); do
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    total=$(( total + $(ms "$t0") ))
  done
  awk -v name="$name" -v t="$total" -v n="$n" 'BEGIN { printf "%-44s %8.2f ms per start (n=%d)\n", name, t / n / 1000, n }'
}

overlay_bwrap() {
  local o=$dir/ovl; rm -rf "$o"; mkdir -p "$o"/{upper,work,merged}
  unshare --mount --propagation private sh -c "mount -t overlay overlay \
    -o lowerdir=$rootfs,upperdir=$o/upper,workdir=$o/work $o/merged && \
    bwrap --unshare-all --die-with-parent --bind $o/merged / --proc /proc --dev /dev \
      --tmpfs /tmp /bin/true"
}

runc_run() {
  local b=$dir/bundle
  if [ ! -f "$b/config.json" ]; then
    mkdir -p "$b" && cp -a "$rootfs" "$b/rootfs"
    (cd "$b" && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"\/bin\/true"/' config.json)
  fi
  runc run --bundle "$b" "bench-$RANDOM$RANDOM"
}

echo "sandbox start-up on $(nproc) cores, $(uname -r)"
measure "fork+exec /bin/true (floor)" /bin/true
measure "bubblewrap over an overlay (Drover)" overlay_bwrap
if command -v runc >/dev/null; then
  measure "runc run" runc_run
else
  echo "runc: not installed (apt-get install runc)"
fi
