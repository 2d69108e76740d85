"""`catneuron data frames | ingest | compose | audit | control | download`: training corpora (docs/data.md)."""
from __future__ import annotations

import os
from pathlib import Path

from catneuron.cli.common import build_config, config_args, integer, nonnegative, progress_arg
from catneuron.errors import CatneuronError

WORKERS = dict(type=integer(1), default=os.cpu_count() or 1, help="worker processes (default: one per CPU)")


def add_data(sub) -> None:
    data = sub.add_parser("data", help="build training corpora: frames, ingest, compose, audit, control, download")
    group = data.add_subparsers(dest="data_command", required=True)
    for add in (_add_frames, _add_ingest, _add_compose, _add_audit, _add_control, _add_download):
        add(group)


def _sources(args, specs):
    """The sources named by `specs`, under the data root of this command line's config."""
    from catneuron.data.sources import resolve_all
    return resolve_all(specs, args.cfg.data.root)


def _with_config(handler):
    """Build the command line's config once, as args.cfg, before the handler runs."""
    def run(args):
        args.cfg = build_config(args, "small")
        return handler(args)
    return run


def _add_frames(group) -> None:
    p = group.add_parser("frames", help="one (or k) random frames per video -> shards")
    progress_arg(p)
    p.add_argument("folder", help="folder of videos, searched recursively (anything FFmpeg reads, GIFs included)")
    p.add_argument("--out", required=True, help="output folder for the shards")
    p.add_argument("--per-video", type=integer(1), default=1, help="frames per video (default 1, as in the paper)")
    p.add_argument("--size", type=integer(1), default=200, help="output side in pixels (default 200)")
    p.add_argument("--seed", type=integer(0), default=0, help="random seed of the frames' choice (default 0)")
    p.add_argument("--workers", **WORKERS)
    p.add_argument("--shard-size", type=integer(1), default=5000, help="images per output shard (default 5000)")
    p.set_defaults(func=cmd_frames)


def cmd_frames(args) -> None:
    from catneuron.data.video import extract_frames
    report = extract_frames(Path(args.folder), Path(args.out), per_video=args.per_video, size=args.size,
                            seed=args.seed, workers=args.workers, shard_size=args.shard_size,
                            progress=not args.no_progress)
    print(f"{report.written:,} frames from {report.inputs - len(report.skipped):,} of {report.inputs:,} videos "
          f"in {args.out} ({len(report.skipped)} skipped, listed in {args.out}/report.json)")


def _add_ingest(group) -> None:
    p = group.add_parser("ingest", help="image folders or shards -> resized shards without duplicates")
    config_args(p, "small")
    p.add_argument("sources", nargs="+", help="image folders, shards or named sets")
    p.add_argument("--out", required=True, help="output folder for the shards")
    p.add_argument("--size", type=integer(1), default=200,
                   help="output side in pixels: each image's central square, resized (default 200)")
    p.add_argument("--near", type=integer(-1), default=3,
                   help="near-duplicate distance in perceptual-hash bits (default 3; -1: exact duplicates only)")
    p.add_argument("--workers", **WORKERS)
    p.add_argument("--shard-size", type=integer(1), default=5000, help="images per output shard (default 5000)")
    p.set_defaults(func=_with_config(cmd_ingest))


def cmd_ingest(args) -> None:
    from catneuron.data.ingest import ingest
    report = ingest(_sources(args, args.sources), Path(args.out), size=args.size,
                    near=None if args.near < 0 else args.near, workers=args.workers, shard_size=args.shard_size,
                    progress=not args.no_progress)
    print(f"{report.written:,} images in {args.out}: {report.dropped:,} duplicates dropped, "
          f"{len(report.skipped):,} unreadable files skipped (listed in {args.out}/report.json)")


def _add_compose(group) -> None:
    p = group.add_parser("compose", help="the unlabeled training corpus from sources with mixing ratios")
    config_args(p, "small")
    p.add_argument("--mix", action="append", default=[], metavar="SOURCE=FRACTION",
                   help="a source and its share of the corpus (repeat); default: natural-64/train=0.98 "
                        "faces-200/pool=0.02")
    p.add_argument("--out", default="corpora/default", help="output folder (default corpora/default)")
    p.add_argument("--size", type=integer(1), help="image side (default 64)")
    p.add_argument("--count", type=integer(1), help="corpus size (default: the largest the sources allow)")
    p.add_argument("--seed", type=integer(0), default=0, help="random seed of the draw and the order (default 0)")
    p.add_argument("--shard-size", type=integer(1), default=5000, help="images per output shard (default 5000)")
    p.set_defaults(func=_with_config(cmd_compose))


