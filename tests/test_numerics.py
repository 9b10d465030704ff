"""Extreme inputs, low precision and every autodiff mode: no nan, no inf, PyTorch's values.

The adversarial grid: logits in {0, +-1, +-88, +-1e4, +-1e30}, -inf in non-target classes,
probabilities exactly 0 and 1 and 1e-45, focal gamma in {0.1, 0.5, 1, 2, 5}, all-ignored
and single-class batches, bf16/fp16. Every value and every gradient must be finite, and
values must equal PyTorch's wherever PyTorch's are finite.
"""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.test_util import check_grads
from test_binary import torchvision_sigmoid_focal_loss
from test_multiclass import torch_focal, torch_label_smoothing
from test_overlap import seeds_f1_loss, torch_dice_loss

import jaxlosses as jl

EXTREMES = [0.0, 1.0, -1.0, 88.0, -88.0, 1e4, -1e4, 1e30, -1e30]
GAMMAS = [0.1, 0.5, 1.0, 2.0, 5.0]
C = 4


def _grid_rows():
    """Rows of C logits mixing the extremes, with a label per row (every position)."""
    rows, labels = [], []
    for a, b in itertools.product(EXTREMES, repeat=2):
        row = [a, b, -a, 0.5 * b]
        for y in range(C):
            rows.append(row)
            labels.append(y)
    return np.asarray(rows, np.float32), np.asarray(labels)


GRID_X, GRID_Y = _grid_rows()


def _with_neg_inf(x, y):
    """The grid with -inf in one non-target class of every row (a masked class)."""
    x = x.copy()
    masked = (y + 1) % C
    x[np.arange(len(y)), masked] = -np.inf
    return x


def _finite(tree):
    return all(bool(np.all(np.isfinite(np.asarray(a)))) for a in jax.tree_util.tree_leaves(tree))


def _torch(fn, *args):
    with torch.no_grad():
        return fn(*[torch.from_numpy(np.asarray(a)) for a in args]).numpy()


def _assert_matches_where_torch_finite(ours, theirs, rtol=1e-5, atol=1e-5):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    ok = np.isfinite(theirs)
    np.testing.assert_allclose(ours[ok], theirs[ok], rtol=rtol, atol=atol)


# --------------------------------------------------------------------------------------
# multi-class losses of logits


MULTICLASS = {
    "cross_entropy": (
        lambda x, y, **kw: jl.cross_entropy(x, y, **kw),
        lambda x, y: F.cross_entropy(x, y, reduction="none"),
    ),
    "cross_entropy_smoothed_weighted": (
        lambda x, y, **kw: jl.cross_entropy(
            x, y, label_smoothing=0.1, weight=jnp.array([1.0, 2.0, 0.5, 1.0]), **kw
        ),
        lambda x, y: F.cross_entropy(
            x, y, label_smoothing=0.1, weight=torch.tensor([1.0, 2.0, 0.5, 1.0]), reduction="none"
        ),
    ),
    "label_smoothing_loss": (
        lambda x, y, **kw: jl.label_smoothing_loss(x, y, label_smoothing=0.2, **kw),
        lambda x, y: torch_label_smoothing(x, y, C, 0.2),
    ),
}
for _g in GAMMAS:
    MULTICLASS[f"focal_gamma_{_g}"] = (
        functools.partial(lambda x, y, g, **kw: jl.focal_loss(x, y, gamma=g, **kw), g=_g),
        functools.partial(lambda x, y, g: torch_focal(x, y, None, g, "none"), g=_g),
    )


@pytest.mark.parametrize("masked_class", [False, True], ids=["finite", "neg_inf_class"])
@pytest.mark.parametrize("name", sorted(MULTICLASS))
def test_multiclass_grid_is_finite_and_matches_torch(name, masked_class):
    ours, theirs = MULTICLASS[name]
    x = _with_neg_inf(GRID_X, GRID_Y) if masked_class else GRID_X
    loss = jax.jit(lambda a: ours(a, GRID_Y))
    value, grad = jax.value_and_grad(loss)(jnp.asarray(x))
    per_item = ours(jnp.asarray(x), GRID_Y, reduction="none")
    assert _finite(value) and _finite(per_item), name
    assert _finite(grad), name
    if masked_class:  # a masked class gets exactly zero gradient
        masked = (GRID_Y + 1) % C
        assert np.all(np.asarray(grad)[np.arange(len(GRID_Y)), masked] == 0.0)
    _assert_matches_where_torch_finite(per_item, _torch(theirs, x, GRID_Y))


