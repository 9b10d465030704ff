"""Multi-label losses: one independent sigmoid per class, averaged per example."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses._core import checks, stable
from jaxlosses._core.checks import REDUCTION, hyperparameters
from jaxlosses._core.reduction import Unreduced, apply_mask, compute_dtype


@hyperparameters(reduction=REDUCTION)
def multilabel_soft_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Multi-label one-versus-all loss (``torch.nn.functional.multilabel_soft_margin_loss``).

    .. math::
        \ell_n = -\frac{1}{C} \sum_c w_c \left[ t_{n,c} \log \sigma(x_{n,c})
                 + (1 - t_{n,c}) \log(1 - \sigma(x_{n,c})) \right]

    One loss per example (the class axis is last); ``"mean"`` averages examples.

    Autodiff: the ``custom_jvp`` rule of :func:`binary_cross_entropy_with_logits`
    (forward and reverse mode, any order).

    Args:
      input: logits of shape ``(..., C)``; unbatched ``(C,)`` works.
      target: 0/1 (or soft) targets of ``input``'s shape.
      weight: optional per-class weight, shape ``(C,)`` or broadcastable to ``input``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-example losses).
      where: optional boolean mask broadcastable to the per-example losses ``(...)``.

    Returns:
      A scalar, or per-example losses of shape ``logits.shape[:-1]``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> logits = jnp.array([[0.5, -1.0, 3.0], [1.5, -2.0, 0.0]])
      >>> labels = jnp.array([[1, 0, 1], [0, 1, 0]])
      >>> weight = jnp.array([0.5, 2.0, 1.5])
      >>> jaxlosses.multilabel_soft_margin_loss(logits, labels, weight=weight).round(4)
      Array(1.1801, dtype=float32)
    """
    logits = checks.as_float_array("input", input)
    target = checks.as_numeric_array("target", target)
    if logits.ndim == 0:
        raise ValueError("input must have a class axis (the last), got a scalar")
    checks.check_same_shape("input", logits, "target", target)
    dtype = compute_dtype(logits.dtype)
    x, t = logits.astype(dtype), target.astype(dtype)
    loss = stable.sigmoid_binary_cross_entropy(x, t, jnp.ones_like(x))
    if weight is not None:
        weight = checks.as_float_array("weight", weight)
        checks.check_broadcastable("weight", weight, x.shape, to="input")
        loss = loss * weight.astype(dtype)
    loss = jnp.mean(loss, axis=-1)
    mask = checks.as_where(where, loss.shape)
    return Unreduced(apply_mask(loss, mask), mask, None, logits.dtype).reduce(reduction)
