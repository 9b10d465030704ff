"""CLIP and SigLIP with the batch split over devices, inside ``jax.shard_map``.

Each device holds its slice of the image and text features (the rows of the batch that
``shard_map`` gives it); the loss is the one-device loss of the whole batch, the same
value on every device, and the gradients of each device's features are those of the
one-device loss.

* :func:`clip_loss` gathers every device's features (``all_gather``; its transpose, a
  reduce-scatter, sends each feature's gradient back to its owner, as open_clip's
  ``gather_with_grad``) and computes the cross-entropies of its own rows against the whole
  batch, image-to-text and text-to-image, in chunks.
* :func:`siglip_loss` never gathers: the text features travel around a ring of devices
  (``ppermute``), and each device adds the loss of its images against the chunk it holds
  (big_vision's and open_clip's chunked sigmoid loss). For ``"mean"`` and ``"sum"`` the
  gradient of each chunk is computed in the same pass and travels with the chunk, one
  more step taking it home, so no device ever holds more than its own slice and one
  other device's slice of the text features (and their gradients).
"""

from __future__ import annotations

import functools
from collections.abc import Hashable

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxlosses._contrastive import (
    CHUNK_SIZE,
    LseConfig,
    SigmoidConfig,
    item_mask,
    lse_stats,
    negative_sigmoid_stats,
    paired_features,
    row_dot,
    row_statistics,
    scalar_input,
)
from jaxlosses._core import checks
from jaxlosses._core.checks import REDUCTION, hyperparameters, real
from jaxlosses._core.reduction import Unreduced, compute_dtype, safe_divide
from jaxlosses._core.sharding import vary_together

AxisName = Hashable | tuple[Hashable, ...]


def _axes(axis_name) -> tuple:
    return tuple(axis_name) if isinstance(axis_name, tuple | list) else (axis_name,)


def _axis_size(axes: tuple) -> int:
    return int(lax.psum(1, axes))


def _scalar_reduction(reduction) -> bool:
    return reduction in ("mean", "sum")


def _item_weights(reduction, kept, axes, acc):
    """1 (sum) or 1 / the global kept count (mean) per kept local item, else 0."""
    w = kept.astype(acc)
    if reduction == "mean":
        w = safe_divide(w, lax.psum(jnp.sum(w), axes))
    return w


# --------------------------------------------------------------------------------------
# CLIP: gather the features


