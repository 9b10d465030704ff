"""Binary and multi-label losses against torch.nn.functional: values and gradients."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle import assert_matches_torch, rng

import jaxlosses as jl

SHAPES = [(7,), (4, 5), (2, 3, 4)]
REDUCTIONS = ["mean", "sum", "none"]


def _data(shape, seed, *, soft=False):
    r = rng(seed)
    logits = (r.standard_normal(shape) * 3).astype(np.float32)
    if soft:
        targets = r.uniform(size=shape).astype(np.float32)
    else:
        targets = (r.uniform(size=shape) < 0.4).astype(np.float32)
    return logits, targets


@pytest.mark.parametrize(
    "shape,weighted,soft,reduction",
    list(itertools.product(SHAPES, [False, True], [False, True], REDUCTIONS)),
)
def test_binary_cross_entropy_matches_torch(shape, weighted, soft, reduction):
    logits, targets = _data(shape, 0, soft=soft)
    probs = np.asarray(jax.nn.sigmoid(logits))
    weight = rng(1).uniform(0.5, 2.0, size=shape[-1:]).astype(np.float32) if weighted else None

    def jax_fn(p, t, w):
        return jl.binary_cross_entropy(p, t, weight=w, reduction=reduction)

    def torch_fn(p, t, w):
        return F.binary_cross_entropy(p, t, weight=w, reduction=reduction)

    assert_matches_torch(jax_fn, torch_fn, [probs, targets, weight], [0, 1])


def test_binary_cross_entropy_clamps_like_torch_at_zero_and_one():
    probs = np.array([0.0, 1.0, 0.0, 1.0, 1e-45, 1 - 1e-8], np.float32)
    targets = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0], np.float32)
    # Values and the probability gradient equal PyTorch's clamped backward (finite).
    assert_matches_torch(
        lambda p, t: jl.binary_cross_entropy(p, t, reduction="none"),
        lambda p, t: F.binary_cross_entropy(p, t, reduction="none"),
        [probs, targets],
        [0],
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        jl.binary_cross_entropy(probs[:2], targets[:2], reduction="none"), [100.0, 100.0]
    )


@pytest.mark.parametrize(
    "shape,weighted,pos_weighted,soft,reduction",
    list(itertools.product(SHAPES, [False, True], [False, True], [False, True], REDUCTIONS)),
)
def test_bce_with_logits_matches_torch(shape, weighted, pos_weighted, soft, reduction):
    logits, targets = _data(shape, 2, soft=soft)
    weight = rng(3).uniform(0.5, 2.0, size=shape).astype(np.float32) if weighted else None
    pos_weight = (
        rng(4).uniform(0.5, 3.0, size=shape[-1:]).astype(np.float32) if pos_weighted else None
    )

    def jax_fn(x, t, w, pw):
        return jl.binary_cross_entropy_with_logits(
            x, t, weight=w, pos_weight=pw, reduction=reduction
        )

    def torch_fn(x, t, w, pw):
        return F.binary_cross_entropy_with_logits(
            x, t, weight=w, pos_weight=pw, reduction=reduction
        )

    diff = [0, 1]  # PyTorch does not differentiate weight or pos_weight
    assert_matches_torch(jax_fn, torch_fn, [logits, targets, weight, pos_weight], diff)


def torchvision_sigmoid_focal_loss(inputs, targets, alpha, gamma, reduction):
    """torchvision.ops.sigmoid_focal_loss, written out (torchvision is not installable beside
    the CPU torch wheel used as the oracle)."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


@pytest.mark.parametrize(
    "shape,alpha,gamma,soft,reduction",
    list(itertools.product(SHAPES, [0.25, None], [0.0, 0.5, 2.0], [False, True], REDUCTIONS)),
)
def test_sigmoid_focal_loss_matches_torchvision(shape, alpha, gamma, soft, reduction):
    logits, targets = _data(shape, 5, soft=soft)

    def jax_fn(x, t):
        return jl.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction=reduction)

    def torch_fn(x, t):  # torchvision disables alpha with a negative value
        return torchvision_sigmoid_focal_loss(
            x, t, -1 if alpha is None else alpha, gamma, reduction
        )

    assert_matches_torch(jax_fn, torch_fn, [logits, targets], [0, 1], rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize(
    "shape,weighted,reduction",
    list(itertools.product([(5,), (4, 5), (2, 3, 5)], [False, True], REDUCTIONS)),
)
def test_multilabel_soft_margin_loss_matches_torch(shape, weighted, reduction):
    logits, targets = _data(shape, 6)
    weight = rng(7).uniform(0.5, 2.0, size=shape[-1:]).astype(np.float32) if weighted else None

    def jax_fn(x, t, w):
        return jl.multilabel_soft_margin_loss(x, t, weight=w, reduction=reduction)

    def torch_fn(x, t, w):
        if x.ndim > 2:  # PyTorch takes (N, C) or (C,): flatten the leading axes
            out = F.multilabel_soft_margin_loss(
                x.reshape(-1, x.shape[-1]),
                t.reshape(-1, t.shape[-1]),
                weight=w,
                reduction=reduction,
            )
            return out.reshape(x.shape[:-1]) if reduction == "none" else out
        return F.multilabel_soft_margin_loss(x, t, weight=w, reduction=reduction)

    assert_matches_torch(jax_fn, torch_fn, [logits, targets, weight], [0, 1])


def test_multilabel_equals_mean_of_bce_with_logits():
    logits, targets = _data((6, 4), 8)
    chex.assert_trees_all_close(
        jl.multilabel_soft_margin_loss(logits, targets, reduction="none"),
        jnp.mean(jl.binary_cross_entropy_with_logits(logits, targets, reduction="none"), -1),
        rtol=1e-6,
    )


def test_elementwise_where_mask_counts_kept_elements_only():
    logits, targets = _data((5, 3), 9)
    where = rng(10).uniform(size=(5, 3)) < 0.6
    got = jl.binary_cross_entropy_with_logits(logits, targets, where=where)
    want = jl.binary_cross_entropy_with_logits(logits[where], targets[where])
    chex.assert_trees_all_close(got, want, rtol=1e-6)
    got = jl.sigmoid_focal_loss(logits, targets, where=where)
    want = jl.sigmoid_focal_loss(logits[where], targets[where])
    chex.assert_trees_all_close(got, want, rtol=1e-6)
    rows = np.array([True, False, True, True, False])
    got = jl.multilabel_soft_margin_loss(logits, targets, where=rows)
    want = jl.multilabel_soft_margin_loss(logits[rows], targets[rows])
    chex.assert_trees_all_close(got, want, rtol=1e-6)


def test_integer_and_bool_binary_targets_are_accepted():
    logits, targets = _data((4, 3), 11)
    a = jl.binary_cross_entropy_with_logits(logits, targets)
    chex.assert_trees_all_close(
        jl.binary_cross_entropy_with_logits(logits, targets.astype(np.int32)), a
    )
    chex.assert_trees_all_close(jl.binary_cross_entropy_with_logits(logits, targets > 0.5), a)
