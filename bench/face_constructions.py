"""What each way of building the face test lets pass without learning: one line per construction.

    python bench/face_constructions.py [--max-positives 2000] [--filters 5000] [--only NAME ...]

For each construction of the LFW-vs-Tiny-ImageNet test (the aligned letterboxed crops; the scene
with the face centred at full size; the scene with varied place and size but no statistics
matched; the default scene), built at the `small` input size: the best unit of the `small`
network with random weights (whole mode, paper protocol, overall and per stage), the best of
`--filters` training-patch linear filters, the giveaway check and the supervised ceiling
(catneuron/probe/calibration.py). Needs the default corpus (`catneuron data compose`) for the
linear filters. Prints a Markdown table and one JSON line per construction.
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch  # noqa: E402

from catneuron import config as C  # noqa: E402
from catneuron.nn.autoencoder import DeepSparseAutoencoder, random_baseline  # noqa: E402
from catneuron.probe import calibration, testsets  # noqa: E402
from catneuron.probe.detectors import LinearFilterDetectors, NetworkDetectors  # noqa: E402
from catneuron.probe.run import score, training_sample  # noqa: E402

FACES = testsets.BY_NAME["faces"]
CONSTRUCTIONS = {
    "aligned crops, letterboxed (the old default)": testsets.BY_NAME["faces-aligned"],
    "scene, face centred at full size, statistics matched": dataclasses.replace(
        FACES, scene=dataclasses.replace(FACES.scene, object_side=(1.0, 1.0), offset=0.0)),
    "scene, varied place and size, no statistics matched": dataclasses.replace(
        FACES, scene=dataclasses.replace(FACES.scene, match_statistics=False)),
    "scene, varied place and size, statistics matched (the default)": FACES,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-positives", type=int, default=2000)
    ap.add_argument("--filters", type=int, default=5000)
    ap.add_argument("--only", nargs="+", help="constructions whose name contains one of these words")
    args = ap.parse_args()
    cfg = C.preset("small")
    torch.manual_seed(cfg.train.seed)
    random_model = random_baseline(cfg.model)
    random_net = NetworkDetectors(DeepSparseAutoencoder(random_model), random_model, "whole")
    linear = LinearFilterDetectors.sample(*training_sample(cfg, args.filters, 1), random_net.field, 0)
    print("| construction | giveaway (all-negative) | ceiling | random weights, best unit (stage 1 / 2 / 3) "
          "| best linear filter |\n|---|---:|---:|---|---:|")
    rows = []
    for name, task in CONSTRUCTIONS.items():
        if args.only and not any(word in name for word in args.only):
            continue
        start = time.perf_counter()
        ts = testsets.build(dataclasses.replace(task, name=f"faces ({name})"), cfg.model.input_size,
                            max_positives=args.max_positives)
        cal = calibration.calibrate(ts)
        rand, _ = score(random_net, ts, progress=False)
        stages = [max(v["paper"]["accuracy"] for g, v in rand["groups"].items() if g.startswith(f"stage{s}/"))
                  for s in (1, 2, 3)]
        lin, _ = score(linear, ts, progress=False)
        row = {"construction": name, "giveaway": cal["giveaway"], "test_all_negative": cal["test_all_negative"],
               "ceiling": cal["ceiling"], "random_best": rand["paper"]["accuracy"], "random_by_stage": stages,
               "linear_best": lin["paper"]["accuracy"], "seconds": round(time.perf_counter() - start)}
        rows.append(row)
        print(f"| {name} | {100 * row['giveaway']:.1f} ({100 * row['test_all_negative']:.1f}) | "
              f"{100 * row['ceiling']:.1f} | {100 * row['random_best']:.1f} "
              f"({' / '.join(f'{100 * s:.1f}' for s in stages)}) | {100 * row['linear_best']:.1f} |", flush=True)
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
