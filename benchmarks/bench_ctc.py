"""CTC forward+backward from logits: jaxlosses vs optax vs PyTorch vs a naive JAX scan.

Run:  python benchmarks/bench_ctc.py [--sizes T,N,C,S ...] [--repeats 9] [--markdown FILE]

For each size (T frames, N sequences, C classes with the blank, S labels per sequence),
every contender computes the mean CTC loss of ``log_softmax(logits)`` and its gradient
with respect to the float32 logits, on the same inputs, in one process:

* ``jaxlosses.ctc_loss`` on PyTorch's time-major ``(T, N, C)`` logits, jitted;
* ``jaxlosses.optax_compat.ctc_loss`` on the batch-first ``(N, T, C)`` logits, jitted;
* ``optax.ctc_loss`` (batch-first, autodiff through its forward scan), jitted;
* a naive ``jax.numpy`` alpha recursion (``jnp.logaddexp`` over the ``2S + 1`` states,
  autodiff through the scan), jitted;
* PyTorch's ``torch.nn.functional.ctc_loss`` (CPU kernel, eager, ``backward()``).

The runs interleave (a change in the machine's load hits every contender alike); the
table gives the median wall time, its ratio to optax's, the median CPU time of the
process (all threads; less sensitive than wall time to other processes on a shared
machine) and XLA's temporary memory of the compiled step
(``compiled.memory_analysis().temp_size_in_bytes``; PyTorch has none to report).
Every contender's loss is checked against optax's before timing.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlosses as jl
from jaxlosses import optax_compat

# The naive contender is the textbook recursion the tests also use (one copy).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from oracle import ctc_naive  # noqa: E402

OPTAX = "optax.ctc_loss"
TORCH = "torch.nn.functional.ctc_loss (CPU, eager)"
SIZES = ["400,32,40,80", "1000,16,100,200"]


def jax_contenders(n, t, s):
    paddings = jnp.zeros((n, t)), jnp.zeros((n, s))

    def jaxlosses_ctc(x, y, il, tl):
        return jax.value_and_grad(lambda a: jl.ctc_loss(jl.log_softmax(a), y, il, tl))(x)

    def compat_ctc(xb, y, il, tl):
        def loss(a):
            per_seq = optax_compat.ctc_loss(a, paddings[0], y, paddings[1])
            return jnp.mean(per_seq / tl)

        return jax.value_and_grad(loss)(xb)

    def optax_ctc(xb, y, il, tl):
        def loss(a):
            return jnp.mean(optax.ctc_loss(a, paddings[0], y, paddings[1]) / tl)

        return jax.value_and_grad(loss)(xb)

    def naive(x, y, il, tl):
        def loss(a):
            return jnp.mean(ctc_naive(jax.nn.log_softmax(a), y, il, tl) / tl)

        return jax.value_and_grad(loss)(x)

    # name -> (function, whether it takes batch-first logits)
    return {
        OPTAX: (optax_ctc, True),
        "jaxlosses.ctc_loss": (jaxlosses_ctc, False),
        "jaxlosses.optax_compat.ctc_loss": (compat_ctc, True),
        "naive jax.numpy scan (autodiff)": (naive, False),
    }


def torch_step(x, y, il, tl):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    xt = torch.from_numpy(np.array(x)).requires_grad_(True)
    yt, ilt, tlt = (torch.from_numpy(np.asarray(a).astype(np.int64)) for a in (y, il, tl))

    def step():
        xt.grad = None
        loss = F.ctc_loss(xt.log_softmax(-1), yt, ilt, tlt)
        loss.backward()
        return loss.item()

    return step


def measure(size, repeats):
    t, n, c, s = size
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((t, n, c)), jnp.float32)
    xb = jnp.transpose(x, (1, 0, 2))
    y = jnp.asarray(rng.integers(1, c, size=(n, s)), jnp.int32)
    il, tl = jnp.full((n,), t, jnp.int32), jnp.full((n,), s, jnp.int32)
    steps, temps = {}, {}
    for name, (fn, batch_first) in jax_contenders(n, t, s).items():
        args = (xb if batch_first else x, y, il, tl)
        compiled = jax.jit(fn).lower(*args).compile()
        steps[name] = lambda c=compiled, a=args: float(jax.block_until_ready(c(*a))[0])
        temps[name] = compiled.memory_analysis().temp_size_in_bytes
    torch_fn = torch_step(x, y, il, tl)
    if torch_fn is not None:
        steps[TORCH], temps[TORCH] = torch_fn, None
    values = {name: step() for name, step in steps.items()}  # warm-up
    for value in values.values():
        assert abs(value - values[OPTAX]) <= 1e-4 * abs(values[OPTAX]), values
    wall = {name: [] for name in steps}
    cpu = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    t_optax = statistics.median(wall[OPTAX])
    c_optax = statistics.median(cpu[OPTAX])
    return [
        dict(
            name=name,
            ms=1e3 * statistics.median(wall[name]),
            vs_optax=statistics.median(wall[name]) / t_optax,
            cpu_ms=1e3 * statistics.median(cpu[name]),
            cpu_vs_optax=statistics.median(cpu[name]) / c_optax,
            temp_mib=None if temps[name] is None else temps[name] / 2**20,
        )
        for name in steps
    ]


def table(results) -> str:
    lines = [
        "| T, N, C, S | contender | time (ms) | vs optax | CPU time (ms) | CPU vs optax "
        "| XLA temp (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for size, rows in results:
        for r in rows:
            temp = "-" if r["temp_mib"] is None else f"{r['temp_mib']:.1f}"
            lines.append(
                f"| {', '.join(map(str, size))} | {r['name']} | {r['ms']:.1f} "
                f"| {r['vs_optax']:.2f} | {r['cpu_ms']:.1f} | {r['cpu_vs_optax']:.2f} | {temp} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=SIZES, help="T,N,C,S per size")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--markdown", help="also write the printed table to this file")
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in size.split(",")) for size in args.sizes]
    results = [(size, measure(size, args.repeats)) for size in sizes]
    try:
        import torch

        torch_version = f", torch {torch.__version__}"
    except ImportError:
        torch_version = ""
    header = (
        f"CTC forward + backward from logits, float32, median of {args.repeats} interleaved "
        f"runs; {jax.devices()[0].device_kind} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs), jax {jax.__version__}{torch_version}."
    )
    text = header + "\n\n" + table(results)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
