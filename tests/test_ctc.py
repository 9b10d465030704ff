"""CTC: ctc_loss against PyTorch and CTC's definition, optax_compat against optax, decoders.

Values and vector-Jacobian products against ``torch.nn.functional.ctc_loss`` through a
``log_softmax``; the true derivative with respect to ``log_probs`` against PyTorch's
``exp(log_probs) - posterior`` minus ``exp(log_probs)``; small problems against the
enumeration of every path (``oracle.ctc_labelling_probs``); the numerics list of the
issue; the decoders against the enumeration and a NumPy collapse.

Compiling the recursions dominates the time, so almost every test uses the shape
``(T, N, C, S) = (12, 8, 6, 4)`` and the programs below, compiled once (the reductions
share one recursion, which XLA compiles once), and varies only the data.
"""

import functools

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from jax.experimental import checkify
from oracle import ctc_labelling_probs, ctc_naive, rng

import jaxlosses as jl
from jaxlosses import optax_compat

T, N, C, S = 12, 8, 6, 4
REDUCTIONS = ("none", "mean", "sum")
TOL = dict(rtol=1e-5, atol=1e-5)


def batch(seed, *, impossible=False):
    """Logits (T, N, C) and padded targets: repeats, an empty target, T = the minimum."""
    r = rng(seed)
    x = (r.standard_normal((T, N, C)) * 2).astype(np.float32)
    targets = r.integers(1, C, size=(N, S)).astype(np.int64)
    targets[0] = [2, 2, 3, 3]  # repeats need a blank between them: 6 frames at least
    targets[1] = [4, 4, 4, 4]
    il = np.array([12, 3, 12, 9, 7, 12, 1, 0])  # sequence 1: "4 4" in exactly 3 frames
    tl = np.array([4, 2, 0, 3, 4, 1, 1, 0])
    if impossible:
        il[4], il[6] = 3, 0  # 4 labels in 3 frames; 1 label in no frame
    return x, targets, il, tl


def log_softmax(x):
    """NumPy's log-softmax over the last axis (test data; no JAX program to compile)."""
    x = np.asarray(x)
    x = x if x.dtype == np.float64 else x.astype(np.float32)
    shifted = x - x.max(-1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))).astype(x.dtype)


def to_torch(*arrays):
    return [torch.from_numpy(np.array(a)) for a in arrays]


def torch_results(x, targets, il, tl, cot, *, zero_infinity=False, log_softmax=True):
    """PyTorch's loss and its vjp with ``cot`` (scalars: ``cot[0]``), for each reduction."""
    out = {}
    for reduction in REDUCTIONS:
        xt, *rest = to_torch(x, targets, il, tl)
        xt.requires_grad_(True)
        lp = xt.log_softmax(-1) if log_softmax else xt
        loss = F.ctc_loss(lp, *rest, reduction=reduction, zero_infinity=zero_infinity)
        weight = torch.from_numpy(cot if loss.ndim else cot[:1].reshape(()))
        (loss * weight).sum().backward()
        out[reduction] = (loss.detach().numpy(), xt.grad.numpy())
    return out


@functools.cache
def program():
    """One jitted program: ctc_loss of ``log_softmax(x)``, values and vjps, every option.

    ``{(zero_infinity, masked, reduction): (loss, vjp)}`` with the vjp with respect to the
    logits ``x``, and for ``reduction="log_probs"`` the unreduced loss and its vjp with
    respect to the log-probabilities, which are returned too. The sixteen
    variants share two recursions (with and without ``where``); XLA compiles each once.
    """

    def run(x, targets, il, tl, cot, where):
        lp = jl.log_softmax(x)
        out = {}
        for zero_infinity in (False, True):
            for masked in (False, True):
                kw = dict(zero_infinity=zero_infinity, where=where if masked else None)
                for reduction in REDUCTIONS:

                    def f(a, reduction=reduction, kw=kw):
                        return jl.ctc_loss(
                            jl.log_softmax(a), targets, il, tl, reduction=reduction, **kw
                        )

                    loss, vjp = jax.vjp(f, x)
                    out[zero_infinity, masked, reduction] = (
                        loss,
                        vjp(cot if loss.ndim else cot[0])[0],
                    )
                f = lambda p, kw=kw: jl.ctc_loss(p, targets, il, tl, reduction="none", **kw)  # noqa: E731
                loss, vjp = jax.vjp(f, lp)
                out[zero_infinity, masked, "log_probs"] = (loss, vjp(cot)[0])
        return out, lp

    return jax.jit(run)


