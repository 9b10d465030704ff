"""KL divergence, Poisson and Gaussian NLL against torch.nn.functional, and their numerics."""

import itertools
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle import assert_matches_torch, rng

import jaxlosses as jl

SHAPE = (6, 5)
REDUCTIONS = ["mean", "sum", "none"]
INF = np.float32(np.inf)


def _log_probs(seed, shape=SHAPE):
    x = rng(seed).standard_normal(shape).astype(np.float32) * 2
    return np.array(jax.nn.log_softmax(x))  # a writable copy


def _torch_kl_div(*args, **kwargs):
    with warnings.catch_warnings():  # reduction="mean": PyTorch warns that it is not the KL
        warnings.simplefilter("ignore", UserWarning)
        return F.kl_div(*args, **kwargs)


# --------------------------------------------------------------------------------------
# kl_div


@pytest.mark.parametrize(
    "reduction,log_target", list(itertools.product([*REDUCTIONS, "batchmean"], [False, True]))
)
def test_kl_div_matches_torch(reduction, log_target):
    x, log_p = _log_probs(0), _log_probs(1)
    t = log_p if log_target else np.exp(log_p)
    assert_matches_torch(
        lambda a, b: jl.kl_div(a, b, reduction=reduction, log_target=log_target),
        lambda a, b: _torch_kl_div(a, b, reduction=reduction, log_target=log_target),
        [x, t],
        [0, 1],
    )


def test_kl_div_zero_targets_and_masked_classes():
    x, p = _log_probs(2), np.exp(_log_probs(3))
    p[0, :3] = 0.0  # zero targets against finite log-probabilities: PyTorch's numbers
    with np.errstate(divide="ignore"):
        log_p = np.log(p)  # -inf where p = 0
    assert_matches_torch(
        lambda a, b: jl.kl_div(a, b, reduction="sum"),
        lambda a, b: F.kl_div(a, b, reduction="sum"),
        [x, p],
        [0],
    )
    # -inf log-probabilities where the target is 0 (masked classes), and log-targets of
    # -inf: PyTorch's 0 * -inf is nan; here the terms are 0 with zero gradients.
    x[1, :2] = -INF
    p[1, :2] = 0.0
    log_p[1, :2] = -INF
    for log_target in (False, True):
        t = log_p if log_target else p
        terms = jl.kl_div(x, t, reduction="none", log_target=log_target)
        safe_p = np.where(p > 0, p, 1.0)
        want = np.where(p > 0, safe_p * (np.log(safe_p) - np.where(p > 0, x, 0.0)), 0.0)
        np.testing.assert_allclose(terms, want, rtol=1e-5, atol=1e-7)
        grads = jax.grad(
            lambda a, b, lt=log_target: jl.kl_div(a, b, reduction="sum", log_target=lt), (0, 1)
        )(x, t)
        for g in grads:
            assert np.all(np.isfinite(g)) and not np.any(g[1, :2]) and not np.any(g[0, :3])
        torch_terms = F.kl_div(
            torch.from_numpy(x), torch.from_numpy(t), reduction="none", log_target=log_target
        )
        assert np.isnan(torch_terms[1, :2].numpy()).all()


def test_kl_div_invalid_and_infinite_terms_are_torchs():
    x = np.array([-1.0, -INF, -2.0, np.nan], np.float32)
    p = np.array([-0.2, 0.3, 0.0, 0.0], np.float32)  # a negative probability is invalid
    got = jl.kl_div(x, p, reduction="none")
    want = F.kl_div(torch.from_numpy(x), torch.from_numpy(p), reduction="none").numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))  # nan where PyTorch's is
    assert np.isnan(got[0]) and np.isnan(got[3]) and got[2] == 0 == want[2]
    # a positive target against log q = -inf is infinite; here -inf is the most negative
    # float (no select in the fused pass), so the term is p * 3.4e38: as loud, not inf
    assert want[1] == INF and np.isfinite(got[1])
    np.testing.assert_allclose(got[1], 0.3 * np.finfo(np.float32).max, rtol=1e-6)
    # log-probabilities of -1e30 (finite): finite terms and gradients
    x[:] = [-1e30, -1e30, 0.0, 0.0]
    p[:] = [0.5, 0.0, 0.5, 0.0]
    value, grad = jax.value_and_grad(lambda a: jl.kl_div(a, p, reduction="sum"))(x)
    np.testing.assert_allclose(value, 0.5e30, rtol=1e-6)
    np.testing.assert_array_equal(grad, -p)