@pytest.mark.parametrize("name", ["cross_entropy", "focal_gamma_0.5", "label_smoothing_loss"])
def test_multiclass_grid_gradients_match_torch_where_finite(name):
    ours, theirs = MULTICLASS[name]
    x = GRID_X
    grad = jax.grad(lambda a: ours(a, GRID_Y, reduction="sum"))(jnp.asarray(x))
    tx = torch.from_numpy(x).requires_grad_(True)
    theirs(tx, torch.from_numpy(GRID_Y)).sum().backward()
    tg = tx.grad.numpy()
    rows = np.all(np.isfinite(tg), axis=1)
    assert rows.sum() >= 64  # PyTorch is finite on enough of the grid for the check to bite
    np.testing.assert_allclose(np.asarray(grad)[rows], tg[rows], rtol=1e-5, atol=1e-6)


def test_cross_entropy_probability_targets_grid():
    probs = np.asarray(jax.nn.one_hot(GRID_Y, C) * 0.7 + 0.3 / C, np.float32)
    for x in [GRID_X, _with_neg_inf(GRID_X, GRID_Y)]:
        # zero target mass on the masked class: the naive 0 * -inf would be nan
        t = np.where(np.isneginf(x), 0.0, probs).astype(np.float32)
        t = t / t.sum(-1, keepdims=True)
        value, grads = jax.value_and_grad(jl.cross_entropy, argnums=(0, 1))(jnp.asarray(x), t)
        assert _finite(value) and _finite(grads)
        want = _torch(lambda a, b: F.cross_entropy(a, b, reduction="none"), x, t)
        _assert_matches_where_torch_finite(jl.cross_entropy(x, t, reduction="none"), want)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, y: jl.cross_entropy(x, y, label_smoothing=0.3),
        lambda x, y: jl.focal_loss(x, y, gamma=0.5),
        lambda x, y: jl.nll_loss(jl.log_softmax(x), y),
        lambda x, y: jl.label_smoothing_loss(x, y, where=y >= 0),  # every item masked
    ],
)
def test_all_ignored_batch_on_extreme_logits(fn):
    labels = jnp.full(GRID_Y.shape, -100)
    value, grad = jax.value_and_grad(fn)(jnp.asarray(GRID_X), labels)
    assert value == 0.0
    assert np.all(np.asarray(grad) == 0.0)


@pytest.mark.parametrize("name", ["f1", "dice"])
@pytest.mark.parametrize("masked_class", [False, True])
def test_overlap_grid_single_class_batches_and_torch(name, masked_class):
    x = _with_neg_inf(GRID_X, GRID_Y) if masked_class else GRID_X
    ours = {"f1": jl.f1_loss, "dice": lambda a, b: jl.dice_loss(a, b, axis=1)}[name]
    theirs = {
        "f1": lambda a, b: seeds_f1_loss(a, b, C),
        "dice": lambda a, b: torch_dice_loss(a, b, C, 1.0),
    }[name]
    for labels in [GRID_Y, np.zeros_like(GRID_Y), np.full_like(GRID_Y, 3)]:  # single-class too
        value, grad = jax.value_and_grad(ours)(jnp.asarray(x), labels)
        assert _finite(value) and _finite(grad)
        _assert_matches_where_torch_finite(value, _torch(theirs, x, labels))


# --------------------------------------------------------------------------------------
# elementwise losses


ELEMENT_X = np.asarray(EXTREMES, np.float32)
TARGETS = [0.0, 1.0, 0.3]


