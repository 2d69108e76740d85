"""The paper's best-neuron test, streamed over any number of candidate detectors.

For each candidate (a neuron at one test-image placement, a linear filter, a centroid):
  - its minimum and maximum response over the test set (pass 1);
  - 20 thresholds equally spaced strictly between them, t_k = min + k (max - min) / 21, k = 1..20;
  - accuracy at each threshold with the paper's polarity, "response >= t_k means positive";
  - the best of the 20 (the paper's number), the best of either polarity (reported beside it), and
    the ROC AUC (threshold-free; the 20-threshold protocol hangs on two extreme responses).
Counts come from per-candidate histograms whose bin edges include the 20 thresholds (pass 2), so
memory is 2 x candidates x bins counters, independent of the number of test images, and a million
candidates fit. AUC is computed from the same histograms, counting pairs that share a bin as ties
(its resolution is 1/bins of the response range).
"""
from __future__ import annotations

from dataclasses import dataclass

import ctypes
import functools

import torch

from catneuron import native
from catneuron.errors import CatneuronError

THRESHOLDS = 20


@functools.lru_cache(maxsize=1)
def _histogram_kernel():
    lib = native.load("histogram")
    if lib is not None:
        p, i64 = ctypes.c_void_p, ctypes.c_int64
        lib.catneuron_histogram.argtypes = [p, p, p, p, p, i64, i64, i64, ctypes.c_int]
    return lib


@dataclass
class Scores:
    accuracy: torch.Tensor           # (U,) best accuracy over the 20 thresholds, "above = positive"
    threshold: torch.Tensor          # (U,) the threshold that gives it
    accuracy_either: torch.Tensor    # (U,) best over the thresholds and both polarities
    auc: torch.Tensor                # (U,) ROC AUC of "higher response = positive"
    positives: int
    negatives: int

    @property
    def all_negative(self) -> float:
        return self.negatives / max(1, self.positives + self.negatives)


class StreamingScorer:
    """Feed batches twice: `observe_range` over the whole set, then `observe` over it again.

    Responses carry a class id in 0..classes-1 (e.g. 0/1 = negative/positive, or four ids for the
    negatives and positives of two splits); `scores` then names which ids count as positive and
    which as negative, so one histogram pass serves several splits. Thresholds come from the
    range over everything observed (no labels enter it).

    The state lives on the device of the responses (moved there by the first batch), so a GPU's
    responses never cross to the CPU; `scores` returns CPU tensors.
    """

    def __init__(self, candidates: int, classes: int = 2, thresholds: int = THRESHOLDS, bins_per_step: int = 4,
                 chunk: int = 1 << 17):
        self.U, self.classes, self.T, self.bps = candidates, classes, thresholds, bins_per_step
        self.bins = (thresholds + 1) * bins_per_step
        self.chunk = chunk
        self.lo = torch.full((candidates,), float("inf"))
        self.hi = torch.full((candidates,), float("-inf"))
        self.counts: torch.Tensor | None = None      # (classes, U, bins)

    def observe_range(self, acts: torch.Tensor) -> None:
        """acts: (B, U)."""
        self.lo, self.hi = self.lo.to(acts.device), self.hi.to(acts.device)
        finite = torch.isfinite(acts).all(0)
        if not finite.all():           # a NaN would land in some bin and be scored as a response
            units = torch.nonzero(~finite).flatten()
            raise CatneuronError(f"{len(units)} detectors respond NaN or inf (the first: detector {int(units[0])}); "
                                 f"nothing scored. Are the weights from a training that diverged?")
        if acts.shape[0]:
            self.lo = torch.minimum(self.lo, acts.min(0).values.float())
            self.hi = torch.maximum(self.hi, acts.max(0).values.float())

    def observe(self, acts: torch.Tensor, classes: torch.Tensor) -> None:
        """acts: (B, U); classes: (B,) ints in 0..classes-1 (a bool tensor: True = positive)."""
        if self.counts is None:
            self.counts = torch.zeros(self.classes, self.U, self.bins, dtype=torch.int32, device=acts.device)
        if self.lo.device != acts.device:
            raise ValueError(f"responses on {acts.device}, but their range was observed on {self.lo.device}")
        if not acts.shape[0]:
            return
        y = classes.long().to(acts.device)
        scale = self.bins / (self.hi - self.lo).clamp_min(1e-30)
        lib = _histogram_kernel() if acts.device.type == "cpu" else None
        if lib is not None:
            a = acts.float().contiguous()
            ptr = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
            lib.catneuron_histogram(ptr(a), ptr(y.contiguous()), ptr(self.lo), ptr(scale.contiguous()),
                                    ptr(self.counts), a.shape[0], self.U, self.bins, torch.get_num_threads())
            return
        y = y[:, None]
        for start in range(0, self.U, self.chunk):
            end = min(self.U, start + self.chunk)
            width = end - start
            b = ((acts[:, start:end].float() - self.lo[start:end]) * scale[start:end]).long().clamp_(0, self.bins - 1)
            b += (y * width + torch.arange(width, device=acts.device)[None, :]) * self.bins
            hist = torch.bincount(b.view(-1), minlength=self.classes * width * self.bins)
            self.counts[:, start:end] += hist.view(self.classes, width, self.bins).to(torch.int32)

    def scores(self, positive: tuple[int, ...] = (1,), negative: tuple[int, ...] = (0,)) -> Scores:
        # A constant candidate has every response in bin 0: it scores as all-negative, AUC 0.5.
        pos = self.counts[list(positive)].sum(0).double()
        neg = self.counts[list(negative)].sum(0).double()
        P, N = pos[0].sum().item(), neg[0].sum().item()
        # Responses in bins >= k * bins_per_step are exactly those >= t_k.
        pos_above = pos.flip(1).cumsum(1).flip(1)[:, self.bps::self.bps][:, :self.T]       # (U, T)
        neg_above = neg.flip(1).cumsum(1).flip(1)[:, self.bps::self.bps][:, :self.T]
        acc_up = (pos_above + (N - neg_above)) / max(1.0, P + N)
        acc_down = ((P - pos_above) + neg_above) / max(1.0, P + N)
        best, k = acc_up.max(1)
        either = torch.maximum(best, acc_down.max(1).values)
        neg_below = neg.cumsum(1) - neg
        auc = (pos * (neg_below + 0.5 * neg)).sum(1) / max(1.0, P * N)
        threshold = self.lo + (k + 1).to(self.lo.dtype) * (self.hi - self.lo) / (self.T + 1)
        return Scores(best.float().cpu(), threshold.cpu(), either.float().cpu(), auc.float().cpu(), int(P), int(N))


