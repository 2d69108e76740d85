import pytest
import torch

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


def test_exact_auc_with_ties():
    assert exact_auc(torch.tensor([1.0, 1.0, 2.0, 0.0]), torch.tensor([True, False, True, False])) == 0.875


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
