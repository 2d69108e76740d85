"""One prepared GPU check (issue "The GPU path, measured"): every figure the GPU issue asks for, in
one command, written to OUT/device-check.json (and, through bench/device_check.sh, a log).

    PYTHONPATH=. python3 bench/device_check.py OUT [--seconds 45] [--budget 540] [--quick]

Sections, each on its own: one that fails records its error and the rest still run, one that would
not fit in --budget is skipped, and the JSON is rewritten after each (a GPU is lent for minutes; a
crash or a kill must not cost the figures already taken). In this order:
  1. shapes: forward + both gradients of the three locally connected maps the issue names (small's
     stage 1 at batch 100, paper's stages 1 and 2 at batch 32): our Triton kernels (fp32, tf32, bf16)
     vs lc_batched vs cuDNN's conv2d of the same shape (shared weights; TF32 off, as ours at fp32;
     cuDNN's benchmark mode on, so it times its algorithms and uses its fastest)
     vs the memory-bound time (weights read twice, their gradient written once, activations read
     or written once per map, at the device's measured copy bandwidth); medians over repeats,
     interleaved, in this one process. Each also checks ours against lc_batched (relative error).
  2. small_img_s: `catneuron train --preset small` on the device for SECONDS through the whole
     data path (a folder of JPEGs decoded by data.workers processes), from its metrics.
  3. paper_img_s: training steps of `paper` at batch 100 on random input on the device for SECONDS.
  4. probe: `catneuron probe` of the run of 2 on the device, with own positives and distractors.
  5. tests: the CUDA tests (tests/nn/test_lc_triton.py, and test_local.py -k cuda) under pytest
     when it is installed.
Without CUDA (CI's CPU), 1, 3 and 5 are skipped with their reason, and 2 and 4 run with --quick's
`tiny` preset: proof that the check starts and its pipeline holds together.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catneuron.bench import LayerCase, sync  # noqa: E402
from catneuron.config import preset  # noqa: E402
from catneuron.files import read_jsonl, write_json  # noqa: E402
from catneuron.nn import lc_batched, lc_triton  # noqa: E402
from catneuron.nn.geometry import geometry  # noqa: E402
from catneuron.provenance import code_version  # noqa: E402

SHAPES = (("small", 1, 100), ("paper", 1, 32), ("paper", 2, 32))      # (preset, stage, batch)


def _say(*parts) -> None:
    print("device-check:", *parts, flush=True)


def _section(result: dict, name: str, fn) -> None:
    """Run one section; its error (with traceback) goes into result["errors"], not up."""
    t = time.perf_counter()
    _say(f"{name} ...")
    try:
        fn()
    except Exception as err:        # noqa: BLE001 - every section reports, none stops the check
        result["errors"][name] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    result["section_seconds"][name] = round(time.perf_counter() - t, 1)
    _say(f"{name}: {'failed: ' + result['errors'][name] if name in result['errors'] else 'done'} "
         f"({result['section_seconds'][name]} s)")


def _environment(device: torch.device) -> dict:
    env = {"python": sys.version.split()[0],
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "torch": torch.__version__, "cuda": torch.version.cuda,
           "triton": lc_triton.triton.__version__ if lc_triton.available() else None,
           "code_version": code_version(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if device.type == "cuda":
        env["bandwidth_gb_s"] = round(copy_bandwidth(device) / 1e9)
        env["triton_kernels"] = lc_triton.launch_problem(str(device)) or "build and agree with lc_batched"
    return env


def copy_bandwidth(device: torch.device, mib: int = 1024) -> float:
    """Bytes/s of a copy within the device's memory (read + write), median of 5."""
    a = torch.zeros(mib << 18, device=device)
    b = torch.empty_like(a)
    times = []
    for _ in range(6):
        sync(device)
        t = time.perf_counter()
        b.copy_(a)
        sync(device)
        times.append(time.perf_counter() - t)
    return 2 * a.numel() * 4 / statistics.median(times[1:])


