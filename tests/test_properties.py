"""Hypothesis properties of the reductions, shared by every family."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxlosses as jl


@st.composite
def class_problems(draw):
    n, c = draw(st.sampled_from([(1, 2), (4, 5), (7, 3)]))
    seed = draw(st.integers(0, 2**16))
    r = np.random.default_rng(seed)
    logits = (r.standard_normal((n, c)) * draw(st.sampled_from([0.1, 1.0, 10.0]))).astype(
        np.float32
    )
    labels = r.integers(0, c, size=n)
    labels = np.where(r.uniform(size=n) < 0.25, -100, labels)
    weight = r.uniform(0.1, 3.0, size=c).astype(np.float32)
    return logits, labels, weight


@functools.cache
def _ce(reduction, smoothing):
    return jax.jit(
        lambda x, y, w: jl.cross_entropy(
            x, y, weight=w, label_smoothing=smoothing, reduction=reduction
        )
    )


@given(class_problems(), st.sampled_from([0.0, 0.15]))
def test_mean_is_weighted_average_of_unreduced(problem, smoothing):
    logits, labels, weight = problem
    none = _ce("none", smoothing)(logits, labels, weight)
    item_w = np.where(labels == -100, 0.0, weight[np.where(labels == -100, 0, labels)])
    want = none.sum() / item_w.sum() if item_w.sum() > 0 else 0.0
    chex.assert_trees_all_close(
        _ce("mean", smoothing)(logits, labels, weight), jnp.float32(want), rtol=1e-5, atol=1e-7
    )
    chex.assert_trees_all_close(
        _ce("sum", smoothing)(logits, labels, weight), none.sum(), rtol=1e-5
    )


_MASKABLE = [jax.jit(jl.cross_entropy), jax.jit(jl.focal_loss), jax.jit(jl.nll_loss)]


@given(class_problems())
def test_where_equals_dropping_items(problem):
    logits, labels, weight = problem
    where = np.arange(len(labels)) % 2 == 0
    for fn in _MASKABLE:
        got = fn(logits, labels, weight=weight, where=where)
        want = fn(logits[where], labels[where], weight=weight)
        chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-7)


@given(class_problems())
def test_cross_entropy_is_shift_invariant_and_nonnegative(problem):
    logits, labels, _ = problem
    a = jl.cross_entropy(logits, labels, reduction="none")
    b = jl.cross_entropy(logits + 1000.0, labels, reduction="none")
    chex.assert_trees_all_close(a, b, atol=2e-3)
    assert np.all(np.asarray(a) >= 0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_output_dtype_and_shape_follow_input(dtype):
    n, c, seed = 5, 4, 0
    r = np.random.default_rng(seed)
    logits = jnp.asarray(r.standard_normal((n, c)), dtype)
    labels = jnp.asarray(r.integers(0, c, size=n))
    targets = jnp.asarray(r.uniform(size=(n, c)) < 0.5, dtype)
    for out in [
        jl.cross_entropy(logits, labels, reduction="none"),
        jl.focal_loss(logits, labels, reduction="none"),
        jl.multilabel_soft_margin_loss(logits, targets, reduction="none"),
    ]:
        chex.assert_type(out, dtype)
        chex.assert_shape(out, (n,))
    for out in [
        jl.cross_entropy(logits, labels),
        jl.binary_cross_entropy_with_logits(logits, targets),
        jl.sigmoid_focal_loss(logits, targets),
        jl.f1_loss(logits, labels),
        jl.dice_loss(logits, labels),
    ]:
        chex.assert_type(out, dtype)
        chex.assert_shape(out, ())
    chex.assert_type(jl.log_softmax(logits), dtype)
    grad = jax.grad(lambda x: jl.cross_entropy(x, labels).astype(jnp.float32))(logits)
    chex.assert_type(grad, dtype)
