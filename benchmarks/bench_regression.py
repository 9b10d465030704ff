"""Regression and divergence losses, forward+backward: jaxlosses vs the naive formula.

Run:  python benchmarks/bench_regression.py [--n 4096] [--d 1024] [--repeats 15]
      [--losses l1_loss mse_loss ...] [--no-torch]

For each of ``l1_loss``, ``mse_loss``, ``huber_loss``, ``smooth_l1_loss``, ``kl_div``
(``"batchmean"``), ``poisson_nll_loss`` and ``gaussian_nll_loss`` (with a variance per
element), each contender computes the mean loss and its gradient with respect to the
``N x D`` float32 prediction (and the variance, for the Gaussian NLL) on the same inputs,
in one process: jaxlosses, the same formula written naively in ``jax.numpy``, and optax
where it has the loss (``squared_error``, ``huber_loss``, ``kl_divergence``), all jitted;
PyTorch's ``torch.nn.functional`` eagerly (``backward()``). The table reports the median
wall time of ``--repeats`` interleaved runs after a warm-up (a change in the machine's
load hits every contender alike), the ratio to the naive formula, and XLA's temporary
memory of the compiled step.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import xlogy

import jaxlosses as jl

DELTA, BETA, EPS = 1.0, 0.5, 1e-6


def _grad_of_mean(loss, argnums=0):
    return jax.value_and_grad(loss, argnums=argnums)


def contenders():
    """``{loss: {contender: (fn(x, t, v) -> (value, grads), torch fn or None)}}``."""

    def naive_huber(d):
        a = jnp.abs(d)
        return jnp.where(a < DELTA, 0.5 * d * d, DELTA * (a - 0.5 * DELTA))

    def naive_smooth_l1(d):
        a = jnp.abs(d)
        return jnp.where(a < BETA, 0.5 * d * d / BETA, a - 0.5 * BETA)

    def naive_gaussian(x, t, v):
        v = jnp.maximum(v, EPS)
        return jnp.mean(0.5 * (jnp.log(v) + (x - t) ** 2 / v))

    n_rows = lambda x: x.shape[0]  # noqa: E731
    out = {
        "l1_loss": {
            "jaxlosses": _grad_of_mean(lambda x, t, v: jl.l1_loss(x, t)),
            "naive jnp": _grad_of_mean(lambda x, t, v: jnp.mean(jnp.abs(x - t))),
        },
        "mse_loss": {
            "jaxlosses": _grad_of_mean(lambda x, t, v: jl.mse_loss(x, t)),
            "naive jnp": _grad_of_mean(lambda x, t, v: jnp.mean((x - t) ** 2)),
            "optax squared_error": _grad_of_mean(
                lambda x, t, v: jnp.mean(optax.losses.squared_error(x, t))
            ),
        },
        "huber_loss": {
            "jaxlosses": _grad_of_mean(lambda x, t, v: jl.huber_loss(x, t, delta=DELTA)),
            "naive jnp": _grad_of_mean(lambda x, t, v: jnp.mean(naive_huber(x - t))),
            "optax huber_loss": _grad_of_mean(
                lambda x, t, v: jnp.mean(optax.losses.huber_loss(x, t, delta=DELTA))
            ),
        },
        "smooth_l1_loss": {
            "jaxlosses": _grad_of_mean(lambda x, t, v: jl.smooth_l1_loss(x, t, beta=BETA)),
            "naive jnp": _grad_of_mean(lambda x, t, v: jnp.mean(naive_smooth_l1(x - t))),
        },
        "kl_div": {  # x: log-probabilities, t: probabilities; batchmean
            "jaxlosses": _grad_of_mean(lambda x, t, v: jl.kl_div(x, t, reduction="batchmean")),
            "naive jnp": _grad_of_mean(lambda x, t, v: jnp.sum(xlogy(t, t) - t * x) / n_rows(x)),
            "optax kl_divergence": _grad_of_mean(
                lambda x, t, v: jnp.mean(optax.losses.kl_divergence(x, t))
            ),
        },
        "poisson_nll_loss": {  # x: log-rates, t: counts
            "jaxlosses": _grad_of_mean(lambda x, t, v: jl.poisson_nll_loss(x, t)),
            "naive jnp": _grad_of_mean(lambda x, t, v: jnp.mean(jnp.exp(x) - t * x)),
        },
        "gaussian_nll_loss": {  # gradients of the mean and of the variance
            "jaxlosses": _grad_of_mean(lambda x, t, v: jl.gaussian_nll_loss(x, t, v), (0, 2)),
            "naive jnp": _grad_of_mean(naive_gaussian, (0, 2)),
        },
    }
    return out


def torch_step(name: str, x: np.ndarray, t: np.ndarray, v: np.ndarray):
    """PyTorch's forward + backward on copies of the inputs, or None without torch."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    xt = torch.from_numpy(np.array(x)).requires_grad_(True)
    tt = torch.from_numpy(np.array(t))
    vt = torch.from_numpy(np.array(v)).requires_grad_(True)
    calls = {
        "l1_loss": lambda: F.l1_loss(xt, tt),
        "mse_loss": lambda: F.mse_loss(xt, tt),
        "huber_loss": lambda: F.huber_loss(xt, tt, delta=DELTA),
        "smooth_l1_loss": lambda: F.smooth_l1_loss(xt, tt, beta=BETA),
        "kl_div": lambda: F.kl_div(xt, tt, reduction="batchmean"),
        "poisson_nll_loss": lambda: F.poisson_nll_loss(xt, tt),
        "gaussian_nll_loss": lambda: F.gaussian_nll_loss(xt, tt, vt),
    }

    def step():
        xt.grad = vt.grad = None
        loss = calls[name]()
        loss.backward()
        return loss.item()

    return step


