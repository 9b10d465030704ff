"""Reductions, masks and dtypes: the one place every loss family reduces its output.

Conventions (PyTorch's denominators, optax's masks):

* ``"none"`` returns the unreduced loss; items that are masked (``where=False``) or
  ignored (``ignore_index``) hold ``0``.
* ``"sum"`` adds the unreduced loss.
* ``"mean"`` divides that sum by a denominator: the sum of the per-item weights for
  class-index targets with a class ``weight`` (PyTorch's weighted mean), otherwise the
  number of kept items. A mean over nothing (every item ignored or masked) is ``0``
  with a zero gradient rather than PyTorch's ``nan``.
* ``"batchmean"`` (``kl_div``'s) divides the sum by the batch size ``loss.shape[0]``.

Sums are accumulated in float32 (or float64 when the input is float64); the result is
cast back to the input's dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlosses._core import checks


def compute_dtype(dtype) -> jnp.dtype:
    """The dtype losses are computed in: float32 for 16-bit floats, else the input's."""
    dtype = jnp.dtype(dtype)
    if jnp.finfo(dtype).bits < 32:
        return jnp.dtype(jnp.float32)
    return dtype


def safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """``numerator / denominator`` with ``0`` (and a zero gradient) where the denominator is 0."""
    zero = denominator == 0
    return jnp.where(zero, 0.0, numerator / jnp.where(zero, 1.0, denominator))


def apply_mask(loss: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Zeroes masked entries; a ``where`` keeps NaNs of masked entries out of the gradient."""
    if mask is None:
        return loss
    return jnp.where(mask, loss, jnp.zeros((), loss.dtype))


def reduce_loss(
    loss: jax.Array,
    reduction: str,
    *,
    mask: jax.Array | None = None,
    denominator: jax.Array | None = None,
    out_dtype=None,
    axis_name=None,
) -> jax.Array:
    """Reduces an unreduced loss.

    Args:
      loss: the unreduced loss, already zero where ``mask`` is False.
      reduction: ``"mean"``, ``"sum"``, ``"none"``, ``"batchmean"`` (PyTorch's
        ``kl_div``: the sum over ``loss.shape[0]``, or over the kept rows with a mask; the
        sum for a scalar), or ``checks.PER_EXAMPLE`` (the mean over the kept items,
        whatever the ``denominator``: one example's loss, exactly the unreduced loss for a
        one-item example).
      mask: optional boolean array of ``loss``'s shape; the kept items.
      denominator: optional per-item weights whose sum divides a ``"mean"`` (they must
        already be zero for dropped items). Defaults to the count of kept items.
      out_dtype: dtype of the result (defaults to ``loss.dtype``).
      axis_name: inside ``shard_map``, the mesh axis (or tuple of axes) the items are
        sharded over: the sum, and the mean's denominator, are summed over it with one
        ``psum``, so ``"mean"`` is the global sum over the global denominator (not a
        mean of per-shard means). Ignored for ``"none"``.
    """
    out_dtype = loss.dtype if out_dtype is None else out_dtype
    if reduction is checks.PER_EXAMPLE:
        if loss.ndim == 0:
            return loss.astype(out_dtype)
        reduction, denominator = "mean", None
    checks.check_reduction(reduction, allowed=(*checks.REDUCTIONS, "batchmean"))
    if reduction == "none":
        return loss.astype(out_dtype)
    acc = compute_dtype(loss.dtype)
    total = jnp.sum(loss, dtype=acc)
    if reduction == "sum" or (reduction == "batchmean" and loss.ndim == 0):
        if axis_name is not None:
            total = jax.lax.psum(total, axis_name)
        return total.astype(out_dtype)
    if denominator is not None:
        count = jnp.sum(denominator, dtype=acc)
    elif mask is not None:
        count = jnp.sum(mask, dtype=acc)
    else:
        count = jnp.asarray(loss.size, acc)
    if reduction == "batchmean":
        # PyTorch's batchmean: the sum over the batch size loss.shape[0]. With a mask, the
        # kept elements counted in rows (kept / elements per row): rows masked whole
        # leave the denominator, as items do from a "mean".
        count = count / max(loss.size // max(loss.shape[0], 1), 1)
    if axis_name is not None:
        total, count = jax.lax.psum(jnp.stack([total, count]), axis_name)
    return safe_divide(total, count).astype(out_dtype)


class Unreduced(NamedTuple):
    """A family's unreduced loss and what its reductions need.

    Attributes:
      loss: per-item losses, zero for dropped items, in the compute dtype.
      mask: boolean array of kept items (``None``: every item is kept).
      denominator: per-item weights that a ``"mean"`` divides by (``None``: the count
        of kept items).
      dtype: the dtype the result is returned in (the input's).
    """

    loss: jax.Array
    mask: jax.Array | None
    denominator: jax.Array | None
    dtype: jnp.dtype

    def reduce(self, reduction: str, *, axis_name=None) -> jax.Array:
        """Reduces with :func:`reduce_loss`; ``axis_name`` makes the reduction global."""
        return reduce_loss(
            self.loss,
            reduction,
            mask=self.mask,
            denominator=self.denominator,
            out_dtype=self.dtype,
            axis_name=axis_name,
        )
