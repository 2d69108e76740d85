"""The ``catneuron`` command line.

Every command takes ``--preset``, ``--config FILE`` (JSON/TOML) and ``--set key=value`` overrides,
applied in that order. User errors, and files that cannot be read or written, print one line
(``catneuron: error: ...``) and exit with 2; an interrupted command exits with 128 + the signal
(130 for Ctrl-C, 143 for SIGTERM), as shells expect, so ``&&`` chains stop.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from catneuron import config as C
from catneuron.errors import CatneuronError
from catneuron.runtime import keep_freed_memory


def _config_args(p: argparse.ArgumentParser, default_preset: str) -> None:
    p.add_argument("--preset", default=None, choices=sorted(C.PRESETS),
                   help=f"named configuration to start from (default: {default_preset}, or the one in --config)")
    p.add_argument("--config", help="JSON or TOML file of settings, applied over the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set train.lr=0.02 --set model.stages.*.maps=16")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")


def build_config(args, default_preset: str, base: C.Config | None = None) -> C.Config:
    """Preset (or `base`), then --config, then flags and --set overrides."""
    if base is None and args.config and not args.preset:
        cfg = C.load_file(args.config)          # the file names its own preset
    else:
        cfg = base or C.preset(args.preset or default_preset)
        if args.config:
            cfg = C.load_file(args.config, cfg)
    overrides = list(args.overrides)
    for flag, key in (("steps", "train.steps"), ("batch_size", "train.batch_size"), ("device", "train.device"),
                      ("seed", "train.seed"), ("threads", "train.threads")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if getattr(args, "data", None):
        overrides.append("data.train=" + ",".join(args.data))
    return C.validate(C.apply_overrides(cfg, overrides))


def cmd_info(args) -> None:
    from catneuron.nn.accounting import describe, parse_bytes
    cfg = build_config(args, "paper")
    gpu = parse_bytes(args.gpu_memory, "--gpu-memory") if args.gpu_memory else None
    print(f"preset {cfg.preset}")
    print(describe(cfg.model, args.batch_size or cfg.train.batch_size, cfg.train.optimizer, gpu))


def cmd_train(args) -> int:
    from catneuron.train.trainer import Trainer
    out = args.out or os.path.join("runs", args.preset or "small")
    saved = os.path.join(out, "config.json")
    # A resumed run continues with its own settings; this command line's flags still apply on top.
    base = C.load_file(saved) if args.resume and os.path.exists(saved) else None
    cfg = build_config(args, "small", base)
    if args.distributed:
        from catneuron.train.distributed.ray_trainer import DistributedSettings, DistributedTrainer
        settings = DistributedSettings(replicas=args.replicas, shards=args.ps_shards, fetch_every=args.fetch_every,
                                       push_every=args.push_every, partitions=args.partitions,
                                       threads=args.threads_per_replica, address=args.address,
                                       warm_start=args.warm_start)
        result = DistributedTrainer(cfg, out, settings, resume=args.resume, progress=not args.no_progress).run()
    else:
        result = Trainer(cfg, out, resume=args.resume, progress=not args.no_progress).run()
    state = "interrupted" if result.interrupted else "finished"
    print(f"{state} at step {result.step} ({result.images_seen:,} images); run directory {result.run_dir}")
    return 128 + (result.signal or signal.SIGINT) if result.interrupted else 0


def cmd_bench(args) -> None:
    from catneuron.bench import run_benchmark
    cfg = build_config(args, "small")
    run_benchmark(cfg, quick=args.quick, repeats=args.repeats, out=args.out, device=_device(args, cfg))


def _run_config(args) -> C.Config:
    """The run's own settings (as trained), then this command line's --config and --set."""
    path = Path(args.run) / "config.json"
    if not path.exists():
        raise CatneuronError(f"{args.run}: not a run directory (no config.json)")
    return build_config(args, "small", C.load_file(path))


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise CatneuronError(f"{flag} {item}: expected NAME=RUN_DIRECTORY, e.g. control=runs/control")
        out[name] = path
    return out


def cmd_probe(args) -> None:
    from catneuron.probe.report import table_rows
    from catneuron.probe.run import probe
    cfg = _run_config(args)
    results = probe(args.run, cfg, _pairs(args.compare, "--compare"), args.positives, args.negatives,
                    device=_device(args, cfg), force=args.force, progress=not args.no_progress)
    for name, task in results["tasks"].items():
        print(f"\n{name}: {task['set']['positives']:,} positives, {task['set']['negatives']:,} distractors")
        for label, _, paper, held in table_rows(task):
            heldout = f"   held-out {100 * held['accuracy']:5.1f} %" if held else ""
            print(f"  {label:<62} {100 * paper['accuracy']:5.1f} %{heldout}   AUC {paper['auc']:.3f}")
    print(f"\nresults: {Path(args.run) / 'probe' / 'results.json'}")


def cmd_visualize(args) -> None:
    from catneuron.probe.pictures import visualize
    cfg = _run_config(args)
    out = visualize(args.run, cfg, steps=args.steps, concepts=not args.no_concepts,
                    positives=args.positives, negatives=args.negatives, device=_device(args, cfg))
    print(f"pictures of {len(out['tasks'])} neurons in {Path(args.run) / 'probe' / 'pictures'}")


def cmd_report(args) -> None:
    from catneuron.probe.report import report
    print(f"report: {report(args.run, args.out)}")


def cmd_classify_train(args) -> None:
    from catneuron.classify.datasets import load_task
    from catneuron.classify.experiment import train_one
    from catneuron.train.checkpoint import model_config
    if args.init == "pretrained" and not args.run:
        raise CatneuronError("classify train: give the run directory of the trained network (or --init random/pixels)")
    cfg = _run_config(args) if args.init == "pretrained" else build_config(args, "small")
    if args.init == "pretrained":
        cfg.model = model_config(args.run).model
    cfg.train.device = _device(args, cfg)
    m, c = cfg.model, cfg.classify
    data = load_task(args.task, m.input_size, m.channels, cfg.data.root, c.per_class, c.seed, not args.no_progress)
    train, val = data.halves(c.seed)
    result = train_one(args.init, args.run, cfg, train, val, Path(args.out),
                       {"run": args.run, "task": args.task, "train_images": len(train), "validation_images": len(val)},
                       progress=not args.no_progress)
    tuned = f", fine-tuned {100 * result['finetuned']:.2f} %" if "finetuned" in result else ""
    print(f"{args.task}: {len(data.classes)} classes; validation top-1 frozen {100 * result['frozen']:.2f} %{tuned}")
    print(f"classifier: {Path(args.out) / 'classifier.safetensors'}")


def cmd_classify_compare(args) -> None:
    from catneuron.classify.experiment import compare, table_markdown
    cfg = _run_config(args)
    cfg.train.device = _device(args, cfg)
    results = compare(args.run, args.task, cfg, args.out, progress=not args.no_progress)
    print(table_markdown(results))
    print(f"results: {Path(args.out) / 'results.json'}")


def cmd_classify_predict(args) -> None:
    import csv

    from tqdm import tqdm
    from catneuron import load
    from catneuron.data.images import IMAGE_SUFFIXES
    from catneuron.data.sources import images_under
    clf = load(args.classifier, _device(args, None))
    files = []
    for item in map(Path, args.images):
        if not item.exists():
            raise CatneuronError(f"{item}: no such image file or folder")
        files += images_under(item) if item.is_dir() else [item]
    if not files:
        raise CatneuronError(f"{', '.join(args.images)}: no images ({', '.join(IMAGE_SUFFIXES)})")
    out = open(args.out, "w", newline="") if args.out else sys.stdout
    writer = csv.writer(out)
    writer.writerow(["file", "class", "score"])
    for i in tqdm(range(0, len(files), 100), desc="predict", unit="batch", disable=args.no_progress or not args.out):
        batch = files[i:i + 100]
        scores = clf.scores(batch)
        for path, row in zip(batch, scores):
            k = int(row.argmax())
            writer.writerow([str(path), clf.classes[k], f"{float(row[k]):.4f}"])
    if args.out:
        out.close()
        print(f"{len(files):,} predictions: {args.out}")


def cmd_demo(args) -> None:
    from catneuron.demo import demo
    page = demo(args.out, args.corpus, args.control, steps=args.steps, base=build_config(args, "small"),
                workers=args.workers, progress=not args.no_progress)
    print(f"report: {page}")


def _device(args, cfg: C.Config | None) -> str:
    """--device; else the run's own train.device where this machine has it; else auto."""
    from catneuron.train.trainer import resolve_device
    if args.device or cfg is None:
        return str(resolve_device(args.device or "auto"))
    import torch
    if cfg.train.device.startswith("cuda") and not torch.cuda.is_available():
        logging.getLogger("catneuron").info("the run was set up for %s, which this machine lacks: using the CPU",
                                            cfg.train.device)
        return "cpu"
    return str(resolve_device(cfg.train.device))


