#!/usr/bin/env bash
# The GPU issue's device check in one command (bench/device_check.py says what it measures):
#   bash bench/device_check.sh OUT [--seconds 45] [--budget 540] [--quick]
# writes OUT/device-check.json and OUT/device-check.log; exit status 1 if a section failed.
set -uo pipefail
out=${1:?usage: bash bench/device_check.sh OUT [device_check.py options]}
mkdir -p "$out"
out=$(cd "$out" && pwd)
shift
cd "$(dirname "$0")/.."
PYTHONPATH=. "${PYTHON:-python3}" bench/device_check.py "$out" "$@" 2>&1 | tee "$out/device-check.log"
exit "${PIPESTATUS[0]}"
