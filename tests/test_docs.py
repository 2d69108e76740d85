import re
from pathlib import Path

import numpy as np
from PIL import Image

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_python_guide_runs_as_written(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "python.md").read_text(), re.S)
    assert len(blocks) >= 3
    rng = np.random.default_rng(0)
    (tmp_path / "my-images").mkdir()
    for k in range(40):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "my-images" / f"{k}.jpg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOCS / "python.md"), "exec"), namespace)
    assert (tmp_path / "runs" / "mine" / "model.safetensors").exists()
    assert namespace["top"].shape[0] == 5 and namespace["responses"].shape == (5,)
