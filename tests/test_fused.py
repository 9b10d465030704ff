"""linear_cross_entropy: PyTorch's numbers and gradients without the N x V logits."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle import assert_matches_torch, jax_value_and_grads, rng

import jaxlosses as jl
from jaxlosses import _fused
from jaxlosses._core import chunked, stable

H, V = 16, 50  # V = 50 is not a multiple of any chunk below
CHUNKS = {"tokens": 8, "vocab": (8, 16)}  # 8 does not divide the 21 or 37 tokens


def _data(batch_shape, seed=0, *, frac_ignored=0.3, ignore_index=-100):
    r = rng(seed)
    x = (r.standard_normal(batch_shape + (H,))).astype(np.float32)
    w = (r.standard_normal((V, H)) * 0.5).astype(np.float32)
    b = r.standard_normal((V,)).astype(np.float32)
    y = r.integers(0, V, size=batch_shape).astype(np.int64)
    if frac_ignored:
        y = np.where(r.uniform(size=batch_shape) < frac_ignored, ignore_index, y)
        y.flat[0] = 1  # at least one kept token: PyTorch's mean over none is nan
    return x, w, b, y


def _torch_fn(batch_shape, reduction, options=None, **kw):
    def fn(x, w, b, y):
        out = F.linear_cross_entropy(
            x.reshape(-1, H),
            w,
            y.reshape(-1),
            linear_bias=b,
            reduction=reduction,
            options=options,
            **kw,
        )
        return out.reshape(batch_shape) if reduction == "none" else out

    return fn


# Every reduction, bias and smoothing crossed; each reduction meets both layouts: tokens
# (37,) in chunks of 8, and (B, T) = (3, 7) in chunks of 8 tokens x 16 classes.
TORCH_CASES = [
    (red, bias, eps, ((37,), "tokens") if (bias + (eps > 0)) % 2 == 0 else ((3, 7), "vocab"))
    for red, bias, eps in itertools.product(["mean", "sum", "none"], [False, True], [0.0, 0.15])
]


@pytest.mark.parametrize("reduction,use_bias,smoothing,layout", TORCH_CASES)
def test_matches_torch_reference_path(reduction, use_bias, smoothing, layout):
    batch_shape, chunks = layout
    x, w, b, y = _data(batch_shape, seed=len(batch_shape))
    kw = dict(ignore_index=-100, label_smoothing=smoothing, reduction=reduction)

    @jax.jit
    def jax_fn(x, w, b, y):
        return jl.linear_cross_entropy(x, w, y, linear_bias=b, chunk_size=CHUNKS[chunks], **kw)

    args = (x, w, b if use_bias else None, y)
    diff = (0, 1, 2) if use_bias else (0, 1)
    assert_matches_torch(jax_fn, _torch_fn(batch_shape, **kw), args, diff)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_torch_chunked_path(reduction):
    x, w, b, y = _data((37,), seed=5)
    options = torch.nn.LinearCrossEntropyOptions()

    @jax.jit
    def jax_fn(x, w, b, y):
        return jl.linear_cross_entropy(
            x, w, y, linear_bias=b, reduction=reduction, ignore_index=-100
        )

    torch_fn = _torch_fn((37,), reduction, options, ignore_index=-100)
    assert_matches_torch(jax_fn, torch_fn, (x, w, b, y), (0, 1, 2))


def test_a_real_class_as_ignore_index():
    x, w, b, y = _data((37,), seed=6, ignore_index=3)
    assert (y == 3).sum() > 5

    @jax.jit
    def jax_fn(x, w, y):
        return jl.linear_cross_entropy(x, w, y, ignore_index=3, chunk_size=8)

    def torch_fn(x, w, y):
        return F.linear_cross_entropy(x, w, y, ignore_index=3)

    assert_matches_torch(jax_fn, torch_fn, (x, w, y), (0, 1))


# --------------------------------------------------------------------------------------
# z-loss, soft-capping and the log-sum-exp against plain JAX on the materialised logits


def _reference(x, w, b, y, *, smoothing, z_loss, cap, reduction, ignore_index=-100):
    z = x @ w.T + b
    if cap is not None:
        z = cap * jnp.tanh(z / cap)
    lse = stable.logsumexp(z, -1)
    kept = y != ignore_index
    per = jl.cross_entropy(z, y, label_smoothing=smoothing, reduction="none")
    per = per + z_loss * jnp.where(kept, lse**2, 0.0)
    if reduction == "none":
        return per, lse
    total = per.sum()
    return (total / kept.sum() if reduction == "mean" else total), lse


# (reduction, (smoothing, z_loss, cap), chunks): every option at once for each reduction,
# and each option alone once.
EXTRA_CASES = [
    ("mean", (0.1, 1e-3, 2.5), "tokens"),
    ("sum", (0.1, 1e-3, 2.5), "vocab"),
    ("none", (0.1, 1e-3, 2.5), "tokens"),
    ("mean", (0.0, 1e-2, None), "vocab"),
    ("none", (0.1, 0.0, 2.5), "vocab"),
]


@pytest.mark.parametrize("reduction,hyper,chunks", EXTRA_CASES)
def test_z_loss_and_softcap_match_plain_jax(reduction, hyper, chunks):
    smoothing, z_loss, cap = hyper
    x, w, b, y = _data((3, 7), seed=7)
    kw = dict(label_smoothing=smoothing, z_loss=z_loss, logit_softcap=cap, reduction=reduction)

    @jax.jit
    def fused(x, w, b):
        return jl.linear_cross_entropy(x, w, y, linear_bias=b, chunk_size=CHUNKS[chunks], **kw)

    @jax.jit
    def ref(x, w, b):
        return _reference(x, w, b, y, smoothing=smoothing, z_loss=z_loss, cap=cap,
                          reduction=reduction)[0]  # fmt: skip

    shape = () if reduction != "none" else y.shape
    cot = rng(8).uniform(0.5, 1.5, size=shape).astype(np.float32)
    got = jax_value_and_grads(fused, (x, w, b), (0, 1, 2), cot)
    want = jax_value_and_grads(ref, (x, w, b), (0, 1, 2), cot)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction,chunks", [("mean", "tokens"), ("none", "vocab")])
def test_linear_logsumexp_value_and_gradient_through_it(reduction, chunks):
    x, w, b, y = _data((3, 7), seed=9)
    kw = dict(label_smoothing=0.1, z_loss=1e-3, logit_softcap=3.0, reduction=reduction)

    def fused(x, w, b):
        loss = jl.linear_cross_entropy(x, w, y, linear_bias=b, chunk_size=CHUNKS[chunks], **kw)
        lse = jl.linear_logsumexp(x, w, linear_bias=b, logit_softcap=3.0,
                                  chunk_size=CHUNKS[chunks])  # fmt: skip
        return loss.sum() + 0.3 * jnp.sum(lse**2)

    def ref(x, w, b):
        loss, lse = _reference(x, w, b, y, smoothing=0.1, z_loss=1e-3, cap=3.0,
                               reduction=reduction)  # fmt: skip
        return loss.sum() + 0.3 * jnp.sum(lse**2)

    chex.assert_trees_all_close(
        jax.jit(jax.value_and_grad(fused, argnums=(0, 1, 2)))(x, w, b),
        jax.jit(jax.value_and_grad(ref, argnums=(0, 1, 2)))(x, w, b),
        rtol=1e-5,
        atol=1e-5,
    )
    lse = jl.linear_logsumexp(x, w, linear_bias=b, logit_softcap=3.0)
    chex.assert_shape(lse, y.shape)
    chex.assert_trees_all_close(lse, stable.logsumexp(3.0 * jnp.tanh((x @ w.T + b) / 3.0), -1),
                                rtol=1e-6)  # fmt: skip


def test_scalar_paths_agree_with_recompute_and_blocked_gradient(monkeypatch):
    """The gradient-in-forward kernel, the recompute kernel, blocked weight updates."""
    x, w, b, y = _data((37,), seed=10)
    kw = dict(linear_bias=b, weight=None, ignore_index=-100, label_smoothing=0.1, z_loss=1e-3,
              logit_softcap=4.0, reduction="mean", chunk_size=8, where=None)  # fmt: skip
    want = jax.jit(jax.value_and_grad(
        lambda x, w: _reference(x, w, b, y, smoothing=0.1, z_loss=1e-3, cap=4.0,
                                reduction="mean")[0], argnums=(0, 1)))(x, w)  # fmt: skip
    # weight rows in blocks of 12 < V, on any backend
    monkeypatch.setattr(chunked, "GRAD_BUDGET", {"cpu": 16 * 12, "accelerator": 16 * 12})
    for path in ("forward_gradients", "recompute"):

        def f(x, w, path=path):
            return _fused._linear_cross_entropy(x, w, y, path=path, **kw)

        got = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(x, w)
        chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "reduction,chunks", [("mean", "tokens"), ("sum", "vocab"), ("none", "tokens")]
)
def test_where_matches_cross_entropy_where(reduction, chunks):
    """optax's ``where``: a mask broadcast to the labels drops tokens like ignore_index."""
    x, w, b, y = _data((3, 7), seed=12)
    mask = np.arange(7) % 3 != 1  # broadcast over the leading axis
    kw = dict(ignore_index=-100, label_smoothing=0.1, reduction=reduction, where=mask)

    def fused(x, w, b):
        return jl.linear_cross_entropy(x, w, y, linear_bias=b, chunk_size=CHUNKS[chunks], **kw)

    def naive(x, w, b):
        return jl.cross_entropy(x @ w.T + b, y, **kw)

    def scalar(fn):
        return lambda *a: jnp.sum(fn(*a) * np.linspace(0.5, 1.5, fn(*a).size).reshape(
            fn(*a).shape))  # fmt: skip

    got = jax.jit(jax.value_and_grad(scalar(fused), argnums=(0, 1, 2)))(x, w, b)
    want = jax.jit(jax.value_and_grad(scalar(naive), argnums=(0, 1, 2)))(x, w, b)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
    # Masked tokens: no loss and no gradient.
    per_token = jl.linear_cross_entropy(x, w, y, linear_bias=b, reduction="none", where=mask)
    assert not np.any(np.asarray(per_token)[:, ~mask])
    assert not np.any(np.asarray(got[1][0])[:, ~mask])


