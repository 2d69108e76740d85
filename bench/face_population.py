"""A linear read-out of each stage on the default face test: do a stage's units, taken together,
know faces when no single one does? (issue "The face neuron"; the paper's second result at our
scale: features that make a classifier better than the same network with random weights.)

    python bench/face_population.py RUN [RUN ...] [--out docs/results/face-population.json]

For each run: the probe's own default face test (LFW faces placed in natural scenes against
statistics-matched distractors; the probe's seed, 2,000 positives, the same validation half), each
stage's LCN output for the trained network and for the same architecture with random weights
(the probe's random-weights baseline, seeded alike), and the network's preprocessed input pixels.
A ridge classifier (features standardized; its L2 strength chosen among 10^0 ... 10^7 by
leave-one-out on the validation half, which ridge gets in closed form: seconds where a logistic
regression's cross-validation on 19,208 stage-1 features took minutes) is fitted on the validation
half and scored on the other half: percent correct (all-negative in the row) and ROC AUC. Rows replace those of the same
run in OUT (a JSON list) and are printed.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import RidgeClassifierCV
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from catneuron.files import write_json
from catneuron.network import Network, load_network
from catneuron.nn.autoencoder import DeepSparseAutoencoder, random_baseline
from catneuron.probe import testsets
from catneuron.provenance import code_version

TASK = "faces"
MAX_POSITIVES = 2000


def readout(x: np.ndarray, labels: np.ndarray, val: np.ndarray) -> dict:
    """Fit on the validation half, score on the rest."""
    clf = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(0, 7, 8)))
    clf.fit(x[val], labels[val])
    test = ~val
    score = clf.decision_function(x[test])
    return {"accuracy": round(100 * float(((score > 0) == labels[test]).mean()), 2),
            "auc": round(float(roc_auc_score(labels[test], score)), 3),
            "alpha": float(clf[-1].alpha_)}


def random_network(net: Network) -> Network:
    cfg = random_baseline(net.config.model)
    torch.manual_seed(net.config.train.seed)            # as the probe's random-weights baseline
    model = DeepSparseAutoencoder(cfg, device=net.device)
    return Network(model, net.config, net.weights)


def summarize(run: Path) -> dict:
    net = load_network(run)
    m = net.config.model
    ts = testsets.build(testsets.BY_NAME[TASK], m.input_size, m.channels, net.config.data.root,
                        net.config.probe.seed, max_positives=MAX_POSITIVES)
    labels, val = ts.labels, ts.val
    row = {"run": str(run), "task": TASK, "images": len(labels), "validation": int(val.sum()),
           "all_negative": round(100 * float(1 - labels[~val].mean()), 2), "code_version": code_version(),
           "pixels": readout(net.inputs(ts.images).flatten(1).cpu().numpy(), labels, val)}
    for name, network in (("trained", net), ("random", random_network(net))):
        for stage in range(1, len(m.stages) + 1):
            x = network.features(ts.images, f"stage{stage}/lcn").flatten(1).numpy()
            row[f"{name} stage{stage}"] = readout(x, labels, val)
            print(f"{run.name}: {name} stage {stage}: {row[f'{name} stage{stage}']}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/results/face-population.json"))
    args = ap.parse_args()
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    for run in args.runs:
        row = summarize(run)
        rows = [r for r in rows if r["run"] != row["run"]] + [row]
        write_json(args.out, rows)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
