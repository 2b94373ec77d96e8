#!/usr/bin/env bash
# The suite against a remote target, on loopback (a benchmark, not a test: nothing here asserts).
#
#   bash bench/latency.sh                 # RTTS="0 10 50 100" PROFILE=v0.1 by default
#
# Runs the bundled suite behind the delaying proxy (`run --latency-ms`, half the RTT each way;
# every URL the harness follows goes through it, each case keeps its own source address) at each
# round-trip time, and prints the wall time of each run and how its verdicts and findings differ
# from the 0 ms run's (they must not). Writes the table to reports/runs/latency-<time>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

RTTS=${RTTS:-"0 10 50 100"}
PROFILE=${PROFILE:-v0.1}
cargo build --release --locked -q -p authmd-conformance
bin=target/release/authmd-conformance
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

table="| RTT | wall time | cases | verdicts and findings against 0 ms |\n| ---: | ---: | ---: | --- |\n"
for rtt in $RTTS; do
  one_way=$((rtt / 2))
  start=$EPOCHREALTIME
  "$bin" run --profile "$PROFILE" --latency-ms "$one_way" --out "$work/$rtt" >/dev/null 2>&1 || true
  wall=$(python3 -c "print(f'{$EPOCHREALTIME - $start:.2f}')")
  diff=$(python3 - "$work/0/report.json" "$work/$rtt/report.json" <<'PY'
import json, re, sys
def load(p):
    try:
        r = json.load(open(p))
    except OSError:
        return None
    # What varies between any two runs: ids, ports, instants, redaction hashes.
    norm = lambda s: re.sub(r'<redacted:[0-9a-f]+>|127\.0\.0\.1:\d+|(reg|cla|clm|cat)_[A-Za-z0-9_-]+|\d{4}-\d\d-\d\dT[\d:.]+Z|\d{10}', 'X', s)
    return {c["name"]: (c["verdict"], norm(json.dumps([[f.get("expected"), f.get("kind")] for f in c.get("findings", [])]))) for c in r["cases"]}
base, this = load(sys.argv[1]), load(sys.argv[2])
if base is None or this is None:
    print("no report"); sys.exit()
verdicts = [n for n in base if base[n][0] != this.get(n, (None, None))[0]]
findings = [n for n in base if n not in verdicts and base[n][1] != this.get(n, (None, None))[1]]
print("identical" if not verdicts and not findings else f"verdicts differ: {', '.join(verdicts) or 'none'}; findings differ: {', '.join(findings) or 'none'}")
PY
)
  cases=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['footer']['total'])" "$work/$rtt/report.json" 2>/dev/null || echo "?")
  printf "%4s ms  %6s s  %s cases  %s\n" "$rtt" "$wall" "$cases" "$diff"
  table+="| ${rtt} ms | $wall s | $cases | $diff |\n"
done
mkdir -p reports/runs
out="reports/runs/latency-$(date +%Y%m%d-%H%M%S).md"
printf "# The %s suite at each round-trip time (bundled server behind the delaying proxy)\n\n%b" "$PROFILE" "$table" >"$out"
echo "wrote $out"