@pytest.mark.parametrize("pos_weight", [None, 3.0])
def test_bce_with_logits_grid(pos_weight):
    x = np.repeat(ELEMENT_X, len(TARGETS))
    t = np.tile(np.asarray(TARGETS, np.float32), len(ELEMENT_X))
    pw = None if pos_weight is None else np.full(x.shape, pos_weight, np.float32)
    fn = functools.partial(jl.binary_cross_entropy_with_logits, pos_weight=pw)
    value, grads = jax.value_and_grad(fn, argnums=(0, 1))(jnp.asarray(x), t)
    per = fn(x, t, reduction="none")
    assert _finite(value) and _finite(grads) and _finite(per)
    # the gradient is exactly sigmoid(x) - t (times pos_weight terms), even at |x| = 1e30
    if pos_weight is None:
        want = (np.asarray(jax.nn.sigmoid(x)) - t) / x.size
        np.testing.assert_allclose(grads[0], want, rtol=1e-5, atol=1e-12)
    want = _torch(
        lambda a, b, w: F.binary_cross_entropy_with_logits(a, b, pos_weight=w, reduction="none"),
        x,
        t,
        np.ones_like(x) if pw is None else pw,
    )
    _assert_matches_where_torch_finite(per, want)


def test_bce_on_probabilities_grid():
    p = np.asarray([0.0, 1.0, 1e-45, 1e-30, 0.5, 1 - 2**-24, 2**-24], np.float32)
    x = np.repeat(p, len(TARGETS))
    t = np.tile(np.asarray(TARGETS, np.float32), len(p))
    value, grads = jax.value_and_grad(jl.binary_cross_entropy, argnums=(0, 1))(jnp.asarray(x), t)
    per = jl.binary_cross_entropy(x, t, reduction="none")
    assert _finite(value) and _finite(grads) and _finite(per)
    _assert_matches_where_torch_finite(
        per, _torch(lambda a, b: F.binary_cross_entropy(a, b, reduction="none"), x, t)
    )
    # the probability gradient is PyTorch's clamped backward, exactly
    tx = torch.from_numpy(x).requires_grad_(True)
    F.binary_cross_entropy(tx, torch.from_numpy(t)).backward()
    # (XLA flushes the denormal 1e-45 to 0 where PyTorch keeps it: a 1e-35 difference)
    np.testing.assert_allclose(grads[0], tx.grad.numpy(), rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [0.25, None])
def test_sigmoid_focal_grid(gamma, alpha):
    x = np.repeat(ELEMENT_X, len(TARGETS))
    t = np.tile(np.asarray(TARGETS, np.float32), len(ELEMENT_X))
    fn = functools.partial(jl.sigmoid_focal_loss, gamma=gamma, alpha=alpha)
    value, grads = jax.value_and_grad(fn, argnums=0)(jnp.asarray(x), t)
    per = fn(x, t, reduction="none")
    assert _finite(value) and _finite(grads) and _finite(per)
    torch_alpha = -1 if alpha is None else alpha  # torchvision's "no weighting"
    want = _torch(
        lambda a, b: torchvision_sigmoid_focal_loss(a, b, torch_alpha, gamma, "none"), x, t
    )
    _assert_matches_where_torch_finite(per, want, rtol=1e-5, atol=1e-6)


def test_multilabel_grid():
    x = np.asarray(list(itertools.product(EXTREMES, repeat=2)), np.float32)
    t = (np.arange(x.size).reshape(x.shape) % 2).astype(np.float32)
    value, grad = jax.value_and_grad(jl.multilabel_soft_margin_loss)(jnp.asarray(x), t)
    per = jl.multilabel_soft_margin_loss(x, t, reduction="none")
    assert _finite(value) and _finite(grad) and _finite(per)
    want = _torch(lambda a, b: F.multilabel_soft_margin_loss(a, b, reduction="none"), x, t)
    _assert_matches_where_torch_finite(per, want)


# --------------------------------------------------------------------------------------
# low precision


def test_float16_log_softmax_over_65536_classes():
    # float16's exp-sum overflows past 65504; jaxlosses sums in float32
    x = jnp.zeros((2, 2**16), jnp.float16)
    out = jl.log_softmax(x)
    chex.assert_type(out, jnp.float16)
    assert _finite(out)
    np.testing.assert_allclose(np.asarray(out, np.float32), -np.log(2.0**16), rtol=1e-3)
    labels = jnp.array([0, 5])
    value, grad = jax.value_and_grad(lambda a: jl.cross_entropy(a, labels))(x)
    chex.assert_type(value, jnp.float16)
    chex.assert_type(grad, jnp.float16)
    assert _finite(value) and _finite(grad)
    np.testing.assert_allclose(float(value), np.log(2.0**16), rtol=1e-3)


