"""One short accelerator check: correctness and time/memory of the fused and plain losses.

Run:  python benchmarks/gpu_check.py [--small]   (--small: CPU-sized smoke test)

Prints, for the default device: linear_cross_entropy against cross_entropy of the
materialised logits (value and the three gradients, float32 and bfloat16, with label
smoothing, z-loss, ignored tokens), then the forward+backward time and XLA temp memory
of the fused and the naive step in bfloat16, and cross_entropy against optax in float32.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import jaxlosses as jl


def timed(fn, *args, repeats=5):
    step = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(step(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(step(*args))
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2] * 1e3, step.memory_analysis().temp_size_in_bytes / 2**20


def data(n, h, v, dtype):
    k = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k[0], (n, h), dtype)
    w = (jax.random.normal(k[1], (v, h)) * h**-0.5).astype(dtype)
    b = (jax.random.normal(k[2], (v,)) * 0.1).astype(dtype)
    y = jax.random.randint(k[3], (n,), 0, v).at[::9].set(-100)
    return x, w, b, y


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    small = parser.parse_args().small
    print(jax.devices()[0].device_kind, jax.__version__, flush=True)
    kw = dict(label_smoothing=0.1, z_loss=1e-4)

    def fused(x, w, b, y):
        return jl.linear_cross_entropy(x, w, y, linear_bias=b, **kw)

    def naive(x, w, b, y):
        logits = (x @ w.T + b).astype(jnp.float32)
        lse = jax.nn.logsumexp(logits, axis=-1)
        kept = y != -100
        z = kw["z_loss"] * jnp.sum(jnp.where(kept, lse**2, 0.0)) / jnp.sum(kept)
        return jl.cross_entropy(logits, y, label_smoothing=0.1) + z

    grad = lambda f: jax.value_and_grad(f, argnums=(0, 1, 2))  # noqa: E731
    n, h, v = (64, 32, 1000) if small else (4096, 1024, 32768)
    for dtype in (jnp.float32, jnp.bfloat16):
        args = data(n, h, v, dtype)
        (lf, gf), (ln, gn) = jax.jit(grad(fused))(*args), jax.jit(grad(naive))(*args)
        errs = [
            float(
                jnp.max(jnp.abs(a.astype(jnp.float32) - c.astype(jnp.float32)))
                / float(jnp.max(jnp.abs(c.astype(jnp.float32))))
            )
            for a, c in zip(gf, gn, strict=True)
        ]
        print(
            f"{jnp.dtype(dtype).name}: fused {float(lf):.6f} naive {float(ln):.6f} "
            f"grad rel. max err (x, W, b) {[f'{e:.1e}' for e in errs]}",
            flush=True,
        )

    n, h, v = (256, 64, 4096) if small else (16384, 4096, 131072)
    args = data(n, h, v, jnp.bfloat16)
    for name, f in (("fused", fused), ("naive", naive)):
        ms, temp = timed(grad(f), *args)
        print(f"bf16 N={n} H={h} V={v} {name}: {ms:.1f} ms, XLA temp {temp:.0f} MiB", flush=True)
    del args

    n, c = (256, 4000) if small else (16384, 131072)
    x = jax.random.normal(jax.random.key(1), (n, c)) * 3
    y = jax.random.randint(jax.random.key(2), (n,), 0, c)
    fns = {
        "optax": lambda x: optax.losses.softmax_cross_entropy_with_integer_labels(x, y).mean(),
        "jaxlosses": lambda x: jl.cross_entropy(x, y),
        "jaxlosses smoothing": lambda x: jl.cross_entropy(x, y, label_smoothing=0.1),
        "copy": lambda x: jnp.sum(x + 1.0),
    }
    for name, f in fns.items():
        g = (lambda x, f=f: (jnp.zeros(()), x + 1.0)) if name == "copy" else jax.value_and_grad(f)
        ms, temp = timed(g, x)
        print(f"CE f32 N={n} C={c} {name}: {ms:.2f} ms, XLA temp {temp:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
