"""Invariance curves: a neuron's mean response over 10 faces as they are scaled, translated and
turned out of plane (the paper's Figures 4 and 5).

The faces are placed as in the probe: on the neuron's field (field mode) or over the whole input,
the rest of the input filled with each image's mean colour. Scale is relative to that field;
translation is in input pixels. Out-of-plane rotation uses real head turns: the frames of the
head-pose clips (the `videos/head-pose` set of the data root), each cropped around the head where OpenCV's
frontal detector finds it in the frames it can, plotted against time; the frames where the frontal
detector itself fires are marked, so a response that stays up where they stop is rotation
invariance the detector lacks. ORL's 400 faces (10 small pose changes per person) are compared
with the test set's faces and distractors.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from catneuron.data.images import fit_inside
from catneuron.data.preprocess import preprocessed
from catneuron.probe.detectors import NetworkDetectors
from catneuron.probe.optvis import unit
from catneuron.probe.testsets import as_float, place
from catneuron.probe.drawing import curve_png, png, pyplot


class UnitOnField:
    """One neuron, and its responses to images placed at a chosen scale and offset on its field."""

    def __init__(self, det: NetworkDetectors, candidate: int, preprocess: str = "standardize"):
        self.det, self.f, self.preprocess = det, unit(det, candidate), preprocess
        info = det.describe(candidate)
        self.S = det.cfg.input_size
        self.field = det.field if det.mode == "field" else self.S
        self.top, self.left = info["placement"] if det.mode == "field" else (0, 0)

    @torch.no_grad()
    def responses(self, images: np.ndarray, scale: float = 1.0, dy: int = 0, dx: int = 0) -> np.ndarray:
        size = round(scale * self.field)
        centre_y, centre_x = self.top + self.field / 2, self.left + self.field / 2
        top, left = round(centre_y - size / 2) + dy, round(centre_x - size / 2) + dx
        canvases = place(as_float(images, self.det.device), self.S, size, top, left)
        return self.f(preprocessed(canvases, self.preprocess)).cpu().numpy()


def scale_translation_curves(probe: UnitOnField, faces: np.ndarray) -> dict[str, dict]:
    scales = [round(s, 2) for s in np.arange(0.3, 1.31, 0.1)]
    shifts = list(range(-24, 25, 4))

    def stats(values):
        return [float(np.mean(v)) for v in values], [float(np.std(v)) for v in values]

    out = {}
    m, s = stats([probe.responses(faces, scale=k) for k in scales])
    out["scale"] = {"x": scales, "mean": m, "std": s}
    for axis in ("horizontal", "vertical"):
        m, s = stats([probe.responses(faces, dx=d) if axis == "horizontal" else probe.responses(faces, dy=d)
                      for d in shifts])
        out[axis] = {"x": shifts, "mean": m, "std": s}
    return out


def head_turn_frames(folder: Path, size: int) -> dict[str, dict]:
    """clip name -> {"frames": uint8 (T, size, size, 3) head crops, "times": [...], "frontal": [bool]}."""
    from catneuron.data.faces import FaceDetector
    import av
    detector = FaceDetector()
    clips = {}
    for path in sorted(folder.glob("*")):
        if path.suffix.lower() not in (".gif", ".mp4", ".mkv", ".avi", ".webm"):
            continue
        with av.open(str(path)) as c:
            frames = [(f.to_ndarray(format="rgb24"), float(f.time or 0)) for f in c.decode(video=0)]
        boxes = [detector.detect(rgb) for rgb, _ in frames]
        found = [max(b, key=lambda r: r[2] * r[3]) for b in boxes if b]
        if not found:
            continue
        x, y, w, h = np.median(np.array(found), axis=0)
        side = 1.6 * max(w, h)                      # the head with some context, like the test crops
        cx, cy = x + w / 2, y + h / 2
        crops = []
        for rgb, _ in frames:
            H, W = rgb.shape[:2]
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            x1, y1 = int(min(W, cx + side / 2)), int(min(H, cy + side / 2))
            crops.append(fit_inside(rgb[y0:y1, x0:x1], size))
        clips[path.stem] = {"frames": np.stack(crops), "times": [t for _, t in frames],
                            "frontal": [bool(b) for b in boxes]}
    return clips


def rotation_png(probe: UnitOnField, clips: dict[str, dict]) -> tuple[bytes, dict]:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    data = {}
    for name, clip in clips.items():
        r = probe.responses(clip["frames"])
        t = np.asarray(clip["times"])
        label = name.replace("head-pose-face-detection-", "")
        line, = ax.plot(t, r, lw=1.2, label=label)
        frontal = np.asarray(clip["frontal"])
        ax.plot(t[frontal], r[frontal], "o", ms=3, color=line.get_color())
        data[name] = {"time": t.tolist(), "response": r.tolist(), "frontal_detector": frontal.tolist()}
    ax.set_xlabel("time in the clip (s); dots: frames where OpenCV's frontal detector finds the face")
    ax.set_ylabel("response")
    ax.set_title("head turning (out-of-plane rotation)", fontsize=9)
    ax.legend(fontsize=7)
    return png(fig), data


def orl_png(probe: UnitOnField, orl: np.ndarray, faces: np.ndarray, distractors: np.ndarray) -> tuple[bytes, dict]:
    plt = pyplot()
    groups = {"test faces": probe.responses(faces), "ORL faces (pose changes)": probe.responses(orl),
              "distractors": probe.responses(distractors)}
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    ax.boxplot(list(groups.values()), showfliers=False)
    ax.set_xticks(range(1, len(groups) + 1), list(groups.keys()), fontsize=8)
    ax.set_ylabel("response")
    ax.set_title("ORL faces vs the test set", fontsize=9)
    return png(fig), {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)} for k, v in groups.items()}


def curves_pngs(curves: dict[str, dict]) -> dict[str, bytes]:
    return {"scale": curve_png({"10 faces": (curves["scale"]["x"], curves["scale"]["mean"], curves["scale"]["std"])},
                               "scale (relative to the field)", "scale"),
            "translation": curve_png({axis: (curves[axis]["x"], curves[axis]["mean"], curves[axis]["std"])
                                      for axis in ("horizontal", "vertical")}, "translation (pixels)",
                                     "translation")}