# name -> (loss of (input, labels, targets), input made from float32 logits)
LOW_PRECISION_LOSSES = {
    "cross_entropy": (lambda x, y, t: jl.cross_entropy(x, y, label_smoothing=0.1), None),
    "cross_entropy_probs": (lambda x, y, t: jl.cross_entropy(x, jax.nn.softmax(t)), None),
    "nll_loss": (lambda x, y, t: jl.nll_loss(x, y), jax.nn.log_softmax),
    "focal_loss": (lambda x, y, t: jl.focal_loss(x, y, gamma=0.5), None),
    "label_smoothing_loss": (lambda x, y, t: jl.label_smoothing_loss(x, y), None),
    "bce": (lambda x, y, t: jl.binary_cross_entropy(x, t), jax.nn.sigmoid),
    "bce_logits": (lambda x, y, t: jl.binary_cross_entropy_with_logits(x, t), None),
    "sigmoid_focal": (lambda x, y, t: jl.sigmoid_focal_loss(x, t, gamma=0.5), None),
    "multilabel": (lambda x, y, t: jl.multilabel_soft_margin_loss(x, t), None),
    "f1": (lambda x, y, t: jl.f1_loss(x, y), None),
    "dice": (lambda x, y, t: jl.dice_loss(x, y), None),
}


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", sorted(LOW_PRECISION_LOSSES))
def test_low_precision_agrees_with_float32_on_rounded_inputs(name, dtype):
    r = np.random.default_rng(0)
    fn, make_input = LOW_PRECISION_LOSSES[name]
    x = jnp.asarray(r.standard_normal((64, 10)) * 3, jnp.float32)
    x = (x if make_input is None else make_input(x)).astype(dtype)  # the rounded input
    y = jnp.asarray(r.integers(0, 10, size=64))
    t = jnp.asarray(r.uniform(size=(64, 10)) < 0.3, dtype)
    value, grad = jax.value_and_grad(lambda a: fn(a, y, t))(x)
    chex.assert_type(value, dtype)
    chex.assert_type(grad, dtype)
    want_value, want_grad = jax.value_and_grad(lambda a: fn(a, y, t.astype(jnp.float32)))(
        x.astype(jnp.float32)
    )
    np.testing.assert_allclose(float(value), float(want_value), rtol=1e-2)
    scale = float(jnp.max(jnp.abs(want_grad)))
    np.testing.assert_allclose(
        np.asarray(grad, np.float32), np.asarray(want_grad), rtol=1e-2, atol=1e-2 * scale
    )


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_extremes_are_finite(dtype):
    limit = 1e4 if dtype == jnp.float16 else 1e30  # float16 has no 1e30
    x = np.clip(GRID_X, -limit, limit).astype(dtype)
    for fn in [
        lambda a: jl.cross_entropy(a, GRID_Y, label_smoothing=0.1),
        lambda a: jl.focal_loss(a, GRID_Y, gamma=0.5),
        lambda a: jl.sigmoid_focal_loss(a, (GRID_X > 0).astype(np.float32), gamma=0.5),
        lambda a: jl.binary_cross_entropy_with_logits(a, (GRID_X > 0).astype(np.float32)),
    ]:
        value, grad = jax.value_and_grad(fn)(jnp.asarray(x))
        assert _finite(value) and _finite(grad)
        chex.assert_type(grad, dtype)


# --------------------------------------------------------------------------------------
# every autodiff mode


_R34 = jnp.arange(12.0).reshape(3, 4)

