"""bench/device_check.py, the GPU issue's one prepared check: it must start and hold together on a
CPU (CI), so that the minutes a GPU is lent go to measuring, not to debugging."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from catneuron.bench import LayerCase
from catneuron.nn import lc_triton

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "bench" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_memory_bound_time_counts_each_tensor_as_documented():
    """3x3 input, 2x2 fields, 1 map, batch 1: 16 weights (read twice, gradient written once), 9 inputs
    and 4 outputs (each read or written three times) = 87 values = 348 bytes in float32."""
    case = LayerCase("known", channels=1, size=3, receptive_field=2, stride=1, maps=1, batch=1)
    assert _module().bound_seconds(case, 4, bandwidth=348.0) == pytest.approx(1.0)
    assert _module().bound_seconds(case, 2, bandwidth=348.0) == pytest.approx(0.5)


def test_layer_cases_are_the_issues_shapes():
    check = _module()
    names = [check.layer_case(*shape).name for shape in check.SHAPES]
    assert names == ["small s1: 64x64x3, rf 12, 8 maps, b100", "paper s1: 200x200x3, rf 18, 8 maps, b32",
                     "paper s2: 179x179x8, rf 18, 8 maps, b32"]


@pytest.mark.skipif(not lc_triton.available(), reason="the triton package is not installed")
def test_kernel_timing_section_runs_and_checks_ours_against_lc_batched():
    """The shapes section on a tiny layer (the interpreter stands in for the GPU): one row with every
    timing, the bounds, and ours equal to lc_batched."""
    check = _module()
    result = {"bandwidth_gb_s": check.copy_bandwidth(torch.device("cpu"), mib=8) / 1e9}
    case = LayerCase("8x8x3, rf 3, 4 maps, b3", channels=3, size=8, receptive_field=3, stride=1, maps=4, batch=3)
    check.time_shapes(result, torch.device("cpu"), repeats=1, cases=[case])
    (row,) = result["shapes"]
    assert row["name"] == case.name
    for key in ("ours_ms", "ours_tf32_ms", "ours_bf16_ms", "lc_batched_ms", "cudnn_ms", "bound_ms", "bound_bf16_ms"):
        assert row[key] > 0, key
    assert row["bound_bf16_ms"] == pytest.approx(row["bound_ms"] / 2, rel=0.01)
    assert max(row["ours_vs_lc_batched_rel_error"]) < 1e-5


def test_training_throughput_section_measures_steps():
    check = _module()
    result = {}
    check.train_paper(result, torch.device("cpu"), seconds=0.5, name="tiny")
    assert result["paper_img_s"] > 0 and result["paper_train"]["steps"] >= 1


@pytest.mark.slow
def test_the_whole_check_runs_on_a_cpu(tmp_path):
    """The command as the device runs it: every CUDA section says it was skipped, the rest measure,
    and the JSON has the fields the issue asks for."""
    out = tmp_path / "check"
    done = subprocess.run(["bash", str(ROOT / "bench" / "device_check.sh"), str(out), "--quick", "--seconds", "6"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((out / "device-check.json").read_text())
    assert result["errors"] == {} and result["skipped"] == {}
    assert {"device", "torch", "cuda", "shapes", "small_img_s", "paper_img_s"} <= result.keys()
    assert result["device"] == "cpu" and result["shapes"] == {"skipped": "needs CUDA: this machine has none"}
    assert result["small_train"]["preset"] == "tiny" and result["small_train"]["images_per_s"] > 0
    assert set(result["probe"]["best_percent"]) == {"trained-whole", "random-whole", "linear"}
    assert (out / "device-check.log").read_text().count("device-check:") >= 4


def test_a_section_that_would_not_fit_the_budget_is_skipped_and_said(tmp_path):
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "device_check.py"), str(out), "--quick",
                           "--budget", "20", "--seconds", "5"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((out / "device-check.json").read_text())
    assert result["skipped"]["train_small"].startswith("budget: ")
    assert result["skipped"]["probe"] == "no small run to probe (train_small did not finish)"
