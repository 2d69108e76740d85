"""Small image files and shards made inside tests."""
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from catneuron.data.shards import ShardWriter


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def random_images(n: int, size: int = 24, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def write_shards(prefix: Path, images: list[np.ndarray], per_shard: int = 10) -> list[Path]:
    with ShardWriter(prefix, max_count=per_shard) as w:
        for i, img in enumerate(images):
            w.write(f"img{i:05d}", {"png": png_bytes(img), "json": json.dumps({"index": i}).encode()})
    return w.written