def inputs(name: str, n: int, d: int):
    kx, kt, kv = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (n, d), jnp.float32)
    t = jax.random.normal(kt, (n, d), jnp.float32)
    v = jnp.exp(jax.random.normal(kv, (n, d), jnp.float32))
    if name == "kl_div":
        x, t = jax.nn.log_softmax(x), jax.nn.softmax(2 * t)
        t = t.at[:, : d // 8].set(0.0)  # some zero target probabilities
    elif name == "poisson_nll_loss":
        t = jnp.floor(3 * v)  # counts
    return x, t, v


def measure(name, fns, n, d, repeats, with_torch=True):
    x, t, v = inputs(name, n, d)
    steps, temps = {}, {}
    for contender, fn in fns.items():
        compiled = jax.jit(fn).lower(x, t, v).compile()
        steps[contender] = lambda c=compiled: float(jax.block_until_ready(c(x, t, v))[0])
        temps[contender] = compiled.memory_analysis().temp_size_in_bytes
    torch_fn = torch_step(name, np.asarray(x), np.asarray(t), np.asarray(v)) if with_torch else None
    if torch_fn is not None:
        steps["torch (eager)"], temps["torch (eager)"] = torch_fn, None
    values = {contender: step() for contender, step in steps.items()}  # warm-up
    want = values["jaxlosses"]
    for value in values.values():  # the contenders agree before they are timed
        assert abs(value - want) <= 1e-4 * abs(want) + 1e-6, (name, values)
    times = {contender: [] for contender in steps}
    for _ in range(repeats):
        for contender, step in steps.items():
            start = time.perf_counter()
            step()
            times[contender].append(time.perf_counter() - start)
    return {c: (statistics.median(times[c]), temps[c]) for c in steps}


def main(argv=None):
    all_losses = list(contenders())
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096, help="rows")
    parser.add_argument("--d", type=int, default=1024, help="columns")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--losses", nargs="+", default=all_losses, choices=all_losses)
    parser.add_argument("--no-torch", action="store_true", help="time the JAX contenders only")
    args = parser.parse_args(argv)

    print(
        f"Forward + backward of the mean loss, float32 ({args.n}, {args.d}), median of "
        f"{args.repeats} interleaved runs; {jax.devices()[0].device_kind} "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs), "
        f"jax {jax.__version__}.\n"
    )
    print("| loss | contender | time (ms) | vs naive | XLA temp (MiB) |")
    print("|---|---|---:|---:|---:|")
    table = contenders()
    for name in args.losses:
        results = measure(name, table[name], args.n, args.d, args.repeats, not args.no_torch)
        naive = results["naive jnp"][0]
        for contender, (seconds, temp) in results.items():
            temp = "-" if temp is None else f"{temp / 2**20:.1f}"
            print(
                f"| {name} | {contender} | {1e3 * seconds:.2f} | {seconds / naive:.2f} | {temp} |"
            )


if __name__ == "__main__":
    main()