# --------------------------------------------------------------------------------------
# Edge cases


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_all_tokens_ignored_is_zero_with_zero_gradient(reduction):
    x, w, b, _ = _data((9,), seed=11)
    y = np.full((9,), -100)
    value, grads = jax.jit(
        jax.value_and_grad(
            lambda x, w, b: jl.linear_cross_entropy(x, w, y, linear_bias=b, reduction=reduction),
            argnums=(0, 1, 2),
        )
    )(x, w, b)
    assert value == 0.0
    for g in grads:
        assert not np.any(g)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_out_of_range_label_is_nan_like_cross_entropy(reduction):
    x, w, b, y = _data((9,), seed=12, frac_ignored=0.0)
    y = y.copy()
    y[2] = V  # not ignore_index, not a class

    @jax.jit
    def fused(x, w):
        return jl.linear_cross_entropy(x, w, y, reduction=reduction, chunk_size=4)

    @jax.jit
    def naive(x, w):
        return jl.cross_entropy(x @ w.T, y, reduction=reduction)

    out = fused(x, w)
    assert np.isnan(out).any() and (reduction == "mean" or np.isfinite(np.delete(out, 2)).all())
    cot = jnp.ones_like(out)
    got = jax.jit(lambda x, w: jax.vjp(fused, x, w)[1](cot))(x, w)
    want = jax.jit(lambda x, w: jax.vjp(naive, x, w)[1](cot))(x, w)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)