def accuracy_at(acts: torch.Tensor, labels: torch.Tensor, threshold: float) -> float:
    """Accuracy of "response >= threshold means positive" on one candidate's responses."""
    return ((acts >= threshold) == labels.bool()).double().mean().item()


def average_ranks(acts: torch.Tensor) -> torch.Tensor:
    """(N, U) responses -> (N, U) float64 ranks 1..N of each column, tied responses sharing their
    average rank: the rank sums of the ROC AUC, in which a tie counts half (units at the LCN
    floor respond alike to many images)."""
    values, order = acts.double().sort(0)
    n = values.shape[0]
    index = torch.arange(n).unsqueeze(1).expand_as(values)
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[1:] = values[1:] != values[:-1]
    ends = torch.ones_like(starts)
    ends[:-1] = starts[1:]
    first = torch.where(starts, index, 0).cummax(0).values
    last = torch.where(ends, index, n - 1).flip(0).cummin(0).values.flip(0)
    return torch.empty_like(values).scatter_(0, order, (first + last).double() / 2 + 1)


def exact_auc(acts: torch.Tensor, labels: torch.Tensor) -> float:
    """ROC AUC by ranks (ties count half): P(response of a positive > response of a negative)."""
    labels = labels.bool()
    P, N = int(labels.sum()), int((~labels).sum())
    if P == 0 or N == 0:
        return 0.5
    ranks = average_ranks(acts.reshape(-1, 1))[:, 0]
    return ((ranks[labels].sum() - P * (P + 1) / 2) / (P * N)).item()


def brute_force_best(acts: torch.Tensor, labels: torch.Tensor, thresholds: int = THRESHOLDS) -> tuple[float, float]:
    """(best accuracy, its threshold) for one candidate, computed directly: the reference for tests."""
    lo, hi = acts.min().item(), acts.max().item()
    best, best_t = -1.0, lo
    for k in range(1, thresholds + 1):
        t = lo + k * (hi - lo) / (thresholds + 1)
        a = accuracy_at(acts, labels, t)
        if a > best:
            best, best_t = a, t
    return best, best_t
