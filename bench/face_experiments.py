"""One face-neuron experiment: corpus -> training -> probe, appended to a results table.

    python bench/face_experiments.py NAME [--mix SRC=FRAC ...] [--steps 3000] [--set KEY=VALUE ...]
                                    [--root experiments] [--filters 20000]

Runs (and prints) the catneuron commands: `data compose` (when the mix is new), `train`, and a
faces-only `probe` of both modes with the standard baselines, then appends one JSON line to
ROOT/results.jsonl with the settings and the numbers (best trained neuron, random weights, linear
filter, first-layer neuron, held-out and AUC, and per stage: the best trained and random-weight
unit and the filter-structure score at the end of training and at initialization). Every step is
skipped when its output exists. The face test is LFW (probe task "faces").
"""
import argparse
import hashlib
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path


def run(cmd: list[str]) -> None:
    print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True)


def structure(run_dir: Path) -> dict:
    """Per stage: W1 and W2 structure at the last logged step and at initialization (metrics.jsonl)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    first, last = rows[0], rows[-1]
    return {f"stage{k}": {key: [round(first.get(f"stage{k}/{key}", float("nan")), 3),
                                round(last.get(f"stage{k}/{key}", float("nan")), 3)]
                          for key in ("structure", "decoder_structure", "localization")} for k in (1, 2, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("--mix", action="append", default=[])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--root", default="experiments")
    ap.add_argument("--filters", type=int, default=20000)
    ap.add_argument("--modes", default='["whole","field"]')
    ap.add_argument("--kmeans", type=int, default=300)
    ap.add_argument("--corpus", help="an existing corpus to train on (instead of composing --mix)")
    ap.add_argument("--probe-set", dest="probe_sets", action="append", default=[],
                    help="extra probe settings, e.g. probe.max_positives=3000")
    args = ap.parse_args()
    root = Path(args.root)
    cli = [sys.executable, "-m", "catneuron.cli"]
    mix = args.mix or ["natural-64/train=0.98", "faces-200/pool=0.02"]
    corpus = root / "corpora" / hashlib.sha1(" ".join(sorted(mix)).encode()).hexdigest()[:10]
    if args.corpus:
        corpus = Path(args.corpus)
    elif not (corpus / "manifest.json").exists():
        run([*cli, "data", "compose", "--no-progress", *sum((["--mix", m] for m in mix), []), "--out", str(corpus)])
    out = root / "runs" / args.name
    sets = sum((["--set", s] for s in args.overrides), [])
    start = time.time()
    if not (out / "model.safetensors").exists():
        run([*cli, "train", "--preset", "small", "--data", str(corpus), "--out", str(out), "--steps", str(args.steps),
             "--no-progress", *(["--resume"] if out.exists() else []), *sets])
    trained = time.time() - start
    run([*cli, "probe", str(out), "--no-progress", "--set", "probe.tasks=faces", "--set", f"probe.linear_filters={args.filters}",
         "--set", f"probe.kmeans_centroids={args.kmeans}", "--set", "probe.kmeans_images=10000", "--set",
         f"probe.modes={args.modes}", *sum((["--set", s] for s in args.probe_sets), [])])
    faces = json.loads((out / "probe" / "results.json").read_text())["tasks"]["faces"]["detectors"]

    def best(prefix, group=None):
        rows = []
        for key, d in faces.items():
            if key.startswith(prefix):
                rows += [v for g, v in d["groups"].items() if g.startswith(group)] if group else [d]
        if not rows:
            return None
        top = max(rows, key=lambda r: r["paper"]["accuracy"])
        held = max(rows, key=lambda r: r["heldout"]["val_accuracy"])
        return {"accuracy": top["paper"]["accuracy"], "auc": top["paper"]["auc"], "detector": top["paper"]["detector"],
                "heldout": held["heldout"]["accuracy"], "heldout_auc": held["heldout"]["auc"]}

    row = {"name": args.name, "mix": mix, "steps": args.steps, "overrides": args.overrides,
           "train_seconds": round(trained), "trained": best("trained-"), "random": best("random-"),
           "linear": best("linear"), "first_layer": best("trained-", "stage1/"),
           "by_stage": {f"stage{k}": best("trained-", f"stage{k}/")["accuracy"] for k in (1, 2, 3)},
           "random_by_stage": {f"stage{k}": best("random-", f"stage{k}/")["accuracy"] for k in (1, 2, 3)},
           "structure": structure(out)}
    with open(root / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