def results(x, targets, il, tl, cot=None, *, zero_infinity=False, where=None):
    """``{reduction: (loss, vjp)}`` and ``"log_probs"`` (see :func:`program`), as NumPy."""
    cot = np.linspace(0.5, 1.5, N, dtype=np.float32) if cot is None else cot
    mask = np.ones(N, bool) if where is None else where
    out, lp = jax.tree.map(np.asarray, program()(x, targets, il, tl, cot, mask))
    got = {k[2]: v for k, v in out.items() if k[:2] == (zero_infinity, where is not None)}
    return got, lp


# --------------------------------------------------------------------------------------
# ctc_loss against PyTorch


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_matches_torch_through_log_softmax(zero_infinity):
    # Impossible alignments only with zero_infinity: without it PyTorch's gradient is nan
    # (ours 0, tested below).
    args = batch(0, impossible=zero_infinity)
    cot = rng(1).uniform(0.5, 1.5, size=N).astype(np.float32)
    got, _ = results(*args, cot, zero_infinity=zero_infinity)
    want = torch_results(*args, cot, zero_infinity=zero_infinity)
    chex.assert_trees_all_close({r: got[r] for r in REDUCTIONS}, want, **TOL)
    assert np.all(got["none"][0] >= 0)


def test_log_probs_gradient_is_minus_the_posterior():
    # PyTorch's backward with respect to log_probs is exp(log_probs) - posterior; ours is
    # the true derivative, -posterior (times each sequence's cotangent).
    x, targets, il, tl = batch(2)
    cot = rng(3).uniform(0.5, 1.5, size=N).astype(np.float32)
    got, lp = results(x, targets, il, tl, cot)
    got = got["log_probs"]
    t_loss, t_grad = torch_results(lp, targets, il, tl, cot, log_softmax=False)["none"]
    frames = (np.arange(T)[:, None] < il[None, :])[..., None]
    chex.assert_trees_all_close(got, (t_loss, t_grad - frames * np.exp(lp) * cot[:, None]), **TOL)
    # A posterior sums to 1 over the classes of each kept frame.
    np.testing.assert_allclose(-got[1].sum(-1), frames[..., 0] * cot, rtol=1e-5)


@given(
    st.integers(0, 2**16),
    st.lists(st.integers(0, T), min_size=N, max_size=N),
    st.lists(st.integers(0, S), min_size=N, max_size=N),
    st.sampled_from([0.1, 1.0, 5.0, 30.0]),
    st.booleans(),
)
def test_property_matches_torch_and_is_never_negative(seed, il, tl, scale, repeats):
    # Random lengths (some alignments impossible: zero_infinity), scales from uniform to
    # confident, labels with many repeats or few.
    r = np.random.default_rng(seed)
    x = (r.standard_normal((T, N, C)) * scale).astype(np.float32)
    targets = r.integers(1, 3 if repeats else C, size=(N, S))
    args = (x, targets, np.array(il), np.array(tl))
    got, _ = results(*args, zero_infinity=True)
    want = torch_results(*args, np.linspace(0.5, 1.5, N, dtype=np.float32), zero_infinity=True)
    chex.assert_trees_all_close({r: got[r] for r in REDUCTIONS}, want, rtol=1e-4, atol=1e-4)
    assert np.all(got["none"][0] >= 0)


