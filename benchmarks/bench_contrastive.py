"""Contrastive losses: time and XLA temp memory against the naive B x B formulas.

For each size (B pairs, D features), forward + backward (gradients of both feature
matrices and of the learned scalars) of the mean loss, in this process, interleaved:

* ``jaxlosses``: ``clip_loss``, ``siglip_loss``, ``info_nce`` (in-batch negatives) and
  ``supervised_contrastive_loss`` (chunked, custom VJP);
* ``naive``: the same formulas in ``jax.numpy`` on the whole ``B x B`` logits
  (``logit_scale * a @ b.T``; optax's cross-entropy for CLIP and InfoNCE, big_vision's
  ``log_sigmoid`` for SigLIP, SupContrast's masked log-softmax for SupCon);
* ``2 x linear_cross_entropy`` (CLIP only): ``jaxlosses.linear_cross_entropy`` of the scaled
  features in each direction, the fused cross-entropy reused as is;
* ``torch``: open_clip's ``ClipLoss`` / ``SigLipLoss`` formulas in PyTorch (CPU, eager).

Time is the median of interleaved repeats after a warm-up; XLA temp memory is
``jax.jit(f).lower(...).compile().memory_analysis().temp_size_in_bytes``.

Run:  python benchmarks/bench_contrastive.py [--sizes 8192,256] [--repeats 5]
                                             [--losses clip siglip] [--json out.json]
Prints a markdown table. Timings are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

MIB = 2**20
LOSSES = ("clip", "siglip", "info_nce", "supcon")


def _inputs(b, d, seed=0):
    r = np.random.default_rng(seed)
    img = r.standard_normal((b, d)).astype(np.float32)
    txt = (img + 0.5 * r.standard_normal((b, d))).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    labels = r.integers(0, max(2, b // 4), size=b)
    return img, txt, labels


def _jax_fns(loss, labels):
    """name -> f(img, txt, scale, bias) for one loss (value_and_grad in every argument)."""
    import jax
    import jax.numpy as jnp
    import optax

    import jaxlosses as jl

    y = jnp.asarray(labels, jnp.int32)

    def logits(a, b, s):
        return s * jnp.matmul(a, b.T, preferred_element_type=jnp.float32)

    if loss == "clip":

        def ours(a, b, s, c):
            return jl.clip_loss(a, b, s)

        def naive(a, b, s, c):
            x = logits(a, b, s)
            lab = jnp.arange(a.shape[0])
            ce = optax.softmax_cross_entropy_with_integer_labels
            return (ce(x, lab).mean() + ce(x.T, lab).mean()) / 2

        def fused(a, b, s, c):
            lab = jnp.arange(a.shape[0])
            return (
                jl.linear_cross_entropy(s * a, b, lab) + jl.linear_cross_entropy(s * b, a, lab)
            ) / 2

        fns = {"jaxlosses": ours, "naive": naive, "2 x linear_cross_entropy": fused}
    elif loss == "siglip":

        def ours(a, b, s, c):
            return jl.siglip_loss(a, b, s, c)

        def naive(a, b, s, c):
            x = logits(a, b, s) + c
            z = 2 * jnp.eye(a.shape[0]) - 1
            return -jnp.sum(jax.nn.log_sigmoid(z * x)) / a.shape[0]

        fns = {"jaxlosses": ours, "naive": naive}
    elif loss == "info_nce":

        def ours(a, b, s, c):
            return jl.info_nce(a, b, temperature=0.05)

        def naive(a, b, s, c):
            a = a / jnp.linalg.norm(a, axis=1, keepdims=True)
            b = b / jnp.linalg.norm(b, axis=1, keepdims=True)
            x = logits(a, b, 1 / 0.05)
            lab = jnp.arange(a.shape[0])
            return optax.softmax_cross_entropy_with_integer_labels(x, lab).mean()

        fns = {"jaxlosses": ours, "naive": naive}
    else:

        def ours(a, b, s, c):
            return jl.supervised_contrastive_loss(a, y, temperature=0.1)

        def naive(a, b, s, c):
            a = a / jnp.linalg.norm(a, axis=1, keepdims=True)
            x = logits(a, a, 1 / 0.1)
            eye = jnp.eye(a.shape[0], dtype=bool)
            pos = (y[:, None] == y[None, :]) & ~eye
            x = x - jax.lax.stop_gradient(jnp.max(x, 1, keepdims=True))
            lp = x - jnp.log(jnp.sum(jnp.where(eye, 0.0, jnp.exp(x)), 1, keepdims=True))
            npos = jnp.maximum(jnp.sum(pos, 1), 1)
            return -jnp.mean(jnp.sum(jnp.where(pos, lp, 0.0), 1) / npos)

        fns = {"jaxlosses": ours, "naive": naive}
    argnums = (0, 1, 2, 3) if loss in ("clip", "siglip") else (0, 1)
    return {k: jax.jit(jax.value_and_grad(f, argnums=argnums)) for k, f in fns.items()}


def _torch_step(loss, img, txt):
    if loss not in ("clip", "siglip"):
        return None
    import torch
    import torch.nn.functional as F

    a = torch.from_numpy(img).requires_grad_(True)
    b = torch.from_numpy(txt).requires_grad_(True)
    s = torch.tensor(10.0, requires_grad=True)
    c = torch.tensor(-10.0, requires_grad=True)

    def step():
        for t in (a, b, s, c):
            t.grad = None
        x = s * a @ b.T
        if loss == "clip":
            lab = torch.arange(len(a))
            out = (F.cross_entropy(x, lab) + F.cross_entropy(x.T, lab)) / 2
        else:
            z = 2 * torch.eye(len(a)) - 1
            out = -F.logsigmoid(z * (x + c)).sum() / len(a)
        out.backward()

    return step


def bench(loss, size, repeats):
    import jax

    b, d = size
    img, txt, labels = _inputs(b, d)
    args = (jax.numpy.asarray(img), jax.numpy.asarray(txt), 10.0, -10.0)
    runs, rows = {}, {}
    for name, fn in _jax_fns(loss, labels).items():
        compiled = fn.lower(*args).compile()
        jax.block_until_ready(compiled(*args))  # warm-up
        runs[name] = lambda c=compiled: jax.block_until_ready(c(*args))
        temp = compiled.memory_analysis().temp_size_in_bytes / MIB
        rows[name] = {"temp_mib": temp, "times_s": []}
    step = _torch_step(loss, img, txt)
    if step is not None:
        step()
        runs["torch"] = step
        rows["torch"] = {"temp_mib": None, "times_s": []}
    for _ in range(repeats):  # round-robin, so that load from elsewhere hits all alike
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            rows[name]["times_s"].append(time.perf_counter() - t0)
    for row in rows.values():
        row["time_ms"] = 1e3 * float(np.median(row["times_s"]))
    return rows


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(results):
    lines = [
        "| loss | B, D | implementation | time (ms) | time / naive | XLA temp (MiB) "
        "| temp / naive |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for res in results:
        rows = res["rows"]
        naive_t, naive_m = rows["naive"]["time_ms"], rows["naive"]["temp_mib"]
        for name, row in rows.items():
            t, m = row["time_ms"], row["temp_mib"]
            lines.append(
                f"| {res['loss']} | {res['size'][0]}, {res['size'][1]} | {name} "
                f"| {t:.0f} | {t / naive_t:.2f} | {_fmt(m, '.1f')} "
                f"| {_fmt(None if m is None else m / naive_m, '.3f')} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["8192,256"], help="B,D pairs")
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    sizes = [tuple(int(s) for s in spec.split(",")) for spec in args.sizes]
    results = []
    for size in sizes:
        for loss in args.losses:
            print(f"# {loss}, B, D = {size}", file=sys.stderr, flush=True)
            results.append({"loss": loss, "size": size, "rows": bench(loss, size, args.repeats)})

    import jax
    import torch

    meta = {
        "dtype": "float32",
        "repeats": args.repeats,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "torch": torch.__version__,
        "device": str(jax.devices()[0]),
    }
    print(f"\nforward + backward, mean loss, float32, median of {args.repeats} runs; {meta}\n")
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "contrastive": results}, f, indent=1)


if __name__ == "__main__":
    main()