def test_fewer_tokens_than_a_chunk_and_single_token():
    x, w, b, y = _data((3,), seed=13, frac_ignored=0.0)
    for xs, ys in ((x, y), (x[0], y[0])):
        got = jax.jit(jl.linear_cross_entropy, static_argnames=("chunk_size", "reduction"))(
            xs, w, ys, linear_bias=b, chunk_size=64, reduction="none"
        )
        chex.assert_trees_all_close(
            got, jl.cross_entropy(xs @ w.T + b, ys, reduction="none"), rtol=1e-6
        )


# --------------------------------------------------------------------------------------
# Dtypes, transformations, memory


def test_bfloat16_close_to_float32_and_keeps_dtypes():
    x, w, b, y = _data((64,), seed=14)

    def f(x, w, b):
        return jl.linear_cross_entropy(x, w, y, linear_bias=b, label_smoothing=0.1, chunk_size=16)

    vg = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))
    value32, grads32 = vg(x, w, b)
    args16 = [jnp.asarray(a, jnp.bfloat16) for a in (x, w, b)]
    value16, grads16 = vg(*args16)
    chex.assert_type([value16, *grads16], jnp.bfloat16)
    # The reference uses the same bf16-rounded inputs, so only the arithmetic differs.
    args_r = [a.astype(jnp.float32) for a in args16]
    value_r, grads_r = vg(*args_r)
    assert abs(float(value16) - float(value_r)) <= 1e-2 * abs(float(value_r))
    for g16, gr in zip(grads16, grads_r, strict=True):
        rel = jnp.linalg.norm(g16.astype(jnp.float32) - gr) / jnp.linalg.norm(gr)
        assert rel < 1e-2, rel
    assert abs(float(value16) - float(value32)) <= 2e-2 * abs(float(value32))


