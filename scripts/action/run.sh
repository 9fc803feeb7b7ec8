#!/usr/bin/env bash
# Step 2 of the composite action (action.yml): run one kms-reconciler command on the
# caller's inventory and publish the exit code and report paths as step outputs.
#
# Every input arrives through the environment (never expanded into this script), and the
# free-form `args` input is split with Python's shlex: quotes are honoured, nothing is
# expanded or executed. The tool runs with PYTHONSAFEPATH=1 so the working directory (the
# caller's checkout, possibly a pull request) is never on its import path.
set -euo pipefail

temp="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"
venv="$temp/kms-reconciler-venv"
kmsr="$venv/bin/kms-reconciler"
output="${GITHUB_OUTPUT:-/dev/null}"
summary="${GITHUB_STEP_SUMMARY:-/dev/null}"
command="${KMSR_COMMAND:-}"
inventory="${KMSR_PATH:-keyspecs}"

fail() {
  echo "::error title=kms-reconciler action::$1"
  exit 1
}

[ -x "$kmsr" ] || fail "kms-reconciler is not installed at $kmsr (the install step did not run)"
case "$command" in
  plan | apply | drift | review | validate) ;;
  *) fail "input 'command' must be plan, apply, drift, review or validate, not '$command'" ;;
esac

report_dir="${KMSR_REPORT_DIR:-$temp/kms-reconciler-reports}"
mkdir -p "$report_dir"
report_dir="$(cd "$report_dir" && pwd -P)"

# The `args` input, split like a shell would but with nothing expanded.
args_file="$(mktemp)"
if ! "$venv/bin/python" -c '
import os, shlex, sys
try:
    words = shlex.split(os.environ.get("KMSR_ARGS", ""))
except ValueError as error:
    sys.exit(f"input args: {error}")
sys.stdout.write("".join(word + "\0" for word in words))
' > "$args_file"; then
  fail "input 'args' could not be split (unbalanced quotes?): ${KMSR_ARGS:-}"
fi
extra=()
while IFS= read -r -d '' word; do extra+=("$word"); done < "$args_file"
rm -f "$args_file"

selection=()
if [ -n "${KMSR_TARGET:-}" ]; then selection=(--target "$KMSR_TARGET"); fi
if [ -n "${KMSR_SHARD:-}" ]; then
  case "$command" in
    plan | apply | drift) selection+=(--shard "$KMSR_SHARD") ;;
    *) fail "input 'shard' is for plan, apply and drift, not $command" ;;
  esac
fi

markdown="" json="" sarif="" changes=""
stdout_file="$report_dir/$command.out"
case "$command" in
  validate)
    cmd=(validate "${selection[@]}" "${extra[@]}" "$inventory")
    ;;
  plan)
    markdown="$report_dir/plan.md" json="$report_dir/plan.json"
    stdout_file="$markdown"
    cmd=(plan "${selection[@]}" --out "$json" --format markdown --detailed-exitcode
      "${extra[@]}" "$inventory")
    ;;
  apply)
    json="$report_dir/apply.json"
    stdout_file="$json"
    cmd=(apply "${selection[@]}" --auto-approve --format json "${extra[@]}" "$inventory")
    ;;
  drift)
    markdown="$report_dir/drift.md" json="$report_dir/drift.json" sarif="$report_dir/drift.sarif"
    stdout_file="$markdown"
    cmd=(drift "${selection[@]}" --format markdown --report "json=$json" --report "sarif=$sarif"
      "${extra[@]}" "$inventory")
    ;;
  review)
    [ -n "${KMSR_BASE:-}" ] || fail "review needs input 'base' (a git ref) outside a pull_request event"
    markdown="$report_dir/review.md" json="$report_dir/review.json" sarif="$report_dir/review.sarif"
    stdout_file="$markdown"
    cmd=(review --base "$KMSR_BASE" --head HEAD "${selection[@]}" --format markdown
      --report "json=$json" --report "sarif=$sarif" "${extra[@]}" "$inventory")
    ;;
esac

echo "kms-reconciler ${cmd[*]}"
code=0
PYTHONSAFEPATH=1 "$kmsr" "${cmd[@]}" > "$stdout_file" || code=$?
# The report is also the step's log.
cat "$stdout_file"

if [ "$command" = plan ]; then
  case "$code" in
    0) changes=false ;;
    2) changes=true ;;
  esac
fi
if [ "${KMSR_STEP_SUMMARY:-true}" = true ] && [ -n "$markdown" ] && [ -s "$markdown" ]; then
  cat "$markdown" >> "$summary"
fi

for file_var in markdown json sarif; do
  if [ -n "${!file_var}" ] && [ ! -e "${!file_var}" ]; then
    printf -v "$file_var" '%s' ""  # not written (the command failed before reporting)
  fi
done
{
  echo "exit-code=$code"
  echo "changes=$changes"
  echo "report-dir=$report_dir"
  echo "markdown=$markdown"
  echo "json=$json"
  echo "sarif=$sarif"
} >> "$output"

case "$code" in
  0) exit 0 ;;
  2)
    if [ "$command" = plan ]; then exit 0; fi
    if [ "${KMSR_FAIL_ON_FINDINGS:-true}" = true ]; then
      echo "::error title=kms-reconciler $command::findings at or above --fail-on (exit 2); see the report"
      exit 2
    fi
    exit 0
    ;;
  *)
    echo "::error title=kms-reconciler $command::failed with exit code $code; see the log above"
    exit "$code"
    ;;
esac
