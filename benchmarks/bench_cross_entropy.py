"""Cross-entropy forward+backward under jit: jaxlosses vs optax vs a copy of the logits.

Run:  python benchmarks/bench_cross_entropy.py [--n 4096] [--c 32000] [--repeats 9]

Each contender computes the mean integer-label cross-entropy and its gradient with respect
to the logits, jitted, on the same float32 inputs, in one process; the table reports the
median wall time over ``--repeats`` runs after a warm-up, the ratio to optax and to a
read+write copy of the logits (the memory-bandwidth floor of producing the gradient),
and XLA's temp memory for the compiled step.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import jaxlosses as jl


def contenders():
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
        "optax softmax_cross_entropy_with_integer_labels": optax_ce,
        "jaxlosses.cross_entropy": jaxlosses_ce,
        "jaxlosses.cross_entropy(label_smoothing=0.1)": jaxlosses_ce_smoothed,
        "copy of the logits (x + 1)": copy,
    }


def measure(fns, args, repeats):
    """Median time and XLA temp bytes per contender; runs interleave, so that a change in
    the machine's load during the measurement hits every contender alike."""
    compiled = {name: jax.jit(fn).lower(*args).compile() for name, fn in fns.items()}
    for step in compiled.values():
        jax.block_until_ready(step(*args))  # warm-up
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, step in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(step(*args))
            times[name].append(time.perf_counter() - start)
    return {
        name: (statistics.median(times[name]), step.memory_analysis().temp_size_in_bytes)
        for name, step in compiled.items()
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--c", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)

    key_x, key_y = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(key_x, (args.n, args.c), jnp.float32) * 3
    y = jax.random.randint(key_y, (args.n,), 0, args.c)

    # the contenders agree before they are timed
    values = {name: float(fn(x, y)[0]) for name, fn in contenders().items() if "copy" not in name}
    ref = values["optax softmax_cross_entropy_with_integer_labels"]
    assert abs(values["jaxlosses.cross_entropy"] - ref) <= 1e-5 * abs(ref), values

    results = measure(contenders(), (x, y), args.repeats)
    t_optax = results["optax softmax_cross_entropy_with_integer_labels"][0]
    t_copy = results["copy of the logits (x + 1)"][0]

    print(
        f"cross-entropy forward+backward, jit, float32, N={args.n}, C={args.c}, "
        f"median of {args.repeats} runs, {jax.devices()[0].device_kind} "
        f"({platform.processor() or platform.machine()}), jax {jax.__version__}\n"
    )
    print("| contender | time (ms) | vs optax | vs copy | XLA temp (MiB) |")
    print("|---|---:|---:|---:|---:|")
    rows = []
    for name, (t, temp) in results.items():
        rows.append(
            dict(name=name, ms=1e3 * t, vs_optax=t / t_optax, vs_copy=t / t_copy, temp=temp)
        )
        print(
            f"| {name} | {1e3 * t:.1f} | {t / t_optax:.2f} | {t / t_copy:.2f} | "
            f"{temp / 2**20:.1f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(n=args.n, c=args.c, repeats=args.repeats, rows=rows), f, indent=2)


if __name__ == "__main__":
    main()
