"""Margin and metric-learning losses, forward+backward: jaxlosses vs naive jax.numpy vs PyTorch.

Run:  python benchmarks/bench_margin.py [--n 4096] [--d 1024] [--repeats 9] [--only NAME ...]

Each loss computes its mean and the gradient with respect to every float input on the same
float32 ``N x D`` inputs (``D`` classes for the multi-class losses), in one process:
jaxlosses and the textbook formula written in ``jax.numpy`` (both under ``jax.jit``), and
PyTorch's ``torch.nn.functional`` eagerly with ``backward()``. The table reports the median
(and, in parentheses, the minimum) wall time over ``--repeats`` interleaved runs after a
warm-up (a change in the machine's load hits every contender alike; on a loaded machine
the minimum is the steadier number), the ratios to the naive formula and to PyTorch, and
XLA's temporary memory of the compiled step
(``jax.jit(f).lower(*args).compile().memory_analysis().temp_size_in_bytes``). The
contenders' losses are checked to agree before they are timed.
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

import jaxlosses as jl

EPS = 1e-6


# --------------------------------------------------------------------------------------
# the naive formulas, as one would write them from PyTorch's documentation


def naive_margin_ranking(x1, x2, y):
    return jnp.mean(jnp.maximum(0.0, -y * (x1 - x2) + 0.5))


def naive_hinge_embedding(x, y):
    return jnp.mean(jnp.where(y == 1, x, jnp.maximum(0.0, 1.0 - x)))


def naive_soft_margin(x, y):
    return jnp.mean(jnp.log1p(jnp.exp(-y * x)))


def naive_multi_margin(x, y):
    x_y = jnp.take_along_axis(x, y[:, None], axis=1)
    h = jnp.maximum(0.0, 1.0 - x_y + x)
    h = jnp.where(jnp.arange(x.shape[1]) == y[:, None], 0.0, h)
    return jnp.mean(jnp.sum(h, axis=1) / x.shape[1])


def naive_multilabel_margin(x, target):
    # every (target, other) pair: N x C x C hinges, reduced (XLA fuses them, no buffer)
    c = x.shape[1]
    listed = jnp.cumsum(target < 0, axis=1) == 0
    hot = (
        jnp.zeros_like(x)
        .at[jnp.arange(x.shape[0])[:, None], jnp.maximum(target, 0)]
        .add(listed.astype(x.dtype))
    )
    is_target = hot > 0
    h = jnp.maximum(0.0, 1.0 - x[:, :, None] + x[:, None, :])
    h = h * hot[:, :, None] * (~is_target)[:, None, :]
    return jnp.mean(jnp.sum(h, axis=(1, 2)) / c)


def naive_cosine_embedding(x1, x2, y):
    cos = jnp.sum(x1 * x2, 1) / jnp.sqrt(
        (jnp.sum(x1 * x1, 1) + 1e-12) * (jnp.sum(x2 * x2, 1) + 1e-12)
    )
    return jnp.mean(jnp.where(y == 1, 1 - cos, jnp.maximum(0.0, cos)))


def _norm(d):
    return jnp.sqrt(jnp.sum(d * d, axis=-1))


def naive_triplet(a, p, n):
    return jnp.mean(jnp.maximum(0.0, 1.0 + _norm(a - p + EPS) - _norm(a - n + EPS)))


def naive_triplet_swap(a, p, n):
    d_neg = jnp.minimum(_norm(a - n + EPS), _norm(p - n + EPS))
    return jnp.mean(jnp.maximum(0.0, 1.0 + _norm(a - p + EPS) - d_neg))


# name -> (jaxlosses, naive, torch, float inputs, other inputs)
def cases(n: int, d: int):
    import torch.nn.functional as F

    r = np.random.default_rng(0)
    x1, x2, x3 = (r.standard_normal((n, d)).astype(np.float32) for _ in range(3))
    sign = np.where(r.uniform(size=(n, d)) < 0.5, 1.0, -1.0).astype(np.float32)
    pair = sign[:, 0].copy()
    labels = r.integers(0, d, n)
    lists = np.full((n, d), -1, np.int64)
    for row in lists:  # 1 to 8 target classes per item
        k = r.integers(1, 9)
        row[:k] = r.choice(d, k, replace=False)
    return {
        "margin_ranking_loss": (
            lambda a, b, y: jl.margin_ranking_loss(a, b, y, margin=0.5),
            naive_margin_ranking,
            lambda a, b, y: F.margin_ranking_loss(a, b, y, margin=0.5),
            (x1, x2),
            (sign,),
        ),
        "hinge_embedding_loss": (
            jl.hinge_embedding_loss,
            naive_hinge_embedding,
            F.hinge_embedding_loss,
            (np.abs(x1),),
            (sign,),
        ),
        "soft_margin_loss": (
            jl.soft_margin_loss,
            naive_soft_margin,
            F.soft_margin_loss,
            (x1,),
            (sign,),
        ),
        "multi_margin_loss": (
            jl.multi_margin_loss,
            naive_multi_margin,
            F.multi_margin_loss,
            (x1,),
            (labels,),
        ),
        "multilabel_margin_loss": (
            jl.multilabel_margin_loss,
            naive_multilabel_margin,
            F.multilabel_margin_loss,
            (x1,),
            (lists,),
        ),
        "cosine_embedding_loss": (
            jl.cosine_embedding_loss,
            naive_cosine_embedding,
            F.cosine_embedding_loss,
            (x1, x2),
            (pair,),
        ),
        "triplet_margin_loss": (
            jl.triplet_margin_loss,
            naive_triplet,
            F.triplet_margin_loss,
            (x1, x2, x3),
            (),
        ),
        "triplet_margin_loss(swap=True)": (
            lambda a, p, n: jl.triplet_margin_loss(a, p, n, swap=True),
            naive_triplet_swap,
            lambda a, p, n: F.triplet_margin_loss(a, p, n, swap=True),
            (x1, x2, x3),
            (),
        ),
        "triplet_margin_with_distance_loss": (
            jl.triplet_margin_with_distance_loss,
            naive_triplet,
            F.triplet_margin_with_distance_loss,
            (x1, x2, x3),
            (),
        ),
    }


def jax_step(fn, num_float: int):
    """``jit(value_and_grad)`` with respect to the first ``num_float`` inputs."""
    return jax.jit(jax.value_and_grad(fn, argnums=tuple(range(num_float))))


def torch_step(fn, floats, others):
    import torch

    ts = [torch.from_numpy(np.array(x)).requires_grad_(True) for x in floats]
    os_ = [torch.from_numpy(np.array(x)) for x in others]

    def step():
        for t in ts:
            t.grad = None
        loss = fn(*ts, *os_)
        loss.backward()
        return loss.item()

    return step


def measure(name, case, repeats, naive_rows=None):
    """``{contender: (median s, min s, XLA temp bytes or None)}``.

    ``naive_rows``: time the naive formula on the first rows only and scale its times to
    all rows (for the multi-label margin, whose naive ``N x C x C`` hinges take minutes).
    """
    ours, naive, torch_fn, floats, others = case
    args = [jnp.asarray(x) for x in (*floats, *others)]
    n = len(floats[0])
    scale = 1.0 if naive_rows is None else n / naive_rows
    naive_args = args if naive_rows is None else [a[:naive_rows] for a in args]
    steps, temps = {}, {}
    for label, fn, a in (("jaxlosses", ours, args), ("naive jnp", naive, naive_args)):
        compiled = jax_step(fn, len(floats)).lower(*a).compile()
        steps[label] = lambda c=compiled, a=a: float(jax.block_until_ready(c(*a))[0])
        temps[label] = compiled.memory_analysis().temp_size_in_bytes
    if naive_rows is not None:  # the naive step's memory at the full size (compiled, not run)
        full = jax_step(naive, len(floats)).lower(*args).compile()
        temps["naive jnp"] = full.memory_analysis().temp_size_in_bytes
    steps["torch"], temps["torch"] = torch_step(torch_fn, floats, others), None
    values = {label: step() for label, step in steps.items()}  # warm-up
    for label, value in values.items():
        if label == "naive jnp" and naive_rows is not None:
            continue
        assert abs(value - values["jaxlosses"]) <= 1e-4 * max(1.0, abs(value)), (name, values)
    times = {label: [] for label in steps}
    order = list(steps)
    for i in range(repeats):
        # a new order each run: the contender that runs after another finds the shared
        # inputs in the cache, which would favour a fixed second
        for label in order[i % len(order) :] + order[: i % len(order)]:
            start = time.perf_counter()
            steps[label]()
            times[label].append(time.perf_counter() - start)
    times["naive jnp"] = [t * scale for t in times["naive jnp"]]
    return {
        label: (statistics.median(times[label]), min(times[label]), temps[label]) for label in steps
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096, help="rows (pairs, triplets, items)")
    parser.add_argument("--d", type=int, default=1024, help="features or classes")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--only", nargs="*", help="names of the losses to run (default: all)")
    parser.add_argument(
        "--naive-multilabel-rows",
        type=int,
        default=64,
        help="rows the naive multi-label margin runs on (its time is scaled to --n rows)",
    )
    args = parser.parse_args(argv)

    import torch

    processor = platform.processor() or platform.machine()
    print(
        f"Forward + backward, float32, N = {args.n}, D = {args.d}, median (and minimum) of "
        f"{args.repeats} interleaved runs; {jax.devices()[0].device_kind} ({processor}, "
        f"{os.cpu_count()} CPUs), jax {jax.__version__}, torch {torch.__version__}.\n"
    )
    print(
        "| loss | jaxlosses ms | naive jnp ms | torch ms | vs naive | vs torch "
        "| XLA temp MiB (jaxlosses / naive) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, case in cases(args.n, args.d).items():
        if args.only and name not in args.only:
            continue
        rows = args.naive_multilabel_rows if name == "multilabel_margin_loss" else None
        res = measure(name, case, args.repeats, rows)
        (t, t_min, m), (tn, tn_min, mn), (tt, tt_min, _) = (
            res["jaxlosses"],
            res["naive jnp"],
            res["torch"],
        )
        mark = "~" if rows else ""
        print(
            f"| `{name}` | {1e3 * t:.1f} ({1e3 * t_min:.1f}) "
            f"| {mark}{1e3 * tn:.1f} ({mark}{1e3 * tn_min:.1f}) "
            f"| {1e3 * tt:.1f} ({1e3 * tt_min:.1f}) "
            f"| {t / tn:.2f} ({t_min / tn_min:.2f}) | {t / tt:.2f} ({t_min / tt_min:.2f}) "
            f"| {m / 2**20:.1f} / {mn / 2**20:.1f} |",
            flush=True,
        )
    if not args.only or "multilabel_margin_loss" in args.only:
        print(
            f"\n~ the naive multi-label margin ran on {args.naive_multilabel_rows} rows, its "
            f"times scaled to {args.n} (it is linear in the rows; its temporary memory is that "
            "of the full size, compiled but not run)."
        )


if __name__ == "__main__":
    main()