def run_tests(result: dict) -> None:
    if importlib.util.find_spec("pytest") is None:
        result["tests"] = {"skipped": "pytest is not installed; the shapes section still checks ours against "
                                      "lc_batched"}
        return
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/nn/test_lc_triton.py",
           "tests/nn/test_local.py", "-k", "cuda or triton"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    print(done.stdout[-4000:], done.stderr[-2000:], flush=True)
    last = (done.stdout.strip().splitlines() or [""])[-1]
    result["tests"] = {"command": " ".join(["pytest", *cmd[3:]]), "returncode": done.returncode, "summary": last}


def layer_case(name: str, stage: int, batch: int) -> LayerCase:
    model = preset(name).model
    g, st = geometry(model)[stage - 1], model.stages[stage - 1]
    return LayerCase(f"{name} s{stage}: {g.in_size}x{g.in_size}x{g.in_channels}, rf {st.receptive_field}, "
                     f"{st.maps} maps, b{batch}", g.in_channels, g.in_size, st.receptive_field, st.stride, st.maps,
                     batch)


def bound_seconds(case: LayerCase, element: int, bandwidth: float) -> float:
    """Minimum traffic of forward + both gradients: weights read twice (forward, input gradient) and
    their gradient written once; x read twice (forward, weight gradient), y written once, dy read
    twice (input and weight gradients), dx written once."""
    o = case.out
    weights = o * o * case.maps * case.receptive_field ** 2 * case.channels
    x = case.batch * case.channels * case.size ** 2
    y = case.batch * case.maps * o * o
    return (3 * weights + 3 * x + 3 * y) * element / bandwidth


def _maps(kernels, x, w, dy, stride, **opts):
    return (kernels.forward(x, w, stride, **opts), kernels.transpose(dy, w, stride, x.shape[-2:], **opts),
            kernels.weight_grad(x, dy, stride, w.shape[3], **opts))


def _ms(seconds: float) -> float:
    """Milliseconds to 4 significant digits: the bounds of small layers are microseconds."""
    return float(f"{1e3 * seconds:.4g}")


def time_case(case: LayerCase, device: torch.device, repeats: int, bandwidth: float) -> dict:
    """One shape's row: median ms of forward + both gradients per implementation, the bounds, and
    ours against lc_batched (relative error of each map)."""
    import torch.nn.functional as F
    g = torch.Generator(device).manual_seed(0)
    r, C, M, o = case.receptive_field, case.channels, case.maps, case.out
    x = torch.empty(case.batch, C, case.size, case.size, device=device).normal_(generator=g)
    w = torch.empty(o, o, M, r, r, C, device=device).normal_(0, 0.01, generator=g)
    dy = torch.empty(case.batch, M, o, o, device=device).normal_(generator=g)
    wc = torch.empty(M, C, r, r, device=device).normal_(0, 0.01, generator=g).requires_grad_()
    xc = x.clone().requires_grad_()

    def conv():
        xc.grad = wc.grad = None
        # benchmark: cuDNN times its algorithms and keeps the fastest, its best against ours
        with torch.backends.cudnn.flags(enabled=True, benchmark=True, allow_tf32=False):
            F.conv2d(xc, wc, stride=case.stride).backward(dy)

    impls = {"ours": lambda: _maps(lc_triton, x, w, dy, case.stride),
             "ours_tf32": lambda: _maps(lc_triton, x, w, dy, case.stride, precision="tf32"),
             "ours_bf16": lambda: _maps(lc_triton, x, w, dy, case.stride, precision="bf16"),
             "lc_batched": lambda: _maps(lc_batched, x, w, dy, case.stride),
             "cudnn": conv}
    # the first calls are also the warm-up (and the Triton compilation)
    errors = [((a - b).norm() / b.norm()).item() for a, b in zip(impls["ours"](), impls["lc_batched"]())]
    impls["ours_tf32"](), impls["ours_bf16"](), impls["cudnn"]()
    times = {k: [] for k in impls}
    for _ in range(repeats):
        for k, fn in impls.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t)
    return {"name": case.name, **{f"{k}_ms": _ms(statistics.median(v)) for k, v in times.items()},
            "bound_ms": _ms(bound_seconds(case, 4, bandwidth)), "bound_bf16_ms": _ms(bound_seconds(case, 2, bandwidth)),
            "flops": 3 * 2 * o * o * M * r * r * C * case.batch,
            "ours_vs_lc_batched_rel_error": [float(f"{e:.2e}") for e in errors]}


