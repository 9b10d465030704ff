"""L1, MSE, Huber and smooth L1 against torch.nn.functional: values, gradients, kinks."""

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

REDUCTIONS = ["mean", "sum", "none"]
SHAPE = (6, 5)


def _data(seed, *, kink=1.0):
    """Inputs and targets whose errors include 0 and +-kink exactly, the rest random."""
    r = rng(seed)
    target = (r.standard_normal(SHAPE) * 2).astype(np.float32)
    error = (r.standard_normal(SHAPE) * 2).astype(np.float32)
    error[0, :5] = [0.0, kink, -kink, 2 * kink, -0.5 * kink]
    return target + error, target


def _weight(seed):
    return rng(seed).uniform(0.25, 2.0, size=SHAPE).astype(np.float32)


def _smooth_l1_torch(x, t, *, beta, weight=None, reduction="mean"):
    """PyTorch's smooth L1 times huber_loss's elementwise weight (PyTorch has none)."""
    loss = F.smooth_l1_loss(x, t, beta=beta, reduction="none")
    if weight is not None:
        loss = loss * weight
    return {"mean": torch.mean, "sum": torch.sum, "none": lambda a: a}[reduction](loss)


# (name, option, its values) for the losses; the option's values are varied in one case
LOSSES = {
    "l1_loss": (None, [None]),
    "mse_loss": (None, [None]),
    "huber_loss": ("delta", [1.0, 0.5, 2.5]),
    "smooth_l1_loss": ("beta", [1.0, 0.5, 0.0]),
}


def _torch_fn(name, option, value, reduction):
    kw = {} if option is None else {option: value}
    if name == "smooth_l1_loss":
        return lambda x, t, w: _smooth_l1_torch(x, t, weight=w, reduction=reduction, **kw)
    return lambda x, t, w: getattr(F, name)(x, t, weight=w, reduction=reduction, **kw)


@pytest.mark.parametrize(
    "name,weighted,reduction", list(itertools.product(LOSSES, [False, True], REDUCTIONS))
)
def test_values_and_gradients_of_input_and_target_match_torch(name, weighted, reduction):
    option, values = LOSSES[name]
    for k, value in enumerate(values):
        x, t = _data(k, kink=1.0 if value in (None, 0.0) else value)
        w = _weight(10 + k) if weighted else None
        kw = {} if option is None else {option: value}

        def jax_fn(a, b, c, kw=kw):
            return getattr(jl, name)(a, b, weight=c, reduction=reduction, **kw)

        assert_matches_torch(jax_fn, _torch_fn(name, option, value, reduction), [x, t, w], [0, 1])


def _kink_cases():
    """(name, options, x): |d| = 0, = delta (beta), inside and beyond, for every option."""
    for name, (option, values) in LOSSES.items():
        for value in values:
            kink = 1.0 if value in (None, 0.0) else value
            x = np.array([0.0, kink, -kink, 0.5 * kink, 2 * kink], np.float32)
            yield name, ({} if option is None else {option: value}), x


def test_second_derivatives_at_the_kinks_are_torchs():
    # PyTorch's double backward at |d| = delta (beta) is the linear piece's (0), and smooth
    # L1 with beta = 0 is L1 (0 everywhere, also at d = 0). One program for every case.
    cases = list(_kink_cases())

    @jax.jit
    def hessians(xs):
        return [
            jax.hessian(
                lambda a, n=n, kw=kw: getattr(jl, n)(a, jnp.zeros(5), reduction="sum", **kw)
            )(x)
            for (n, kw, _), x in zip(cases, xs, strict=True)
        ]

    got = hessians([x for *_, x in cases])
    for (name, kw, x), h in zip(cases, got, strict=True):
        torch_fn = _torch_fn(name, *(next(iter(kw.items())) if kw else (None, None)), "sum")
        want = torch.autograd.functional.hessian(
            lambda a, f=torch_fn: f(a, torch.zeros(5), None), torch.from_numpy(x)
        )
        np.testing.assert_array_equal(np.asarray(h), want.numpy(), err_msg=f"{name} {kw}")


def test_smooth_l1_is_huber_over_beta_and_l1_at_beta_zero():
    x, t = _data(3)
    w = _weight(4)
    for beta in (0.3, 1.0, 4.0):
        chex.assert_trees_all_close(
            jl.smooth_l1_loss(x, t, beta=beta, weight=w, reduction="none"),
            jl.huber_loss(x, t, delta=beta, weight=w, reduction="none") / beta,
            rtol=1e-6,
        )
    loss = jax.value_and_grad(lambda a: jl.smooth_l1_loss(a, t, beta=0.0))
    chex.assert_trees_all_equal(loss(x), jax.value_and_grad(lambda a: jl.l1_loss(a, t))(x))


def test_where_drops_elements_and_weights_from_the_denominators():
    x, t = _data(5)
    w = _weight(6)
    keep = rng(7).uniform(size=SHAPE) < 0.6
    tx, tt, tw = (torch.from_numpy(a[keep]) for a in (x, t, w))
    for name in LOSSES:
        option, values = LOSSES[name]
        kw = {} if option is None else {option: values[-1]}
        got = getattr(jl, name)(x, t, weight=w, where=keep, **kw)
        want = _torch_fn(name, option, values[-1], "mean")(tx, tt, tw)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, err_msg=name)
        # nothing kept: 0 with a zero gradient (PyTorch: 0 / 0)
        value, grad = jax.value_and_grad(
            lambda a, kw=kw, name=name: getattr(jl, name)(
                a, t, weight=w, where=np.zeros(SHAPE, bool), **kw
            )
        )(x)
        assert value == 0 and not np.any(grad)


