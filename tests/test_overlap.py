"""Soft F1 and Dice against the seeds' F1Loss (PyTorch), a PyTorch Dice and optax."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from oracle import assert_matches_torch, rng

import jaxlosses as jl


def seeds_f1_loss(y_pred, y_true, classes, epsilon=1e-7):
    """The seeds' F1Loss.forward, verbatim in behaviour."""
    assert y_pred.ndim == 2
    assert y_true.ndim == 1
    y_true = F.one_hot(y_true, classes).to(torch.float32)
    y_pred = F.softmax(y_pred, dim=1)
    tp = (y_true * y_pred).sum(dim=0).to(torch.float32)
    fp = ((1 - y_true) * y_pred).sum(dim=0).to(torch.float32)
    fn = (y_true * (1 - y_pred)).sum(dim=0).to(torch.float32)
    precision = tp / (tp + fp + epsilon)
    recall = tp / (tp + fn + epsilon)
    f1 = 2 * (precision * recall) / (precision + recall + epsilon)
    f1 = f1.clamp(min=epsilon, max=1 - epsilon)
    return 1 - f1.mean()


def torch_dice_loss(logits, labels, classes, smooth, dim=1):
    probs = F.softmax(logits, dim=dim)
    onehot = torch.movedim(F.one_hot(labels, classes).to(probs.dtype), -1, dim)
    dims = tuple(d for d in range(logits.ndim) if d != dim)
    inter = (probs * onehot).sum(dims)
    card = probs.sum(dims) + onehot.sum(dims)
    return 1 - ((2 * inter + smooth) / (card + smooth)).mean()


@pytest.mark.parametrize("n,c,eps", [(16, 3, 1e-7), (64, 10, 1e-7), (8, 5, 1e-3)])
def test_f1_loss_matches_seeds(n, c, eps):
    r = rng(n + c)
    logits = (r.standard_normal((n, c)) * 2).astype(np.float32)
    labels = r.integers(0, c, size=n)
    labels[: c - 1] = np.arange(c - 1)  # every class but the last is present
    assert_matches_torch(
        lambda x, y: jl.f1_loss(x, y, eps=eps),
        lambda x, y: seeds_f1_loss(x, y, c, eps),
        [logits, labels],
        [0],
    )


def test_f1_loss_with_absent_class_and_clamp_matches_seeds():
    # class 3 never appears: its F1 is clamped to epsilon and has no gradient
    r = rng(1)
    logits = (r.standard_normal((12, 4)) * 2).astype(np.float32)
    labels = r.integers(0, 3, size=12)
    assert_matches_torch(jl.f1_loss, lambda x, y: seeds_f1_loss(x, y, 4), [logits, labels], [0])


def test_f1_loss_class_axis_and_where():
    r = rng(2)
    logits = r.standard_normal((6, 4, 3)).astype(np.float32)  # (N, C, d)
    labels = r.integers(0, 4, size=(6, 3))
    flat_logits = np.moveaxis(logits, 1, -1).reshape(-1, 4)
    chex.assert_trees_all_close(
        jl.f1_loss(logits, labels, axis=1), jl.f1_loss(flat_logits, labels.reshape(-1)), rtol=1e-6
    )
    where = r.uniform(size=(6, 3)) < 0.5
    chex.assert_trees_all_close(
        jl.f1_loss(logits, labels, axis=1, where=where),
        jl.f1_loss(flat_logits[where.reshape(-1)], labels.reshape(-1)[where.reshape(-1)]),
        rtol=1e-6,
    )


@pytest.mark.parametrize("shape,smooth", [((10, 4), 1.0), ((3, 4, 5, 6), 1.0), ((8, 3), 0.0)])
def test_dice_loss_matches_torch(shape, smooth):
    r = rng(3)
    logits = (r.standard_normal(shape) * 2).astype(np.float32)
    label_shape = shape[:1] + shape[2:]
    labels = r.integers(0, shape[1], size=label_shape)
    assert_matches_torch(
        lambda x, y: jl.dice_loss(x, y, smooth=smooth, axis=1),
        lambda x, y: torch_dice_loss(x, y, shape[1], smooth),
        [logits, labels],
        [0],
    )


def test_dice_loss_matches_optax_dice_over_the_whole_batch():
    r = rng(4)
    logits = r.standard_normal((2, 5, 5, 3)).astype(np.float32)
    labels = r.integers(0, 3, size=(2, 5, 5))
    onehot = jax.nn.one_hot(labels, 3)
    for s in [0.5, 1.0]:
        ours = jl.dice_loss(logits, labels, smooth=2 * s)
        theirs = optax.losses.dice_loss(logits, onehot, smooth=s, axis=(0, 1, 2))
        chex.assert_trees_all_close(ours, theirs, rtol=1e-6)
        # float (one-hot) targets are accepted too
        chex.assert_trees_all_close(jl.dice_loss(logits, onehot, smooth=2 * s), ours, rtol=1e-6)


def test_overlap_losses_fully_masked_are_finite_with_zero_gradient():
    logits = jnp.asarray(rng(5).standard_normal((4, 3)), jnp.float32)
    labels = jnp.array([0, 1, 2, 0])
    where = jnp.zeros(4, bool)
    for fn in [
        lambda x: jl.f1_loss(x, labels, where=where, eps=0.0),
        lambda x: jl.dice_loss(x, labels, where=where, smooth=0.0),
    ]:
        value, grad = jax.value_and_grad(fn)(logits)
        assert np.isfinite(value)
        chex.assert_trees_all_close(grad, jnp.zeros_like(grad))