def test_jit_traces_once():
    x, w, b, y = _data((37,), seed=15)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(x, w, b, y):
        return jax.value_and_grad(jl.linear_cross_entropy, argnums=(0, 1))(
            x, w, y, linear_bias=b, label_smoothing=0.1, z_loss=1e-4
        )

    outs = [step(x * k, w, b, y) for k in (1.0, 2.0, 3.0)]
    naive = jax.jit(
        jax.value_and_grad(
            lambda x, w: (
                jl.cross_entropy(x @ w.T + b, y, label_smoothing=0.1)
                + 1e-4 * jnp.mean(stable.logsumexp(x @ w.T + b, -1)[y != -100] ** 2)
            ),
            argnums=(0, 1),
        )
    )
    chex.assert_trees_all_close(outs[-1], naive(x * 3.0, w), rtol=1e-5, atol=1e-5)
    chex.clear_trace_counter()


def test_vmap_over_a_leading_axis():
    x, w, b, y = _data((4, 21), seed=16)

    def loss(x, w, y):
        return jl.linear_cross_entropy(x, w, y, linear_bias=b, label_smoothing=0.1, chunk_size=8)

    vg = jax.value_and_grad(loss, argnums=(0, 1))
    got = jax.jit(jax.vmap(vg, in_axes=(0, None, 0)))(x, w, y)
    want = [jax.jit(vg)(x[i], w, y[i]) for i in range(4)]
    want = jax.tree.map(lambda *a: jnp.stack(a), *want)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)


