"""Fused linear + cross-entropy: time and memory against the naive path and PyTorch.

For each size (N tokens, H features, V classes), forward + backward of the mean loss:

* in this process: median time (interleaved repeats after a warm-up) and XLA temp memory
  (``compiled.memory_analysis().temp_size_in_bytes``) of ``jaxlosses.linear_cross_entropy``,
  of the naive ``x @ W.T`` + ``optax.softmax_cross_entropy_with_integer_labels``, and of
  three plain GEMMs of the same sizes (the floor: logits, ``G @ W``, ``G.T @ x``);
* in fresh subprocesses: median time and peak RSS (``VmHWM``, else ``getrusage``) of
  jaxlosses, naive JAX, PyTorch's chunked path (``options=LinearCrossEntropyOptions()``)
  and its reference path (``options=None``). Peak RSS counts the libraries, the inputs
  and the gradients too; "RSS over start" subtracts the RSS after imports and inputs.

Run:  python benchmarks/bench_fused.py [--sizes 2048,512,32768 4096,1024,65536]
                                      [--repeats 5] [--dtype float32] [--json out.json]
Prints a markdown table. Timings are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np

MIB = 2**20
DEFAULT_SIZES = ["2048,512,32768", "4096,1024,65536"]
JAX_IMPLS = ("jaxlosses", "naive", "gemms")
RSS_IMPLS = ("jaxlosses", "naive", "torch_chunked", "torch_reference")


def _inputs(n, h, v, seed=0):
    r = np.random.default_rng(seed)
    x = (r.standard_normal((n, h)) / np.sqrt(h)).astype(np.float32)
    w = (r.standard_normal((v, h)) / np.sqrt(h)).astype(np.float32)
    y = r.integers(0, v, size=n).astype(np.int64)
    return x, w, y


# --------------------------------------------------------------------------------------
# JAX


def _jax_step(impl, y, dtype):
    import jax
    import jax.numpy as jnp
    import optax

    import jaxlosses as jl

    y = jnp.asarray(y, jnp.int32)

    def fused(x, w):
        return jl.linear_cross_entropy(x, w, y)

    def naive(x, w):
        logits = jnp.matmul(x, w.T, preferred_element_type=jnp.float32)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean().astype(x.dtype)

    def gemms(x, w):
        g = x @ w.T
        return g @ w, g.T @ x

    if impl == "gemms":
        return jax.jit(gemms)
    return jax.jit(jax.value_and_grad({"jaxlosses": fused, "naive": naive}[impl], argnums=(0, 1)))


def _to_jax(x, w, dtype):
    import jax.numpy as jnp

    return jnp.asarray(x, dtype), jnp.asarray(w, dtype)


def _time(fn, args, repeats):
    import jax

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return times


def bench_jax_in_process(size, repeats, dtype):
    """Temp memory and interleaved timings of the JAX implementations."""
    import jax

    n, h, v = size
    x, w, y = _inputs(n, h, v)
    args = _to_jax(x, w, dtype)
    compiled, out = {}, {}
    for impl in JAX_IMPLS:
        c = _jax_step(impl, y, dtype).lower(*args).compile()
        jax.block_until_ready(c(*args))  # warm-up
        compiled[impl] = c
        out[impl] = {"temp_mib": c.memory_analysis().temp_size_in_bytes / MIB, "times_s": []}
    for _ in range(repeats):  # round-robin, so that load from elsewhere hits all alike
        for impl, c in compiled.items():
            out[impl]["times_s"] += _time(c, args, 1)
    return out


# --------------------------------------------------------------------------------------
# Fresh-process workers (peak RSS)


def _peak_rss_mib():
    """This process's peak resident set size.

    Linux's ``ru_maxrss`` survives ``exec``: a worker started from a large parent would
    report the parent's peak. ``VmHWM`` belongs to the new address space.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (MIB if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux


def worker(impl, size, repeats, dtype):
    n, h, v = size
    x, w, y = _inputs(n, h, v)
    if impl.startswith("torch"):
        import torch
        import torch.nn.functional as F

        tdtype = getattr(torch, dtype)
        xt = torch.from_numpy(x).to(tdtype).requires_grad_(True)
        wt = torch.from_numpy(w).to(tdtype).requires_grad_(True)
        yt = torch.from_numpy(y)
        options = torch.nn.LinearCrossEntropyOptions() if impl == "torch_chunked" else None

        def step():
            xt.grad = wt.grad = None
            F.linear_cross_entropy(xt, wt, yt, options=options).backward()

        base = _peak_rss_mib()
        step()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    else:
        fn = _jax_step(impl, y, dtype)
        args = _to_jax(x, w, dtype)
        base = _peak_rss_mib()
        import jax

        jax.block_until_ready(fn(*args))  # compile and warm up
        times = _time(fn, args, repeats)
    return {"impl": impl, "times_s": times, "peak_rss_mib": _peak_rss_mib(), "base_rss_mib": base}


def run_worker(impl, size, repeats, dtype):
    cmd = [sys.executable, __file__, "--worker", impl, "--sizes", ",".join(map(str, size))]
    cmd += ["--repeats", str(repeats), "--dtype", dtype]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"impl": impl, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------
# Report


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(results):
    lines = [
        "| N, H, V | implementation | time (ms) | time / naive | XLA temp (MiB) "
        "| temp / naive | peak RSS (MiB) | RSS over start (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        size = ", ".join(map(str, res["size"]))
        rows = res["rows"]
        naive_t = rows["naive"]["time_ms"]
        naive_m = rows["naive"].get("temp_mib")
        for impl, row in rows.items():
            t, m = row.get("time_ms"), row.get("temp_mib")
            lines.append(
                f"| {size} | {impl} | {_fmt(t, '.1f')} "
                f"| {_fmt(None if t is None else t / naive_t, '.2f')} | {_fmt(m, '.1f')} "
                f"| {_fmt(None if m is None else m / naive_m, '.3f')} "
                f"| {_fmt(row.get('peak_rss_mib'), '.0f')} "
                f"| {_fmt(row.get('rss_growth_mib'), '.0f')} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="N,H,V triples")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--no-rss", action="store_true", help="skip the subprocess runs")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [tuple(int(s) for s in spec.split(",")) for spec in args.sizes]

    if args.worker:
        print(json.dumps(worker(args.worker, sizes[0], args.repeats, args.dtype)))
        return

    results = []
    for size in sizes:
        print(f"# N, H, V = {size}", file=sys.stderr, flush=True)
        jax_res = bench_jax_in_process(size, args.repeats, args.dtype)
        rows = {}
        for impl, r in jax_res.items():
            rows[impl] = {"time_ms": 1e3 * float(np.median(r["times_s"])), **r}
        if not args.no_rss:
            for impl in RSS_IMPLS:
                w = run_worker(impl, size, args.repeats, args.dtype)
                row = rows.setdefault(impl, {})
                row["subprocess"] = w
                row["peak_rss_mib"] = w.get("peak_rss_mib")
                if "base_rss_mib" in w:
                    row["rss_growth_mib"] = w["peak_rss_mib"] - w["base_rss_mib"]
                if impl.startswith("torch") and "times_s" in w:
                    row["time_ms"] = 1e3 * float(np.median(w["times_s"]))
        results.append({"size": size, "rows": rows})

    import jax
    import torch

    meta = {
        "dtype": args.dtype,
        "repeats": args.repeats,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": __import__("os").cpu_count(),
        "jax": jax.__version__,
        "torch": torch.__version__,
        "device": str(jax.devices()[0]),
    }
    print(f"\nforward + backward, mean loss, {args.dtype}, median of {args.repeats} runs; {meta}\n")
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
