"""`catneuron classify train | compare | predict`: supervised use of the features (docs/classify.md)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from catneuron.cli.common import DEVICE_HELP, build_config, config_args, device, progress_arg, run_config
from catneuron.errors import CatneuronError, DataError

log = logging.getLogger(__name__)

TASK_HELP = "tiny-imagenet (200 wnids), four-way (faces/cat faces/bodies/natural) or a folder of class folders"


def add_classify(sub) -> None:
    cls = sub.add_parser("classify", help="supervised use of the features: classifiers on the top layer, then "
                                          "fine-tuning (docs/classify.md)")
    group = cls.add_subparsers(dest="classify_command", required=True)

    p = group.add_parser("train", help="train a classifier on the features of a run and save it")
    config_args(p, "small")
    p.add_argument("run", nargs="?", help="run directory of the trained network (not needed for --init pixels)")
    p.add_argument("--task", required=True, help=TASK_HELP)
    p.add_argument("--init", choices=["pretrained", "random", "pixels"], default="pretrained",
                   help="start from the run's weights, the same architecture at random, or raw pixels")
    p.add_argument("--out", required=True, help="directory for classifier.safetensors")
    p.add_argument("--device", help=DEVICE_HELP)
    p.set_defaults(func=cmd_train)

    p = group.add_parser("compare", help="the paper's table: pretrained vs random init vs raw pixels, frozen and "
                                         "fine-tuned")
    config_args(p, None)
    p.add_argument("run", help="run directory of the trained network")
    p.add_argument("--task", required=True, help=TASK_HELP)
    p.add_argument("--out", required=True, help="directory for results.json, table.md and the classifiers")
    p.add_argument("--device", help=DEVICE_HELP)
    p.set_defaults(func=cmd_compare)

    p = group.add_parser("predict", help="classify images or folders of images with a saved classifier")
    progress_arg(p)
    p.add_argument("classifier", help="directory written by classify train/compare")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--out", help="CSV file (default: standard output)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default auto)")
    p.set_defaults(func=cmd_predict)


def cmd_train(args) -> None:
    from catneuron.classify.datasets import load_task
    from catneuron.classify.experiment import train_one
    from catneuron.train.checkpoint import model_config
    if args.init == "pretrained" and not args.run:
        raise CatneuronError("classify train: give the run directory of the trained network (or --init random/pixels)")
    # with a run, every start (random weights and pixels too) has its input and architecture
    cfg = run_config(args) if args.run else build_config(args, "small")
    if args.run:
        cfg.model = model_config(args.run).model
    cfg.train.device = device(args, cfg)
    m, c = cfg.model, cfg.classify
    data = load_task(args.task, m.input_size, m.channels, cfg.data.root, c.per_class, c.seed, not args.no_progress)
    train, val = data.halves(c.seed)
    result = train_one(args.init, args.run, cfg, train, val, Path(args.out),
                       {"run": str(Path(args.run).resolve()) if args.run else None, "task": args.task,
                        "train_images": len(train), "validation_images": len(val)},
                       progress=not args.no_progress)
    tuned = f", fine-tuned {100 * result['finetuned']:.2f} %" if "finetuned" in result else ""
    print(f"{args.task}: {len(data.classes)} classes; validation top-1 frozen {100 * result['frozen']:.2f} %{tuned}")
    print(f"classifier: {Path(args.out) / 'classifier.safetensors'}")


def cmd_compare(args) -> None:
    from catneuron.classify.experiment import compare, table_markdown
    cfg = run_config(args)
    cfg.train.device = device(args, cfg)
    results = compare(args.run, args.task, cfg, args.out, progress=not args.no_progress)
    print(table_markdown(results))
    print(f"results: {Path(args.out) / 'results.json'}")


def cmd_predict(args) -> None:
    import numpy as np

    from catneuron import load
    from catneuron.data.images import IMAGE_SUFFIXES, fit_inside
    from catneuron.data.inputs import as_batch
    from catneuron.data.sources import images_under
    from catneuron.files import check_file_target, replacing
    from catneuron.progress import progress as progress_bar
    if args.out:
        check_file_target(args.out)
    clf = load(args.classifier, device(args, None))
    files = []
    for item in map(Path, args.images):
        if not item.exists():
            raise CatneuronError(f"{item}: no such image file or folder")
        files += images_under(item) if item.is_dir() else [item]
    if not files:
        raise CatneuronError(f"{', '.join(args.images)}: no images ({', '.join(IMAGE_SUFFIXES)})")
    rows, skipped = [], 0
    for i in progress_bar(range(0, len(files), 100), desc="predict", unit="batch",
                          enabled=not args.no_progress and bool(args.out)):
        batch, images = [], []
        for path in files[i:i + 100]:
            try:
                images.append(as_batch([path], clf.input_size, clf.channels, fit_inside)[0])
                batch.append(path)
            except (DataError, OSError) as err:
                skipped += 1
                log.warning("skipped %s", err if isinstance(err, DataError) else f"{path}: {err.strerror}")
        if images:
            for path, row in zip(batch, clf.predict_proba(np.stack(images))):
                k = int(row.argmax())
                rows.append([str(path), clf.classes[k], f"{float(row[k]):.4f}"])
    if not rows:
        raise CatneuronError(f"{', '.join(args.images)}: none of the {len(files)} images is readable")
    if args.out:                      # written whole or not at all
        with replacing(args.out) as tmp, open(tmp, "w", newline="") as out:
            _write_csv(out, rows)
    else:
        _write_csv(sys.stdout, rows)
    if args.out:
        note = f" ({skipped:,} unreadable images skipped)" if skipped else ""
        print(f"{len(rows):,} predictions: {args.out}{note}")


def _write_csv(out, rows: list[list[str]]) -> None:
    import csv
    writer = csv.writer(out)
    writer.writerow(["file", "class", "probability"])
    writer.writerows(rows)