def test_broadcasting_warns_as_torch_and_gives_torchs_numbers():
    r = rng(8)
    x = r.standard_normal((4, 1)).astype(np.float32)
    t = r.standard_normal((4,)).astype(np.float32)
    for name in LOSSES:
        with pytest.warns(UserWarning, match="different to the input size"):
            got = getattr(jl, name)(x, t)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            want = getattr(F, name)(torch.from_numpy(x), torch.from_numpy(t))
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, err_msg=name)


def test_scalar_inputs():
    for name, x, t in [("l1_loss", 2.0, 0.5), ("huber_loss", -3.0, 0.0), ("mse_loss", 1.5, 1.0)]:
        assert_matches_torch(
            getattr(jl, name), getattr(F, name), [np.float32(x), np.float32(t)], [0, 1]
        )


def test_huge_errors_are_finite_where_the_loss_is():
    # |d| = 2e30 and 3e38: L1, Huber and smooth L1 are finite with gradients bounded by
    # their slope; MSE's square overflows float32 (inf), its gradient 4e30 is finite.
    x, t = _data(17)
    x[1, :3], t[1, :3] = [1e30, -1e30, 3e38], [-1e30, 1e30, 0.0]
    for name in LOSSES:
        value, grad = jax.value_and_grad(lambda a, name=name: getattr(jl, name)(a, t))(x)
        assert np.all(np.isfinite(grad)), name
        assert np.isfinite(value) == (name != "mse_loss"), name
        if name != "mse_loss":
            np.testing.assert_allclose(grad[1, :3], np.sign(x - t)[1, :3] / x.size, rtol=1e-6)
    np.testing.assert_allclose(jl.huber_loss(x, t, delta=0.5, reduction="none")[1, 0], 1e30)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_is_computed_in_float32(dtype):
    x, t = _data(9)
    x16 = jnp.asarray(x, dtype)
    for name in LOSSES:
        got = getattr(jl, name)(x16, t)
        want = getattr(jl, name)(x16.astype(jnp.float32), t)
        assert got.dtype == dtype, name
        assert got == want.astype(dtype), name
        grad = jax.grad(lambda a, name=name: getattr(jl, name)(a, t))(x16)
        assert grad.dtype == dtype and np.all(np.isfinite(np.asarray(grad, np.float32)))


def test_forward_and_reverse_mode_agree():
    x, t = _data(11)
    v = rng(12).standard_normal(SHAPE).astype(np.float32)
    w = _weight(13)

    @jax.jit
    def modes(x, v):
        out = {}
        for name in LOSSES:
            f = lambda a, name=name: getattr(jl, name)(a, t, weight=w)  # noqa: E731
            out[name] = (jax.jvp(f, (x,), (v,))[1], jax.grad(f)(x))
        return out

    for name, (tangent, grad) in modes(x, v).items():
        np.testing.assert_allclose(tangent, np.sum(grad * v), rtol=1e-5, err_msg=name)


def test_per_example_is_the_mean_over_an_examples_elements():
    x, t = _data(14)
    keep = rng(15).uniform(size=SHAPE) < 0.7

    @jax.jit
    def both(x, t, keep):
        out = {}
        for name in LOSSES:
            per_example, batch = getattr(jl.per_example, name), getattr(jl, name)
            out[name] = (
                jax.vmap(per_example)(x, t, where=keep),
                batch(x, t, where=keep, reduction="none"),
                jax.vmap(per_example)(x.ravel(), t.ravel()),  # one-element examples
                batch(x.ravel(), t.ravel(), reduction="none"),
            )
        return out

    for name, (got, full, single, unreduced) in both(x, t, keep).items():
        chex.assert_trees_all_close(got, full.sum(1) / keep.sum(1), rtol=1e-6, custom_message=name)
        chex.assert_trees_all_equal(single, unreduced, custom_message=name)


def test_static_options_compile_once():
    x, t = _data(16)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(a, b, w):
        return [
            jax.value_and_grad(lambda a: jl.huber_loss(a, b, delta=0.5, weight=w))(a),
            jax.value_and_grad(lambda a: jl.smooth_l1_loss(a, b, beta=0.0))(a),
            jax.value_and_grad(lambda a: jl.l1_loss(a, b, weight=w, reduction="sum"))(a),
        ]

    chex.clear_trace_counter()
    for k in range(3):
        step(x + k, t, _weight(k))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: jl.huber_loss(np.ones(3), np.ones(3), delta=0.0), ValueError, "delta"),
        (lambda: jl.huber_loss(np.ones(3), np.ones(3), delta=-1.0), ValueError, "delta"),
        (lambda: jl.smooth_l1_loss(np.ones(3), np.ones(3), beta=-0.1), ValueError, "beta"),
        (lambda: jl.l1_loss(np.ones(3), np.ones(3), reduction="batchmean"), ValueError, "reduct"),
        (lambda: jl.mse_loss(np.ones(3), np.ones(3), reduction="avg"), ValueError, "reduction"),
        (lambda: jl.mse_loss(np.ones(3, int), np.ones(3)), TypeError, "input must have a float"),
        (
            lambda: jl.l1_loss(np.ones((3, 2)), np.ones((4, 2))),
            ValueError,
            r"input and target must broadcast.*\(3, 2\).*\(4, 2\)",
        ),
        (
            lambda: jl.mse_loss(np.ones((3, 2)), np.ones((3, 2)), weight=np.ones(3)),
            ValueError,
            r"weight of shape \(3,\) does not broadcast",
        ),
        (lambda: jl.l1_loss(np.ones(3), np.ones(3), where=np.ones(3)), TypeError, "where"),
    ],
)
def test_bad_arguments_raise_at_trace_time(call, error, match):
    with pytest.raises(error, match=match):
        call()
    with pytest.raises(error, match=match):
        jax.jit(call)()
