import os
import subprocess
import sys

from catneuron import runtime


def _in_fresh_python(code: str, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in runtime.SHORT_SPIN} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=environment).stdout.strip()


def test_idle_openmp_workers_are_told_to_sleep_soon_before_torch_loads():
    code = ("import os; from catneuron import runtime; print(runtime.yield_idle_cores(), "
            "os.environ['GOMP_SPINCOUNT'], os.environ['KMP_BLOCKTIME'])")
    assert _in_fresh_python(code) == "True 10000 1"
    assert _in_fresh_python(code, GOMP_SPINCOUNT="5") == "True 5 1"       # the user's setting wins


def test_too_late_once_torch_is_loaded():
    code = "import os, torch; from catneuron import runtime; print(runtime.yield_idle_cores(), 'GOMP_SPINCOUNT' in os.environ)"
    assert _in_fresh_python(code) == "False False"


def test_the_command_line_applies_it_before_torch_loads():
    code = ("import os, sys; from catneuron.cli import main\n"
            "try: main(['info', '--preset', 'tiny'])\nexcept SystemExit: pass\n"
            "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")
    assert _in_fresh_python(code).splitlines()[-1] == "10000 True"
