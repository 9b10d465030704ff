"""Bad input raises a clear ValueError/TypeError at trace time, naming what is wrong."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlosses as jl

X = jnp.zeros((4, 5))
Y = jnp.array([0, 1, 2, 3])
T = jnp.zeros((4, 5))


@pytest.mark.parametrize(
    "call",
    [
        lambda: jl.cross_entropy(X, Y, reduction="avg"),
        lambda: jl.nll_loss(X, Y, reduction="elementwise_mean"),
        lambda: jl.focal_loss(X, Y, reduction=None),
        lambda: jl.label_smoothing_loss(X, Y, reduction="batchmean"),
        lambda: jl.binary_cross_entropy(T, T, reduction="mean "),
        lambda: jl.binary_cross_entropy_with_logits(T, T, reduction="MEAN"),
        lambda: jl.sigmoid_focal_loss(T, T, reduction="max"),
        lambda: jl.multilabel_soft_margin_loss(T, T, reduction=""),
    ],
)
def test_unknown_reduction(call):
    with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'sum', 'none'\)"):
        call()


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: jl.cross_entropy(X, Y, label_smoothing=1.5),
            r"label_smoothing must be in \[0.0, 1.0\], got 1.5",
        ),
        (lambda: jl.cross_entropy(X, Y, label_smoothing=-0.1), r"label_smoothing must be in"),
        (lambda: jl.focal_loss(X, Y, gamma=-1.0), r"gamma must be in \[0.0, inf\), got -1.0"),
        (lambda: jl.sigmoid_focal_loss(T, T, gamma=-0.5), r"gamma must be in"),
        (
            lambda: jl.sigmoid_focal_loss(T, T, alpha=1.5),
            r"alpha must be in \[0.0, 1.0\], got 1.5",
        ),
        (
            lambda: jl.label_smoothing_loss(X, Y, label_smoothing=2.0),
            r"label_smoothing must be in \[0.0, 1.0\]",
        ),
        (lambda: jl.f1_loss(X, Y, eps=-1e-7), r"eps must be in"),
        (lambda: jl.dice_loss(X, Y, smooth=-1.0), r"smooth must be in"),
        (
            lambda: jl.cross_entropy(X, Y, label_smoothing=float("nan")),
            r"label_smoothing must not be NaN",
        ),
    ],
)
def test_hyperparameter_out_of_range(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: jl.cross_entropy(X, jnp.array([0, 1, 2])),
            r"expected \(4,\), got target.shape=\(3,\) for an input of shape \(4, 5\)",
        ),
        (
            lambda: jl.cross_entropy(jnp.zeros((2, 5, 3)), jnp.zeros((2, 5), int), axis=1),
            r"expected \(2, 3\), got target.shape=\(2, 5\)",
        ),
        (
            lambda: jl.nll_loss(X, jnp.zeros((4, 1), int)),
            r"target must have the shape of the input without the class axis",
        ),
        (
            lambda: jl.cross_entropy(X, jnp.zeros((4, 4))),
            r"a floating target holds class probabilities and must have the input's shape: "
            r"got target.shape=\(4, 4\) for input.shape=\(4, 5\)",
        ),
        (
            lambda: jl.cross_entropy(X, Y, weight=jnp.ones(4)),
            r"weight must be a vector with one entry per class, shape \(5,\), got shape \(4,\)",
        ),
        (lambda: jl.focal_loss(X, Y, weight=jnp.ones((5, 1))), r"shape \(5,\), got shape \(5, 1\)"),
        (
            lambda: jl.binary_cross_entropy(T, jnp.zeros((4, 4))),
            r"input and target must have the same shape, "
            r"got input.shape=\(4, 5\) and target.shape=\(4, 4\)",
        ),
        (
            lambda: jl.binary_cross_entropy_with_logits(T, T, pos_weight=jnp.ones(3)),
            r"pos_weight of shape \(3,\) does not broadcast to the input of shape \(4, 5\)",
        ),
        (
            lambda: jl.binary_cross_entropy_with_logits(T, T, weight=jnp.ones((2, 5))),
            r"weight of shape \(2, 5\) does not broadcast",
        ),
        (
            lambda: jl.multilabel_soft_margin_loss(T, jnp.zeros(5)),
            r"input and target must have the same shape",
        ),
        (
            lambda: jl.cross_entropy(X, Y, where=jnp.ones(5, bool)),
            r"where of shape \(5,\) does not broadcast to the unreduced loss of shape \(4,\)",
        ),
        (lambda: jl.cross_entropy(X, Y, axis=2), r"axis=2 is out of range for an input of rank 2"),
        (
            lambda: jl.cross_entropy(jnp.float32(1.0), jnp.array(0)),
            r"input must have at least one dimension",
        ),
        (
            lambda: jl.label_smoothing_loss(jnp.zeros((3, 1)), jnp.zeros(3, int)),
            r"needs C >= 2 classes, got C=1",
        ),
        (
            lambda: jl.f1_loss(X, jnp.zeros((4, 4))),
            r"a floating target must have the input's shape",
        ),
    ],
)
def test_shape_errors_name_argument_and_shapes(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: jl.cross_entropy(jnp.zeros((4, 5), int), Y),
            r"input must have a floating dtype, got int32 \(shape \(4, 5\)\)",
        ),
        (
            lambda: jl.nll_loss(X, Y.astype(jnp.float32)),
            r"target must hold integer class indices, got dtype float32",
        ),
        (lambda: jl.focal_loss(X, jnp.zeros(4)), r"target must hold integer class indices"),
        (
            lambda: jl.cross_entropy(X, jnp.zeros(4, bool)),
            r"target must be integer class indices or floating class probabilities, "
            r"got dtype bool",
        ),
        (
            lambda: jl.cross_entropy(X, Y, where=jnp.ones(4)),
            r"where must be a boolean mask, got dtype float32",
        ),
        (lambda: jl.cross_entropy(X, Y, ignore_index=1.5), r"ignore_index must be a Python int"),
        (
            lambda: jl.binary_cross_entropy(jnp.zeros(3, int), jnp.zeros(3)),
            r"input must have a floating dtype",
        ),
        (lambda: jl.cross_entropy(X, Y, axis=1.0), r"axis must be an int"),
        (lambda: jl.focal_loss(X, Y, gamma="2"), r"gamma must be a number, got str"),
        (
            lambda: jl.cross_entropy(X, Y, weight=jnp.ones(5, int)),
            r"weight must have a floating dtype",
        ),
    ],
)
def test_dtype_errors(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_float_labels_hint_at_integer_dtype():
    with pytest.raises(ValueError, match=r"for class indices, pass an integer dtype"):
        jl.cross_entropy(X, jnp.zeros(4))


def test_errors_are_raised_at_trace_time_under_jit():
    traced = jax.jit(lambda x, y: jl.cross_entropy(x, y, label_smoothing=2.0))
    with pytest.raises(ValueError, match="label_smoothing"):
        traced.lower(X, Y)


def test_traced_hyperparameters_are_accepted():
    # A hyperparameter passed through jit is a tracer: no range check, same value.
    f = jax.jit(
        lambda x, y, s, g: jl.cross_entropy(x, y, label_smoothing=s) + jl.focal_loss(x, y, gamma=g)
    )
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 5)), jnp.float32)
    want = jl.cross_entropy(x, Y, label_smoothing=0.1) + jl.focal_loss(x, Y, gamma=0.5)
    np.testing.assert_allclose(f(x, Y, 0.1, 0.5), want, rtol=1e-6)
