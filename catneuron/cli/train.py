"""`catneuron info`, `train`, `bench` and `demo`: the network, its training and its speed."""
from __future__ import annotations

import os
import signal

from catneuron import config as C
from catneuron.cli.common import DEVICE_HELP, build_config, config_args, device, integer
from catneuron.rundir import RunDir


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train the deep sparse autoencoder on unlabeled images")
    config_args(p, "small")
    p.add_argument("--data", nargs="+", help="shards, shard folders, image folders or named sets such as "
                                             "natural-64/train (default: the config's data.train)")
    p.add_argument("--out", help="run directory (default: runs/<preset>)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--steps", type=int, help="total optimizer steps (train.steps)")
    p.add_argument("--batch-size", type=int, help="images per step (train.batch_size)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (train.device)")
    p.add_argument("--seed", type=int, help="train.seed")
    p.add_argument("--threads", type=int, help="CPU threads (train.threads)")
    dist = p.add_argument_group("distributed training (Downpour SGD on Ray; docs/distributed.md)")
    dist.add_argument("--distributed", choices=["ray"], help="train with model replicas and parameter servers")
    # each flag sets its distributed.* setting (config.json keeps them, so --resume carries them)
    dist.add_argument("--replicas", type=integer(1), help="model replicas, each on its part of the data (default 2)")
    dist.add_argument("--ps-shards", type=integer(1), help="parameter-server shards (default 2)")
    dist.add_argument("--fetch-every", type=integer(1), metavar="P", help="fetch parameters every P steps (default 1)")
    dist.add_argument("--push-every", type=integer(1), metavar="G", help="push gradients every G steps (default 1)")
    dist.add_argument("--partitions", type=integer(1), metavar="K",
                      help="split each replica's locally connected layers into K spatial bands, one worker each")
    dist.add_argument("--threads-per-replica", type=integer(1), help="CPU threads per replica (default 1)")
    dist.add_argument("--warm-start", type=integer(0), metavar="STEPS",
                      help="steps one replica trains alone before the others join (default 0)")
    dist.add_argument("--address", help="an existing Ray cluster (default: start Ray on this machine)")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from catneuron.train.trainer import Trainer
    out = args.out or os.path.join("runs", args.preset or "small")
    saved = RunDir(out).config
    # A resumed run continues with its own settings; this command line's flags still apply on top.
    base = C.load_file(saved) if args.resume and saved.exists() else None
    cfg = build_config(args, "small", base)
    if args.distributed:
        from catneuron.train.distributed.ray_trainer import DistributedTrainer
        result = DistributedTrainer(cfg, out, resume=args.resume, progress=not args.no_progress).run()
    else:
        result = Trainer(cfg, out, resume=args.resume, progress=not args.no_progress).run()
    state = "interrupted" if result.interrupted else "finished"
    print(f"{state} at step {result.step} ({result.images_seen:,} images); run directory {result.run_dir}")
    return 128 + (result.signal or signal.SIGINT) if result.interrupted else 0


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="locally connected layer benchmark: ours vs naive vs conv2d vs the matmul peak")
    config_args(p, "small")
    p.add_argument("--quick", action="store_true", help="fewer repeats, skip the slow naive layer on big cases")
    p.add_argument("--repeats", type=integer(1), default=5, help="timed repeats per measurement (median reported)")
    p.add_argument("--out", help="also write the table as JSON here")
    p.add_argument("--device", help=DEVICE_HELP.replace("the run's train.device", "train.device"))
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> None:
    from catneuron.bench import run_benchmark
    from catneuron.files import check_file_target
    cfg = build_config(args, "small")
    if args.out:
        check_file_target(args.out)
    run_benchmark(cfg, quick=args.quick, repeats=args.repeats, out=args.out, device=device(args, cfg))


def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="compose the default corpus, train small (and its two controls), probe, "
                                    "report: the laptop reproduction end to end")
    config_args(p, "small")
    p.add_argument("--out", default="runs/demo", help="folder for the three runs (default runs/demo)")
    p.add_argument("--corpus", default="corpora/default",
                   help="where the default corpus is composed, or found if it is there (default corpora/default)")
    p.add_argument("--control", default="corpora/control",
                   help="where its face-free control corpus goes (default corpora/control)")
    p.add_argument("--steps", type=integer(1), default=C.DEMO_STEPS,
                   help=f"training steps per network (default {C.DEMO_STEPS})")
    p.add_argument("--workers", type=integer(1), default=os.cpu_count() or 1,
                   help="processes for the face detection of the control corpus (default: every core)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> None:
    from catneuron.demo import demo
    page = demo(args.out, args.corpus, args.control, steps=args.steps, base=build_config(args, "small"),
                workers=args.workers, progress=not args.no_progress)
    print(f"report: {page}")