def _data_root(args):
    from catneuron.data.sources import data_root
    return data_root(build_config(args, "small").data.root)


def _sources(args, specs):
    from catneuron.data.sources import resolve_all
    return resolve_all(specs, build_config(args, "small").data.root)


def cmd_data_frames(args) -> None:
    from catneuron.data.video import extract_frames
    report = extract_frames(Path(args.folder), Path(args.out), per_video=args.per_video, size=args.size,
                            seed=args.seed, workers=args.workers, shard_size=args.shard_size,
                            progress=not args.no_progress)
    print(f"{report.written:,} frames from {report.inputs - len(report.skipped):,} of {report.inputs:,} videos "
          f"in {args.out} ({len(report.skipped)} skipped, listed in {args.out}/report.json)")


def cmd_data_ingest(args) -> None:
    from catneuron.data.ingest import ingest
    report = ingest(_sources(args, args.sources), Path(args.out), size=args.size,
                    near=None if args.near < 0 else args.near, workers=args.workers, shard_size=args.shard_size,
                    progress=not args.no_progress)
    print(f"{report.written:,} images in {args.out}: {report.dropped:,} duplicates dropped, "
          f"{len(report.skipped):,} unreadable files skipped (listed in {args.out}/report.json)")


def cmd_data_compose(args) -> None:
    from catneuron.data.compose import DEFAULT_MIX, DEFAULT_SIZE, compose, parse_mix
    mix = parse_mix(args.mix) if args.mix else list(DEFAULT_MIX)
    cfg = build_config(args, "small")
    manifest = compose(mix, Path(args.out), size=args.size or DEFAULT_SIZE, seed=args.seed, count=args.count,
                       root=cfg.data.root, shard_size=args.shard_size, progress=not args.no_progress)
    parts = ", ".join(f"{s['taken']:,} from {s['spec']} ({100 * s['taken'] / manifest['count']:.2f} %)"
                      for s in manifest["sources"])
    print(f"{manifest['count']:,} images ({manifest['size']}x{manifest['size']}) in {args.out}: {parts}")


