"""Margin and metric-learning losses against torch.nn.functional: values, gradients, kinks.

Every case compares the value and the vector-Jacobian product of every differentiable
input with PyTorch's autograd. Inputs mix random draws with dyadic grids, so hinges sit
exactly at their kinks (``margin - y (x1 - x2) = 0``, ``x = margin``, ``cos = margin``,
``margin + d_p - d_n = 0``, tied multi-class scores, tied swap distances), where the
gradient is PyTorch's subgradient choice.
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
from flax import nnx
from oracle import assert_matches_torch, rng

import jaxlosses as jl
from jaxlosses import per_example as pe

REDUCTIONS = ["mean", "sum", "none"]
N, D = 6, 5


# (shape, reduction): every reduction on a batch, and a scalar (PyTorch's unbatched input)
CASES = [*(((N, D), r) for r in REDUCTIONS), ((), "none")]


def _signs(r, shape):
    return np.where(r.uniform(size=shape) < 0.5, 1, -1).astype(np.int64)


def _scores(r, shape):
    """Half dyadic grid (exact kinks and ties), half random normal, along the first axis."""
    grid = r.integers(-6, 7, size=shape) / 4
    normal = r.standard_normal(shape) * 1.5
    first = np.arange(shape[0]).reshape((-1,) + (1,) * (len(shape) - 1)) if shape else 0
    return np.where(first % 2 == 0, grid, normal).astype(np.float32)


# --------------------------------------------------------------------------------------
# elementwise margin losses


@pytest.mark.parametrize("shape,reduction", CASES)
def test_margin_ranking_matches_torch(shape, reduction):
    r = rng(0)
    x1, x2, y = _scores(r, shape), _scores(r, shape), _signs(r, shape)
    for margin in [0.0, 0.5, -0.25]:
        assert_matches_torch(
            lambda a, b, t, m=margin: jl.margin_ranking_loss(
                a, b, t, margin=m, reduction=reduction
            ),
            lambda a, b, t, m=margin: F.margin_ranking_loss(a, b, t, margin=m, reduction=reduction),
            [x1, x2, y.astype(np.float32)],
            [0, 1],
        )


@pytest.mark.parametrize("shape,reduction", CASES)
def test_hinge_embedding_matches_torch(shape, reduction):
    r = rng(1)
    x, y = np.abs(_scores(r, shape)), _signs(r, shape)
    for margin in [1.0, 0.5, -0.5]:
        assert_matches_torch(
            lambda a, t, m=margin: jl.hinge_embedding_loss(a, t, margin=m, reduction=reduction),
            lambda a, t, m=margin: F.hinge_embedding_loss(a, t, margin=m, reduction=reduction),
            [x, y],
            [0],
        )


def test_targets_and_inputs_broadcast_as_in_pytorch():
    r = rng(20)
    x, x2 = _scores(r, (N, D)), _scores(r, (1, D))
    y_rows, y = _signs(r, (N, 1)), _signs(r, (N, D))
    for jax_fn, torch_fn, args, diff in [
        (jl.soft_margin_loss, F.soft_margin_loss, [x, y_rows], [0]),
        (jl.hinge_embedding_loss, F.hinge_embedding_loss, [np.abs(x), y_rows], [0]),
        (jl.hinge_embedding_loss, F.hinge_embedding_loss, [np.abs(x[:, :1]), y], [0]),
        (jl.margin_ranking_loss, F.margin_ranking_loss, [x, x2, y_rows], [0, 1]),
    ]:
        assert_matches_torch(jax_fn, torch_fn, args, diff)


@pytest.mark.parametrize("shape,reduction", CASES)
def test_soft_margin_matches_torch(shape, reduction):
    r = rng(2)
    x, y = _scores(r, shape) * 4, _signs(r, shape).astype(np.float32)
    assert_matches_torch(
        lambda a, t: jl.soft_margin_loss(a, t, reduction=reduction),
        lambda a, t: F.soft_margin_loss(a, t, reduction=reduction),
        [x, y],
        [0],
    )


# --------------------------------------------------------------------------------------
# multi-class and multi-label margins


@pytest.mark.parametrize(
    "layout,p,weighted,reduction",
    [
        *itertools.product(["NC"], [1, 2], [False, True], REDUCTIONS),
        ("C", 2, True, "none"),
    ],
)
def test_multi_margin_matches_torch(layout, p, weighted, reduction):
    r = rng(3)
    shape = (N, D) if layout == "NC" else (D,)
    x = _scores(r, shape)
    y = r.integers(0, D, size=shape[:-1])
    w = r.uniform(0.5, 2.0, size=D).astype(np.float32) if weighted else None
    for margin in [1.0, 0.5]:
        kw = dict(p=p, margin=margin, reduction=reduction)
        assert_matches_torch(
            lambda a, t, c, kw=kw: jl.multi_margin_loss(a, t, weight=c, **kw),
            lambda a, t, c, kw=kw: F.multi_margin_loss(a, t, weight=c, **kw),
            [x, y, w],
            [0],
        )


def _padded_lists(r, shape):
    """Class lists padded with -1: duplicates, lists of length 0 to C, junk after -1."""
    c = shape[-1]
    t = np.full(shape, -1, np.int64).reshape(-1, c)
    for row in t:
        k = r.integers(0, c + 1)
        row[:k] = r.choice(c, k, replace=True)
        if k < c - 1:
            row[k + 1 :] = r.integers(-1, c, size=c - k - 1)  # not read: after the first -1
    return t.reshape(shape)


@pytest.mark.parametrize("shape,reduction", [*(((N, D), r) for r in REDUCTIONS), ((D,), "none")])
def test_multilabel_margin_matches_torch(shape, reduction):
    r = rng(4)
    x = _scores(r, shape) if len(shape) > 1 else _scores(r, (2, *shape))[0]
    t = _padded_lists(r, shape)
    assert_matches_torch(
        lambda a, b: jl.multilabel_margin_loss(a, b, reduction=reduction),
        lambda a, b: F.multilabel_margin_loss(a, b, reduction=reduction),
        [x, t],
        [0],
    )


# --------------------------------------------------------------------------------------
# cosine embedding


def _pairs(r):
    """Random pairs, then rows at the kinks and at zero vectors."""
    a = r.standard_normal((N, D)).astype(np.float32)
    b = r.standard_normal((N, D)).astype(np.float32)
    b[1] = 2 * a[1]  # cos = 1 (the kink of margin 1 for y = -1)
    a[2], b[2] = np.eye(D)[0], np.eye(D)[1]  # cos = 0 (the kink of margin 0)
    a[3] = 0.0  # a zero vector: cos = 0, PyTorch's finite (large) gradient
    a[4], b[4] = 0.0, 0.0
    y = np.array([1, -1, -1, 1, -1, -1])
    return a, b, y


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cosine_embedding_matches_torch(reduction):
    a, b, y = _pairs(rng(6))
    for margin in [0.0, 1.0, -0.3]:
        # the zero vector's gradient is about 1e6: compare it relative to that
        kw = dict(margin=margin, reduction=reduction)
        assert_matches_torch(
            functools.partial(jl.cosine_embedding_loss, **kw),
            functools.partial(F.cosine_embedding_loss, **kw),
            [a, b, y],
            [0, 1],
            atol=1e-5,
        )


def test_cosine_embedding_unbatched():
    r = rng(7)
    a, b = r.standard_normal((2, D)).astype(np.float32)
    for y in [1, -1]:
        assert_matches_torch(
            lambda u, v, t: jl.cosine_embedding_loss(u, v, t, margin=0.2),
            lambda u, v, t: F.cosine_embedding_loss(u, v, t, margin=0.2),
            [a, b, np.asarray(y)],
            [0, 1],
        )


# --------------------------------------------------------------------------------------
# triplets


def _triplets(r, d=D):
    """Random triplets, then a hinge kink, a tied swap and a zero distance (eps = 0)."""
    a, p, n = (r.standard_normal((6, d)).astype(np.float32) for _ in range(3))
    e = np.eye(d, dtype=np.float32)[0]
    a[1], p[1], n[1] = 0.0, e, 2 * e  # margin 1 + d_p 1 - d_n 2 = 0
    a[2], p[2], n[2] = 0.0, 2 * e, e  # d(a, n) = d(p, n) = 1: a tie of the swap's min
    p[3] = a[3]  # d(a, p) = 0
    n[4] = a[4] + 0.25 * np.sign(r.standard_normal(d))  # equal |entries|: max-norm ties
    return a, p, n


@pytest.mark.parametrize(
    "norm,swap,eps",
    [
        *((p, False, 1e-6) for p in [1.0, 1.5, 2.0, 3.0, float("inf")]),
        *((p, True, 0.0) for p in [1.0, 1.5, 2.0, 3.0, float("inf")]),  # d(a, p) = 0 exactly
        (0.5, True, 1e-6),
    ],
)
def test_triplet_margin_matches_torch(norm, swap, eps):
    a, p, n = _triplets(rng(8))
    kw = dict(p=norm, swap=swap, eps=eps, reduction="none")
    assert_matches_torch(
        lambda x, y, z: jl.triplet_margin_loss(x, y, z, **kw),
        lambda x, y, z: F.triplet_margin_loss(x, y, z, **kw),
        [a, p, n],
        [0, 1, 2],
    )


def test_triplet_margin_reductions_broadcasting_and_unbatched():
    r = rng(9)
    a, p, n = _triplets(r)
    for margin, positive, reduction in [
        (1.0, p, "mean"),
        (0.5, p[:1], "sum"),
        (2.0, p[:1], "mean"),
    ]:
        kw = dict(margin=margin, reduction=reduction)  # a (1, D) positive broadcasts
        assert_matches_torch(
            functools.partial(jl.triplet_margin_loss, **kw),
            functools.partial(F.triplet_margin_loss, **kw),
            [a, positive, n],
            [0, 1, 2],
        )
    assert_matches_torch(
        jl.triplet_margin_loss, F.triplet_margin_loss, [a[0], p[0], n[0]], [0, 1, 2]
    )


def _torch_cosine_distance(x, y):
    return 1.0 - F.cosine_similarity(x, y)


def _cosine_distance(x, y):
    num = jnp.sum(x * y, axis=-1)
    den = jnp.maximum(jnp.linalg.norm(x, axis=-1), 1e-8) * jnp.maximum(
        jnp.linalg.norm(y, axis=-1), 1e-8
    )
    return 1.0 - num / den


@pytest.mark.parametrize("distance", ["default", "l1", "cosine"])
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_with_distance_matches_torch(distance, swap):
    a, p, n = _triplets(rng(10))
    if distance == "cosine":  # the test's own cosine distance has no guard at 0
        a, p, n = a + 0.5, p - 0.25, n + 0.125
    ours, theirs = {
        "default": (None, None),
        # sign(d) d: PyTorch's |d| has slope 0 at d = 0, JAX's 1
        "l1": (
            lambda x, y: jnp.sum(jnp.sign(x - y) * (x - y), -1),
            lambda x, y: (x - y).abs().sum(-1),
        ),
        "cosine": (_cosine_distance, _torch_cosine_distance),
    }[distance]
    for margin, reduction in [(1.0, "none"), (0.5, "mean"), (2.0, "sum")]:
        kw = dict(margin=margin, swap=swap, reduction=reduction)
        assert_matches_torch(
            functools.partial(jl.triplet_margin_with_distance_loss, distance_function=ours, **kw),
            functools.partial(F.triplet_margin_with_distance_loss, distance_function=theirs, **kw),
            [a, p, n],
            [0, 1, 2],
        )


# --------------------------------------------------------------------------------------
# numerics: zero distances, zero vectors, extreme inputs, invalid targets; every autodiff
# mode, 16-bit inputs, where= and per_example (each check compiles one program for all
# the losses)


def _finite(*trees):
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(trees))


def _losses(r, dtype=np.float32):
    """Every loss (and option that changes its program) as a function of one input."""
    x2, x3 = (r.standard_normal((N, D)).astype(dtype) for _ in range(2))
    y, pair, labels = _signs(r, (N, D)), _signs(r, N), r.integers(0, D, N)
    lists = _padded_lists(r, (N, D))
    w = r.uniform(0.5, 2.0, D).astype(np.float32)
    return {
        "margin_ranking": lambda a: jl.margin_ranking_loss(a, x2, y, margin=0.3),
        "hinge_embedding": lambda a: jl.hinge_embedding_loss(a, y, margin=0.5),
        "soft_margin": lambda a: jl.soft_margin_loss(a, y),
        "multi_margin": lambda a: jl.multi_margin_loss(a, labels, weight=w),
        "multi_margin_p2": lambda a: jl.multi_margin_loss(a, labels, p=2, margin=2.0),
        "multilabel_margin": lambda a: jl.multilabel_margin_loss(a, lists),
        "cosine_embedding": lambda a: jl.cosine_embedding_loss(a, x2, pair, margin=-0.5),
        "triplet": lambda a: jl.triplet_margin_loss(a, x2, x3, margin=3.0, swap=True),
        "triplet_p3": lambda a: jl.triplet_margin_loss(x2, a, x3, p=3.0, margin=3.0),
        "triplet_inf": lambda a: jl.triplet_margin_loss(x2, x3, a, p=float("inf"), margin=3.0),
        "triplet_with_distance": lambda a: jl.triplet_margin_with_distance_loss(
            x3, x2, a, distance_function=_cosine_distance, margin=1.5, swap=True
        ),
    }


@functools.cache
def _all_modes():
    """One compiled program: every loss's value, gradient, forward-mode tangent and two
    Hessian-vector products (forward over reverse, as ``jax.hessian``) at ``x``."""
    fns = _losses(rng(13))

    @jax.jit
    def modes(x, u, v):
        out = {}
        for name, f in fns.items():
            hvp = lambda w, f=f: jax.jvp(jax.grad(f), (x,), (w,))[1]  # noqa: E731
            out[name] = (f(x), jax.grad(f)(x), jax.jvp(f, (x,), (v,))[1], hvp(u), hvp(v))
        return out

    return modes


def test_every_autodiff_mode_runs_and_agrees():
    r = rng(13)
    x, u, v = (jnp.asarray(r.standard_normal((N, D)), jnp.float32) for _ in range(3))
    for name, (_, grad, tangent, hu, hv) in _all_modes()(x, u, v).items():
        np.testing.assert_allclose(tangent, jnp.vdot(grad, v), rtol=1e-4, atol=1e-5, err_msg=name)
        assert _finite(grad, hu, hv), name
        # the Hessian is symmetric: v . H u = u . H v
        np.testing.assert_allclose(jnp.vdot(v, hu), jnp.vdot(u, hv), rtol=1e-4, atol=1e-5)
    # jax.hessian itself, on the losses with their own derivative rules
    cos = _losses(r)["cosine_embedding"]
    hess = jax.jit(jax.hessian(cos))(x).reshape(N * D, N * D)
    assert _finite(hess)
    chex.assert_trees_all_close(hess, hess.T, rtol=1e-4, atol=1e-5)


def test_low_precision_is_computed_in_float32():
    r = rng(14)
    dtypes = [jnp.bfloat16, jnp.float16]
    fns = {dtype: _losses(r, dtype) for dtype in dtypes}
    x = r.standard_normal((N, D))

    @jax.jit
    def run(x):
        return {
            (jnp.dtype(dtype).name, n): (f(x.astype(dtype)), f(x.astype(dtype).astype(float)))
            for dtype in dtypes
            for n, f in fns[dtype].items()
        }

    for (dtype, name), (value, value32) in run(jnp.asarray(x, jnp.float32)).items():
        chex.assert_type(value, dtype)
        assert value == value32.astype(dtype), name  # the float32 loss, rounded once


def test_the_naive_distance_gradient_is_nan_at_zero():
    # the guard is needed: autodiff of the norm is nan at d = 0, where the triplet tests
    # above (swap, eps = 0, d(a, p) = 0) find PyTorch's finite subgradient
    x = jnp.asarray(rng(11).standard_normal((N, D)), jnp.float32)
    assert not _finite(jax.grad(lambda a, b: jnp.sum(jnp.linalg.norm(a - b, axis=-1)))(x, x))


def test_extreme_inputs_give_finite_values_and_gradients():
    r = rng(12)
    big = (r.standard_normal((N, D)) * 1e30).astype(np.float32)
    other = r.standard_normal((N, D)).astype(np.float32)
    pair = _signs(r, N)
    for name, (value, grad, *_) in _all_modes()(big, other, other).items():
        if name != "multi_margin_p2":  # its squared hinge, about 1e60, is not a float32
            assert _finite(value, grad), name

    @jax.jit
    def run(big):
        return (
            jl.cosine_embedding_loss(big, other, pair, reduction="none"),
            jl.cosine_embedding_loss(big / 1e30, other, pair, reduction="none"),
            jl.triplet_margin_loss(big, 3 * big, 0 * big, reduction="none"),
            jl.soft_margin_loss(
                jnp.array([1e30, -1e30, 30.0]), jnp.array([-1, 1, -1]), reduction="none"
            ),
        )

    cos_big, cos_small, triplet, soft = run(big)
    chex.assert_trees_all_close(cos_big, cos_small)  # the cosine is scale-invariant
    # 1 + d(a, 3a) - d(a, 0) = 1 + |a|, about 1e30: the naive sum of squares is inf
    np.testing.assert_allclose(triplet, np.linalg.norm(big.astype(np.float64), axis=-1), rtol=1e-5)
    chex.assert_trees_all_close(soft, np.array([1e30, 1e30, 30.0], np.float32))
    # PyTorch overflows there: log(1 + exp(1e30)) = inf
    assert torch.isinf(F.soft_margin_loss(torch.tensor([1e30]), torch.tensor([-1.0])))


def test_invalid_targets_are_nan_and_class_axes_move():
    r = rng(5)
    x, x2 = (r.standard_normal((N, D)).astype(np.float32) for _ in range(2))
    y = _signs(r, (N, D))
    y[:, 0] = [0, 2, -2, 1, -1, 3]  # not 1 or -1
    pair = np.array([0, -1, 1, 2, -1, 1])
    labels = np.array([0, 5, 1, -1, 4, 2])  # 5 and -1 are out of range
    lists = _padded_lists(r, (N, D))
    lists[1, -1], lists[2, 0] = D, -2  # out of range, even after a -1; below -1
    xk = r.standard_normal((2, D, 3)).astype(np.float32)  # the class axis second
    yk, tk = r.integers(0, D, (2, 3)), np.moveaxis(_padded_lists(r, (2, 3, D)), -1, 1)

    @jax.jit
    def run():
        none = dict(reduction="none")
        return (
            jl.margin_ranking_loss(x, x2, y, **none),
            jl.hinge_embedding_loss(x, y, **none),
            jl.soft_margin_loss(x, y, **none),
            jl.cosine_embedding_loss(x, x2, pair, **none),
            jl.multi_margin_loss(x, labels, **none),
            jl.multilabel_margin_loss(x, lists, **none),
            jl.hinge_embedding_loss(x, y, where=np.abs(y) == 1),
            jl.multi_margin_loss(xk, yk, axis=1, **none),
            jl.multi_margin_loss(jnp.moveaxis(xk, 1, -1), yk, **none),
            jl.multilabel_margin_loss(xk, tk, axis=1, **none),
            jl.multilabel_margin_loss(jnp.moveaxis(xk, 1, -1), jnp.moveaxis(tk, 1, -1), **none),
            jl.cosine_embedding_loss(xk, xk[::-1], yk % 2 * 2 - 1, axis=1, **none),
            jl.cosine_embedding_loss(
                *jnp.moveaxis(jnp.stack([xk, xk[::-1]]), 2, -1), yk % 2 * 2 - 1, **none
            ),
            jl.triplet_margin_loss(xk, xk[::-1], -xk, axis=1, **none),
            jl.triplet_margin_loss(*jnp.moveaxis(jnp.stack([xk, xk[::-1], -xk]), 2, -1), **none),
        )

    ranking, hinge, soft, cos, multi, multilabel, masked, *moved = run()
    bad = np.abs(y) != 1
    for loss in [ranking, hinge, soft]:
        np.testing.assert_array_equal(np.isnan(loss), bad)
    np.testing.assert_array_equal(np.isnan(cos), np.abs(pair) != 1)  # PyTorch: 0 for target 0
    assert float(F.cosine_embedding_loss(torch.ones(1, 2), torch.ones(1, 2), torch.zeros(1))) == 0
    np.testing.assert_array_equal(np.isnan(multi), [False, True, False, True, False, False])
    np.testing.assert_array_equal(np.isnan(multilabel), [False, True, True, False, False, False])
    assert _finite(masked)  # masked items drop out, nan included
    for a, b in zip(moved[::2], moved[1::2], strict=True):
        chex.assert_trees_all_close(a, b)


def test_where_drops_items_and_per_example_equals_the_batch():
    r = rng(15)
    a, p, n = (r.standard_normal((N, D)).astype(np.float32) for _ in range(3))
    pair, labels, lists = _signs(r, N), r.integers(0, D, N), _padded_lists(r, (N, D))
    y = _signs(r, (N, D))
    keep = np.array([True, False, True, True, False, True])
    per_item = {
        "cosine_embedding_loss": (a, p, pair),
        "triplet_margin_loss": (a, p, n),
        "triplet_margin_with_distance_loss": (a, p, n),
        "multi_margin_loss": (a, labels),
        "multilabel_margin_loss": (a, lists),
    }
    elementwise = {
        "margin_ranking_loss": (a, p, y),
        "hinge_embedding_loss": (a, y),
        "soft_margin_loss": (a, y),
    }

    @jax.jit
    def run():
        out = {}
        for name, args in per_item.items():
            fn, one = getattr(jl, name), getattr(pe, name)
            out[name] = (
                fn(*args, reduction="none"),
                jax.vmap(one)(*args),
                fn(*args, where=keep),
                fn(*(x[keep] for x in args)),
            )
        for name, args in elementwise.items():
            fn, one = getattr(jl, name), getattr(pe, name)
            rows = jnp.mean(fn(*args, reduction="none"), axis=-1)
            masked = fn(*args, where=keep[:, None])
            out[name] = (rows, jax.vmap(one)(*args), masked, fn(*(x[keep] for x in args)))
        return out

    for name, (batch, vmapped, masked, dropped) in run().items():
        chex.assert_trees_all_close(vmapped, batch, rtol=1e-6, custom_message=name)
        chex.assert_trees_all_close(masked, dropped, rtol=1e-6, custom_message=name)


# --------------------------------------------------------------------------------------
# bad arguments: errors at trace time, naming the argument


X = jnp.zeros((4, D))
Y4 = jnp.array([1, -1, 1, -1])


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: jl.multi_margin_loss(X, Y4 + 1, p=3), ValueError, r"p must be one of \(1, 2\)"),
        (lambda: jl.multi_margin_loss(X, Y4 + 1, p=2.0), ValueError, r"p must be one of"),
        (lambda: jl.multi_margin_loss(X, Y4 + 1, weight=jnp.ones(3)), ValueError, r"weight"),
        (lambda: jl.multi_margin_loss(X, jnp.zeros(4)), TypeError, r"target must hold integer"),
        (lambda: jl.multi_margin_loss(X, jnp.zeros(3, int)), ValueError, r"target\.shape=\(3,\)"),
        (lambda: jl.multilabel_margin_loss(X, jnp.zeros(4, int)), ValueError, r"input's shape"),
        (lambda: jl.multilabel_margin_loss(X, X), TypeError, r"target must hold integer"),
        (lambda: jl.margin_ranking_loss(X, X[:, :3], X), ValueError, r"input1 and input2 must"),
        (lambda: jl.margin_ranking_loss(X, X, Y4), ValueError, r"same rank.*target\.shape=\(4,\)"),
        (lambda: jl.margin_ranking_loss(X, X, X > 0), TypeError, r"target must hold 1 and -1"),
        (lambda: jl.margin_ranking_loss(X, X, X, reduction="avg"), ValueError, r"reduction"),
        (
            lambda: jl.hinge_embedding_loss(jnp.ones(3, int), Y4[:3]),
            TypeError,
            r"input must have a",
        ),
        (lambda: jl.soft_margin_loss(X, Y4), ValueError, r"target of shape \(4,\) does not"),
        (lambda: jl.soft_margin_loss(X[:, :1], X), ValueError, r"to the input of shape \(4, 1\)"),
        (lambda: jl.cosine_embedding_loss(X, X, X), ValueError, r"inputs without the axis of"),
        (lambda: jl.cosine_embedding_loss(X, X.T, Y4), ValueError, r"input1 and input2 must"),
        (lambda: jl.cosine_embedding_loss(X, X, Y4, margin=1.5), ValueError, r"margin must be in"),
        (lambda: jl.triplet_margin_loss(X, X, X[0]), ValueError, r"same rank.*negative\.shape"),
        (lambda: jl.triplet_margin_loss(X, X[:3], X), ValueError, r"must broadcast"),
        (lambda: jl.triplet_margin_loss(X, X, X, margin=0.0), ValueError, r"margin must be in \(0"),
        (lambda: jl.triplet_margin_loss(X, X, X, p=0), ValueError, r"p must be in \(0"),
        (lambda: jl.triplet_margin_loss(X, X, X, eps=-1e-6), ValueError, r"eps must be in \[0"),
        (lambda: jl.triplet_margin_loss(X, X, X, swap=1), TypeError, r"swap must be a bool"),
        (lambda: jl.triplet_margin_loss(X, X, X.astype(int)), TypeError, r"negative must have"),
        (
            lambda: jl.triplet_margin_with_distance_loss(X, X, X, distance_function="l2"),
            TypeError,
            r"distance_function must be a callable",
        ),
        (
            lambda: jl.triplet_margin_with_distance_loss(X, X, X, margin=-1.0),
            ValueError,
            r"margin must be in \(0",
        ),
        (
            lambda: jl.triplet_margin_with_distance_loss(
                X, X, X, distance_function=lambda a, b: jnp.sum(a != b, -1)
            ),
            TypeError,
            r"distance_function must return floats",
        ),
    ],
)
def test_bad_arguments_raise_at_trace_time(call, error, match):
    with pytest.raises(error, match=match):
        call()
    with pytest.raises(error, match=match):
        jax.jit(call)()  # at trace time: the same error under jit


def test_traced_p_is_refused_and_traced_margin_compiles_once():
    with pytest.raises(TypeError, match="p must be a concrete number"):
        jax.jit(lambda p: jl.triplet_margin_loss(X, X, X, p=p))(2.0)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(a, p, n, margin):
        return jax.value_and_grad(
            lambda u: jl.triplet_margin_loss(u, p, n, margin=margin, swap=True)
        )(a)

    chex.clear_trace_counter()
    a, p, n = (jnp.asarray(x) for x in _triplets(rng(16)))
    for margin in [0.5, 1.0, 2.0]:
        value, grad = step(a, p, n, margin)
        eager = jl.triplet_margin_loss(a, p, n, margin=margin, swap=True)
        np.testing.assert_allclose(value, eager, rtol=1e-6)


def _minkowski(x, y, p):
    return jnp.sum(jnp.abs(x - y) ** p, axis=-1) ** (1 / p)


def test_nnx_module_with_a_distance_function_jits_once():
    # the distance function is a static attribute: one trace for every call
    distance = functools.partial(_minkowski, p=3.0)
    loss = jl.nnx.TripletMarginWithDistanceLoss(distance_function=distance, margin=0.5)
    a, p, n = (jnp.asarray(x) for x in _triplets(rng(17)))

    @nnx.jit
    @chex.assert_max_traces(n=1)
    def value_and_grad(loss, a, p, n):
        return jax.value_and_grad(lambda u: loss(u, p, n))(a)

    chex.clear_trace_counter()
    for k in range(3):
        value, grad = value_and_grad(loss, a + k, p, n)
    want = jl.triplet_margin_with_distance_loss(a + 2, p, n, distance_function=distance, margin=0.5)
    np.testing.assert_allclose(value, want, rtol=1e-6)
    assert _finite(grad)
