"""`catneuron probe`, `visualize` and `report`: which neurons became detectors, and what they look like."""
from __future__ import annotations


from catneuron.cli.common import DEVICE_HELP, config_args, device, integer, pairs, progress_arg, run_config, \
    saved_config
from catneuron.rundir import RunDir


def add_probe(sub) -> None:
    p = sub.add_parser("probe", help="score every neuron of a trained run as a face/cat/body detector, against the "
                                     "paper's baselines")
    config_args(p, None)
    p.add_argument("run", help="run directory (from catneuron train)")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=RUN",
                   help="another trained run to score alike, e.g. control=runs/control or nolcn=runs/nolcn")
    p.add_argument("--positives", nargs="+", help="positive images (shards, folders, named sets) instead of the "
                                                  "default test sets")
    p.add_argument("--negatives", nargs="+", help="distractors to go with --positives")
    p.add_argument("--force", action="store_true", help="score again what the probe has cached")
    p.add_argument("--device", help=DEVICE_HELP)
    p.set_defaults(func=cmd_probe)


def cmd_probe(args) -> None:
    from catneuron.probe import calibration
    from catneuron.probe.report import table_rows
    from catneuron.probe.run import probe
    cfg = run_config(args)
    results = probe(args.run, cfg, pairs(args.compare, "--compare"), args.positives, args.negatives,
                    device=device(args, cfg), force=args.force, progress=not args.no_progress)
    for name, task in results["tasks"].items():
        print(f"\n{name}: {task['set']['positives']:,} positives, {task['set']['negatives']:,} distractors")
        for label, _, paper, held in table_rows(task):
            heldout = f"   held-out {100 * held['accuracy']:5.1f} %" if held else ""
            print(f"  {label:<62} {100 * paper['accuracy']:5.1f} %{heldout}   AUC {paper['auc']:.3f}")
        print(f"  what this test can show ({task['set'].get('construction', 'letterbox')}):")
        for label, value, ref, met in calibration.rows(task):
            verdict = "" if met is None else ("  met" if met else "  NOT MET")
            print(f"    {label:<72} {100 * value:5.1f} %   {ref}{verdict}")
    print(f"\nresults: {RunDir(args.run).results}")


def add_visualize(sub) -> None:
    p = sub.add_parser("visualize", help="histograms, top stimuli, optimal stimuli, invariance curves and the "
                                         "concept scan of the best neurons")
    config_args(p, None)
    p.add_argument("run", help="run directory, probed (catneuron probe RUN)")
    p.add_argument("--steps", type=integer(1), default=200, help="gradient steps for the optimal stimulus")
    p.add_argument("--no-concepts", action="store_true", help="skip the concept scan")
    p.add_argument("--positives", nargs="+", help="the own positives the run was probed with (catneuron probe "
                                                  "--positives), to draw that test set's neurons")
    p.add_argument("--negatives", nargs="+", help="the own distractors that went with them")
    p.add_argument("--device", help=DEVICE_HELP)
    p.set_defaults(func=cmd_visualize)


def cmd_visualize(args) -> None:
    from catneuron.probe.pictures import visualize
    cfg = run_config(args)
    out = visualize(args.run, cfg, steps=args.steps, concepts=not args.no_concepts,
                    positives=args.positives, negatives=args.negatives, device=device(args, cfg))
    print(f"pictures of {len(out['tasks'])} neurons in {RunDir(args.run).pictures}")


def add_explore(sub) -> None:
    p = sub.add_parser("explore", help="a local web page to browse every unit of a probed run (docs/explore.md)")
    progress_arg(p)
    p.add_argument("run", help="run directory, probed (catneuron probe RUN)")
    p.add_argument("--port", type=integer(1, 65535), default=8000, help="port to serve on (default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="interface to serve on (default 127.0.0.1: this machine "
                                                       "only; 0.0.0.0 exposes the page to the network)")
    p.add_argument("--device", help=DEVICE_HELP)
    p.set_defaults(func=cmd_explore)


def cmd_explore(args) -> None:
    from catneuron.probe.explore import LOOPBACK_NAMES, RunView, create_app
    import threading
    view = RunView(args.run, device(args, saved_config(args.run)))
    threading.Thread(target=view.warm, daemon=True, name="explore-warm").start()
    if args.host in LOOPBACK_NAMES:
        hosts = LOOPBACK_NAMES
    elif args.host in ("0.0.0.0", "::"):
        hosts = None          # every address of the machine, by any name: the user opened it to the network
    else:
        hosts = (args.host.lower(),)
    import logging

    from werkzeug.serving import make_server
    # Werkzeug's threaded server without Flask's development banner (written for app authors, with
    # raw colour codes in a log) and without a line per request; one user on one machine needs no more.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(args.host, args.port, create_app(view, hosts), threaded=True)
    print(f"exploring {args.run} at http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    server.serve_forever()


def add_report(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page of the probe's results")
    p.add_argument("run", help="run directory, probed (catneuron probe RUN; visualize RUN adds the pictures)")
    p.add_argument("--out", help="output file (default RUN/report.html)")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> None:
    from catneuron.probe.report import report
    print(f"report: {report(args.run, args.out)}")
