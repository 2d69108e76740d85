import pytest
import torch

from catneuron.errors import CatneuronError
from catneuron.probe.selectivity import StreamingScorer, brute_force_best, exact_auc


def _score(acts, labels, batch=7):
    s = StreamingScorer(acts.shape[1], chunk=5)           # small chunks: the chunked path is exercised
    for start in range(0, len(acts), batch):
        s.observe_range(acts[start:start + batch])
    for start in range(0, len(acts), batch):
        s.observe(acts[start:start + batch], labels[start:start + batch])
    return s.scores()


def test_streaming_accuracy_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    labels = torch.rand(97, generator=g) < 0.35
    acts = torch.randn(97, 13, generator=g) + labels[:, None] * torch.linspace(-2, 2, 13)   # some selective
    scores = _score(acts, labels)
    for u in range(13):
        best, t = brute_force_best(acts[:, u], labels)
        assert scores.accuracy[u].item() == pytest.approx(best, abs=1e-6)
        assert scores.threshold[u].item() == pytest.approx(t, rel=1e-5)
        flipped, _ = brute_force_best(-acts[:, u], labels)
        assert scores.accuracy_either[u].item() == pytest.approx(max(best, flipped), abs=0.02)
        assert scores.auc[u].item() == pytest.approx(exact_auc(acts[:, u], labels), abs=0.03)
    assert scores.positives == int(labels.sum()) and scores.all_negative == pytest.approx(1 - labels.float().mean())


def test_planted_detector_is_found():
    """A unit that is exactly a template match to the positives beats every other unit."""
    g = torch.Generator().manual_seed(1)
    template = torch.randn(50, generator=g)
    labels = torch.arange(200) % 3 == 0
    images = torch.randn(200, 50, generator=g) + labels[:, None] * template
    filters = torch.randn(30, 50, generator=g)
    filters[17] = template
    scores = _score(images @ filters.T, labels)
    assert scores.accuracy.argmax().item() == 17 and scores.auc.argmax().item() == 17
    assert scores.accuracy[17] > 0.95


def test_constant_candidate_scores_as_all_negative():
    labels = torch.tensor([True, False, False, False])
    scores = _score(torch.ones(4, 2), labels)
    assert scores.accuracy.tolist() == [0.75, 0.75] and scores.auc.tolist() == [0.5, 0.5]


def test_non_finite_responses_are_an_error_not_a_score():
    acts = torch.rand(50, 6)
    acts[7, 4] = float("nan")
    with pytest.raises(CatneuronError, match=r"1 detectors respond NaN or inf \(the first: detector 4\)"):
        _score(acts, torch.rand(50) > 0.5)


def test_exact_auc_with_ties():
    assert exact_auc(torch.tensor([1.0, 1.0, 2.0, 0.0]), torch.tensor([True, False, True, False])) == 0.875


def test_the_probe_and_the_concept_scan_score_ties_alike():
    """One AUC: a unit at the LCN floor (many equal responses) gets the same score from the probe's
    exact_auc and from the concept scan, and both equal the pairwise count with ties as half."""
    from catneuron.probe.concepts import concept_aucs
    g = torch.Generator().manual_seed(0)
    acts = torch.randint(0, 4, (60, 5), generator=g).float()          # a handful of values: ties everywhere
    concept = torch.randint(0, 3, (60,), generator=g)
    scan = concept_aucs(acts, concept.numpy(), 3)
    for c in range(3):
        for u in range(5):
            pos, neg = acts[concept == c, u], acts[concept != c, u]
            pairs = (pos[:, None] > neg[None]).double() + 0.5 * (pos[:, None] == neg[None]).double()
            assert exact_auc(acts[:, u], concept == c) == pytest.approx(pairs.mean().item())
            assert scan[c, u].item() == pytest.approx(pairs.mean().item(), abs=1e-6)


def test_native_and_torch_histograms_agree(monkeypatch):
    from catneuron.probe import selectivity
    g = torch.Generator().manual_seed(3)
    acts, ids = torch.randn(50, 300, generator=g), torch.randint(0, 4, (50,), generator=g)
    results = []
    for kernel in (selectivity._histogram_kernel(), None):
        monkeypatch.setattr(selectivity, "_histogram_kernel", lambda k=kernel: k)
        s = StreamingScorer(300, classes=4)
        s.observe_range(acts)
        s.observe(acts, ids)
        results.append(s.counts.clone())
    assert torch.equal(results[0], results[1])


class _OnDevice(torch.Tensor):
    """A tensor that fails as an accelerator's would where this matters: .numpy() without .cpu()."""

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert a device tensor to numpy: use .cpu() first")

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor)


class _DeviceDetectors:
    """Candidate k responds with image . template_k; responses come back 'on the device'."""

    def __init__(self, templates):
        self.templates, self.candidates = templates, len(templates)

    def __call__(self, images):
        x = torch.from_numpy(images).flatten(1).float()
        return (x @ self.templates.T).as_subclass(_OnDevice)

    def describe(self, index):
        return {"detector": f"template {index}", "unit": int(index)}

    def group_ranges(self):
        return {"templates": [(0, self.candidates)]}


def test_scoring_keeps_device_responses_off_numpy_and_finds_the_planted_detector():
    import numpy as np

    from catneuron.probe.run import score
    from catneuron.probe.testsets import TestSet
    g = torch.Generator().manual_seed(4)
    labels = np.arange(120) % 4 == 0
    template = torch.rand(2, 2, 1, generator=g)
    images = (torch.rand(120, 2, 2, 1, generator=g) * 100 + torch.from_numpy(labels)[:, None, None, None] * 150
              * template).round().to(torch.uint8).numpy()
    templates = torch.randn(6, 4, generator=g)
    templates[3] = template.flatten()
    ts = TestSet("planted", images, labels, np.arange(120) % 2 == 0, [str(k) for k in range(120)])
    results, responses = score(_DeviceDetectors(templates), ts, batch_size=32, progress=False)
    assert results["paper"]["unit"] == 3 and results["paper"]["accuracy"] > 0.9
    assert all(isinstance(r, np.ndarray) for r in responses.values())
    with pytest.raises(TypeError, match="device tensor"):    # the stand-in does fail as a GPU tensor would
        _DeviceDetectors(templates)(images).numpy()