@functools.cache
def layouts():
    """ctc_loss of one batch in every layout, in one compiled program."""
    x, targets, il, tl = batch(4)
    lp = log_softmax(x)
    flat = np.concatenate([targets[n, : tl[n]] for n in range(N)])

    def run(il_traced, tl_traced):
        return {
            "time-major": jl.ctc_loss(lp, targets, il, tl, reduction="none"),
            "batch_first": jl.ctc_loss(
                np.swapaxes(lp, 0, 1), targets, il, tl, reduction="none", batch_first=True
            ),
            "lists": jl.ctc_loss(lp, targets, list(il), [int(v) for v in tl], reduction="none"),
            "concatenated": jl.ctc_loss(lp, flat, il, tl, reduction="none"),
            "concatenated, traced lengths": jl.ctc_loss(
                lp, flat, il_traced, tl_traced, reduction="none"
            ),
            "unbatched": jnp.stack(
                [jl.ctc_loss(lp[:, n], targets[n], il[n], tl[n], reduction="mean") for n in (0, 2)]
            ),
        }

    return lp, targets, il, tl, jax.jit(run)(il, tl)


def test_layouts_match_torch():
    # batch_first, concatenated 1-D targets (lengths known and traced), lengths as Python
    # lists, unbatched: each equals PyTorch's.
    lp, targets, il, tl, got = layouts()
    want = F.ctc_loss(*to_torch(lp, targets, il, tl), reduction="none").numpy()
    unbatched = got.pop("unbatched")
    for name, value in got.items():
        np.testing.assert_allclose(value, want, rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(unbatched, want[[0, 2]] / np.maximum(tl[[0, 2]], 1), rtol=1e-6)


def test_matches_the_definition():
    # -log of the summed probability of every path that collapses to the target
    # (sequences of at most 5 frames, 6 ** 5 paths each).
    x, targets, _, _ = batch(5)
    il = np.array([5, 5, 4, 5, 3, 2, 5, 1])
    tl = np.array([2, 2, 0, 3, 1, 2, 4, 1])
    targets[2, 0] = targets[2, 1] = targets[4, 0]  # repeats again
    got, lp = results(x, targets, il, tl, zero_infinity=True)
    got, lp = got["none"][0], lp.astype(np.float64)
    for n in range(N):
        probs = ctc_labelling_probs(lp[: il[n], n])
        p = probs.get(tuple(targets[n, : tl[n]]), 0.0)
        np.testing.assert_allclose(got[n], -np.log(p) if p > 0 else 0.0, rtol=1e-5)


# --------------------------------------------------------------------------------------
# numerics


def test_impossible_alignments_are_inf_with_zero_gradient():
    args = batch(6, impossible=True)
    got, _ = results(*args)
    impossible = np.isin(np.arange(N), [4, 6])
    assert np.all(np.isinf(got["none"][0]) == impossible)
    assert got["sum"][0] == np.inf and got["mean"][0] == np.inf
    for _, grad in got.values():
        assert np.all(np.isfinite(grad)) and np.all(grad[:, impossible] == 0)


def test_neg_inf_entries_and_the_naive_recursion():
    # Masked classes (-inf log-probabilities) on paths and off them: finite values and
    # gradients equal to PyTorch's. Autodiff through the textbook recursion has nan
    # (logaddexp of two unreachable states); the posterior rule has not.
    x, targets, il, tl = batch(7)
    lp = log_softmax(x)
    lp[:5, 0, 5] = -np.inf  # a class that sequence 0 never needs
    lp[3, 3, :] = np.where(np.arange(C) == 0, 0.0, -np.inf)  # a certain blank
    lp[7, 2, 0] = -np.inf  # sequence 2 (empty target, 12 frames) is now impossible
    cot = np.linspace(0.5, 1.5, N, dtype=np.float32)
    got, lp = results(lp, targets, il, tl, cot)  # log_softmax of log-probabilities
    loss, grad = got["log_probs"]
    t_loss, t_grad = torch_results(lp, targets, il, tl, cot, log_softmax=False)["none"]
    frames = (np.arange(T)[:, None] < il[None, :])[..., None]
    want = np.where(frames & (lp > -np.inf), t_grad - np.exp(lp) * cot[:, None], 0.0)
    assert np.isinf(loss[2]) and np.isfinite(np.delete(loss, 2)).all()
    keep = np.arange(N) != 2
    chex.assert_trees_all_close(loss[keep], t_loss[keep], **TOL)
    assert np.all(np.isfinite(grad)) and np.all(grad[:, 2] == 0)
    chex.assert_trees_all_close(grad[:, keep], want[:, keep], **TOL)
    naive_grad = jax.jit(jax.grad(lambda a: jnp.sum(ctc_naive(a, targets, il, tl)[keep])))(lp)
    assert np.isnan(naive_grad).any()
    finite = np.isfinite(naive_grad) & keep[None, :, None]
    ours = grad / cot[None, :, None]
    chex.assert_trees_all_close(naive_grad[finite], ours[finite], **TOL)


def test_confident_alignments_are_never_negative():
    # optax #1771: float32 rounding takes optax's loss below 0 for a certain alignment.
    # Ours and optax_compat's stay >= 0 and equal the float64 loss of the same inputs.
    path = np.zeros(50, int)
    path[5:15], path[20:30], path[35:45] = 1, 2, 3
    scales = np.array([10.0, 17.0, 20.0, 25.0, 40.0, 1e4], np.float32)
    logits = np.eye(5, dtype=np.float32)[path][None] * scales[:, None, None]  # (B, T, C)
    labels = np.tile([1, 2, 3], (6, 1))
    paddings = np.zeros((6, 50), np.float32), np.zeros((6, 3), np.float32)

    def run(xb):
        lp = jl.log_softmax(jnp.swapaxes(xb, 0, 1))
        return {
            "ours": jl.ctc_loss(lp, labels, [50] * 6, [3] * 6, reduction="none"),
            "compat": optax_compat.ctc_loss(xb, paddings[0], labels, paddings[1]),
            "optax": optax.ctc_loss(xb, paddings[0], labels, paddings[1]),
            "log_probs": lp,
        }

    got = jax.jit(run)(logits)
    assert np.any(got["optax"] < 0)
    lengths = torch.full((6,), 50), torch.full((6,), 3)
    lp, targets = to_torch(got["log_probs"], labels)
    float32 = F.ctc_loss(lp, targets, *lengths, reduction="none").numpy()
    float64 = F.ctc_loss(lp.double(), targets, *lengths, reduction="none").numpy()
    for name in ("ours", "compat"):
        assert np.all(got[name] >= 0), name
        np.testing.assert_allclose(got[name], np.maximum(float32, 0), rtol=1e-5, err_msg=name)
        # float32 log-space rounding near 0 (PyTorch's float32 has the same)
        np.testing.assert_allclose(got[name], np.maximum(float64, 0), atol=1e-6, err_msg=name)


def test_long_inputs_are_finite():
    # T = 2000 frames, S = 200 labels (repeats included), uniform and confident
    # predictions along a valid alignment; against PyTorch in float64.
    r = rng(8)
    t_len, s_len, c = 2000, 200, 20
    targets = r.integers(1, 4, size=(2, s_len))
    path = np.zeros((t_len, 2), int)
    ends = np.linspace(0, t_len, s_len + 1).astype(int)
    for k in range(s_len):
        path[ends[k] + 2 : ends[k + 1] - 2] = targets[:, k]
    scale = np.array([0.0, 30.0])[None, :, None]  # sequence 0 uniform, 1 confident
    logits = (np.eye(c)[path] * scale + r.standard_normal((t_len, 2, c))).astype(np.float32)
    f = jax.jit(jax.value_and_grad(lambda a: jl.ctc_loss(jl.log_softmax(a), targets, il, tl)))
    il, tl = np.full(2, t_len), np.full(2, s_len)
    loss, grad = f(logits)
    assert np.isfinite(loss) and loss >= 0 and np.all(np.isfinite(grad))
    xt = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    want = F.ctc_loss(xt.log_softmax(-1), *to_torch(targets, il, tl))
    want.backward()
    np.testing.assert_allclose(loss, want.item(), rtol=2e-5)
    np.testing.assert_allclose(grad, xt.grad.numpy(), atol=5e-5)


def test_16_bit_inputs_are_computed_in_float32():
    x, targets, il, tl = batch(9)
    lp32 = log_softmax(x)
    lp16 = lp32.astype(jnp.bfloat16)
    f = jax.jit(jax.value_and_grad(lambda a: jl.ctc_loss(a, targets, il, tl)))
    loss, grad = f(lp16)
    assert loss.dtype == grad.dtype == jnp.bfloat16
    want = F.ctc_loss(*to_torch(np.asarray(lp16, np.float32), targets, il, tl)).numpy()
    np.testing.assert_allclose(np.float32(loss), np.float32(want.astype(jnp.bfloat16)))
    assert np.all(np.isfinite(np.asarray(grad, np.float32)))


def test_forward_mode_and_higher_orders():
    # In float64 on a small problem: jvp = grad . v, the Hessian is symmetric, and
    # Hessian-vector products equal finite differences of the gradient.
    x, _, _, _ = batch(10)
    v = rng(11).standard_normal(x.shape).astype(np.float32)
    small = (np.array([[1, 1], [2, 3]]), np.array([5, 4]), np.array([2, 1]))
    eps = 1e-5

    def run(a, b):
        loss = lambda c: jl.ctc_loss(jl.log_softmax(c), *small)  # noqa: E731
        value, tangent = jax.jvp(loss, (a,), (b,))
        grads = jax.vmap(jax.grad(loss))(jnp.stack([a, a + eps * b, a - eps * b]))
        return value, tangent, grads[0], jax.hessian(loss)(a), (grads[1] - grads[2]) / (2 * eps)

    with jax.enable_x64(True):
        x64, v64 = (jnp.asarray(a[:5, :2, :4], jnp.float64) for a in (x, v))
        loss, tangent, grad, hessian, fd = jax.tree.map(np.asarray, jax.jit(run)(x64, v64))
        want = F.ctc_loss(*to_torch(log_softmax(np.asarray(x64)), *small))
    assert loss.dtype == np.float64  # float64 in, float64 out, PyTorch's value
    np.testing.assert_allclose(loss, want.item(), rtol=1e-12)
    np.testing.assert_allclose(tangent, np.sum(grad * np.asarray(v64)), rtol=1e-12)
    h = hessian.reshape(x64.size, x64.size)
    assert np.all(np.isfinite(h))
    np.testing.assert_allclose(h, h.T, atol=1e-12)
    np.testing.assert_allclose(h @ np.ravel(v64), fd.ravel(), atol=1e-8)


# --------------------------------------------------------------------------------------
# where, invalid input, jit


def test_where_drops_sequences():
    x, targets, il, tl = batch(12)
    where = np.array([True, False, True, True, False, True, True, True])
    clean = (x.copy(), targets.copy(), il, tl)
    x[:, 1] *= 1e30  # garbage in a dropped sequence stays out of the value and gradient
    targets[4, 0] = C + 3  # so does an invalid label
    cot = np.linspace(0.5, 1.5, N, dtype=np.float32)
    got, _ = results(x, targets, il, tl, cot, where=where)
    # the same from the unmasked losses: masked sequences count 0 and leave the mean
    per_seq = results(*clean)[0]["none"][0] * where
    mean_weight = where / np.maximum(tl, 1) / where.sum()
    for reduction, value, weight in [
        ("none", per_seq, cot * where),
        ("sum", per_seq.sum(), cot[0] * where),
        ("mean", (per_seq * mean_weight).sum(), cot[0] * mean_weight),
    ]:
        grad = results(*clean, weight.astype(np.float32))[0]["none"][1]
        chex.assert_trees_all_close(got[reduction], (value, grad), **TOL)
        assert np.all(got[reduction][1][:, ~where] == 0)
    # nan log-probabilities in a dropped sequence: 0, with a zero gradient
    x[:, 1] = np.nan
    loss, grad = results(x, targets, il, tl, cot, where=where)[0]["log_probs"]
    assert loss[1] == 0 and np.all(grad[:, 1] == 0)
    chex.assert_trees_all_close((loss, grad), got["log_probs"])


def test_invalid_values_give_nan_and_check_ctc_inputs_names_them():
    x, targets, il, tl = batch(13)
    lp = log_softmax(x)
    bad_targets = targets.copy()
    bad_targets[0, 1] = 0  # the blank, inside the target length
    bad_targets[2, 3] = 0  # the blank past the target length: fine
    bad_il, bad_tl = il.copy(), tl.copy()
    bad_il[3], bad_tl[5] = T + 1, S + 1

    def run(*args):
        jl.check_ctc_inputs(lp, *args)
        return jl.ctc_loss(lp, *args, reduction="none")

    checked = checkify.checkify(jax.jit(run))
    cases = [
        ((bad_targets, il, tl), 0, "targets must be in [0, 6) and differ from blank=0; sequence 0"),
        ((targets, bad_il, tl), 3, "input_lengths must be in [0, 12]; sequence 3 has 13"),
        ((targets, il, bad_tl), 5, "target_lengths must be in [0, 4]; sequence 5 has 5"),
    ]
    for args, n, message in cases:
        err, loss = checked(*args)
        assert np.isnan(loss[n]) and np.isfinite(np.delete(loss, n)).all()
        assert err.get().startswith(message), err.get()
    err, _ = checked(targets, il, tl)
    assert err.get() is None
    flat = np.concatenate([targets[n, : tl[n]] for n in range(N)])
    err, _ = checkify.checkify(jax.jit(jl.check_ctc_inputs))(lp, flat, il, tl + 1)
    assert "target_lengths must be a total at most" in err.get()


def test_trace_time_errors():
    x, targets, il, tl = batch(14)
    lp = log_softmax(x)
    cases = [
        (dict(blank=C), ValueError, r"blank=6 must be a class index in \[0, 6\)"),
        (dict(targets=targets.astype(np.float32)), TypeError, "targets must hold integer"),
        (dict(input_lengths=il[:-1]), ValueError, r"input_lengths must have shape \(8,\)"),
        (dict(target_lengths=tl[None]), ValueError, r"target_lengths must have shape \(8,\)"),
        (dict(input_lengths=il * 1.0), TypeError, "input_lengths must hold integers"),
        (dict(input_lengths=il + T), ValueError, r"input_lengths must be in \[0, 12\]"),
        (dict(target_lengths=tl + S), ValueError, r"target_lengths must be in \[0, 4\]"),
        (dict(log_probs=lp[0, 0]), ValueError, "log_probs must be"),
        (dict(targets=targets[:3]), ValueError, r"must be \(N, S\) with N=8"),
        (dict(reduction="batchmean"), ValueError, "reduction must be one of"),
        (dict(zero_infinity=1), TypeError, "zero_infinity must be a bool"),
    ]
    base = dict(log_probs=lp, targets=targets, input_lengths=il, target_lengths=tl)
    for change, error, match in cases:
        kw = {**base, **change}
        args = [kw.pop(k) for k in ("log_probs", "targets", "input_lengths", "target_lengths")]
        with pytest.raises(error, match=match):  # raised while tracing: nothing compiles
            jl.ctc_loss(*args, **kw)


def test_jit_compiles_once_for_new_values():
    f = jax.jit(chex.assert_max_traces(jl.ctc_loss, n=1))
    for seed in range(3):
        x, targets, il, tl = batch(seed)
        lp = log_softmax(x)
        want = F.ctc_loss(*to_torch(lp, targets, il, tl)).item()
        np.testing.assert_allclose(f(lp, targets, il, tl), want, rtol=1e-5)


# --------------------------------------------------------------------------------------
# per_example and modules


def test_per_example_and_modules_with_python_lengths():
    x, targets, il, tl = batch(15)
    want, lp = results(x, targets, il, tl, np.ones(N, np.float32))
    loss = jl.nnx.CTCLoss(zero_infinity=True)
    module = jl.linen.CTCLoss(zero_infinity=True)
    lengths = list(il), [int(v) for v in tl]

    def run(a):
        per_seq = jax.vmap(jl.per_example.ctc_loss, in_axes=(1, 0, 0, 0))
        grads = jax.vmap(jax.grad(jl.per_example.ctc_loss), in_axes=(1, 0, 0, 0))
        return {
            "per_example": per_seq(a, targets, il, tl),
            "per_example grads": jnp.swapaxes(grads(a, targets, il, tl), 0, 1),
            "nnx": loss(a, targets, *lengths),
            "linen": module.apply({}, a, targets, *lengths),
        }

    got = jax.jit(run)(lp)
    np.testing.assert_allclose(got["per_example"], want["log_probs"][0], rtol=1e-6)
    np.testing.assert_allclose(got["per_example grads"], want["log_probs"][1], atol=1e-6)
    np.testing.assert_allclose(got["nnx"], want["mean"][0], rtol=1e-6)
    np.testing.assert_allclose(got["linen"], want["mean"][0], rtol=1e-6)


# --------------------------------------------------------------------------------------
# optax_compat against optax


def optax_batch(seed, blank_id):
    r = rng(seed)
    b, t, k, n = 5, 14, 6, 4
    logits = (r.standard_normal((b, t, k)) * 2).astype(np.float32)
    labels = r.integers(0, k, size=(b, n)).astype(np.int32)
    labels = np.where(labels == blank_id, (blank_id + 1) % k, labels)
    labels[0, 1] = labels[0, 0]  # a repeat
    logit_paddings = np.zeros((b, t), np.float32)
    logit_paddings[1, 10:] = 1  # right-padded
    logit_paddings[2, 4] = 1  # a padded frame in the middle: skipped
    label_paddings = np.zeros((b, n), np.float32)
    label_paddings[1, 2:] = 1
    label_paddings[3] = 1  # no label
    logit_paddings[4, 3:] = 1  # 4 labels in 3 frames: impossible
    return logits, logit_paddings, labels, label_paddings


def test_optax_compat_equals_optax():
    blank_id = 3
    args = optax_batch(16, blank_id)
    cot = rng(17).uniform(0.5, 1.5, size=5).astype(np.float32)
    # log_epsilon: an impossible alignment costs about -log_epsilon per missing frame
    kw = dict(blank_id=blank_id, log_epsilon=-1e3)

    def run(module):
        out = module.ctc_loss_with_forward_probs(*args, **kw)
        grad = jax.grad(lambda a: jnp.sum(module.ctc_loss(a, *args[1:], **kw) * cot))(args[0])
        return out, grad

    ours, theirs = jax.jit(lambda: run(optax_compat))(), jax.jit(lambda: run(optax))()
    chex.assert_trees_all_close(ours[0], theirs[0], **TOL)
    chex.assert_trees_all_close(ours[1][:4], theirs[1][:4], **TOL)
    # the impossible sequence's loss is about 1e3: float32 keeps fewer of its digits
    chex.assert_trees_all_close(ours[1][4], theirs[1][4], atol=1e-4)


def test_optax_compat_where_optax_is_wrong():
    logits, lpad, labels, lbpad = optax_batch(18, 0)
    logits[:, :, 5] = -np.inf  # a masked class: optax's padding blend 0 * -inf is nan
    labels = np.minimum(labels, 4)

    def run(a):
        compat = lambda z: optax_compat.ctc_loss(z, lpad, labels, lbpad)  # noqa: E731
        loss, grad = jax.value_and_grad(lambda z: jnp.sum(compat(z)))(a)
        return compat(a), grad, optax.ctc_loss(a, lpad, labels, lbpad)

    loss, grad, theirs = jax.jit(run)(logits)
    assert np.isnan(theirs).any()
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    # ctc_loss with lengths where the paddings are right-padded (sequence 2 is not) and
    # the alignment possible (sequence 4 is not: optax's log_epsilon, not inf)
    keep = [0, 1, 3]
    lp = log_softmax(logits).swapaxes(0, 1)[:, keep]
    il, tl = (1 - lpad[keep]).sum(1).astype(int), (1 - lbpad[keep]).sum(1).astype(int)
    want = F.ctc_loss(*to_torch(lp, labels[keep], il, tl), reduction="none").numpy()
    np.testing.assert_allclose(np.asarray(loss)[keep], want, rtol=1e-5)


# --------------------------------------------------------------------------------------
# decoders


def collapse(path, blank=0):
    out, previous = [], None
    for c in path:
        if c != previous and c != blank:
            out.append(int(c))
        previous = c
    return out


def decoded(out, n):
    return [int(v) for v in out.labels[n, : out.lengths[n]]]


def as_numpy(tree):
    return jax.tree.map(np.asarray, tree)  # indexing NumPy arrays compiles nothing


def test_greedy_decode_is_the_collapsed_best_path():
    x, _, il, _ = batch(19)
    lp = log_softmax(x)
    out, first, one = as_numpy(
        jax.jit(
            lambda a: (
                jl.ctc_greedy_decode(a, il, blank=2),
                jl.ctc_greedy_decode(jnp.swapaxes(a, 0, 1), il, blank=2, batch_first=True),
                jl.ctc_greedy_decode(a[:, 3], il[3], blank=2),  # unbatched
            )
        )(lp)
    )
    best = np.argmax(lp, -1)
    for n in range(N):
        assert decoded(out, n) == collapse(best[: il[n], n], blank=2)
        assert np.all(out.labels[n, out.lengths[n] :] == -1)
        np.testing.assert_allclose(out.scores[n], np.max(lp, -1)[: il[n], n].sum(), rtol=1e-6)
    chex.assert_trees_all_equal(first, out)
    chex.assert_trees_all_equal(one, jax.tree.map(lambda a: a[3], out))


def test_beam_search_finds_the_most_likely_labelling():
    # With a beam as wide as the number of prefixes, prefix beam search is exact: the
    # labelling of highest probability summed over its paths (enumerated), and that sum.
    r = rng(20)
    lp = log_softmax(r.standard_normal((5, 6, 3)) * 1.5)
    il = np.array([5, 4, 5, 3, 1, 0])
    out = as_numpy(jl.ctc_beam_search_decode(lp, il, beam_width=32))
    better = 0
    for n in range(6):
        probs = ctc_labelling_probs(lp[: il[n], n])
        best = max(probs, key=probs.get)
        assert tuple(decoded(out, n)) == best
        np.testing.assert_allclose(np.exp(out.scores[n]), probs[best], rtol=1e-5)
        assert np.all(out.labels[n, out.lengths[n] :] == -1)
        greedy = tuple(collapse(np.argmax(lp[: il[n], n], -1)))
        better += probs[best] > probs[greedy] + 1e-6
    assert better >= 1  # the beam finds a likelier labelling than the best path's


def test_optax_compat_forward_probs_take_lists():
    # ArrayLike labels: nested Python lists (labels.shape used to raise AttributeError)
    loss, blank, label = optax_compat.ctc_loss_with_forward_probs(
        [[[0.0, 0.0]] * 3], [[0.0] * 3], [[1]], [[0.0]]
    )
    np.testing.assert_allclose(loss, [-np.log(6 / 8)], rtol=1e-6)
    assert blank.shape == (3, 1, 2) and label.shape == (3, 1, 1)
