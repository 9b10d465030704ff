"""Multi-class losses against torch.nn.functional: values and gradients, options crossed."""

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

# (torch layout shape, class axis): batched, K-dimensional, unbatched.
LAYOUTS = {
    "NC": ((6, None), 1),
    "NCd1d2": ((3, None, 4, 2), 1),
    "C": ((None,), 0),
}


def _make(layout, num_classes, seed, *, ignore_index=None, frac_ignored=0.3):
    shape, caxis = LAYOUTS[layout]
    shape = tuple(num_classes if s is None else s for s in shape)
    r = rng(seed)
    logits = (r.standard_normal(shape) * 2).astype(np.float32)
    label_shape = shape[:caxis] + shape[caxis + 1 :]
    labels = r.integers(0, num_classes, size=label_shape).astype(np.int64)
    if ignore_index is not None and labels.size > 1:
        drop = r.uniform(size=label_shape) < frac_ignored
        labels = np.where(drop, ignore_index, labels)
    elif labels.size == 1 and labels.item() == ignore_index:
        # A lone ignored item makes PyTorch's mean nan (ours is 0, tested separately).
        labels = np.asarray((labels + 1) % num_classes)
    weight = r.uniform(0.2, 2.0, size=(num_classes,)).astype(np.float32)
    return logits, labels, weight, caxis


CE_CASES = list(
    itertools.product(
        ["NC", "NCd1d2", "C"],
        [5, 130],  # 130 > 100: a wrapped gather of -100 would read class 30
        [False, True],  # weight
        [-100, 3],  # ignore_index (3 is a real class)
        [0.0, 0.2],  # label_smoothing
        ["mean", "sum", "none"],
    )
)


@pytest.mark.parametrize("layout,num_classes,use_weight,ignore_index,smoothing,reduction", CE_CASES)
def test_cross_entropy_class_indices_matches_torch(
    layout, num_classes, use_weight, ignore_index, smoothing, reduction
):
    logits, labels, weight, caxis = _make(layout, num_classes, 0, ignore_index=ignore_index)
    weight = weight if use_weight else None
    kw = dict(ignore_index=ignore_index, label_smoothing=smoothing, reduction=reduction)

    def jax_fn(x, y, w):
        return jl.cross_entropy(x, y, weight=w, axis=caxis, **kw)

    def torch_fn(x, y, w):
        return F.cross_entropy(x, y, weight=w, **kw)

    diff = [0]
    assert_matches_torch(jax_fn, torch_fn, [logits, labels, weight], diff)


@pytest.mark.parametrize(
    "layout,use_weight,smoothing,reduction",
    list(
        itertools.product(["NC", "NCd1d2", "C"], [False, True], [0.0, 0.3], ["mean", "sum", "none"])
    ),
)
def test_cross_entropy_probabilities_matches_torch(layout, use_weight, smoothing, reduction):
    logits, _, weight, caxis = _make(layout, 7, 1)
    probs = np.asarray(jax.nn.softmax(rng(2).standard_normal(logits.shape) * 2, axis=caxis))
    probs = probs.astype(np.float32)
    weight = weight if use_weight else None
    kw = dict(label_smoothing=smoothing, reduction=reduction)

    def jax_fn(x, t, w):
        return jl.cross_entropy(x, t, weight=w, axis=caxis, **kw)

    def torch_fn(x, t, w):
        return F.cross_entropy(x, t, weight=w, **kw)

    diff = [0, 1]
    assert_matches_torch(jax_fn, torch_fn, [logits, probs, weight], diff)


def test_cross_entropy_axis_last_equals_axis_one():
    logits, labels, weight, _ = _make("NCd1d2", 9, 3, ignore_index=-100)
    a = jl.cross_entropy(logits, labels, weight=weight, axis=1, label_smoothing=0.1)
    b = jl.cross_entropy(np.moveaxis(logits, 1, -1), labels, weight=weight, label_smoothing=0.1)
    chex.assert_trees_all_close(a, b, rtol=1e-6)