LOSSES_OF_LOGITS = {
    "cross_entropy": lambda x: jl.cross_entropy(
        x, jnp.array([0, 2, 1]), label_smoothing=0.1, weight=jnp.array([1.0, 2.0, 0.5, 1.5])
    ),
    "cross_entropy_probs": lambda x: jl.cross_entropy(x, jax.nn.softmax(_R34)),
    "nll_loss": lambda x: jl.nll_loss(jl.log_softmax(x), jnp.array([0, 2, 1])),
    "log_softmax": lambda x: jnp.sum(jl.log_softmax(x) * _R34),
    "focal_loss": lambda x: jl.focal_loss(x, jnp.array([0, 2, 1]), gamma=2.0),
    "focal_loss_gamma_lt_1": lambda x: jl.focal_loss(x, jnp.array([0, 2, 1]), gamma=0.5),
    "label_smoothing_loss": lambda x: jl.label_smoothing_loss(x, jnp.array([3, 2, 1])),
    "bce": lambda x: jl.binary_cross_entropy(jax.nn.sigmoid(x), (_R34 % 3) / 2),
    "bce_logits": lambda x: jl.binary_cross_entropy_with_logits(
        x, _R34 % 2, pos_weight=jnp.array([1.0, 2.0, 3.0, 0.5])
    ),
    "sigmoid_focal": lambda x: jl.sigmoid_focal_loss(x, _R34 % 2),
    "sigmoid_focal_gamma_lt_1": lambda x: jl.sigmoid_focal_loss(x, _R34 % 2, gamma=0.5),
    "multilabel": lambda x: jl.multilabel_soft_margin_loss(x, _R34 % 2),
    "f1": lambda x: jl.f1_loss(x, jnp.array([0, 2, 1]), eps=1e-3),
    "dice": lambda x: jl.dice_loss(x, jnp.array([0, 2, 1])),
}


_JITTED = {name: jax.jit(fn) for name, fn in LOSSES_OF_LOGITS.items()}


@pytest.mark.parametrize("name", sorted(LOSSES_OF_LOGITS))
def test_gradients_equal_finite_differences_in_float64(name):
    """First and second reverse-mode derivatives against central differences, once per
    function (each check compiles new programs). Forward mode is held to reverse mode, to
    first and second order, by test_every_autodiff_mode_runs_and_agrees."""
    with jax.enable_x64(True):
        r = np.random.default_rng(sorted(LOSSES_OF_LOGITS).index(name))
        x = jnp.asarray(r.standard_normal((3, 4)) * r.choice([0.5, 2.0]), jnp.float64)
        check_grads(_JITTED[name], (x,), order=2, modes=("rev",), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(LOSSES_OF_LOGITS))
def test_every_autodiff_mode_runs_and_agrees(name):
    fn = LOSSES_OF_LOGITS[name]
    x = jnp.asarray(np.random.default_rng(2).standard_normal((3, 4)), jnp.float32)

    @jax.jit
    def all_modes(a):
        _, tangent = jax.jvp(fn, (a,), (jnp.ones_like(a),))
        return (
            jax.grad(fn)(a),
            jax.jacfwd(fn)(a),
            tangent,
            jax.hessian(fn)(a).reshape(12, 12),
            jax.jacrev(jax.grad(fn))(a).reshape(12, 12),
        )

    rev, fwd, tangent, hess, rev_of_rev = all_modes(x)
    chex.assert_trees_all_close(rev, fwd, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tangent, jnp.sum(rev), rtol=1e-5, atol=1e-6)
    assert _finite(hess)
    chex.assert_trees_all_close(hess, hess.T, rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(hess, rev_of_rev, rtol=1e-4, atol=1e-6)


def test_hessian_of_cross_entropy_is_diag_p_minus_ppT():
    r = np.random.default_rng(3)
    x = jnp.asarray(r.standard_normal(6), jnp.float32)
    p = jax.nn.softmax(x)
    hessian = jax.jit(jax.hessian(jl.cross_entropy))
    for label in range(6):
        hess = hessian(x, jnp.array(label))
        chex.assert_trees_all_close(hess, jnp.diag(p) - jnp.outer(p, p), atol=1e-6)
    # with probability targets that sum to s, the Hessian is s (diag(p) - p p^T)
    t = jnp.asarray(r.uniform(size=6), jnp.float32)
    hess = hessian(x, t)
    chex.assert_trees_all_close(hess, t.sum() * (jnp.diag(p) - jnp.outer(p, p)), atol=1e-5)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_focal_second_derivatives_are_finite_at_saturation(gamma):
    # p_target = 1 in float32: the naive second derivative of (1 - p)**gamma is inf * 0
    x = jnp.array([[30.0, -30.0, -30.0], [1e4, 0.0, -1e4]])
    y = jnp.array([0, 0])
    t = jnp.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    hessians = jax.jit(
        lambda a: (
            jax.hessian(lambda b: jl.focal_loss(b, y, gamma=gamma))(a),
            jax.hessian(lambda b: jl.sigmoid_focal_loss(b, t, gamma=gamma))(a),
        )
    )
    assert _finite(hessians(x))
