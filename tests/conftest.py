import contextlib
import io
import os
import pathlib
import runpy
import shutil
import sys
import tempfile

# Eight simulated CPU devices, so that tests/test_sharded.py can build 2-D meshes
# (data x model) in this process. XLA reads the flag when jax first creates its CPU
# backend, so it is set before jax is imported; a device count the caller already put in
# XLA_FLAGS wins. On one device nothing else changes: unsharded arrays stay on device 0.
_DEVICES_FLAG = "--xla_force_host_platform_device_count"
if _DEVICES_FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_DEVICES_FLAG}=8".strip()

# One persistent compilation cache per test run, shared by the pytest-xdist workers and the
# examples the tests start as subprocesses (they inherit the environment): a program one
# process compiled is loaded, not compiled again, by the others. Almost all of the suite's
# time is XLA compiling small programs; writing the cache costs nothing measurable. The
# controlling process chooses the directory before it starts the workers, which inherit it;
# a cache directory the caller set wins (and is kept).
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxlosses-test-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import hypothesis  # noqa: E402  (after XLA_FLAGS)
import jax  # noqa: E402
import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Tests compare against PyTorch in float32 on the CPU.
jax.config.update("jax_platforms", "cpu")

hypothesis.settings.register_profile(
    "default", deadline=None, max_examples=25, derandomize=True, print_blob=True
)
hypothesis.settings.register_profile("thorough", deadline=None, max_examples=300)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_sessionfinish(session):
    # The controller (not an xdist worker) removes the run's cache when the run ends.
    if _OWN_CACHE and not hasattr(session.config, "workerinput"):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


@pytest.fixture
def run_example():
    """Runs ``examples/<name>`` with command-line ``args`` in this process; returns stdout.

    In-process rather than a subprocess: the interpreter, JAX and Flax are already imported
    and the programs already compiled by other tests are reused (about 4 s per example).
    """

    def run(name: str, *args: str) -> str:
        path = ROOT / "examples" / name
        out = io.StringIO()
        argv = sys.argv
        sys.argv = [str(path), *args]
        try:
            with contextlib.redirect_stdout(out):
                runpy.run_path(str(path), run_name="__main__")
        finally:
            sys.argv = argv
        return out.getvalue()

    return run
