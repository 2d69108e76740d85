import logging

from catneuron.progress import LineProgress, duration, progress


def test_off_a_terminal_progress_is_log_lines_with_rate_and_eta(caplog, monkeypatch):
    clock = iter(range(0, 1000, 10))            # each call to the clock: 10 s later
    monkeypatch.setattr("catneuron.progress.time.monotonic", lambda: next(clock))
    bar = progress(total=100, desc="train tiny", unit="step", initial=20, every=30)   # pytest's stderr: no terminal
    assert isinstance(bar, LineProgress)
    with caplog.at_level(logging.INFO, logger="catneuron"):
        for _ in range(4):
            bar.set_postfix(loss="8.1")
            bar.update(10)                      # at 10, 20, 30, 40 s: a line at 30 s only
        bar.close()                             # 50 s in, 20 steps not shown yet: a last line
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["train tiny: 50/100 step (50 %), loss=8.1, 1 step/s, ETA 50 s",
                     "train tiny: 60/100 step (60 %), loss=8.1, 0.8 step/s, ETA 50 s"]


def test_a_short_job_and_an_iterable_log_nothing_until_the_interval(caplog):
    with caplog.at_level(logging.INFO, logger="catneuron"):
        assert list(progress(range(5), desc="quick")) == list(range(5))
    assert caplog.records == []
    assert [duration(s) for s in (9.6, 125, 7300)] == ["10 s", "2 min 5 s", "2 h 1 min"]


def test_a_heartbeat_says_a_silent_call_is_still_running_and_how_long_it_took(caplog):
    import time
    from catneuron.progress import heartbeat
    with caplog.at_level(logging.INFO, logger="catneuron"):
        with heartbeat("K-means", every=0.02):
            time.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "K-means ..." and lines[-1] == "K-means: done in 0 s"
    assert 2 <= sum(line == "K-means: still running (0 s)" for line in lines) <= 5
