"""Helpers that run the same computation in PyTorch and in JAX and compare both."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import torch

RTOL = 1e-5
ATOL = 1e-6


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def torch_value_and_grads(fn, args, diff, cotangent=None):
    """Value of ``fn(*args)`` in PyTorch and the vjp with ``cotangent`` w.r.t. ``diff``."""
    targs = []
    for i, a in enumerate(args):
        if isinstance(a, np.generic):
            a = np.asarray(a)
        if a is None or not isinstance(a, np.ndarray):
            targs.append(a)
            continue
        t = torch.from_numpy(np.array(a))
        if i in diff:
            t.requires_grad_(True)
        targs.append(t)
    out = fn(*targs)
    cot = torch.ones_like(out) if cotangent is None else torch.from_numpy(np.array(cotangent))
    (out * cot).sum().backward()
    grads = [targs[i].grad.numpy() for i in diff]
    return out.detach().numpy(), grads


def jax_value_and_grads(fn, args, diff, cotangent=None):
    """Value of ``fn(*args)`` in JAX and its vjp with ``cotangent`` w.r.t. ``diff``."""
    args = [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]

    def f(*d):
        full = list(args)
        for i, v in zip(diff, d, strict=True):
            full[i] = v
        return fn(*full)

    out, vjp = jax.vjp(f, *[args[i] for i in diff])
    cot = jnp.ones_like(out) if cotangent is None else jnp.asarray(cotangent, out.dtype)
    return np.asarray(out), [np.asarray(g) for g in vjp(cot)]


def assert_matches_torch(jax_fn, torch_fn, args, diff, *, rtol=RTOL, atol=ATOL, seed=0):
    """Asserts equal values and equal gradients (with a random cotangent)."""
    t_out, _ = torch_value_and_grads(torch_fn, args, diff)
    cot = rng(seed + 1000).uniform(0.5, 1.5, size=np.shape(t_out)).astype(np.float32)
    t_out, t_grads = torch_value_and_grads(torch_fn, args, diff, cot)
    j_out, j_grads = jax_value_and_grads(jax_fn, args, diff, cot)
    chex.assert_shape(j_out, t_out.shape)
    chex.assert_trees_all_close(j_out, t_out, rtol=rtol, atol=atol)
    for i, (jg, tg) in enumerate(zip(j_grads, t_grads, strict=True)):
        assert np.all(np.isfinite(jg)), f"non-finite JAX gradient for argument {diff[i]}"
        chex.assert_trees_all_close(jg, tg, rtol=rtol, atol=atol)
    return j_out