def _detector(args):
    from catneuron.data.faces import FaceDetector
    return FaceDetector(min_neighbors=args.min_neighbors, pad=args.pad)


def cmd_data_audit(args) -> None:
    from catneuron.data.faces import audit
    report = audit(_sources(args, args.sources), patches=args.patches, patch_size=args.patch_size, size=args.size,
                   seed=args.seed, workers=args.workers, detector=_detector(args), progress=not args.no_progress)
    print(report.summary())
    if args.out:
        report.save(Path(args.out))


def cmd_data_control(args) -> None:
    from catneuron.data.faces import audit, control_corpus
    recall = None
    if args.recall_set:
        known = audit(_sources(args, [args.recall_set]), patches=0, size=args.size, workers=args.workers,
                      detector=_detector(args), progress=not args.no_progress)
        recall = known.image_fraction
        print(f"detector recall on {args.recall_set}: {known.images_with_face:,} of {known.images:,} = "
              f"{100 * recall:.2f} %")
    manifest = control_corpus(_sources(args, args.sources), Path(args.out), size=args.size, workers=args.workers,
                              detector=_detector(args), recall=recall, progress=not args.no_progress)
    missed = f"; expected faces missed by the detector: {manifest['expected_missed_faces']:,}" if recall else ""
    print(f"{manifest['kept']:,} of {manifest['images']:,} images kept in {args.out}, {manifest['removed']:,} "
          f"removed ({manifest['removed_by_source']}){missed}")


