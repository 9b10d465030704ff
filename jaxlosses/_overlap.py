r"""Set-overlap losses over a whole batch: soft macro F1 and soft Dice.

Both compare the softmax probabilities ``p`` with one-hot (or soft) targets ``y`` through
per-class soft counts summed over every item of the batch (and spatial positions):

.. math::
    TP_c = \sum_n p_{n,c} y_{n,c}, \quad FP_c = \sum_n p_{n,c} (1 - y_{n,c}), \quad
    FN_c = \sum_n (1 - p_{n,c}) y_{n,c}

so they return one scalar per batch, not per example. Zero denominators (a class that
is absent from both predictions and targets, with ``eps``/``smooth`` 0, or a batch
that is entirely masked) give 0 with a zero gradient, never nan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses._core import stable
from jaxlosses._core.checks import hyperparameters, real
from jaxlosses._core.classes import class_inputs, class_labels
from jaxlosses._core.reduction import safe_divide


def _probs_and_targets(logits, target, axis, where):
    """Softmax probabilities and targets, class axis last, masked items zeroed."""
    inputs, axis = class_inputs("input", logits, axis, where)
    x = inputs.x
    targets = jnp.asarray(target)
    if jnp.issubdtype(targets.dtype, jnp.integer):
        lab = class_labels(inputs, targets, axis, ignore_index=None, name="target")
        y = lab.one_hot(inputs.num_classes, x.dtype, like=x)
        # A label outside [0, C) has no one-hot entry: make the loss nan, as elsewhere.
        bad = jnp.any(lab.out_of_range)
        y = jnp.where(bad, jnp.full_like(y, jnp.nan), y)
    elif jnp.issubdtype(targets.dtype, jnp.floating):
        if targets.shape != jnp.shape(logits):
            raise ValueError(
                "a floating target must have the input's shape: got "
                f"target.shape={targets.shape} for input.shape={jnp.shape(logits)}"
            )
        y = jnp.moveaxis(targets, axis, -1).astype(x.dtype)
    else:
        raise TypeError(
            "target must be integer class indices or floating one-hot/soft targets, got "
            f"dtype {targets.dtype}"
        )
    p = stable.softmax(x, -1)
    if inputs.mask is not None:
        keep = inputs.mask[..., None]
        p = jnp.where(keep, p, jnp.zeros_like(p))
        y = jnp.where(keep, y, jnp.zeros_like(y))
    return p, y, inputs.dtype


def _sum_items(a: jax.Array) -> jax.Array:
    return jnp.sum(a, axis=tuple(range(a.ndim - 1)))


def _clamp(x: jax.Array, low: float, high: float) -> jax.Array:
    # torch.clamp's gradient: 1 on the closed interval [low, high], 0 outside.
    inside = (x >= low) & (x <= high)
    return jnp.where(inside, x, jnp.where(x < low, low, high).astype(x.dtype))


@hyperparameters(eps=real(0.0, 0.5))
def f1_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    eps: float = 1e-7,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""One minus the soft macro F1 score of a batch (a differentiable macro F1).

    With soft counts over the batch (see the module docstring),

    .. math::
        P_c = \frac{TP_c}{TP_c + FP_c + \epsilon}, \quad
        R_c = \frac{TP_c}{TP_c + FN_c + \epsilon}, \quad
        F1_c = \mathrm{clamp}\!\left(\frac{2 P_c R_c}{P_c + R_c + \epsilon},
               \epsilon, 1 - \epsilon\right), \quad
        \ell = 1 - \frac{1}{C} \sum_c F1_c

    Autodiff: plain JAX operations with zero-safe divisions; every mode, any order.

    Args:
      input: logits (unnormalised scores) with the class axis ``axis``.
      target: integer class indices (the input's shape without ``axis``) or floating
        one-hot/soft targets of the input's shape.
      eps: the smoothing and clamping constant :math:`\epsilon \in [0, 0.5]`.
      axis: the class axis.
      where: optional boolean mask broadcastable to the items; False items are left out
        of every count.

    Returns:
      A scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> logits = jnp.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]])
      >>> jaxlosses.f1_loss(logits, jnp.array([0, 1, 2])).round(4)
      Array(0.0353, dtype=float32)

    References:
      The soft F1 of https://gist.github.com/SuperShinyEyes/dcc68a08ff8b615442e3bc6a9b55a354
      (precision and recall from per-class soft counts, clamped F1)
    """
    p, y, dtype = _probs_and_targets(input, target, axis, where)
    tp = _sum_items(p * y)
    fp = _sum_items(p * (1 - y))
    fn = _sum_items((1 - p) * y)
    e = jnp.asarray(eps, p.dtype)
    precision = safe_divide(tp, tp + fp + e)
    recall = safe_divide(tp, tp + fn + e)
    f1 = safe_divide(2 * precision * recall, precision + recall + e)
    f1 = _clamp(f1, eps, 1 - eps)
    return (1 - jnp.mean(f1)).astype(dtype)


@hyperparameters(smooth=real(low=0.0))
def dice_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    smooth: float = 1.0,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""One minus the soft multi-class Dice coefficient of a batch.

    With soft counts over the batch (and spatial positions),

    .. math::
        \mathrm{Dice}_c = \frac{2\, TP_c + s}{\sum_n p_{n,c} + \sum_n y_{n,c} + s},
        \qquad \ell = 1 - \frac{1}{C} \sum_c \mathrm{Dice}_c

    ``optax.losses.dice_loss`` (``alpha = beta = 0.5``) writes the same ratio with
    ``smooth`` on both halves: ``dice_loss(x, y, smooth=2 * s)`` here equals
    ``optax.losses.dice_loss(x, one_hot(y), smooth=s, axis=<all item axes>)``.

    Autodiff: plain JAX operations with zero-safe divisions; every mode, any order.

    Args:
      input: logits (unnormalised scores) with the class axis ``axis``.
      target: integer class indices (the input's shape without ``axis``) or floating
        one-hot/soft targets of the input's shape.
      smooth: additive smoothing :math:`s \ge 0` of numerator and denominator.
      axis: the class axis.
      where: optional boolean mask broadcastable to the items.

    Returns:
      A scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> logits = jnp.array([[4.0, 0.0], [0.0, 4.0]])
      >>> jaxlosses.dice_loss(logits, jnp.array([0, 1])).round(4)
      Array(0.012, dtype=float32)

    References:
      Milletari et al., "V-Net", https://arxiv.org/abs/1606.04797
    """
    p, y, dtype = _probs_and_targets(input, target, axis, where)
    s = jnp.asarray(smooth, p.dtype)
    inter = _sum_items(p * y)
    denom = _sum_items(p) + _sum_items(y) + s
    dice = safe_divide(2 * inter + s, denom)
    return (1 - jnp.mean(dice)).astype(dtype)
