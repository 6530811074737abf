#!/usr/bin/env bash
# Scenario (issue 12): two minutes of `kill -STOP` on procmond under the default configuration,
# as a local user able to signal it would do. Each cycle stops the current procmond for 20 s,
# polls `health-check` every second, and prints how long health stayed `ok` after the stop;
# then `kill -CONT` (harmless if the supervisor has replaced it) and 10 s of normal running.
# At the end it counts the `procmond_restarted` entries in an audit export.
#
# Run as root after `cargo build --workspace`:  tests/scenarios/stop-cont-health.sh [BIN_DIR]
set -euo pipefail
B=${1:-target/debug}
W=$(mktemp -d)
D=$W/data
"$B/daemoneye-agent" --data-dir "$D" >"$W/agent.out" 2>"$W/agent.err" &
AG=$!
trap 'kill $AG 2>/dev/null || true; wait $AG 2>/dev/null || true; rm -rf "$W"' EXIT
health() { "$B/daemoneye-cli" health-check --format json --data-dir "$D" || true; }
field() { python3 -c "import json,sys; v=json.load(sys.stdin)$1; print('' if v is None else v)"; }
sleep 15
end=$(($(date +%s) + 120))
cycle=0
while [ "$(date +%s)" -lt "$end" ]; do
  cycle=$((cycle + 1))
  P=$(health | field "['procmond']['pid']")
  if [ -z "$P" ]; then sleep 2; continue; fi
  kill -STOP "$P"
  t0=$(date +%s.%N)
  first=never
  for _ in $(seq 1 20); do
    sleep 1
    if [ "$first" = never ] && [ "$(health | field "['overall']")" != ok ]; then
      first=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
    fi
  done
  kill -CONT "$P" 2>/dev/null || true
  echo "cycle $cycle: procmond $P stopped; health not ok after ${first} s"
  sleep 10
done
"$B/daemoneye-cli" audit export --out "$W/export" --proofs 0 --data-dir "$D" >/dev/null
echo "procmond_restarted entries in the ledger: $(grep -c procmond_restarted "$W/export/entries.jsonl" || true)"