def cmd_data_download(args) -> None:
    from catneuron.data.download import DATASETS, download
    from catneuron.data.sources import default_download_root
    if args.list or not args.names:
        for spec in DATASETS.values():
            print(f"{spec.name:<14} {spec.description}\n{'':<14} {spec.archives[0].url} ({spec.terms})")
        return
    unknown = [n for n in args.names if n not in DATASETS and n != "all"]
    if unknown:
        raise CatneuronError(f"unknown dataset {unknown[0]!r}; expected one of {', '.join(DATASETS)} or all")
    root = Path(args.root) if args.root else (_data_root(args) or default_download_root())
    for name in DATASETS if "all" in args.names else args.names:
        counts = download(DATASETS[name], root, mirror=args.mirror, progress=not args.no_progress)
        print(f"{name}: " + ", ".join(f"{n:,} images in {root / s}" for s, n in counts.items()))


def _detector_args(p) -> None:
    p.add_argument("--min-neighbors", type=int, default=5, help="OpenCV detectMultiScale minNeighbors (default 5)")
    p.add_argument("--pad", type=float, default=0.25,
                   help="grey border added on each side, as a fraction of the side, before detection (default "
                        "0.25; the cascade misses faces that fill the image without it)")


def _data_parsers(sub) -> None:
    data = sub.add_parser("data", help="build training corpora: frames, ingest, compose, audit, control, download")
    dsub = data.add_subparsers(dest="data_command", required=True)
    workers = dict(type=int, default=os.cpu_count() or 1, help="worker processes (default: one per CPU)")

    p = dsub.add_parser("frames", help="one (or k) random frames per video -> shards")
    _config_args(p, "small")
    p.add_argument("folder", help="folder of videos, searched recursively (anything FFmpeg reads, GIFs included)")
    p.add_argument("--out", required=True, help="output folder for the shards")
    p.add_argument("--per-video", type=int, default=1, help="frames per video (default 1, as in the paper)")
    p.add_argument("--size", type=int, default=200, help="output side in pixels (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", **workers)
    p.add_argument("--shard-size", type=int, default=5000)
    p.set_defaults(func=cmd_data_frames)

    p = dsub.add_parser("ingest", help="image folders or shards -> resized shards without duplicates")
    _config_args(p, "small")
    p.add_argument("sources", nargs="+", help="image folders, shards or named sets")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--near", type=int, default=3,
                   help="near-duplicate distance in perceptual-hash bits (default 3; -1: exact duplicates only)")
    p.add_argument("--workers", **workers)
    p.add_argument("--shard-size", type=int, default=5000)
    p.set_defaults(func=cmd_data_ingest)

    p = dsub.add_parser("compose", help="the unlabeled training corpus from sources with mixing ratios")
    _config_args(p, "small")
    p.add_argument("--mix", action="append", default=[], metavar="SOURCE=FRACTION",
                   help="a source and its share of the corpus (repeat); default: natural-64/train=0.98 "
                        "faces-200/pool=0.02")
    p.add_argument("--out", default="corpora/default")
    p.add_argument("--size", type=int, help="image side (default 64)")
    p.add_argument("--count", type=int, help="corpus size (default: the largest the sources allow)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard-size", type=int, default=5000)
    p.set_defaults(func=cmd_data_compose)

    p = dsub.add_parser("audit", help="fraction of random patches and of images where OpenCV finds a face")
    _config_args(p, "small")
    p.add_argument("sources", nargs="+")
    p.add_argument("--patches", type=int, default=100_000, help="random patches (default 100,000, as the paper)")
    p.add_argument("--patch-size", type=int, default=60)
    p.add_argument("--size", type=int, help="resize images to this side first (default: as stored)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", **workers)
    p.add_argument("--out", help="also write the report (with the keys of images with faces) as JSON")
    _detector_args(p)
    p.set_defaults(func=cmd_data_audit)

    p = dsub.add_parser("control", help="the corpus minus every image in which OpenCV finds a face")
    _config_args(p, "small")
    p.add_argument("sources", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, help="resize images to this side before detection (default: as stored)")
    p.add_argument("--recall-set", default="faces-200/test",
                   help="known faces to measure the detector's recall on ('' to skip; default faces-200/test)")
    p.add_argument("--workers", **workers)
    _detector_args(p)
    p.set_defaults(func=cmd_data_control)

    p = dsub.add_parser("download", help="fetch and convert the public originals (needs internet)")
    _config_args(p, "small")
    p.add_argument("names", nargs="*", help="datasets (or all); none: list them")
    p.add_argument("--list", action="store_true")
    p.add_argument("--root", help="where to put them (default: the data root, else ~/.cache/catneuron/datasets)")
    p.add_argument("--mirror", help="a folder or base URL holding the archives under their file names "
                                    "(also $CATNEURON_MIRROR)")
    p.set_defaults(func=cmd_data_download)