def test_kl_div_batchmean_masks_rows_and_takes_scalars_as_torch():
    x, p = _log_probs(4), np.exp(_log_probs(5))
    rows = np.array([True, False, True, True, False, True])
    got = jl.kl_div(x, p, reduction="batchmean", where=rows[:, None])
    want = F.kl_div(torch.from_numpy(x[rows]), torch.from_numpy(p[rows]), reduction="batchmean")
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
    assert_matches_torch(
        lambda a, b: jl.kl_div(a, b, reduction="batchmean"),
        lambda a, b: F.kl_div(a, b, reduction="batchmean"),
        [np.float32(-1.2), np.float32(0.4)],  # a scalar: the sum, not divided
        [0, 1],
    )
    # the per-example divergence is the sum over an example's elements
    per_example = jax.vmap(jl.per_example.kl_div)(x, p, where=rows[:, None])
    np.testing.assert_allclose(per_example, np.where(rows, (p * np.log(p / np.exp(x))).sum(1), 0),
                               rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(per_example.sum() / rows.sum(), got, rtol=1e-6)


# --------------------------------------------------------------------------------------
# poisson_nll_loss


def _counts(seed):
    """Counts around 3 (0.5 and 1 at the Stirling term's edge); no zeros: PyTorch's
    gradient with respect to a zero target is nan with full=True."""
    c = rng(seed).poisson(3.0, size=SHAPE).astype(np.float32) + 0.5
    c[0, :3] = [0.5, 1.0, 1.5]
    return c


@pytest.mark.parametrize(
    "log_input,full,reduction", list(itertools.product([True, False], [False, True], REDUCTIONS))
)
def test_poisson_nll_loss_matches_torch(log_input, full, reduction):
    x = rng(6).standard_normal(SHAPE).astype(np.float32)
    x = x if log_input else np.exp(x)
    kw = {"log_input": log_input, "full": full, "reduction": reduction}
    assert_matches_torch(
        lambda a, b: jl.poisson_nll_loss(a, b, **kw),
        lambda a, b: F.poisson_nll_loss(a, b, **kw),
        [x, _counts(7)],
        [0, 1],
    )


def test_poisson_zero_counts_and_zero_rates():
    rates = np.exp(rng(8).standard_normal(SHAPE)).astype(np.float32)
    counts = _counts(9)
    counts[1, :] = 0.0
    rates[1, :2] = 0.0  # a zero rate, log_input=False: finite thanks to eps
    rates[2, :2] = 0.0  # ... and against a positive count: -t log(eps), finite
    for full in (False, True):
        assert_matches_torch(
            lambda a, b, full=full: jl.poisson_nll_loss(a, b, log_input=False, full=full),
            lambda a, b, full=full: F.poisson_nll_loss(a, b, log_input=False, full=full),
            [rates, counts],
            [0],
        )
    # the count's gradient is finite at 0 (PyTorch's is nan with full=True)
    for log_input in (False, True):
        grad = jax.grad(
            lambda b, li=log_input: jl.poisson_nll_loss(rates, b, log_input=li, full=True), 0
        )(counts)
        assert np.all(np.isfinite(grad))
    # a zero count against a zero rate given as log-rate -inf: 0, where PyTorch has nan
    with np.errstate(divide="ignore"):
        log_rates = np.log(rates)  # -inf where the rate is 0
    value, grad = jax.value_and_grad(
        lambda a: jl.poisson_nll_loss(a, counts, reduction="none")[1, 0]
    )(log_rates)
    assert value == 0 and np.all(np.isfinite(grad)) and not np.any(grad)
    # a log-rate of -1e30 against a positive count: t * 1e30, finite; its gradient -t
    log_rates[2, :2] = [-1e30, 0.0]
    value, grad = jax.value_and_grad(lambda a: jl.poisson_nll_loss(a, counts, reduction="sum"))(
        log_rates
    )
    np.testing.assert_allclose(grad[2, 0], -counts[2, 0])
    assert np.isfinite(value) and value > 1e29
    # a negative rate is invalid: nan, as in PyTorch
    assert np.isnan(jl.poisson_nll_loss(-rates, counts, log_input=False))


# --------------------------------------------------------------------------------------
# gaussian_nll_loss

VAR_SHAPES = {  # PyTorch's accepted shapes of var for an input of shape (6, 5)
    "same": SHAPE,
    "one fewer dim": (6,),
    "last dim 1": (6, 1),
    "first dim 1": (1, 5),
    "python float": None,
}


@pytest.mark.parametrize("var_shape,reduction", list(itertools.product(VAR_SHAPES, REDUCTIONS)))
def test_gaussian_nll_loss_matches_torch_for_every_var_shape(var_shape, reduction):
    r = rng(10)
    x, t = r.standard_normal((2, *SHAPE)).astype(np.float32)
    shape = VAR_SHAPES[var_shape]
    var = 0.7 if shape is None else r.uniform(0.1, 3.0, size=shape).astype(np.float32)
    full = reduction != "sum"  # both values of full, across the reductions
    assert_matches_torch(
        lambda a, b, v: jl.gaussian_nll_loss(a, b, v, full=full, reduction=reduction),
        lambda a, b, v: F.gaussian_nll_loss(a, b, v, full=full, reduction=reduction),
        [x, t, var],
        [0, 1] if shape is None else [0, 1, 2],
    )


def test_gaussian_variance_below_eps_gets_torchs_gradient_through_the_clamp():
    r = rng(11)
    x, t = r.standard_normal((2, *SHAPE)).astype(np.float32)
    var = r.uniform(0.1, 2.0, size=SHAPE).astype(np.float32)
    var[0, :4] = [0.0, 1e-9, 1e-6, 5e-7]  # below and at eps
    for eps in (1e-6, 1e-3):
        assert_matches_torch(
            lambda a, b, v, eps=eps: jl.gaussian_nll_loss(a, b, v, eps=eps, reduction="sum"),
            lambda a, b, v, eps=eps: F.gaussian_nll_loss(a, b, v, eps=eps, reduction="sum"),
            [x, t, var],
            [0, 1, 2],
            rtol=2e-5,
        )
    # a negative variance is invalid: nan (PyTorch raises, as a negative float does here)
    var[1, 1] = -1.0
    loss = jl.gaussian_nll_loss(x, t, var, reduction="none")
    assert np.isnan(loss[1, 1]) and np.isfinite(np.delete(np.asarray(loss).ravel(), 6)).all()
    with pytest.raises(ValueError, match="var must be non-negative"):
        jl.gaussian_nll_loss(x, t, -1.0)


def test_gaussian_scalar_and_zero_d_variance():
    x, t = np.float32(0.3), np.float32(-1.1)
    assert_matches_torch(
        jl.gaussian_nll_loss, F.gaussian_nll_loss, [x, t, np.float32(0.5)], [0, 1, 2]
    )
    # a 0-d variance for a batch (PyTorch accepts a Python float only): the float's value
    xs, ts = _log_probs(12), _log_probs(13)
    chex.assert_trees_all_equal(
        jl.gaussian_nll_loss(xs, ts, jnp.float32(0.5)), jl.gaussian_nll_loss(xs, ts, 0.5)
    )


# --------------------------------------------------------------------------------------
# all three

CALLS = {
    "kl_div": lambda x, t, v: jl.kl_div(x, jnp.exp(t), reduction="batchmean"),
    "kl_div_log_target": lambda x, t, v: jl.kl_div(x, t, log_target=True),
    "poisson_nll_loss": lambda x, t, v: jl.poisson_nll_loss(x, jnp.exp(t) * 4, full=True),
    "poisson_rates": lambda x, t, v: jl.poisson_nll_loss(
        jnp.exp(x), jnp.exp(t) * 4, log_input=False
    ),
    "gaussian_nll_loss": lambda x, t, v: jl.gaussian_nll_loss(x, t, v, full=True),
}


# (loss, argument): 0 input, 1 target, 2 var
DIFFERENTIABLE = [("kl_div", 0), ("kl_div", 1), ("kl_div_log_target", 0), ("poisson_nll_loss", 0)]
DIFFERENTIABLE += [("poisson_rates", 0), ("gaussian_nll_loss", 0), ("gaussian_nll_loss", 2)]


def test_forward_mode_reverse_mode_and_hessians_agree():
    x, t = _log_probs(14), _log_probs(15)
    v = np.exp(rng(16).standard_normal(SHAPE)).astype(np.float32)
    direction = rng(17).standard_normal(SHAPE).astype(np.float32)

    def partial(f, args, i):
        """``f`` as a function of its i-th argument."""
        return lambda a: f(*args[:i], a, *args[i + 1 :])

    @jax.jit
    def modes(x, t, v):
        args, out = (x, t, v), {}
        for name, i in DIFFERENTIABLE:
            g = partial(CALLS[name], args, i)
            first_row = partial(lambda a, b, g=g: g(b.at[0].set(a)), (None, args[i]), 0)
            out[name, i] = (
                jax.jvp(g, (args[i],), (direction,))[1],
                jax.grad(g)(args[i]),
                jax.hessian(first_row)(args[i][0]),
            )
        return out

    for (name, i), (tangent, grad, hessian) in modes(x, t, v).items():
        np.testing.assert_allclose(tangent, np.sum(grad * direction), rtol=2e-5, atol=1e-6,
                                   err_msg=f"{name} {i}")  # fmt: skip
        assert np.all(np.isfinite(grad)) and np.all(np.isfinite(hessian)), (name, i)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_is_computed_in_float32(dtype):
    x, t = _log_probs(18), _log_probs(19)
    v = np.exp(rng(20).standard_normal(SHAPE)).astype(np.float32)
    x16 = jnp.asarray(x, dtype)
    for name, f in CALLS.items():
        got = f(x16, t, v)
        assert got.dtype == dtype, name
        assert got == f(x16.astype(jnp.float32), t, v).astype(dtype), name


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: jl.kl_div(np.zeros(3), np.ones(3), reduction="avg"), ValueError, "reduction"),
        (lambda: jl.kl_div(np.zeros(3), np.ones(3), log_target=1), TypeError, "log_target"),
        (lambda: jl.kl_div(np.zeros(3, int), np.ones(3)), TypeError, "input must have a float"),
        (
            lambda: jl.kl_div(np.zeros((2, 3)), np.ones((3, 2))),
            ValueError,
            r"input and target must broadcast.*\(2, 3\).*\(3, 2\)",
        ),
        (
            lambda: jl.poisson_nll_loss(np.zeros(3), np.ones(3), reduction="batchmean"),
            ValueError,
            "reduction",
        ),
        (lambda: jl.poisson_nll_loss(np.ones(3), np.ones(3), eps=-1e-8), ValueError, "eps"),
        (lambda: jl.poisson_nll_loss(np.ones(3), np.ones(3), full=None), TypeError, "full"),
        (lambda: jl.gaussian_nll_loss(np.ones(3), np.ones(3), 1.0, eps=-1.0), ValueError, "eps"),
        (
            lambda: jl.gaussian_nll_loss(np.ones((4, 3)), np.ones((4, 3)), np.ones((4, 2))),
            ValueError,
            r"var of shape \(4, 2\) does not fit input of shape \(4, 3\)",
        ),
        (
            lambda: jl.gaussian_nll_loss(np.ones((4, 3)), np.ones((4, 3)), np.ones((1, 1))),
            ValueError,
            r"var of shape \(1, 1\)",
        ),
        (
            lambda: jl.gaussian_nll_loss(np.ones(3), np.ones(3), np.ones(3, int)),
            TypeError,
            "var must have a float",
        ),
    ],
)
def test_bad_arguments_raise_at_trace_time(call, error, match):
    with pytest.raises(error, match=match):
        call()
    with pytest.raises(error, match=match):
        jax.jit(call)()
