"""The README's Python examples run as written."""

import pathlib
import re

import numpy as np

import jaxlosses as jl

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    assert float(namespace["loss"]) > 0
    assert namespace["per_ex"].shape == (8,)
    logits, labels = namespace["vocab_logits"], namespace["token_labels"]
    want = jl.cross_entropy(logits, labels, label_smoothing=0.1)
    np.testing.assert_allclose(namespace["vp"], want, rtol=1e-6)