def cmd_compose(args) -> None:
    from catneuron.data.compose import DEFAULT_MIX, DEFAULT_SIZE, compose, parse_mix
    mix = parse_mix(args.mix) if args.mix else list(DEFAULT_MIX)
    manifest = compose(mix, Path(args.out), size=args.size or DEFAULT_SIZE, seed=args.seed, count=args.count,
                       root=args.cfg.data.root, shard_size=args.shard_size, progress=not args.no_progress)
    parts = ", ".join(f"{s['taken']:,} from {s['spec']} ({100 * s['taken'] / manifest['count']:.2f} %)"
                      for s in manifest["sources"])
    print(f"{manifest['count']:,} images ({manifest['size']}x{manifest['size']}) in {args.out}: {parts}")


def _detector_args(p) -> None:
    p.add_argument("--min-neighbors", type=integer(0), default=5,
                   help="OpenCV detectMultiScale minNeighbors (default 5)")
    p.add_argument("--pad", type=nonnegative, default=0.25,
                   help="grey border added on each side, as a fraction of the side, before detection (default "
                        "0.25; the cascade misses faces that fill the image without it)")


def _detector(args):
    from catneuron.data.faces import FaceDetector
    return FaceDetector(min_neighbors=args.min_neighbors, pad=args.pad)


def _add_audit(group) -> None:
    p = group.add_parser("audit", help="fraction of random patches and of images where OpenCV finds a face")
    config_args(p, "small")
    p.add_argument("sources", nargs="+", help="image folders, shards or named sets to audit")
    p.add_argument("--patches", type=integer(0), default=100_000, help="random patches (default 100,000, as the paper)")
    p.add_argument("--patch-size", type=integer(1), default=60, help="side of each random patch in pixels (default 60)")
    p.add_argument("--size", type=integer(1), help="resize images to this side first (default: as stored)")
    p.add_argument("--seed", type=integer(0), default=0, help="random seed of the patches (default 0)")
    p.add_argument("--workers", **WORKERS)
    p.add_argument("--out", help="also write the report (with the keys of images with faces) as JSON")
    _detector_args(p)
    p.set_defaults(func=_with_config(cmd_audit))


def cmd_audit(args) -> None:
    from catneuron.data.faces import audit
    from catneuron.files import check_file_target
    if args.out:
        check_file_target(args.out)
    report = audit(_sources(args, args.sources), patches=args.patches, patch_size=args.patch_size, size=args.size,
                   seed=args.seed, workers=args.workers, detector=_detector(args), progress=not args.no_progress)
    print(report.summary())
    if args.out:
        report.save(Path(args.out))


def _add_control(group) -> None:
    p = group.add_parser("control", help="the corpus minus every image in which OpenCV finds a face")
    config_args(p, "small")
    p.add_argument("sources", nargs="+", help="the corpus: image folders, shards or named sets")
    p.add_argument("--out", required=True, help="output folder for the face-free corpus")
    p.add_argument("--size", type=integer(1), help="resize images to this side before detection (default: as stored)")
    p.add_argument("--recall-set", default="faces-200/test",
                   help="known faces to measure the detector's recall on ('' to skip; default faces-200/test)")
    p.add_argument("--workers", **WORKERS)
    _detector_args(p)
    p.set_defaults(func=_with_config(cmd_control))


def cmd_control(args) -> None:
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


def _add_download(group) -> None:
    p = group.add_parser("download", help="fetch and convert the public originals (needs internet)")
    config_args(p, "small")
    p.add_argument("names", nargs="*", help="datasets (or all); none: list them")
    p.add_argument("--list", action="store_true", help="list the datasets with their sizes and homepages")
    p.add_argument("--root", help="where to put them (default: the data root, else ~/.cache/catneuron/datasets)")
    p.add_argument("--mirror", help="a folder or base URL holding the archives under their file names "
                                    "(also $CATNEURON_MIRROR)")
    p.set_defaults(func=_with_config(cmd_download))


def cmd_download(args) -> None:
    from catneuron.data.download import DATASETS, download
    from catneuron.data.sources import data_root, default_download_root
    if args.list or not args.names:
        for spec in DATASETS.values():
            print(f"{spec.name:<14} {spec.description}\n{'':<14} {spec.archives[0].url} ({spec.terms}; "
                  f"{spec.homepage})")
        return
    unknown = [n for n in args.names if n not in DATASETS and n != "all"]
    if unknown:
        raise CatneuronError(f"unknown dataset {unknown[0]!r}; expected one of {', '.join(DATASETS)} or all")
    root = Path(args.root) if args.root else (data_root(args.cfg.data.root) or default_download_root())
    for name in DATASETS if "all" in args.names else args.names:
        counts = download(DATASETS[name], root, mirror=args.mirror, progress=not args.no_progress)
        print(f"{name}: " + ", ".join(f"{n:,} images in {root / s}" for s, n in counts.items()))
