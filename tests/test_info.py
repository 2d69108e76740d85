"""`catneuron info`: the configuration's numbers as text."""
import pytest

from catneuron import config as C
from catneuron.cli.info import describe, parse_bytes
from catneuron.errors import ConfigError


def test_info_says_whether_the_paper_network_fits_a_gpu():
    model = C.preset("paper").model
    assert parse_bytes("80GiB", "x") == 80 * 2 ** 30 and parse_bytes("24 GB", "x") == 24 * 10 ** 9
    assert parse_bytes("80", "x") == parse_bytes("80g", "x") == 80 * 2 ** 30     # not 80 bytes
    assert "fits" in describe(model, 100, "adam", parse_bytes("80GiB", "x")).splitlines()[-1]
    assert "does not fit" in describe(model, 100, "adam", parse_bytes("24GB", "x")).splitlines()[-1]
    for bad in ("80XB", "-3GiB", "GiB"):
        with pytest.raises(ConfigError, match="--gpu-memory"):
            parse_bytes(bad, "--gpu-memory")
