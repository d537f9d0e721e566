# Sourced by the bench scripts: builds Drover and starts a server on a temporary
# data dir ($dir), stopped and removed when the script exits.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/build.sh >/dev/null
dir=$(mktemp -d)
./build/drover server --listen 127.0.0.1:0 --data "$dir" --log-level warn &
server=$!
trap 'kill -TERM $server; wait $server; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -s "$dir/endpoint" ] && break; sleep 0.1; done