def test_forward_mode_raises_a_clear_error_second_order_works():
    x, w, b, y = _data((6,), seed=17, frac_ignored=0.0)

    def fused(x):
        return jl.linear_cross_entropy(x, w, y, linear_bias=b)

    for transform in (lambda f: jax.jvp(f, (x,), (x,)), lambda f: jax.jacfwd(f)(x)):
        with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
            transform(fused)
    # The backward pass is plain JAX, so forward-over-reverse (jax.hessian) works.
    chex.assert_trees_all_close(
        jax.jit(jax.hessian(fused))(x),
        jax.jit(jax.hessian(lambda x: jl.cross_entropy(x @ w.T + b, y)))(x),
        rtol=1e-4, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_temp_memory_is_far_below_the_naive_path(reduction):
    n, h, v = 1024, 64, 8192
    x = jax.ShapeDtypeStruct((n, h), jnp.float32)
    w = jax.ShapeDtypeStruct((v, h), jnp.float32)
    y = jnp.zeros((n,), jnp.int32)

    def temp(loss):
        f = jax.value_and_grad(lambda x, w: loss(x, w).sum(), argnums=(0, 1))
        return jax.jit(f).lower(x, w).compile().memory_analysis().temp_size_in_bytes

    fused = temp(lambda x, w: jl.linear_cross_entropy(x, w, y, reduction=reduction))
    naive = temp(lambda x, w: jl.cross_entropy(x @ w.T, y, reduction=reduction))
    assert naive >= 2 * n * v * 4  # the logits and their gradient
    assert fused < naive / 8, (fused, naive)


def test_auto_chunk_size_rule():
    rule = chunked.auto_chunk_size
    assert rule(2048, 32768, "cpu") == 256  # N / 8
    assert rule(4096, 65536, "cpu") == 256  # 256 * 65536 = 2**24
    assert rule(1 << 20, 256, "cpu") == 1024  # at most 1024 on CPU
    assert rule(1 << 20, 1 << 21, "cpu") == 16  # at least 16
    assert rule(100, 512, "cpu") == 16
    assert rule(16384, 131072, "gpu") == 2048  # 2048 * 131072 = 2**28
    assert rule(1 << 20, 32000, "tpu") == 8192  # at most 8192 elsewhere
    assert rule(2048, 32768) == rule(2048, 32768, jax.default_backend())


# --------------------------------------------------------------------------------------
# Argument validation


X, W, Y = jnp.zeros((4, 3)), jnp.zeros((5, 3)), jnp.zeros((4,), jnp.int32)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(input=jnp.zeros((4, 2))), ValueError, r"input.shape\[-1\] must equal linear_weight"),
        (
            dict(linear_weight=jnp.zeros((5,))),
            ValueError,
            r"linear_weight must have shape \(C, H\)",
        ),
        (dict(target=jnp.zeros((3,), jnp.int32)), ValueError, r"= \(4,\), got target.shape"),
        (dict(target=jnp.zeros((4,))), ValueError, "a floating target holds class probabilities"),
        (dict(input=jnp.zeros((4, 3), jnp.int32)), TypeError, "input must have a floating"),
        (dict(linear_bias=jnp.zeros((4,))), ValueError, r"linear_bias must have shape \(5,\)"),
        (dict(reduction="avg"), ValueError, "reduction must be one of"),
        (dict(label_smoothing=1.5), ValueError, r"label_smoothing must be in \[0.0, 1.0\]"),
        (dict(z_loss=-1e-4), ValueError, r"z_loss must be in \[0.0, inf\)"),
        (dict(logit_softcap=0.0), ValueError, r"logit_softcap must be in \(0.0, inf\)"),
        (dict(chunk_size=0), ValueError, "chunk_size must be a positive int"),
        (dict(chunk_size=2.5), TypeError, "chunk_size must be a Python int"),
        (dict(chunk_size=(4, 0)), ValueError, r"chunk_size\[1\] must be a positive int"),
        (dict(chunk_size=(1, 2, 3)), ValueError, r"chunk_size must be None, an int or a"),
        (dict(ignore_index=1.5), TypeError, "ignore_index must be a Python int"),
    ],
)
def test_bad_arguments_raise_at_trace_time(kwargs, error, match):
    args = dict(input=X, linear_weight=W, target=Y) | kwargs
    with pytest.raises(error, match=match):
        jax.eval_shape(lambda: jl.linear_cross_entropy(**args))
