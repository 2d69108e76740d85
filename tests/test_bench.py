import pytest

from catneuron import bench
from catneuron.config import preset
from catneuron.nn import lc_bf16


def test_training_throughput_is_measured_in_both_precisions_where_bf16_exists():
    rows = bench.train_throughput(preset("tiny"), steps=2)
    assert [r["precision"] for r in rows] == (["fp32", "bf16"] if lc_bf16.available() else ["fp32"])
    assert all(r["images_per_s"] > 0 and r["data"] == "random" for r in rows)


def test_arithmetic_peak_is_measured_for_the_instructions_the_cpu_has():
    peaks = bench.instruction_peaks(repeats=1, threads=1)
    if not peaks:
        pytest.skip("no AVX-512 or no compiler")
    assert peaks["fp32"] > 1.0
    assert ("bf16" in peaks) == lc_bf16.available()


def test_each_kernel_is_rated_against_the_peak_of_its_own_precision():
    case = bench.LayerCase("tiny", channels=3, size=12, receptive_field=5, stride=1, maps=4, batch=8)
    peaks, arithmetic = {"fp32": 100.0, "bf16": 400.0}, {"fp32": 200.0, "bf16": 800.0}
    rows = {r["impl"]: r for r in bench.bench_case(case, repeats=1, include_naive=False, peaks=peaks,
                                                   arithmetic=arithmetic)}
    assert ("native-bf16" in rows) == lc_bf16.available()
    for impl, row in rows.items():
        precision = "bf16" if impl.endswith("bf16") else "fp32"
        assert row["peak_pct"] == pytest.approx(row["gflops"] / peaks[precision] * 100)
        assert row["arithmetic_pct"] == pytest.approx(row["gflops"] / arithmetic[precision] * 100)
