"""The calibration of every test set of a probed run, as docs/results/face-tests.json.

    python bench/face_tests.py RUN [--out docs/results/face-tests.json] [--pictures docs/testsets]

For each test set by name, in percent (paper protocol): all_negative, random_best (the same
architecture with random weights, best unit of any stage, and per stage), stage1_best (the run's
best stage-1 unit), linear_best, kmeans_best, best (the run's best unit) and by_stage, ceiling
and giveaway (held-out half, with its own all-negative rate); with the run, its code version and
the construction of each set. `catneuron probe RUN` computes all of it. With --pictures, also a
picture of each set (32 random positives above 32 random distractors) as FOLDER/NAME.jpg.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from catneuron import config as C  # noqa: E402
from catneuron.files import replacing, safe_name, write_json  # noqa: E402
from catneuron.probe import testsets  # noqa: E402
from catneuron.probe.calibration import best_of, floor  # noqa: E402


def pct(x):
    return None if x is None else round(100 * x, 1)


def picture(name: str, cfg, folder: Path) -> None:
    """32 positives (top four rows) and 32 distractors of the set, a white line between."""
    ts = testsets.build(testsets.BY_NAME[name], cfg.model.input_size, cfg.model.channels, cfg.data.root,
                        cfg.probe.seed, max_positives=cfg.probe.max_positives or None)
    tiles = ts.images[testsets.sample_indices(ts, 32, cfg.probe.seed)]
    rows = [np.concatenate(list(tiles[r * 8:(r + 1) * 8]), 1) for r in range(len(tiles) // 8)]
    sheet = np.concatenate(rows[:4] + [np.full((4, rows[0].shape[1], tiles.shape[3]), 255, np.uint8)] + rows[4:])
    grey = sheet.shape[-1] == 1 or (np.array_equal(sheet[..., 0], sheet[..., 1]) and
                                    np.array_equal(sheet[..., 1], sheet[..., 2]))
    img = Image.fromarray(sheet[..., 0] if grey else sheet)
    folder.mkdir(parents=True, exist_ok=True)
    with replacing(folder / f"{safe_name(name)}.jpg") as tmp:
        img.save(tmp, format="JPEG", quality=88)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--out", default="docs/results/face-tests.json")
    ap.add_argument("--pictures", help="folder for a picture of each test set")
    args = ap.parse_args()
    results = json.loads((Path(args.run) / "probe" / "results.json").read_text())
    sets = {}
    for name, task in results["tasks"].items():
        fl, cal = floor(task), task.get("calibration", {})
        trained = {k: d for k, d in task["detectors"].items() if k.startswith("trained-")}
        stages = sorted({g.split("/")[0] for d in trained.values() for g in d["groups"]})
        sets[name] = {
            "construction": task["set"].get("construction", "letterbox"), "positives": task["set"]["positives"],
            "negatives": task["set"]["negatives"], "all_negative": pct(fl["all_negative"]),
            "random_best": pct(fl["random_best"]), "random_by_stage": {s: pct(v) for s, v in fl["random_by_stage"].items()},
            "stage1_best": pct(fl["stage1_best"]), "linear_best": pct(fl["linear_best"]),
            "kmeans_best": pct(fl["kmeans_best"]),
            "best": pct(best_of(task["detectors"], "trained")),
            "by_stage": {s: pct(best_of(task["detectors"], "trained", f"{s}/")) for s in stages},
            "ceiling": pct(cal.get("ceiling")), "giveaway": pct(cal.get("giveaway")),
            "heldout_all_negative": pct(cal.get("test_all_negative"))}
    write_json(Path(args.out), {"run": args.run, "code_version": results["code_version"],
                                "protocol": "paper (best of 20 thresholds, whole test set); ceiling and giveaway "
                                            "on the held-out half", "sets": sets})
    if args.pictures:
        cfg = C.from_dict(results["config"])            # the settings the probe built its sets with
        for name in sets:
            picture(name, cfg, Path(args.pictures))
    print(json.dumps(sets, indent=1))


if __name__ == "__main__":
    main()
