"""per_example: vmap of the single-example loss equals the unreduced batch loss."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxlosses as jl
from jaxlosses import per_example as pe

SHAPES = st.sampled_from([(1, 2), (4, 5), (7, 3)])


def _class_data(seed, n, c, ignore_frac=0.2):
    r = np.random.default_rng(seed)
    logits = (r.standard_normal((n, c)) * 2).astype(np.float32)
    labels = r.integers(0, c, size=n)
    labels = np.where(r.uniform(size=n) < ignore_frac, -100, labels)
    weight = r.uniform(0.3, 2.0, size=c).astype(np.float32)
    return logits, labels, weight


CLASS_LOSSES = [
    ("cross_entropy", dict(label_smoothing=0.1), True),
    ("cross_entropy", dict(), True),
    ("nll_loss", dict(), True),
    ("focal_loss", dict(gamma=1.5), True),
    ("label_smoothing_loss", dict(label_smoothing=0.2), False),
]


@functools.cache
def _batch_and_single(case: int, weighted: bool):
    """Jitted (unreduced batch loss, vmapped per-example loss) for one case."""
    name, kw, _ = CLASS_LOSSES[case]

    def batch(logits, labels, weight):
        w = dict(weight=weight) if weighted else {}
        return getattr(jl, name)(logits, labels, reduction="none", **kw, **w)

    def single(logits, labels, weight):
        w = dict(weight=weight) if weighted else {}
        return jax.vmap(functools.partial(getattr(pe, name), **kw, **w))(logits, labels)

    return jax.jit(batch), jax.jit(single)


@given(
    seed=st.integers(0, 2**16),
    shape=SHAPES,
    case=st.sampled_from(range(len(CLASS_LOSSES))),
    weighted=st.booleans(),
)
def test_vmap_per_example_equals_unreduced_batch_class_losses(seed, shape, case, weighted):
    _, _, takes_weight = CLASS_LOSSES[case]
    logits, labels, weight = _class_data(seed, *shape)
    if not takes_weight:
        labels = np.abs(labels) % shape[1]
        weighted = False
    batch, single = _batch_and_single(case, weighted)
    chex.assert_trees_all_close(
        single(logits, labels, weight), batch(logits, labels, weight), rtol=1e-6, atol=1e-7
    )


ELEMENTWISE = [
    (jl.binary_cross_entropy, pe.binary_cross_entropy, True),
    (jl.binary_cross_entropy_with_logits, pe.binary_cross_entropy_with_logits, False),
    (jl.sigmoid_focal_loss, pe.sigmoid_focal_loss, False),
]


@functools.cache
def _elementwise_pair(case: int):
    batch_fn, single_fn, on_probs = ELEMENTWISE[case]

    def batch(logits, targets):
        x = jax.nn.sigmoid(logits) if on_probs else logits
        return jnp.mean(batch_fn(x, targets, reduction="none"), axis=-1)

    def single(logits, targets):
        x = jax.nn.sigmoid(logits) if on_probs else logits
        return jax.vmap(single_fn)(x, targets)

    return jax.jit(batch), jax.jit(single)


@given(seed=st.integers(0, 2**16), shape=SHAPES, case=st.sampled_from(range(len(ELEMENTWISE))))
def test_vmap_per_example_elementwise_losses_are_example_means(seed, shape, case):
    r = np.random.default_rng(seed)
    logits = (r.standard_normal(shape) * 3).astype(np.float32)
    targets = (r.uniform(size=shape) < 0.5).astype(np.float32)
    batch, single = _elementwise_pair(case)
    chex.assert_trees_all_close(
        single(logits, targets), batch(logits, targets), rtol=1e-6, atol=1e-7
    )


def test_vmap_per_example_multilabel_is_unreduced():
    r = np.random.default_rng(0)
    logits = (r.standard_normal((5, 4)) * 3).astype(np.float32)
    targets = (r.uniform(size=(5, 4)) < 0.5).astype(np.float32)
    want = jl.multilabel_soft_margin_loss(logits, targets, reduction="none")
    got = jax.vmap(pe.multilabel_soft_margin_loss)(logits, targets)
    chex.assert_trees_all_close(got, want, rtol=1e-6)


def test_per_example_sequence_is_mean_over_kept_tokens():
    r = np.random.default_rng(1)
    logits = r.standard_normal((3, 5, 11)).astype(np.float32)  # (batch, tokens, vocab)
    labels = r.integers(0, 11, size=(3, 5))
    labels[0, 2:] = -100
    labels[2, :] = -100
    got = jax.vmap(pe.cross_entropy)(logits, labels)
    tokens = jl.cross_entropy(logits, labels, reduction="none")
    kept = (labels != -100).sum(-1)
    want = np.where(kept > 0, tokens.sum(-1) / np.maximum(kept, 1), 0.0)
    chex.assert_trees_all_close(got, want, rtol=1e-6)
    # without weights, a one-sequence mean is the batch mean of that sequence
    chex.assert_trees_all_close(got[0], jl.cross_entropy(logits[0], labels[0]), rtol=1e-6)


def test_per_example_gradients_for_dp_sgd():
    """Per-example gradients of a linear classifier, clipped and averaged (DP-SGD)."""
    r = np.random.default_rng(2)
    x = jnp.asarray(r.standard_normal((8, 4)), jnp.float32)
    y = jnp.asarray(r.integers(0, 3, size=8))
    params = jnp.asarray(r.standard_normal((4, 3)), jnp.float32)

    def example_loss(p, xi, yi):
        return pe.cross_entropy(xi @ p, yi, label_smoothing=0.1)

    grads = jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0))(params, x, y)
    chex.assert_shape(grads, (8, 4, 3))
    # each per-example gradient is the gradient of that example alone
    alone = jax.jit(jax.grad(lambda p, xi, yi: jl.cross_entropy(xi @ p, yi, label_smoothing=0.1)))
    for i in range(8):
        chex.assert_trees_all_close(grads[i], alone(params, x[i], y[i]), rtol=1e-5, atol=1e-6)
    # and their mean is the gradient of the batch mean
    batch_grad = jax.grad(lambda p: jl.cross_entropy(x @ p, y, label_smoothing=0.1))(params)
    chex.assert_trees_all_close(grads.mean(0), batch_grad, rtol=1e-5, atol=1e-6)
    # clipping to norm 1 keeps each example's influence bounded
    norms = jnp.sqrt(jnp.sum(grads**2, axis=(1, 2)))
    clipped = grads / jnp.maximum(1.0, norms)[:, None, None]
    assert float(jnp.max(jnp.sqrt(jnp.sum(clipped**2, axis=(1, 2))))) <= 1.0 + 1e-6


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "focal_loss"])
def test_per_example_single_ignored_item_is_zero(name):
    assert getattr(pe, name)(jnp.ones(4), jnp.array(-100)) == 0.0
