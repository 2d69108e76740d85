import pytest

from catneuron import native
from catneuron.nn import lc_native


@pytest.mark.skipif(not lc_native.available(), reason="no C++ compiler")
def test_build_is_cached_and_atomic(kernel_cache):
    first = native.build("lc_cpu", kernel_cache)
    assert first.exists() and first.parent == kernel_cache
    assert native.build("lc_cpu", kernel_cache) == first      # second call: cached, no rebuild
    assert not list(kernel_cache.glob("*.tmp"))               # nothing half-written left behind


def test_failed_build_raises_with_the_compiler_message(kernel_cache, monkeypatch):
    monkeypatch.setenv("CXX", "false")
    with pytest.raises(RuntimeError, match="compiling lc_cpu.cpp failed"):
        native.build("lc_cpu", kernel_cache)
    assert not list(kernel_cache.glob("*"))
