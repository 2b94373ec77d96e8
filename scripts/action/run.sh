#!/usr/bin/env bash
# The run step of the GitHub Action (`action.yml`): runs the suite with the action's inputs
# (INPUT_TARGET, INPUT_CONFIG, INPUT_PROFILE, INPUT_BASELINE, INPUT_ARGS, INPUT_OUT), appends
# summary.md to the job summary, turns each FAIL, WARN and INCONCLUSIVE into an annotation (a
# FAIL the baseline lists into a notice), writes the outputs `exit-code` and `report-dir`, and
# exits with the suite's exit code (0 pass, 1 conformance failures, 2 usage or config, 3 the
# harness could not decide, 4 nothing selected). AUTHMD_BIN names the binary (tests use it).
set -uo pipefail

bin=${AUTHMD_BIN:-authmd-conformance}
out=${INPUT_OUT:-authmd-reports}
args=(run --out "$out")
[ -n "${INPUT_TARGET:-}" ] && args+=(--target "$INPUT_TARGET")
[ -n "${INPUT_CONFIG:-}" ] && args+=(--config "$INPUT_CONFIG")
[ -n "${INPUT_PROFILE:-}" ] && args+=(--profile "$INPUT_PROFILE")
[ -n "${INPUT_BASELINE:-}" ] && args+=(--baseline "$INPUT_BASELINE")
if [ -n "${INPUT_ARGS:-}" ]; then
  # Whitespace-separated words, never evaluated by a shell.
  read -r -a extra <<<"$INPUT_ARGS"
  args+=("${extra[@]}")
fi

"$bin" "${args[@]}"
code=$?

if [ -f "$out/summary.md" ] && [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$out/summary.md" >>"$GITHUB_STEP_SUMMARY"
fi
if [ -f "$out/report.json" ]; then
  python3 - "$out/report.json" "${INPUT_BASELINE:-}" <<'PY' || echo "::warning title=authmd-conformance::could not read $out/report.json for annotations"
import json, sys, tomllib

def escape(text, prop=False):
    # Workflow-command escaping: data always, and ':' ',' in properties.
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text

report = json.load(open(sys.argv[1], encoding="utf-8"))
known = {}
if sys.argv[2]:
    with open(sys.argv[2], "rb") as f:
        known = {k["case"]: k.get("reason", "") for k in tomllib.load(f).get("known-failure", [])}
for case in report.get("cases", []):
    verdict = case.get("verdict")
    findings = case.get("findings") or []
    first = findings[0] if findings else {}
    why = f'{first.get("step", "")}: expected {first.get("expected", "")} (found {first.get("found", "")})' if first else str(case.get("reason", ""))
    requirements = ", ".join(case.get("requirements", []))
    title = f'{verdict} {case["name"]} ({requirements})'
    if verdict == "FAIL" and case["name"] in known:
        command, message = "notice", f"known failure (baseline): {known[case['name']]}"
    elif verdict == "FAIL":
        command, message = "error", why
    elif verdict == "WARN":
        command, message = "warning", why
    elif verdict == "INCONCLUSIVE":
        command, message = "warning", f"inconclusive: {why}"
    else:
        continue
    print(f"::{command} title={escape(title, True)}::{escape(message[:2000])}")
PY
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  { echo "exit-code=$code"; echo "report-dir=$out"; } >>"$GITHUB_OUTPUT"
fi
exit "$code"
