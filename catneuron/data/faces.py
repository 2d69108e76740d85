"""The face audit and the face-free control corpus, with OpenCV's Haar frontal-face detector.

The paper ran "an OpenCV face detector" on 100,000 random 60x60 patches of its training frames
(faces in under 3 %) and built its control corpus by removing every training image in which the
detector found a face. We use ``haarcascade_frontalface_default.xml`` (opencv-python-headless 4.x
ships it in ``cv2.data.haarcascades``) on the grey image with scaleFactor 1.1, minNeighbors 5, a
24-pixel minimum face and a mid-grey border (see FaceDetector.pad).

    catneuron data audit CORPUS [--patches 100000] [--patch-size 60]   fractions of patches and images
    catneuron data control CORPUS --out corpora/control                the corpus minus detected images
"""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from catneuron.data.images import decode, fit_square
from catneuron.data.jobs import WorkResult, job_metadata, run_job
from catneuron.files import write_json
from catneuron.data.parallel import ordered_map
from catneuron.data.shards import Record
from catneuron.data.sources import Source, Unit, read_unit, unit_size, units
from catneuron.errors import DataError
from catneuron.progress import progress as progress_bar

CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class FaceDetector:
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 24
    # Border added on each side (fraction of the side, mid-grey) before detection. The cascade needs
    # some context around a face: on tight face crops (UTKFace) it finds only ~46 % without a border,
    # ~97 % with this one (docs/RESULTS.md).
    pad: float = 0.25

    @functools.cached_property
    def _cascade(self):
        import cv2
        path = Path(cv2.data.haarcascades) / CASCADE
        cascade = cv2.CascadeClassifier(str(path))
        if cascade.empty():
            raise DataError(f"OpenCV face cascade {path} missing or unreadable; install opencv-python-headless 4.x")
        return cascade

    def detect(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Faces in an RGB (or grey) uint8 image as (x, y, w, h) boxes in its coordinates."""
        import cv2
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        if min(grey.shape) < self.min_size:
            return []
        by, bx = round(self.pad * grey.shape[0]), round(self.pad * grey.shape[1])
        if by or bx:
            grey = cv2.copyMakeBorder(grey, by, by, bx, bx, cv2.BORDER_CONSTANT, value=128)
        found = self._cascade.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               minSize=(self.min_size, self.min_size))
        return [(int(x) - bx, int(y) - by, int(w), int(h)) for x, y, w, h in found]


def record_source(rec: Record, default: str) -> str:
    """The named set a record came from (composed corpora store it as "source_set"), else `default`."""
    try:
        return rec.meta().get("source_set", default)
    except DataError:
        return default


def _rgb(rec: Record, size: int | None) -> np.ndarray:
    data = rec.require_image()
    img = decode(data, rec.origin)
    return fit_square(img, size) if size else np.asarray(img.convert("RGB"))


# ---------------------------------------------------------------------------------------------
# Audit

@dataclass
class AuditReport:
    corpus: list[str]
    images: int = 0
    images_with_face: int = 0
    patches: int = 0
    patches_with_face: int = 0
    patches_too_small: int = 0                   # drawn from images smaller than a patch: not measured
    patch_size: int = 60
    size: int | None = None                      # images resized to this first (None: as stored)
    unreadable: dict[str, str] = field(default_factory=dict)
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)
    face_keys: list[str] = field(default_factory=list)     # records in which a face was found
    detector: dict = field(default_factory=dict)
    seed: int = 0

    # None where nothing was measured: 0 of 0 is no evidence of 0 %
    @property
    def image_fraction(self) -> float | None:
        return self.images_with_face / self.images if self.images else None

    @property
    def patch_fraction(self) -> float | None:
        return self.patches_with_face / self.patches if self.patches else None

    def summary(self) -> str:
        def share(found: int, of: int) -> str:
            return f"{found:,} of {of:,} = {100 * found / of:.2f} %" if of else "none measured"
        lines = [f"images with a face: {share(self.images_with_face, self.images)}",
                 f"{self.patch_size}x{self.patch_size} patches with a face: "
                 f"{share(self.patches_with_face, self.patches)}"]
        if len(self.by_source) > 1:
            for name, c in sorted(self.by_source.items()):
                lines.append(f"  {name}: images {share(c['faces'], c['images'])}, "
                             f"patches {share(c['patch_faces'], c['patches'])}")
        if self.patches_too_small:
            lines.append(f"patches not measured, their image smaller than {self.patch_size} px: "
                         f"{self.patches_too_small:,}")
        if self.unreadable:
            lines.append(f"unreadable records skipped: {len(self.unreadable)}")
        return "\n".join(lines)

    def save(self, path: Path) -> None:
        write_json(path, {**asdict(self), "image_fraction": self.image_fraction,
                          "patch_fraction": self.patch_fraction, **job_metadata()})


def _audit_unit(job, detector: FaceDetector, patch_size: int, size: int | None, seed: int):
    """[(key, source, face in the whole image?, [face in patch k?])], [(origin, why unreadable)]."""
    unit, patch_counts, first_index = job
    found, unreadable = [], []
    for k, rec in enumerate(read_unit(unit)):
        try:
            rgb = _rgb(rec, size)
        except DataError as err:
            unreadable.append((rec.origin, str(err).split(": ", 1)[-1]))
            continue
        rng = np.random.default_rng([seed, first_index + k])
        h, w = rgb.shape[:2]
        wanted = int(patch_counts[k]) if k < len(patch_counts) else 0
        patches = []
        for _ in range(wanted if min(h, w) >= patch_size else 0):     # a smaller patch is another measure
            y, x = int(rng.integers(0, h - patch_size + 1)), int(rng.integers(0, w - patch_size + 1))
            patches.append(bool(detector.detect(rgb[y:y + patch_size, x:x + patch_size])))
        found.append((rec.key, record_source(rec, unit.spec), bool(detector.detect(rgb)), patches,
                      wanted - len(patches)))
    return found, unreadable


def audit(sources: list[Source], patches: int = 100_000, patch_size: int = 60, size: int | None = None,
          seed: int = 0, workers: int = 0, detector: FaceDetector | None = None, progress: bool = True) -> AuditReport:
    """The detector on every whole image and on `patches` random patch_size patches of random images
    (each patch's image drawn uniformly, its position uniformly inside the image)."""
    detector = detector or FaceDetector()
    parts = units(sources)
    sizes = [unit_size(u) for u in parts]
    total = sum(sizes)
    if total == 0:
        raise DataError("audit: the corpus holds no records")
    if patches < 0 or patch_size < 1:
        raise DataError(f"audit: {patches} patches of side {patch_size}; expected patches >= 0 and a side >= 1")
    per_record = np.random.default_rng(seed).multinomial(patches, np.full(total, 1.0 / total))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    jobs = [(u, per_record[starts[i]:starts[i + 1]], int(starts[i])) for i, u in enumerate(parts)]
    report = AuditReport([s.spec for s in sources], patch_size=patch_size, size=size, seed=seed,
                         detector=asdict(detector))
    by_source: dict[str, Counter] = {}
    work = functools.partial(_audit_unit, detector=detector, patch_size=patch_size, size=size, seed=seed)
    with progress_bar(total=total, unit="img", desc="audit", enabled=progress) as bar:
        for found, unreadable in ordered_map(work, jobs, workers, chunk=1):
            report.unreadable.update(unreadable)
            for key, source, whole, hits, too_small in found:
                report.patches_too_small += too_small
                c = by_source.setdefault(source, Counter())
                c["images"] += 1
                c["faces"] += whole
                c["patches"] += len(hits)
                c["patch_faces"] += sum(hits)
                if whole:
                    report.face_keys.append(key)
            bar.update(len(found) + len(unreadable))
    report.by_source = {k: dict(v) for k, v in sorted(by_source.items())}
    for c in report.by_source.values():
        report.images += c["images"]
        report.images_with_face += c["faces"]
        report.patches += c["patches"]
        report.patches_with_face += c["patch_faces"]
    if not report.images:
        origin, why = next(iter(report.unreadable.items()))
        raise DataError(f"audit: none of the {total:,} records could be read (first: {origin}: {why})")
    return report


# ---------------------------------------------------------------------------------------------
# Control corpus

def _control_unit(unit: Unit, detector: FaceDetector, size: int | None) -> WorkResult:
    result = WorkResult(files=0)
    stats = Counter()
    for rec in read_unit(unit):
        result.files += 1
        source = record_source(rec, unit.spec)
        try:
            rgb = _rgb(rec, size)
        except DataError as err:
            result.skipped.append((rec.origin, str(err).split(": ", 1)[-1]))
            continue
        stats[f"images/{source}"] += 1
        if detector.detect(rgb):
            stats[f"removed/{source}"] += 1
        else:
            result.records.append((rec.key, rec.files))
    result.stats = dict(stats)
    return result


def control_corpus(sources: list[Source], out: Path, size: int | None = None, workers: int = 0,
                   detector: FaceDetector | None = None, recall: float | None = None,
                   progress: bool = True) -> dict:
    """Copy the corpus to `out`, byte for byte, without every image in which the detector finds a face.

    Returns (and writes as out/manifest.json) the counts per source and, when the detector's `recall`
    on known faces is given, the expected number of faces it missed: removed x (1 - recall) / recall.
    """
    detector = detector or FaceDetector()
    parts = units(sources)
    report = run_job(out, parts, functools.partial(_control_unit, detector=detector, size=size), workers=workers,
                     desc="control", progress=progress, total_files=sum(unit_size(u) for u in parts),
                     job=dict(kind="control", sources=[s.spec for s in sources], size=size, detector=asdict(detector)))
    by_kind: dict[str, dict[str, int]] = {"images": {}, "removed": {}}
    for name, n in report.stats.items():
        kind, source = name.split("/", 1)
        by_kind[kind][source] = n
    removed = sum(by_kind["removed"].values())
    manifest = job_metadata(
        kind="control", corpus=[s.spec for s in sources], size=size, detector=asdict(detector),
        images=sum(by_kind["images"].values()), kept=report.written, removed=removed,
        unreadable=len(report.skipped), images_by_source=by_kind["images"], removed_by_source=by_kind["removed"],
        shards=report.shards, detector_recall=recall,
        expected_missed_faces=round(removed * (1 - recall) / recall, 1) if recall else None)
    write_json(out / "manifest.json", manifest)
    return manifest