def time_shapes(result: dict, device: torch.device, repeats: int, cases: list[LayerCase] | None = None) -> None:
    if "bandwidth_gb_s" not in result:
        result["bandwidth_gb_s"] = round(copy_bandwidth(device) / 1e9)
    rows = result["shapes"] = []
    for case in cases or [layer_case(*shape) for shape in SHAPES]:
        rows.append(time_case(case, device, repeats, result["bandwidth_gb_s"] * 1e9))
        _say(json.dumps(rows[-1]))
        if device.type == "cuda":
            torch.cuda.empty_cache()


def synthetic_images(folder: Path, count: int, seed: int, kind: str, size: int = 64) -> Path:
    """JPEGs that stand in for a corpus where the device machine has no data: smooth colour fields
    ("natural"), or the same with a bright disk at a random place ("blobs", the probe's positives)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        low = Image.fromarray((rng.random((6, 6, 3)) * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
        a = np.asarray(low).astype(np.float32)
        if kind == "blobs":
            cy, cx, rad = rng.uniform(16, size - 16), rng.uniform(16, size - 16), rng.uniform(6, 14)
            a[(yy - cy) ** 2 + (xx - cx) ** 2 < rad ** 2] = 250
        Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(folder / f"{kind}-{i:05d}.jpg", quality=90)
    return folder


def _catneuron(*args) -> list[str]:
    return [sys.executable, "-m", "catneuron.cli", *args]


def _shown(cmd: list[str]) -> str:
    return " ".join(["catneuron", *cmd[3:]])


def train_small(result: dict, work: Path, device: torch.device, seconds: float, quick: bool) -> None:
    name = "tiny" if quick else "small"
    images = synthetic_images(work / "images", 300 if quick else 3000, 0, "natural")
    run = work / f"run-{name}"
    workers = 0 if quick else max(1, min(8, (os.cpu_count() or 2) - 2))
    cmd = _catneuron("train", "--preset", name, "--data", str(images), "--out", str(run), "--device", device.type,
                     "--steps", "1000000", "--no-progress", "--set", "train.log_every=5",
                     "--set", "train.checkpoint_every=1000000", "--set", f"data.workers={workers}")
    proc = subprocess.Popen(cmd, cwd=ROOT)
    metrics = run / "metrics.jsonl"
    try:
        t = time.perf_counter()
        while proc.poll() is None and not metrics.exists() and time.perf_counter() - t < 180:
            time.sleep(0.2)       # start-up (imports, kernel builds) is not training: the clock starts at step 1
        t = time.perf_counter()
        while proc.poll() is None and time.perf_counter() - t < seconds:
            time.sleep(0.2)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)      # the trainer checkpoints and stops between steps
        if proc.wait(timeout=60) not in (0, 130):          # 130: stopped by the interrupt, checkpointed
            raise RuntimeError(f"{_shown(cmd)} exited with {proc.returncode}")
    finally:
        if proc.poll() is None:                  # never leave it training beside the next section
            proc.kill()
            proc.wait()
    rates = [row["images_per_s"] for row in read_jsonl(metrics)[1:] if "images_per_s" in row]
    if not rates:
        raise RuntimeError(f"{run}: no metrics row after the first in {seconds} s")
    rate = round(statistics.median(rates))
    result["small_img_s"] = rate if name == "small" else None
    result["small_train"] = {"preset": name, "images_per_s": rate, "seconds": seconds, "data_workers": workers,
                             "run": str(run),
                             "images": read_jsonl(metrics)[-1]["images"], "command": _shown(cmd)}


def train_paper(result: dict, device: torch.device, seconds: float, name: str = "paper") -> None:
    from catneuron.nn.autoencoder import DeepSparseAutoencoder
    from catneuron.train.optim import make_optimizer
    from catneuron.train.trainer import train_step
    cfg = preset(name)
    cfg.train.batch_size = 100
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = DeepSparseAutoencoder(cfg.model, device=device)
    opt = make_optimizer(cfg.train, model.parameters())
    x = torch.randn(100, cfg.model.channels, cfg.model.input_size, cfg.model.input_size, device=device)
    train_step(model, opt, cfg, x)               # first step: kernels compile, allocator warms
    steps, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        train_step(model, opt, cfg, x)
        sync(device)
        steps += 1
    elapsed = time.perf_counter() - t
    result["paper_img_s"] = round(100 * steps / elapsed, 1)
    result["paper_train"] = {"preset": name, "batch": 100, "steps": steps, "seconds": round(elapsed, 1),
                             "peak_gib": round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 1)
                             if device.type == "cuda" else None}


def probe_run(result: dict, work: Path, device: torch.device, quick: bool) -> None:
    run = Path(result["small_train"]["run"])
    pos = synthetic_images(work / "positives", 60 if quick else 300, 1, "blobs")
    neg = synthetic_images(work / "negatives", 120 if quick else 600, 2, "natural")
    cmd = _catneuron("probe", str(run), "--positives", str(pos), "--negatives", str(neg), "--device", device.type,
                     "--no-progress", "--set", "probe.modes=whole", "--set", "probe.random_weights=true",
                     "--set", "probe.linear_filters=100", "--set", "probe.kmeans_centroids=0",
                     "--set", "probe.calibrate=false")
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=300)
    results = json.loads((run / "probe" / "results.json").read_text())
    (task,) = results["tasks"].values()
    best = {k: round(100 * d["paper"]["accuracy"], 1) for k, d in task["detectors"].items()}
    result["probe"] = {"seconds": round(time.perf_counter() - t, 1), "best_percent": best, "command": _shown(cmd)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for device-check.json and the check's runs")
    ap.add_argument("--seconds", type=float, default=45, help="length of each training measurement")
    ap.add_argument("--repeats", type=int, default=5, help="timings per kernel and shape (median)")
    ap.add_argument("--budget", type=float, default=540,
                    help="seconds for the whole check: a section that would not fit is skipped, and the JSON is "
                         "written after every section, so a killed check keeps what it measured")
    ap.add_argument("--quick", action="store_true", help="the tiny preset for the training and probe sections")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    t = time.perf_counter()
    result = {"errors": {}, "section_seconds": {}, "skipped": {}}
    work = args.out / "work"
    no_cuda = "needs CUDA: this machine has none"
    if not cuda:
        result.update(tests={"skipped": no_cuda}, shapes={"skipped": no_cuda}, paper_img_s=None,
                      paper_train={"skipped": no_cuda})
    # (name, what it runs, about how long it takes, whether it runs here); the figures first, the tests last
    sections = [("environment", lambda: result.update(_environment(device)), 10, True),
                ("shapes", lambda: time_shapes(result, device, args.repeats), 60, cuda),
                ("train_small", lambda: train_small(result, work, device, args.seconds, args.quick), args.seconds + 30,
                 True),
                ("train_paper", lambda: train_paper(result, device, args.seconds), args.seconds + 30, cuda),
                ("probe", lambda: probe_run(result, work, device, args.quick), 60, True),
                ("tests", lambda: run_tests(result), 120, cuda)]
    for name, fn, needs, runs_here in sections:
        left = args.budget - (time.perf_counter() - t)
        if not runs_here:
            continue
        if name == "probe" and "small_train" not in result:
            result["skipped"][name] = "no small run to probe (train_small did not finish)"
        elif left < needs:
            result["skipped"][name] = f"budget: {left:.0f} s left, it needs about {needs:.0f}"
        else:
            _section(result, name, fn)
        result["seconds"] = round(time.perf_counter() - t, 1)
        write_json(args.out / "device-check.json", result)
    _say(f"wrote {args.out / 'device-check.json'} in {result['seconds']} s; "
         f"failed: {', '.join(result['errors']) or 'none'}; skipped: {', '.join(result['skipped']) or 'none'}")
    sys.exit(1 if result["errors"] else 0)


if __name__ == "__main__":
    main()
