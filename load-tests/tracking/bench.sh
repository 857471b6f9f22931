#!/usr/bin/env bash
# Benchmark of the tracking endpoints with wrk on loopback: a release
# `broadside serve` on a fresh SQLite data directory with one imported
# campaign; opens and clicks of that campaign's recipients.
#
#   load-tests/tracking/bench.sh [duration=15s] [connections=64]
# needs: a release build (cargo build --release -p broadside), wrk, python3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
bin="${BROADSIDE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/broadside}"
duration="${1:-15s}"
connections="${2:-64}"
work="$(mktemp -d)"
secret="bench-secret-bench-secret-bench-secret-0123"
port=18081
export BROADSIDE_DATA_DIR="$work/data"
export BROADSIDE_API__LISTEN="127.0.0.1:$port"
export BROADSIDE_TRACKING__SECRET="$secret"
export BROADSIDE_METRICS__LISTEN=""
export BROADSIDE_LOG__LEVEL="warn"

python3 - "$work/recipients.csv" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("email,first_name,city,favourite_colour\n")
    for i in range(1000):
        f.write(f"r{i}@bench.example,R{i},Oslo,blue\n")
PY
"$bin" tenant create acme >/dev/null
"$bin" campaign create --tenant acme spring --definition "$root/templates/sample/campaign.toml" >/dev/null
"$bin" import --tenant acme --campaign spring "$work/recipients.csv" >/dev/null

"$bin" serve >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

open_token="$(python3 "$here/mint_token.py" "$secret" 1 1 1 1)"
click_token="$(python3 "$here/mint_token.py" "$secret" 2 1 1 1 0)"
curl -s -o /dev/null -w "open %{http_code}\n" "http://127.0.0.1:$port/t/o/$open_token"
curl -s -o /dev/null -w "click %{http_code} -> %{redirect_url}\n" "http://127.0.0.1:$port/t/c/$click_token"

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== wrk -t2 -c$connections -d$duration GET /t/o/<token>"
wrk -t2 -c"$connections" -d"$duration" --latency -H "User-Agent: Mozilla/5.0 (X11) Firefox/140.0" "http://127.0.0.1:$port/t/o/$open_token"
echo "== wrk -t2 -c$connections -d$duration GET /t/c/<token>"
wrk -t2 -c"$connections" -d"$duration" --latency "http://127.0.0.1:$port/t/c/$click_token"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
sleep 1
echo "tracking events stored: $(sqlite3 "$work/data/tenants/1.db" 'SELECT count(*) FROM c1_events WHERE kind >= 10' 2>/dev/null || echo '(sqlite3 not installed)')"