def test_ignore_index_is_never_gathered_with_many_classes():
    # With C > 100, a wrapped gather of -100 would read class C - 100 and count it.
    logits, labels, _, _ = _make("NC", 150, 4)
    labels[:3] = -100
    full = jl.cross_entropy(logits, labels, reduction="none")
    chex.assert_trees_all_close(full[:3], np.zeros(3, np.float32))
    kept = jl.cross_entropy(logits[3:], labels[3:])
    chex.assert_trees_all_close(jl.cross_entropy(logits, labels), kept, rtol=1e-6)
    g = jax.grad(jl.cross_entropy)(jnp.asarray(logits), labels)
    chex.assert_trees_all_close(g[:3], np.zeros((3, 150), np.float32))


@pytest.mark.parametrize(
    "layout,use_weight,ignore_index,reduction",
    list(
        itertools.product(["NC", "NCd1d2", "C"], [False, True], [-100, 2], ["mean", "sum", "none"])
    ),
)
def test_nll_loss_matches_torch(layout, use_weight, ignore_index, reduction):
    logits, labels, weight, caxis = _make(layout, 6, 5, ignore_index=ignore_index)
    log_probs = np.asarray(jax.nn.log_softmax(logits, axis=caxis))
    weight = weight if use_weight else None
    kw = dict(ignore_index=ignore_index, reduction=reduction)

    def jax_fn(lp, y, w):
        return jl.nll_loss(lp, y, weight=w, axis=caxis, **kw)

    def torch_fn(lp, y, w):
        return F.nll_loss(lp, y, weight=w, **kw)

    diff = [0]
    assert_matches_torch(jax_fn, torch_fn, [log_probs, labels, weight], diff)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_log_softmax_matches_torch(axis):
    x = (rng(6).standard_normal((4, 5, 3)) * 3).astype(np.float32)
    assert_matches_torch(
        lambda a: jl.log_softmax(a, axis=axis),
        lambda a: torch.log_softmax(a, dim=axis),
        [x],
        [0],
    )


def torch_focal(x, y, w, gamma, reduction, ignore_index=-100, dim=-1):
    """The seeds' FocalLoss.forward, with the class axis as a parameter."""
    log_prob = F.log_softmax(x, dim=dim)
    prob = torch.exp(log_prob)
    return F.nll_loss(
        ((1 - prob) ** gamma) * log_prob,
        y,
        weight=w,
        reduction=reduction,
        ignore_index=ignore_index,
    )


@pytest.mark.parametrize(
    "layout,use_weight,gamma,reduction",
    list(
        itertools.product(
            ["NC", "NCd1d2", "C"], [False, True], [0.0, 0.5, 2.0, 5.0], ["mean", "sum", "none"]
        )
    ),
)
def test_focal_loss_matches_seeds_torch(layout, use_weight, gamma, reduction):
    logits, labels, weight, caxis = _make(layout, 5, 7, ignore_index=-100)
    weight = weight if use_weight else None

    def jax_fn(x, y, w):
        return jl.focal_loss(x, y, gamma=gamma, weight=w, reduction=reduction, axis=caxis)

    def torch_fn(x, y, w):
        return torch_focal(x, y, w, gamma, reduction, dim=caxis)

    diff = [0]
    assert_matches_torch(jax_fn, torch_fn, [logits, labels, weight], diff, rtol=2e-5)


def test_focal_loss_with_zero_gamma_is_cross_entropy():
    logits, labels, weight, _ = _make("NC", 5, 8, ignore_index=-100)
    chex.assert_trees_all_close(
        jl.focal_loss(logits, labels, gamma=0.0, weight=weight),
        jl.cross_entropy(logits, labels, weight=weight),
        rtol=1e-6,
    )


def torch_label_smoothing(pred, target, classes, smoothing, dim=-1):
    """The seeds' LabelSmoothingLoss.forward, unreduced (its torch.mean is the reduction)."""
    pred = pred.log_softmax(dim=dim)
    with torch.no_grad():
        true_dist = torch.zeros_like(pred)
        true_dist.fill_(smoothing / (classes - 1))
        true_dist.scatter_(dim, target.data.unsqueeze(dim), 1.0 - smoothing)
    return torch.sum(-true_dist * pred, dim=dim)


