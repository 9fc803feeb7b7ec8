#!/usr/bin/env bash
# Step 1 of the composite action (action.yml): install kms-reconciler from the action's own
# directory, the commit the caller pinned, into a virtual environment under the runner's
# temp directory. Nothing is installed from the caller's checkout, and the job's Python
# stays as it was: only a `kms-reconciler` command is added to the PATH of later steps.
set -euo pipefail

: "${ACTION_PATH:?is not set (the directory of the action)}"
temp="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"
venv="$temp/kms-reconciler-venv"
bin="$temp/kms-reconciler-bin"
source_id="$(cd "$ACTION_PATH" && pwd -P)"

if [ -x "$venv/bin/kms-reconciler" ] && [ "$(cat "$venv/.installed-from" 2>/dev/null)" = "$source_id" ]; then
  echo "kms-reconciler is already installed from $source_id"
else
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$ACTION_PATH"
  printf '%s' "$source_id" > "$venv/.installed-from"
fi

mkdir -p "$bin"
ln -sf "$venv/bin/kms-reconciler" "$bin/kms-reconciler"
if [ -n "${GITHUB_PATH:-}" ]; then
  echo "$bin" >> "$GITHUB_PATH"
fi
"$venv/bin/kms-reconciler" --version
