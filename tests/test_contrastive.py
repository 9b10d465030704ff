"""Contrastive losses (CLIP, SigLIP, InfoNCE, SupCon) against their reference implementations.

PyTorch transcriptions of open_clip's ``ClipLoss`` and ``SigLipLoss``, info-nce-pytorch and
SupContrast live in ``tests/oracle.py``; optax's ``ntxent`` checks the shared label kernel.
Every case runs the chunked kernels with several chunks and a padded last chunk
(``chunk_size=4`` on 10 items), values and vector-Jacobian products of the features and of
the learned scalars.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx
from oracle import (
    torch_clip_loss,
    torch_info_nce,
    torch_siglip_loss,
    torch_supcon,
    torch_value_and_grads,
)

import jaxlosses as jl
from jaxlosses import linen
from jaxlosses._contrastive import pair_contrastive

N, D, CHUNK = 10, 6, 4


def _data(seed, n=N, d=D):
    r = np.random.default_rng(seed)
    a = r.standard_normal((n, d)).astype(np.float32)
    b = (a + r.standard_normal((n, d))).astype(np.float32)
    where = r.uniform(size=n) < 0.7
    where[:2] = True
    return a, b, where


def _scalar(x):
    return np.asarray(x, np.float32)


def _assert_cases_match_torch(cases, args, diff, rtol=2e-5, atol=1e-5):
    """Every case's value and vector-Jacobian product (w.r.t. ``args[i]`` for i in ``diff``)
    equals PyTorch's. ``cases``: name -> (jax_fn, torch_fn) of ``*args``; the JAX side of
    all cases is one compiled program."""
    want, cots = {}, {}
    for name, (_, torch_fn) in cases.items():
        shape = np.shape(torch_value_and_grads(torch_fn, args, diff)[0])
        cots[name] = np.random.default_rng(len(name)).uniform(0.5, 1.5, shape).astype(np.float32)
        want[name] = torch_value_and_grads(torch_fn, args, diff, cots[name])

    @jax.jit
    def run(*args):
        out = {}
        for name, (jax_fn, _) in cases.items():

            def f(*d, jax_fn=jax_fn):
                full = list(args)
                for i, v in zip(diff, d, strict=True):
                    full[i] = v
                return jax_fn(*full)

            value, vjp = jax.vjp(f, *[args[i] for i in diff])
            out[name] = (value, vjp(jnp.asarray(cots[name])))
        return out

    got = run(*[None if a is None else jnp.asarray(a) for a in args])
    for name, (value, grads) in got.items():
        want_value, want_grads = want[name]
        np.testing.assert_allclose(value, want_value, rtol=rtol, atol=atol, err_msg=name)
        for i, g, w in zip(diff, grads, want_grads, strict=True):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{name} arg {i}")


def test_clip_loss_matches_open_clip():
    a, b, where = _data(0)
    cases = {
        f"{eps}-{masked}-{red}-{chunk}": (
            lambda a, b, s, eps=eps, w=where if masked else None, red=red, chunk=chunk: (
                jl.clip_loss(a, b, s, label_smoothing=eps, where=w, reduction=red, chunk_size=chunk)
            ),
            lambda a, b, s, eps=eps, w=where if masked else None, red=red: torch_clip_loss(
                a, b, s, eps, w, red
            ),
        )
        for eps, masked, red, chunk in [
            (0.0, False, "mean", CHUNK),
            (0.1, True, "none", CHUNK),
            (0.2, False, "sum", None),
        ]
    }
    _assert_cases_match_torch(cases, [a, b, _scalar(2.5)], diff=(0, 1, 2))


def test_siglip_loss_matches_open_clip():
    a, b, where = _data(1)
    cases = {
        f"{masked}-{red}": (
            lambda a, b, s, c, w=where if masked else None, red=red: jl.siglip_loss(
                a, b, s, c, where=w, reduction=red, chunk_size=CHUNK
            ),
            lambda a, b, s, c, w=where if masked else None, red=red: torch_siglip_loss(
                a, b, s, c, w, red
            ),
        )
        for masked, red in [(False, "mean"), (True, "none"), (True, "sum")]
    }
    _assert_cases_match_torch(cases, [a, b, _scalar(3.0), _scalar(-2.0)], diff=(0, 1, 2, 3))


def test_info_nce_matches_info_nce_pytorch():
    q, k, where = _data(2)
    r = np.random.default_rng(3)
    shared = r.standard_normal((7, D)).astype(np.float32)
    own = r.standard_normal((N, 5, D)).astype(np.float32)
    cases = {}
    for negatives, masked, red in [
        (None, False, "mean"),
        (None, True, "none"),
        ("shared", False, "none"),
        ("own", True, "mean"),
    ]:
        w = where if masked else None
        pick = {"shared": 2, "own": 3}.get(negatives)  # which argument holds the negatives
        cases[f"{negatives}-{masked}-{red}"] = (
            lambda q, k, s, o, w=w, red=red, pick=pick: jl.info_nce(
                q, k, None if pick is None else (s, o)[pick - 2], temperature=0.3, where=w,
                reduction=red, chunk_size=CHUNK,
            ),
            # + 0 * the unused negatives: a (zero) gradient for every argument
            lambda q, k, s, o, w=w, red=red, pick=pick: torch_info_nce(
                q, k, None if pick is None else (s, o)[pick - 2], 0.3, w, red
            ) + 0 * (s.sum() + o.sum()),
        )  # fmt: skip
    _assert_cases_match_torch(cases, [q, k, shared, own], diff=(0, 1, 2, 3))


def test_supervised_contrastive_loss_matches_supcontrast():
    f, _, where = _data(4)
    labels = np.array([0, 1, 0, 2, 1, 0, 3, 2, 1, 0])  # class 3: an anchor without positives
    cases = {
        f"{masked}-{red}": (
            lambda f, w=where if masked else None, red=red: jl.supervised_contrastive_loss(
                f, labels, temperature=0.5, where=w, reduction=red, chunk_size=CHUNK
            ),
            lambda f, w=where if masked else None, red=red: torch_supcon(f, labels, 0.5, w, red),
        )
        for masked, red in [(False, "mean"), (True, "none")]
    }
    _assert_cases_match_torch(cases, [f], diff=(0,))


def test_the_label_kernel_is_optax_ntxent():
    f, _, _ = _data(5)
    labels = jnp.array([0, 1, 0, 2, 1, 0, 3, 2, 1, 0])

    def ours(f):
        return pair_contrastive(
            f, labels, temperature=0.07, denominator="negatives", average="pairs", chunk_size=CHUNK
        )

    def both(f):
        optax_ntxent = jax.value_and_grad(lambda f: optax.losses.ntxent(f, labels, 0.07))
        return jax.value_and_grad(ours)(f), optax_ntxent(f)

    got, want = jax.jit(both)(f)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)


def test_where_is_the_kept_sub_batch_and_chunking_changes_nothing():
    a, b, where = _data(6, n=13)
    labels = jnp.arange(13) % 3

    @jax.jit
    def run(a, b):
        out = {}
        for chunk in (1, 5, None):
            out[f"siglip{chunk}"] = jl.siglip_loss(a, b, 2.0, -1.0, where=where, chunk_size=chunk)
            out[f"supcon{chunk}"] = jl.supervised_contrastive_loss(
                a, labels, where=where, chunk_size=chunk
            )
        out["siglip_sub"] = jl.siglip_loss(a[where], b[where], 2.0, -1.0)
        out["supcon_sub"] = jl.supervised_contrastive_loss(a[where], labels[where])
        return out

    out = run(a, b)
    for chunk in (1, 5, None):
        np.testing.assert_allclose(out[f"siglip{chunk}"], out["siglip_sub"], rtol=1e-5)
        np.testing.assert_allclose(out[f"supcon{chunk}"], out["supcon_sub"], rtol=1e-5)


# --------------------------------------------------------------------------------------
# Numerics


@jax.jit
def _values_and_grads(a, b, scale):
    labels = jnp.arange(a.shape[0]) % 2
    fns = {
        "clip": lambda a, b: jl.clip_loss(a, b, scale, label_smoothing=0.1),
        "siglip": lambda a, b: jl.siglip_loss(a, b, scale, -10.0),
        "info_nce": lambda a, b: jl.info_nce(a, b),
        "info_nce_shared": lambda a, b: jl.info_nce(a, b, b[:3]),
        "supcon": lambda a, b: jl.supervised_contrastive_loss(a, labels),
    }
    return {k: jax.value_and_grad(f, argnums=(0, 1))(a, b) for k, f in fns.items()}


def _assert_finite(results, case):
    for loss, (value, grads) in results.items():
        assert np.isfinite(value), (case, loss, value)
        for g in grads:
            assert np.all(np.isfinite(g)), (case, loss, g)


def test_finite_on_duplicates_zero_vectors_huge_features_and_a_batch_of_one():
    r = np.random.default_rng(7)
    a = r.standard_normal((6, 4)).astype(np.float32)
    dup = np.repeat(a[:1], 6, axis=0)  # identical rows: ties everywhere
    zero = a.copy()
    zero[2] = 0.0  # a zero vector where the losses normalise
    huge = a * 1e30  # squares overflow float32
    for case, (x, y) in {"duplicates": (dup, dup), "zero": (zero, zero[::-1])}.items():
        _assert_finite(_values_and_grads(x, y, 10.0), case)
    # The normalised losses are scale-free, also where the squares overflow.
    plain, scaled = _values_and_grads(a, a, 10.0), _values_and_grads(huge, huge, 10.0)
    for loss in ("info_nce", "info_nce_shared", "supcon"):
        np.testing.assert_allclose(scaled[loss][0], plain[loss][0], rtol=1e-5, err_msg=loss)
        assert np.all(np.isfinite(scaled[loss][1][0])), loss
    # A batch of one: CLIP's only candidate is the positive, SigLIP's loss its one pair's,
    # InfoNCE's and SupCon's 0 (no negative, no positive).
    one = _values_and_grads(a[:1], a[:1], 10.0)
    _assert_finite(one, "one")
    d = 10.0 * np.dot(a[0], a[0]) - 10.0
    np.testing.assert_allclose(one["siglip"][0], np.logaddexp(0, -d), rtol=1e-6)
    assert float(one["clip"][0]) == float(one["info_nce"][0]) == float(one["supcon"][0]) == 0


def test_bf16_features_with_scale_100_accumulate_in_float32():
    r = np.random.default_rng(8)
    a = r.standard_normal((16, 32)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = a + 0.1 * r.standard_normal(a.shape).astype(np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    a16, b16 = jnp.asarray(a, jnp.bfloat16), jnp.asarray(b, jnp.bfloat16)

    @jax.jit
    def run(a16, b16):
        a32, b32 = a16.astype(jnp.float32), b16.astype(jnp.float32)
        out = {}
        for name, fn in {
            "clip": lambda a, b: jl.clip_loss(a, b, 100.0),
            "siglip": lambda a, b: jl.siglip_loss(a, b, 100.0, -10.0),
        }.items():
            out[name] = (jax.value_and_grad(fn)(a16, b16), fn(a32, b32))
        return out

    for name, ((got, grad), want) in run(a16, b16).items():
        assert got.dtype == grad.dtype == jnp.bfloat16, name
        # float32 accumulation: bf16's 8 bits of the features, not of the sums
        np.testing.assert_allclose(np.float32(got), want, rtol=1e-2, atol=1e-4, err_msg=name)
        assert np.all(np.isfinite(np.float32(grad))), name


def test_second_derivatives_and_forward_mode():
    a, b, _ = _data(9)

    def naive_clip(s):
        x = s * a @ b.T
        ce = optax.softmax_cross_entropy_with_integer_labels
        return (ce(x, jnp.arange(N)).mean() + ce(x.T, jnp.arange(N)).mean()) / 2

    hess = jax.jit(jax.hessian(lambda s: jl.clip_loss(a, b, s, chunk_size=CHUNK)))(2.0)
    np.testing.assert_allclose(hess, jax.jit(jax.hessian(naive_clip))(2.0), rtol=1e-3)
    # Reverse over reverse through the chunked custom VJP, with respect to the features.
    x, y = a[:3, :2], b[:3, :2]

    def naive_siglip(x):
        logits = 2.0 * x @ y.T - 1.0
        return -jnp.sum(jax.nn.log_sigmoid((2 * jnp.eye(3) - 1) * logits)) / 3

    h = jax.jit(jax.hessian(lambda x: jl.siglip_loss(x, y, 2.0, -1.0, chunk_size=2)))(x)
    np.testing.assert_allclose(h, jax.hessian(naive_siglip)(x), rtol=1e-4, atol=1e-6)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda s: jl.clip_loss(a, b, s), (2.0,), (1.0,))


def test_compiles_once_for_new_scales_and_temperatures():
    a, b, _ = _data(10)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(a, b, s, c):
        return jax.grad(lambda a: jl.siglip_loss(a, b, s, c) + jl.clip_loss(a, b, s))(a)

    chex.clear_trace_counter()
    for s in (1.0, 5.0, 50.0):
        step(a, b, s, -s)


def test_memory_is_chunks_not_the_b_by_b_logits():
    b_items, d = 1024, 16
    x = jnp.zeros((b_items, d))

    def temp(fn, *args):
        compiled = jax.jit(jax.grad(fn, argnums=(0, 1))).lower(*args).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    def naive(a, b):
        logits = 10.0 * a @ b.T
        labels = jnp.arange(b_items)
        ce = optax.softmax_cross_entropy_with_integer_labels
        return ce(logits, labels).mean() + ce(logits.T, labels).mean()

    logits_bytes = 4 * b_items * b_items
    assert temp(naive, x, x) >= 2 * logits_bytes  # the logits and their gradient
    for fn in (
        lambda a, b: jl.clip_loss(a, b, 10.0),
        lambda a, b: jl.siglip_loss(a, b, 10.0, -10.0),
    ):
        assert temp(fn, x, x) <= logits_bytes / 2  # the naive path: >= 2x


# --------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda a: jl.clip_loss(a, a[:, :3], 1.0), ValueError, r"text_features.shape=\(4, 3\)"),
        (lambda a: jl.clip_loss(a, a, jnp.ones(2)), ValueError, "logit_scale must be a scalar"),
        (lambda a: jl.siglip_loss(a, a, 1.0, jnp.ones(2)), ValueError, "logit_bias must be"),
        (lambda a: jl.siglip_loss(a[0], a[0], 1.0, 0.0), ValueError, "image_features must be"),
        (lambda a: jl.info_nce(a[0], a[0]), ValueError, "in-batch negatives need a batch"),
        (lambda a: jl.info_nce(a, a, a[:, :2]), ValueError, r"negative_keys.shape=\(4, 2\)"),
        (lambda a: jl.info_nce(a, a, temperature=0.0), ValueError, "temperature"),
        (lambda a: jl.supervised_contrastive_loss(a, a[:, 0]), TypeError, "labels must hold"),
        (lambda a: jl.supervised_contrastive_loss(a, jnp.zeros(3, int)), ValueError, "labels"),
        (lambda a: jl.clip_loss(a, a, 1.0, where=jnp.ones(3, bool)), ValueError, "where"),
        (lambda a: jl.clip_loss(a, a, 1.0, chunk_size=0), ValueError, "chunk_size"),
    ],
)
def test_bad_input_is_a_trace_time_error_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        jax.eval_shape(call, jnp.zeros((4, 5)))


# --------------------------------------------------------------------------------------
# Flax modules with learned scales


def test_nnx_modules_learn_the_scale_and_bias_from_papers_initial_values():
    a, b, where = _data(11)
    clip, siglip = jl.nnx.ClipLoss(label_smoothing=0.1), jl.nnx.SiglipLoss(init_logit_bias=-5.0)
    np.testing.assert_allclose(np.exp(clip.logit_scale[...]), 1 / 0.07, rtol=1e-6)
    np.testing.assert_allclose(np.exp(siglip.logit_scale[...]), 10.0, rtol=1e-6)
    assert float(siglip.logit_bias[...]) == -5.0
    chex.assert_trees_all_close(
        clip(a, b, where=where),
        jl.clip_loss(a, b, 1 / 0.07, label_smoothing=0.1, where=where),
        rtol=1e-5,
    )
    chex.assert_trees_all_close(siglip(a, b), jl.siglip_loss(a, b, 10.0, -5.0), rtol=1e-5)
    # Only the learned inputs are parameters; an optimizer step moves them.
    for module in (clip, siglip):
        before = jax.tree.map(jnp.copy, nnx.state(module, nnx.Param))
        optimizer = nnx.Optimizer(module, optax.sgd(0.1), wrt=nnx.Param)
        grads = nnx.grad(lambda m: m(a, b))(module)
        optimizer.update(module, grads)
        after = nnx.state(module, nnx.Param)
        assert jax.tree.all(jax.tree.map(lambda x, y: bool(x != y), before, after))


def test_linen_modules_keep_the_learned_inputs_in_params():
    a, b, _ = _data(12)
    loss = linen.SiglipLoss(init_logit_scale=np.log(5.0), reduction="sum")
    variables = loss.init(jax.random.key(0), a, b)
    assert jax.tree.map(jnp.shape, variables) == {"params": {"logit_bias": (), "logit_scale": ()}}
    chex.assert_trees_all_close(
        loss.apply(variables, a, b), jl.siglip_loss(a, b, 5.0, -10.0, reduction="sum"), rtol=1e-5
    )
    grads = jax.grad(lambda v: loss.apply(v, a, b))(variables)
    assert set(grads["params"]) == {"logit_bias", "logit_scale"}
    clip = linen.ClipLoss()
    v = clip.init(jax.random.key(0), a, b)
    chex.assert_trees_all_close(clip.apply(v, a, b), jl.clip_loss(a, b, 1 / 0.07), rtol=1e-5)


def test_torch_oracle_is_the_reference_formula():
    # The oracle's CLIP equals open_clip's documented example: logits of matched pairs
    # on the diagonal; a perfect large-scale match has a loss near 0.
    eye = torch.eye(4)
    assert float(torch_clip_loss(eye, eye, 100.0)) < 1e-30
    assert (
        abs(float(torch_siglip_loss(eye, eye, 1.0, 0.0)) - (np.log1p(np.exp(-1)) + 3 * np.log(2)))
        < 1e-6
    )
