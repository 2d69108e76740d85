#!/bin/bash
# The default probe on a `tiny` run trained on 200 own JPEGs, with own test sets (issue "A researcher's
# own images"): the probe's wall time per source tree, each on a copy of the same run, fresh caches.
#   bench/probe_own_folder.sh OUT [TREE ...]      (TREE: a checkout of catneuron; default this one)
# Needs $CATNEURON_DATA (natural-64, faces-200). Appends "TREE seconds commit" lines to OUT/times.txt.
set -e
out=$(realpath -m "$1"); shift
here=$(cd "$(dirname "$0")/.." && pwd)
trees=("${@:-$here}")
py=${PYTHON:-$here/.venv/bin/python}
mkdir -p "$out" && cd "$out"
[ -d own ] || PYTHONPATH=$here $py - <<'PY'
import itertools
from pathlib import Path
from catneuron.data.sources import iter_records, resolve_all
for name, spec, n in (("own", "natural-64/extra", 200), ("pos", "faces-200/test", 100), ("neg", "natural-64/val", 100)):
    Path(name).mkdir()
    for k, (rec, _) in enumerate(itertools.islice(iter_records(resolve_all([spec], None)), n)):
        Path(name, f"{k:03d}.jpg").write_bytes(rec.require_image())
PY
[ -f run/model.safetensors ] || PYTHONPATH=$here $py -m catneuron.cli train --preset tiny --data own --out run \
    --no-progress > train.log 2>&1
for tree in "${trees[@]}"; do
  name=$(basename "$tree")
  rm -rf "run-$name" "cache-$name"; cp -r run "run-$name"
  start=$(date +%s.%N)
  CATNEURON_CACHE=$out/cache-$name PYTHONPATH=$tree $py -m catneuron.cli probe "run-$name" --positives pos \
      --negatives neg --no-progress > "probe-$name.log" 2>&1
  echo "$tree $(echo "$(date +%s.%N) - $start" | bc) s $(git -C "$tree" rev-parse --short HEAD)" >> times.txt
done
