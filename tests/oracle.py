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


# --------------------------------------------------------------------------------------
# Contrastive losses in PyTorch, as their reference implementations compute them
# (open_clip's ClipLoss and SigLipLoss, info-nce-pytorch's info_nce, SupContrast's
# SupConLoss). ``where`` keeps a sub-batch: the loss of the kept items alone, with 0 for
# dropped items under reduction="none".


def _torch_kept(n, where):
    return torch.arange(n) if where is None else torch.nonzero(torch.as_tensor(where))[:, 0]


def _torch_reduce(per_item, idx, n, reduction):
    if reduction == "mean":
        return per_item.mean() if len(per_item) else per_item.sum()
    if reduction == "sum":
        return per_item.sum()
    return torch.zeros(n, dtype=per_item.dtype).index_put((idx,), per_item)


def torch_clip_loss(a, b, scale, label_smoothing=0.0, where=None, reduction="mean"):
    """open_clip's ClipLoss: the mean of the two directions' cross-entropies."""
    F = torch.nn.functional
    idx = _torch_kept(len(a), where)
    x = scale * a[idx] @ b[idx].T
    labels = torch.arange(len(idx))
    i2t = F.cross_entropy(x, labels, label_smoothing=label_smoothing, reduction="none")
    t2i = F.cross_entropy(x.T, labels, label_smoothing=label_smoothing, reduction="none")
    return _torch_reduce((i2t + t2i) / 2, idx, len(a), reduction)


def torch_siglip_loss(a, b, scale, bias, where=None, reduction="mean"):
    """open_clip's SigLipLoss (big_vision's sigmoid loss): per image, the sum over texts."""
    F = torch.nn.functional
    idx = _torch_kept(len(a), where)
    x = scale * a[idx] @ b[idx].T + bias
    z = 2 * torch.eye(len(idx)) - 1
    return _torch_reduce(-F.logsigmoid(z * x).sum(1), idx, len(a), reduction)


def torch_info_nce(q, k, negatives=None, temperature=0.1, where=None, reduction="mean"):
    """info-nce-pytorch's info_nce (negative_mode "unpaired" for (M, D), "paired" for 3-D)."""
    F = torch.nn.functional
    n_items, idx = len(q), _torch_kept(len(q), where)
    q, k = F.normalize(q[idx], dim=-1), F.normalize(k[idx], dim=-1)
    if negatives is None:
        logits, labels = q @ k.T, torch.arange(len(q))
    else:
        n = F.normalize(negatives if negatives.ndim == 2 else negatives[idx], dim=-1)
        pos = torch.sum(q * k, dim=1, keepdim=True)
        neg = q @ n.T if n.ndim == 2 else (q.unsqueeze(1) @ n.transpose(-2, -1)).squeeze(1)
        logits, labels = torch.cat([pos, neg], dim=1), torch.zeros(len(q), dtype=torch.long)
    per = F.cross_entropy(logits / temperature, labels, reduction="none")
    return _torch_reduce(per, idx, n_items, reduction)


def torch_supcon(features, labels, temperature=0.1, where=None, reduction="mean"):
    """SupContrast's SupConLoss (contrast_mode "all", one view) on F.normalize(features)."""
    F = torch.nn.functional
    idx = _torch_kept(len(features), where)
    f = F.normalize(features[idx], dim=-1)
    y = torch.as_tensor(labels)[idx]
    mask = (y[:, None] == y[None, :]).float()
    x = f @ f.T / temperature
    x = x - x.max(dim=1, keepdim=True)[0].detach()
    not_self = 1 - torch.eye(len(idx))
    mask = mask * not_self
    log_prob = x - torch.log((torch.exp(x) * not_self).sum(1, keepdim=True))
    num_pos = mask.sum(1)
    num_pos = torch.where(num_pos < 1e-6, torch.ones_like(num_pos), num_pos)
    per = -(mask * log_prob).sum(1) / num_pos
    return _torch_reduce(per, idx, len(features), reduction)