@hyperparameters(label_smoothing=real(0.0, 1.0), reduction=REDUCTION, chunk_size=CHUNK_SIZE)
def clip_loss(
    image_features: ArrayLike,
    text_features: ArrayLike,
    logit_scale: ArrayLike,
    *,
    axis_name: AxisName,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    chunk_size: int | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r""":func:`jaxlosses.clip_loss` of a batch split over ``axis_name``, inside ``shard_map``.

    Each device passes its ``(n, D)`` slice of the image and text features (the global
    batch is the concatenation of the slices in the order of the mesh axis); the result is
    :func:`jaxlosses.clip_loss` of the whole batch. The features are gathered with
    ``all_gather`` (open_clip's ``gather_with_grad=True, local_loss=True``): each device
    computes the image-to-text cross-entropies of its images and the text-to-image ones
    of its texts against the whole batch, in chunks, and one ``psum`` adds the sums. The
    gradient of every gathered feature returns to its owner through the gather's transpose
    (a reduce-scatter), so each device's feature gradients are those of the one-device loss.

    Args:
      image_features: this device's ``(n, D)`` image embeddings.
      text_features: this device's ``(n, D)`` text embeddings.
      logit_scale: the scalar multiplier (replicated).
      axis_name: the mesh axis (or tuple of axes) the batch is split over.
      label_smoothing: :math:`\varepsilon \in [0, 1]`, over the whole batch.
      reduction: ``"mean"`` or ``"sum"`` (the global value, on every device), or
        ``"none"`` (this device's ``(n,)`` items).
      chunk_size: rows per chunk; None picks one.
      where: this device's ``(n,)`` slice of the mask of kept items.

    Returns:
      The global loss (a scalar, equal on every device), or this device's per-item losses.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax.sharding import PartitionSpec as P
      >>> import jaxlosses
      >>> mesh = jax.make_mesh((jax.device_count(),), ("data",),
      ...                      axis_types=(jax.sharding.AxisType.Auto,))
      >>> img = jax.random.normal(jax.random.key(0), (8, 4))
      >>> txt = jax.random.normal(jax.random.key(1), (8, 4))
      >>> loss = jax.shard_map(
      ...     lambda i, t: jaxlosses.sharded.clip_loss(i, t, 2.0, axis_name="data"),
      ...     mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P())
      >>> bool(jnp.allclose(loss(img, txt), jaxlosses.clip_loss(img, txt, 2.0)))
      True
    """
    a, b, dtype = paired_features("image_features", image_features, "text_features", text_features)
    acc = compute_dtype(dtype)
    axes = _axes(axis_name)
    scale = scalar_input("logit_scale", logit_scale, dtype)
    n = a.shape[0]
    kept = item_mask(where, n)
    all_a = lax.all_gather(a, axes, tiled=True)
    all_b = lax.all_gather(b, axes, tiled=True)
    all_kept = lax.all_gather(kept, axes, tiled=True) if where is not None else None
    smoothing = checks.concrete_scalar(label_smoothing) != 0  # traced: on
    cfg = LseConfig(col_mask=where is not None, extra=False, row_sum=smoothing)
    stats = functools.partial(lse_stats, cfg)
    eps = lax.stop_gradient(jnp.asarray(label_smoothing, acc))
    num_kept = lax.psum(jnp.sum(kept, dtype=acc), axes)
    diag = scale * row_dot(a, b)
    if _scalar_reduction(reduction):
        w = _item_weights(reduction, kept, axes, acc)
        weights: tuple[jax.Array, ...] = (0.5 * w,)
        if smoothing:
            weights += (-0.5 * w * eps / jnp.maximum(num_kept, 1.0),)
        total = sum(
            row_statistics(
                stats, rows_, cols_, None, all_kept, scale, weights=weights, chunk_size=chunk_size
            )
            for rows_, cols_ in ((a, all_b), (b, all_a))
        )
        total = total - (1 - eps) * jnp.sum(w * diag)
        return lax.psum(total, axes).astype(dtype)
    i2t = row_statistics(stats, a, all_b, None, all_kept, scale, chunk_size=chunk_size)
    t2i = row_statistics(stats, b, all_a, None, all_kept, scale, chunk_size=chunk_size)
    loss = 0.5 * (i2t[0] + t2i[0]) - (1 - eps) * diag
    if smoothing:
        loss = loss - 0.5 * eps * (i2t[1] + t2i[1]) / jnp.maximum(num_kept, 1.0)
    loss = jnp.where(kept, loss, 0.0)
    return Unreduced(loss, kept if where is not None else None, None, dtype).reduce(reduction)


# --------------------------------------------------------------------------------------
# SigLIP: text chunks around a ring of devices


def _ring_perm(size: int) -> list[tuple[int, int]]:
    return [(i, (i + 1) % size) for i in range(size)]


def _chunk_total(chunk_kept, chunk_size, a, chunk, scale, bias, w):
    """``sum_i w_i sum_j softplus(scale <a_i, chunk_j> + bias)`` over kept chunk rows."""
    stats = functools.partial(negative_sigmoid_stats, SigmoidConfig(chunk_kept is not None))
    return row_statistics(
        stats, a, chunk, (), chunk_kept, (scale, bias), weights=(w,), chunk_size=chunk_size
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _ring_total(axes, chunk_size, a, b, kept, w, scale, bias):
    return _ring_total_fwd(axes, chunk_size, a, b, kept, w, scale, bias)[0]


def _ring_total_fwd(axes, chunk_size, a, b, kept, w, scale, bias):
    """The global negative-pair total; every gradient formed on the way round the ring."""
    size = _axis_size(axes)
    perm = _ring_perm(size)
    chunk, chunk_kept = b, kept
    total = jnp.zeros((), w.dtype)
    d_a = d_scale = d_bias = d_chunk = None
    for step in range(size):
        f = functools.partial(_chunk_total, chunk_kept, chunk_size)
        value, vjp = jax.vjp(f, a, chunk, scale, bias, w)
        ga, gc, gs, gb, _ = vjp(jnp.ones_like(value))
        total = total + value
        d_a = ga if d_a is None else d_a + ga
        d_scale = gs if d_scale is None else d_scale + gs
        d_bias = gb if d_bias is None else d_bias + gb
        d_chunk = gc if d_chunk is None else d_chunk + gc
        # The chunk and its gradient move on together; after the last step the gradient
        # takes one more step, home to the chunk's owner.
        if step < size - 1:
            chunk = lax.ppermute(chunk, axes, perm)
            if chunk_kept is not None:
                chunk_kept = lax.ppermute(chunk_kept, axes, perm)
        d_chunk = lax.ppermute(d_chunk, axes, perm)
    total = lax.psum(total, axes)
    return total, (d_a, d_chunk, d_scale, d_bias, kept, w)


def _ring_total_bwd(axes, chunk_size, res, g):
    d_a, d_b, d_scale, d_bias, kept, w = res
    zero_kept = None if kept is None else jnp.zeros(kept.shape, jax.dtypes.float0)
    return (
        (g * d_a).astype(d_a.dtype),
        (g * d_b).astype(d_b.dtype),
        zero_kept,
        jnp.zeros_like(w),
        g * d_scale,
        g * d_bias,
    )


_ring_total.defvjp(_ring_total_fwd, _ring_total_bwd)


@hyperparameters(reduction=REDUCTION, chunk_size=CHUNK_SIZE)
def siglip_loss(
    image_features: ArrayLike,
    text_features: ArrayLike,
    logit_scale: ArrayLike,
    logit_bias: ArrayLike,
    *,
    axis_name: AxisName,
    reduction: str = "mean",
    chunk_size: int | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r""":func:`jaxlosses.siglip_loss` of a batch split over ``axis_name``, inside ``shard_map``.

    The text features travel around a ring of the devices of ``axis_name``: at each of its
    ``S`` steps a device adds the sigmoid loss of its images against the text chunk it
    holds (its own, with the positive pairs, at the first step; negatives only after),
    then passes the chunk on with ``ppermute`` (big_vision's and open_clip's chunked
    SigLIP), so the whole text batch is never gathered. For ``"mean"`` and ``"sum"`` each
    chunk's gradient is computed when the chunk is visited and travels with it, reaching
    its owner after one more step: the backward pass moves nothing. ``"none"`` is
    differentiated through the ring by JAX (its backward pass sends the chunks' gradients
    back along the ring, and keeps the visited chunks as residuals).

    Args:
      image_features: this device's ``(n, D)`` image embeddings.
      text_features: this device's ``(n, D)`` text embeddings.
      logit_scale: the scalar multiplier (replicated).
      logit_bias: the scalar bias (replicated).
      axis_name: the mesh axis (or tuple of axes) the batch is split over.
      reduction: ``"mean"`` or ``"sum"`` (the global value, on every device), or
        ``"none"`` (this device's ``(n,)`` per-image losses).
      chunk_size: rows per chunk within a device; None picks one.
      where: this device's ``(n,)`` slice of the mask of kept items.

    Returns:
      The global loss (a scalar, equal on every device), or this device's per-image
      losses.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax.sharding import PartitionSpec as P
      >>> import jaxlosses
      >>> mesh = jax.make_mesh((jax.device_count(),), ("data",),
      ...                      axis_types=(jax.sharding.AxisType.Auto,))
      >>> img = jax.random.normal(jax.random.key(0), (8, 4))
      >>> txt = jax.random.normal(jax.random.key(1), (8, 4))
      >>> loss = jax.shard_map(
      ...     lambda i, t: jaxlosses.sharded.siglip_loss(i, t, 2.0, -1.0, axis_name="data"),
      ...     mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P())
      >>> bool(jnp.allclose(loss(img, txt), jaxlosses.siglip_loss(img, txt, 2.0, -1.0)))
      True

    References:
      Zhai et al., "Sigmoid Loss for Language Image Pre-Training" (section 3.3, the
      efficient "chunked" implementation), https://arxiv.org/abs/2303.15343
    """
    a, b, dtype = paired_features("image_features", image_features, "text_features", text_features)
    acc = compute_dtype(dtype)
    axes = _axes(axis_name)
    scale = scalar_input("logit_scale", logit_scale, dtype)
    bias = scalar_input("logit_bias", logit_bias, dtype)
    n = a.shape[0]
    kept = item_mask(where, n)
    chunk_kept = kept if where is not None else None
    diag = scale * row_dot(a, b) + bias
    if _scalar_reduction(reduction):
        w = _item_weights(reduction, kept, axes, acc)
        # One type for every input of the ring (varying over the batch axes): the
        # gradients of the replicated scale and bias are per-device shares, summed by the
        # transpose of the cast.
        a_, b_, s_, c_, w_ = vary_together([a, b, scale, bias, w], axes)
        k_ = None if chunk_kept is None else vary_together([chunk_kept], axes)[0]
        total = _ring_total(axes, chunk_size, a_, b_, k_, w_, s_, c_)
        return (total - lax.psum(jnp.sum(w * diag), axes)).astype(dtype)
    size = _axis_size(axes)
    perm = _ring_perm(size)
    stats = functools.partial(negative_sigmoid_stats, SigmoidConfig(where is not None))
    chunk, neg = b, jnp.zeros((n,), acc)
    for step in range(size):
        (s,) = row_statistics(stats, a, chunk, (), chunk_kept, (scale, bias), chunk_size=chunk_size)
        neg = neg + s
        if step < size - 1:
            chunk = lax.ppermute(chunk, axes, perm)
            if chunk_kept is not None:
                chunk_kept = lax.ppermute(chunk_kept, axes, perm)
    loss = jnp.where(kept, neg - diag, 0.0)
    return Unreduced(loss, kept if where is not None else None, None, dtype).reduce(reduction)
