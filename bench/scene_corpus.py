"""A training corpus in which faces appear the way the default face test shows them: at varied
places and sizes inside natural scenes (issue "The face neuron", the lever "how much of the data
is faces, and where").

    python bench/scene_corpus.py --faces 0.3 --count 100000 --out corpora/scenes30

Every image is one object blended into a natural scene by the face test's own pipeline
(catneuron/probe/scenes.py, without its statistics matching, which only the test needs): with
probability FACES the object is a UTKFace crop of `faces-200/pool` (never a test face), else a
Tiny ImageNet image of `natural-64/train` or `natural-64/extra`; the scene is another of those
natural images. Objects are mirrored at random, so each of the pool's 3,000 faces returns at new
places, sizes and sides. The tight UTKFace crop is placed at 45-80 % of the canvas so that the face
spans what an LFW face spans in the test (35-60 %); natural objects as the test's distractors.
Writes 64x64 JPEG shards and a manifest (recipe, seed, counts, code version), as `data compose`.
"""
import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from catneuron.data.images import encode_jpeg
from catneuron.data.jobs import job_metadata
from catneuron.data.shards import ShardWriter
from catneuron.data.sources import data_root, iter_records, resolve
from catneuron.files import replacing_dir, write_json
from catneuron.probe.scenes import Scene, compose, source_chain

FACES = ("faces-200/pool",)
NATURAL = ("natural-64/train", "natural-64/extra")
FACE_SCENE = Scene(object_side=(0.45, 0.8), match_statistics=False)
OBJECT_SCENE = Scene(object_side=(0.65, 1.05), match_statistics=False)


def _jpegs(specs, root) -> list[bytes]:
    return [rec.require_image() for rec, _ in iter_records([resolve(s, root) for s in specs])]


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=float, required=True, help="fraction of images whose object is a face")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 0 <= args.faces <= 1:
        sys.exit(f"--faces {args.faces}: expected a fraction in [0, 1]")
    if args.out.exists():
        sys.exit(f"{args.out} exists; choose another --out or delete it")
    root = data_root(None)
    faces, natural = _jpegs(FACES, root), _jpegs(NATURAL, root)
    rng = np.random.default_rng(args.seed)
    made = {"face": 0, "natural": 0}
    with replacing_dir(args.out) as tmp, ShardWriter(tmp / "train", max_count=5000) as writer:
        for i in tqdm(range(args.count), unit="img", desc="scenes", mininterval=5):
            is_face = rng.random() < args.faces
            pool, scene = (faces, FACE_SCENE) if is_face else (natural, OBJECT_SCENE)
            k = int(rng.integers(len(pool)))
            obj = _open(pool[k])
            if rng.random() < 0.5:
                obj = obj.transpose(Image.FLIP_LEFT_RIGHT)
            obj = source_chain(obj, max(obj.size), scene)
            b = int(rng.integers(len(natural)))
            while not is_face and b == k:        # never an object on its own picture
                b = int(rng.integers(len(natural)))
            pixels = compose(obj, np.asarray(_open(natural[b])), args.size, scene, rng)
            made["face" if is_face else "natural"] += 1
            meta = {"object": "face" if is_face else "natural", "object_index": k, "scene_index": b}
            writer.write(f"{i:08d}", {"jpg": encode_jpeg(pixels), "json": json.dumps(meta).encode()})
        writer.close()
        write_json(tmp / "manifest.json", job_metadata(
            kind="scene-corpus", size=args.size, seed=args.seed, count=args.count, faces=args.faces,
            face_sources=list(FACES), natural_sources=list(NATURAL), made=made,
            face_object_side=list(FACE_SCENE.object_side), object_side=list(OBJECT_SCENE.object_side),
            offset=FACE_SCENE.offset, shards=[s.name for s in writer.written]))
    print(json.dumps(made))


if __name__ == "__main__":
    main()
