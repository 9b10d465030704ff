"""Cross-entropy forward+backward: jaxlosses vs optax vs PyTorch vs a copy of the logits.

Run:  python benchmarks/bench_cross_entropy.py [--n 4096] [--c 8000 32000 128000]
      [--repeats 9] [--json FILE]

For each number of classes ``C``, each contender computes the mean integer-label
cross-entropy and its gradient with respect to the ``N x C`` logits on the same float32
inputs, in one process: jaxlosses and optax jitted, PyTorch's
``torch.nn.functional.cross_entropy`` eagerly (``backward()``, its usual use; the extra
``test`` installs the CPU build). The table reports the median wall time over
``--repeats`` runs after a warm-up (the runs interleave, so a change in the machine's
load hits every contender alike), the ratio to optax and to a read+write copy of the
logits (the memory-bandwidth floor of producing the gradient), and XLA's temporary
memory of the compiled step (PyTorch has none to report).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlosses as jl

OPTAX = "optax softmax_cross_entropy_with_integer_labels"
COPY = "copy of the logits (x + 1)"
TORCH = "torch.nn.functional.cross_entropy (eager)"


def jax_contenders():
    def jaxlosses_ce(x, y):
        return jax.value_and_grad(jl.cross_entropy)(x, y)

    def jaxlosses_ce_smoothed(x, y):
        return jax.value_and_grad(lambda a: jl.cross_entropy(a, y, label_smoothing=0.1))(x)

    def optax_ce(x, y):
        def loss(a):
            return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(a, y))

        return jax.value_and_grad(loss)(x)

    def copy(x, y):
        return jnp.zeros((), x.dtype), x + 1.0  # read + write of an N x C array

    return {
        OPTAX: optax_ce,
        "jaxlosses.cross_entropy": jaxlosses_ce,
        "jaxlosses.cross_entropy(label_smoothing=0.1)": jaxlosses_ce_smoothed,
        COPY: copy,
    }


def torch_step(x: np.ndarray, y: np.ndarray):
    """PyTorch's forward + backward on copies of the same inputs, or None without torch."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    xt = torch.from_numpy(np.array(x)).requires_grad_(True)  # a writable copy
    yt = torch.from_numpy(y.astype(np.int64))

    def step():
        xt.grad = None
        loss = F.cross_entropy(xt, yt)
        loss.backward()
        return loss.item()

    return step


def measure(x, y, repeats):
    """``{name: (median seconds, XLA temp bytes or None, loss)}`` for every contender."""
    steps, temps = {}, {}
    for name, fn in jax_contenders().items():
        compiled = jax.jit(fn).lower(x, y).compile()
        steps[name] = lambda c=compiled: float(jax.block_until_ready(c(x, y))[0])
        temps[name] = compiled.memory_analysis().temp_size_in_bytes
    torch_fn = torch_step(np.asarray(x), np.asarray(y))  # copies: jax's buffers stay put
    if torch_fn is not None:
        steps[TORCH], temps[TORCH] = torch_fn, None
    values = {name: step() for name, step in steps.items()}  # warm-up
    # The contenders agree before they are timed.
    for name, value in values.items():
        if name != COPY and "smoothing" not in name:
            assert abs(value - values[OPTAX]) <= 1e-5 * abs(values[OPTAX]), values
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), temps[name], values[name]) for name in steps}


def table(sweep) -> str:
    lines = [
        "| C | contender | time (ms) | vs optax | vs copy | XLA temp (MiB) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for entry in sweep:
        for r in entry["rows"]:
            temp = "-" if r["temp_mib"] is None else f"{r['temp_mib']:.1f}"
            lines.append(
                f"| {entry['c']} | {r['name']} | {r['ms']:.1f} | {r['vs_optax']:.2f} "
                f"| {r['vs_copy']:.2f} | {temp} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096, help="rows (tokens)")
    parser.add_argument(
        "--c", type=int, nargs="+", default=[8000, 32000, 128000], help="numbers of classes"
    )
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    sweep = []
    for c in args.c:
        key_x, key_y = jax.random.split(jax.random.key(c))
        x = jax.random.normal(key_x, (args.n, c), jnp.float32) * 3
        y = jax.random.randint(key_y, (args.n,), 0, c)
        results = measure(x, y, args.repeats)
        t_optax, t_copy = results[OPTAX][0], results[COPY][0]
        rows = [
            dict(
                name=name,
                ms=1e3 * t,
                vs_optax=t / t_optax,
                vs_copy=t / t_copy,
                temp_mib=None if temp is None else temp / 2**20,
            )
            for name, (t, temp, _) in results.items()
        ]
        sweep.append(dict(c=c, rows=rows))
        del x, y

    meta = dict(
        n=args.n,
        repeats=args.repeats,
        device=str(jax.devices()[0].device_kind),
        processor=platform.processor() or platform.machine(),
        cpus=os.cpu_count(),
        jax=jax.__version__,
    )
    try:
        import torch

        meta["torch"] = torch.__version__
    except ImportError:
        pass
    print(
        f"Cross-entropy forward + backward, float32, N = {args.n}, median of "
        f"{args.repeats} interleaved runs; {meta['device']} ({meta['processor']}, "
        f"{meta['cpus']} CPUs), jax {meta['jax']}"
        + (f", torch {meta['torch']}" if "torch" in meta else "")
        + ".\n"
    )
    print(table(sweep))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, sweep=sweep), f, indent=1)


if __name__ == "__main__":
    main()
