"""One row of the face-neuron study (issue "The face neuron"): a trained and probed run, summarized.

    python bench/face_neuron.py RUN --name NAME --command "CMD" [--control CONTROL_RUN]
                                [--out docs/results/face-neuron.json]

RUN must have been probed on the default face test with the random-weight and linear-filter
baselines (`catneuron probe RUN --set probe.tasks='["faces"]' --set probe.random_weights=true
--set probe.linear_filters=N ...`); CONTROL_RUN, if given, is the same recipe trained on the
face-free control corpus and probed alike. Replaces the row of the same name in OUT (a JSON list)
and prints it. Accuracies are percent, paper protocol (best of 20 thresholds on the whole test
set), except `heldout_top_stage_best` (threshold chosen on the validation half, scored on the rest);
`best_auc` and `random_best_auc` are the largest ROC AUC of any unit, trained and random weights.
"""
import argparse
import json
from pathlib import Path

from catneuron.files import read_jsonl

TASK = "faces"


def _detectors(run: Path) -> dict:
    results = json.loads((run / "probe" / "results.json").read_text())
    if TASK not in results["tasks"]:
        raise SystemExit(f"{run}: not probed on the {TASK!r} test (probe.tasks)")
    return results["tasks"][TASK]["detectors"]


def _best(groups: dict, stage: int | None = None, protocol: str = "paper") -> float:
    values = [g[protocol]["accuracy"] for name, g in groups.items() if stage is None or name.startswith(f"stage{stage}/")]
    return round(100 * max(values), 2)


def summarize(run: Path, name: str, command: str, control: Path | None) -> dict:
    detectors = _detectors(run)
    for needed in ("trained-whole", "random-whole", "linear"):
        if needed not in detectors:
            raise SystemExit(f"{run}: the probe has no {needed!r} detectors (random_weights, linear_filters)")
    trained, random = detectors["trained-whole"]["groups"], detectors["random-whole"]["groups"]
    last = read_jsonl(run / "metrics.jsonl")[-1]
    seed = json.loads((run / "config.json").read_text())["train"]["seed"]
    return {
        "name": name, "command": command, "seed": seed, "images": last["images"],
        "top_stage_best": _best(trained, 3), "stage1_best": _best(trained, 1), "stage2_best": _best(trained, 2),
        "random_best_anywhere": _best(random), "random_top_stage_best": _best(random, 3),
        "linear_best": round(100 * detectors["linear"]["paper"]["accuracy"], 2),
        "control_best": _best(_detectors(control)["trained-whole"]["groups"], 3) if control else None,
        "heldout_top_stage_best": _best(trained, 3, "heldout"),
        "all_negative": round(100 * detectors["trained-whole"]["all_negative"], 2),
        # more sensitive than accuracy while every unit sits near the all-negative rate
        "best_auc": round(detectors["trained-whole"]["best_auc"]["auc"], 3),
        "random_best_auc": round(detectors["random-whole"]["best_auc"]["auc"], 3),
        "structure": [round(last[f"stage{k}/structure"], 3) for k in (1, 2, 3)],
        "kurtosis": [round(last[f"stage{k}/kurtosis"], 2) for k in (1, 2, 3)],
        "duplicated": _duplicated(run),
    }


def _duplicated(run: Path) -> list[float]:
    """Per stage, the share of encoder filters with a near-copy at their own location (nn.structure)."""
    from catneuron.nn.structure import duplicated
    from catneuron.train.checkpoint import load_model
    model, _ = load_model(run)
    return [round(float(duplicated(stage.encoder.weight)), 3) for stage in model.stages]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--command", required=True, help="the training command, as run")
    ap.add_argument("--control", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/results/face-neuron.json"))
    args = ap.parse_args()
    row = summarize(args.run, args.name, args.command, args.control)
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    rows = [r for r in rows if r["name"] != row["name"]] + [row]
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    tmp.replace(args.out)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