@pytest.mark.parametrize(
    "layout,smoothing,reduction",
    list(itertools.product(["NC", "NCd1d2", "C"], [0.0, 0.1, 0.5], ["mean", "sum", "none"])),
)
def test_label_smoothing_loss_matches_seeds_torch(layout, smoothing, reduction):
    logits, labels, _, caxis = _make(layout, 4, 9)
    reduce = {"mean": torch.mean, "sum": torch.sum, "none": lambda a: a}[reduction]

    def torch_fn(x, y):
        return reduce(torch_label_smoothing(x, y, 4, smoothing, dim=caxis))

    def jax_fn(x, y):
        return jl.label_smoothing_loss(
            x, y, label_smoothing=smoothing, reduction=reduction, axis=caxis
        )

    assert_matches_torch(jax_fn, torch_fn, [logits, labels], [0])


def test_label_smoothing_loss_relates_to_pytorch_label_smoothing():
    logits, labels, _, _ = _make("NC", 6, 10)
    s = 0.25
    chex.assert_trees_all_close(
        jl.label_smoothing_loss(logits, labels, label_smoothing=s),
        jl.cross_entropy(logits, labels, label_smoothing=s * 6 / 5),
        rtol=1e-6,
    )


def test_where_mask_drops_items_from_sum_and_denominator():
    logits, labels, weight, _ = _make("NC", 5, 11)
    where = np.array([True, False, True, True, False, True])
    masked = jl.cross_entropy(logits, labels, weight=weight, where=where)
    kept = jl.cross_entropy(logits[where], labels[where], weight=weight)
    chex.assert_trees_all_close(masked, kept, rtol=1e-6)
    none = jl.cross_entropy(logits, labels, weight=weight, where=where, reduction="none")
    chex.assert_trees_all_close(none[~where], np.zeros(2, np.float32))
    # probability targets: where leaves the item count too
    probs = np.asarray(jax.nn.softmax(logits[::-1].copy()))
    chex.assert_trees_all_close(
        jl.cross_entropy(logits, probs, where=where),
        jl.cross_entropy(logits[where], probs[where]),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, y: jl.cross_entropy(x, y, label_smoothing=0.1),
        lambda x, y: jl.nll_loss(jax.nn.log_softmax(x), y),
        lambda x, y: jl.focal_loss(x, y, gamma=0.5),
    ],
)
def test_all_ignored_mean_is_zero_with_zero_gradient(fn):
    logits = jnp.asarray(rng(12).standard_normal((4, 5)), jnp.float32)
    labels = jnp.full((4,), -100)
    value, grad = jax.value_and_grad(fn)(logits, labels)
    assert value == 0.0
    chex.assert_trees_all_close(grad, jnp.zeros_like(grad))


def test_out_of_range_label_gives_nan():
    logits = jnp.zeros((3, 4))
    labels = jnp.array([0, 7, -3])
    none = jl.cross_entropy(logits, labels, reduction="none")
    assert np.isfinite(none[0]) and np.isnan(none[1]) and np.isnan(none[2])
    assert np.isnan(jl.cross_entropy(logits, labels))
    assert np.isnan(jl.nll_loss(logits, labels))
    assert np.isnan(jl.focal_loss(logits, labels))
    assert np.isnan(jl.label_smoothing_loss(logits, labels))


def test_check_labels_raises_under_checkify():
    from jax.experimental import checkify

    def loss_fn(logits, labels):
        jl.check_labels(labels, num_classes=logits.shape[-1])
        return jl.cross_entropy(logits, labels)

    checked = checkify.checkify(jax.jit(loss_fn))
    err, value = checked(jnp.zeros((3, 4)), jnp.array([0, -100, 2]))
    err.throw()  # valid labels (and ignore_index) pass
    assert np.isfinite(value)
    err, _ = checked(jnp.zeros((3, 4)), jnp.array([0, 9, 2]))
    with pytest.raises(
        Exception, match=r"labels must be in \[0, 4\).*found label 9 at flat position 1"
    ):
        err.throw()
