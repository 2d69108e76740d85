import os
from pathlib import Path

import pytest
import torch

# Without CUDA the Triton kernels' tests run in Triton's interpreter, which must be chosen before
# triton is first imported (catneuron.nn.local imports it).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from catneuron.data.sources import data_root  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The real data (../shared/datasets or $CATNEURON_DATA); tests that need it skip without it."""
    root = data_root()
    if root is None or not (root / "natural-64").is_dir():
        pytest.skip("real datasets not found: set CATNEURON_DATA")
    return root


@pytest.fixture
def kernel_cache(tmp_path_factory, monkeypatch):
    """A private native-kernel cache, so build tests do not touch the user's."""
    path = tmp_path_factory.mktemp("kernel-cache")
    monkeypatch.setenv("CATNEURON_CACHE", str(path))
    return path