DEVICE_HELP = "cpu, cuda, cuda:N or auto (default: the run's train.device where this machine has it, else auto)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="catneuron", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="parameter and connection counts, memory and FLOPs of a configuration")
    _config_args(info, "paper")
    info.add_argument("--batch-size", type=int, help="batch size for the memory estimate (default: the config's)")
    info.add_argument("--gpu-memory", metavar="SIZE", help="say whether training fits a GPU of this memory, "
                                                          "e.g. 80GiB or 24GB")
    info.set_defaults(func=cmd_info)

    train = sub.add_parser("train", help="train the deep sparse autoencoder on unlabeled images")
    _config_args(train, "small")
    train.add_argument("--data", nargs="+", help="shards, shard folders, image folders or named sets such as "
                                                  "natural-64/train (default: the config's data.train)")
    train.add_argument("--out", help="run directory (default: runs/<preset>)")
    train.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    train.add_argument("--steps", type=int, help="total optimizer steps (train.steps)")
    train.add_argument("--batch-size", type=int, help="images per step (train.batch_size)")
    train.add_argument("--device", help="cpu, cuda, cuda:N or auto (train.device)")
    train.add_argument("--seed", type=int, help="train.seed")
    train.add_argument("--threads", type=int, help="CPU threads (train.threads)")
    dist = train.add_argument_group("distributed training (Downpour SGD on Ray; docs/distributed.md)")
    dist.add_argument("--distributed", choices=["ray"], help="train with model replicas and parameter servers")
    dist.add_argument("--replicas", type=int, default=2, help="model replicas, each on its part of the data")
    dist.add_argument("--ps-shards", type=int, default=2, help="parameter-server shards")
    dist.add_argument("--fetch-every", type=int, default=1, metavar="P", help="fetch parameters every P steps")
    dist.add_argument("--push-every", type=int, default=1, metavar="G", help="push gradients every G steps")
    dist.add_argument("--partitions", type=int, default=1, metavar="K",
                      help="split each replica's locally connected layers into K spatial bands, one worker each")
    dist.add_argument("--threads-per-replica", type=int, default=1)
    dist.add_argument("--warm-start", type=int, default=0, metavar="STEPS",
                      help="steps one replica trains alone before the others join")
    dist.add_argument("--address", help="an existing Ray cluster (default: start Ray on this machine)")
    train.set_defaults(func=cmd_train)

    bench = sub.add_parser("bench", help="locally connected layer benchmark: ours vs naive vs Conv2d vs sgemm")
    _config_args(bench, "small")
    bench.add_argument("--quick", action="store_true", help="fewer repeats, skip the slow naive layer on big cases")
    bench.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (median reported)")
    bench.add_argument("--out", help="also write the table as JSON here")
    bench.add_argument("--device", help=DEVICE_HELP.replace("the run's train.device", "train.device"))
    bench.set_defaults(func=cmd_bench)

    _data_parsers(sub)

    probe = sub.add_parser("probe", help="score every neuron of a trained run as a face/cat/body detector, "
                                         "against the paper's baselines")
    _config_args(probe, "small")
    probe.add_argument("run", help="run directory (from catneuron train)")
    probe.add_argument("--compare", action="append", default=[], metavar="NAME=RUN",
                       help="another trained run to score alike, e.g. control=runs/control or nolcn=runs/nolcn")
    probe.add_argument("--positives", nargs="+", help="positive images (shards, folders, named sets) instead of "
                                                      "the default test sets")
    probe.add_argument("--negatives", nargs="+", help="distractors to go with --positives")
    probe.add_argument("--force", action="store_true", help="score again what the probe has cached")
    probe.add_argument("--device", help=DEVICE_HELP)
    probe.set_defaults(func=cmd_probe)

    vis = sub.add_parser("visualize", help="histograms, top stimuli, optimal stimuli, invariance curves and the "
                                           "concept scan of the best neurons")
    _config_args(vis, "small")
    vis.add_argument("run")
    vis.add_argument("--steps", type=int, default=200, help="gradient steps for the optimal stimulus")
    vis.add_argument("--no-concepts", action="store_true", help="skip the concept scan")
    vis.add_argument("--positives", nargs="+")
    vis.add_argument("--negatives", nargs="+")
    vis.add_argument("--device", help=DEVICE_HELP)
    vis.set_defaults(func=cmd_visualize)

    cls = sub.add_parser("classify", help="supervised use of the features: classifiers on the top layer, then "
                                          "fine-tuning (docs/classify.md)")
    cls_sub = cls.add_subparsers(dest="classify_command", required=True)
    task_help = "tiny-imagenet (200 wnids), four-way (faces/cat faces/bodies/natural) or a folder of class folders"
    ctrain = cls_sub.add_parser("train", help="train a classifier on the features of a run and save it")
    _config_args(ctrain, "small")
    ctrain.add_argument("run", nargs="?", help="run directory of the trained network (not needed for --init pixels)")
    ctrain.add_argument("--task", required=True, help=task_help)
    ctrain.add_argument("--init", choices=["pretrained", "random", "pixels"], default="pretrained",
                        help="start from the run's weights, the same architecture at random, or raw pixels")
    ctrain.add_argument("--out", required=True, help="directory for classifier.safetensors")
    ctrain.add_argument("--device", help=DEVICE_HELP)
    ctrain.set_defaults(func=cmd_classify_train)
    ccomp = cls_sub.add_parser("compare", help="the paper's table: pretrained vs random init vs raw pixels, "
                                               "frozen and fine-tuned")
    _config_args(ccomp, "small")
    ccomp.add_argument("run")
    ccomp.add_argument("--task", required=True, help=task_help)
    ccomp.add_argument("--out", required=True, help="directory for results.json, table.md and the classifiers")
    ccomp.add_argument("--device", help=DEVICE_HELP)
    ccomp.set_defaults(func=cmd_classify_compare)
    cpred = cls_sub.add_parser("predict", help="classify images or folders of images with a saved classifier")
    _config_args(cpred, "small")
    cpred.add_argument("classifier", help="directory written by classify train/compare")
    cpred.add_argument("images", nargs="+", help="image files or folders")
    cpred.add_argument("--out", help="CSV file (default: standard output)")
    cpred.add_argument("--device", help="cpu, cuda, cuda:N or auto (default auto)")
    cpred.set_defaults(func=cmd_classify_predict)

    rep = sub.add_parser("report", help="one self-contained HTML page of the probe's results")
    rep.add_argument("run")
    rep.add_argument("--out", help="output file (default RUN/report.html)")
    rep.set_defaults(func=cmd_report)

    from catneuron.demo import DEMO_STEPS
    dem = sub.add_parser("demo", help="compose the default corpus, train small (and its two controls), probe, "
                                      "report: the laptop reproduction end to end")
    _config_args(dem, "small")
    dem.add_argument("--out", default="runs/demo")
    dem.add_argument("--corpus", default="corpora/default")
    dem.add_argument("--control", default="corpora/control")
    dem.add_argument("--steps", type=int, default=DEMO_STEPS, help=f"training steps per network (default {DEMO_STEPS})")
    dem.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    dem.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        keep_freed_memory()
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s" if args.verbose else "catneuron: %(message)s")
        return args.func(args) or 0
    except CatneuronError as err:
        return _error(str(err))
    except OSError as err:       # unwritable --out, a full disk, a file gone: the file and the reason
        where = f"{err.filename}: " if err.filename else ""
        return _error(f"{where}{err.strerror or err}")
    except KeyboardInterrupt:    # a second Ctrl-C, or one before training installed its handler
        print("catneuron: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


def _error(message: str) -> int:
    print(f"catneuron: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
