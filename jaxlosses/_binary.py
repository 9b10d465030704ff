"""Elementwise binary losses: BCE on probabilities, BCE on logits, sigmoid focal loss.

Each element is an independent binary problem; ``"mean"`` divides by the number of kept
elements whatever the weights (PyTorch's convention for elementwise losses).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses._core import checks, stable
from jaxlosses._core.checks import REDUCTION, hyperparameters, real
from jaxlosses._core.reduction import Unreduced, apply_mask, compute_dtype


def _elementwise_inputs(x, target):
    x = checks.as_float_array("input", x)
    target = checks.as_numeric_array("target", target)
    checks.check_same_shape("input", x, "target", target)
    dtype = compute_dtype(x.dtype)
    return x.astype(dtype), target.astype(dtype), x.dtype


def _broadcast_weight(name: str, weight, shape, dtype) -> jax.Array | None:
    if weight is None:
        return None
    weight = checks.as_float_array(name, weight)
    checks.check_broadcastable(name, weight, shape, to="input")
    return weight.astype(dtype)


def _finish(loss, weight, where, out_dtype) -> Unreduced:
    if weight is not None:
        loss = loss * weight
    mask = checks.as_where(where, loss.shape)
    return Unreduced(apply_mask(loss, mask), mask, None, out_dtype)


# --------------------------------------------------------------------------------------


@hyperparameters(reduction=REDUCTION)
def binary_cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Binary cross-entropy on probabilities (``torch.nn.functional.binary_cross_entropy``).

    .. math::
        \ell = -w \left[ t \max(\log p, -100) + (1 - t) \max(\log(1 - p), -100) \right]

    The logs are clamped at -100 as in PyTorch, so ``p`` exactly 0 or 1 gives a finite
    loss; the gradient is PyTorch's ``(p - t) / max(p (1 - p), 1e-12)``, finite there too.
    Prefer :func:`binary_cross_entropy_with_logits` when you have logits.

    Autodiff: a ``custom_jvp`` rule (forward and reverse mode, any order).

    Args:
      input: probabilities in ``[0, 1]`` (values outside give nan; PyTorch raises).
      target: targets in ``[0, 1]`` of ``input``'s shape (floats, ints or bools).
      weight: optional rescaling weight broadcastable to ``input``.
      reduction: ``"mean"`` (over elements), ``"sum"`` or ``"none"``.
      where: optional boolean mask broadcastable to ``input``.

    Returns:
      A scalar, or elementwise losses for ``reduction="none"``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxlosses
      >>> probs = jax.nn.sigmoid(jnp.full(10, 1.3))
      >>> jaxlosses.binary_cross_entropy(probs, jnp.ones(10)).round(4)
      Array(0.241, dtype=float32)
    """
    p, t, dtype = _elementwise_inputs(input, target)
    w = _broadcast_weight("weight", weight, p.shape, p.dtype)
    return _finish(stable.binary_cross_entropy(p, t), w, where, dtype).reduce(reduction)


# --------------------------------------------------------------------------------------


@hyperparameters(reduction=REDUCTION)
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    reduction: str = "mean",
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Sigmoid binary cross-entropy on logits (``binary_cross_entropy_with_logits``).

    .. math::
        \ell = -w \left[ p_w\, t \log \sigma(x) + (1 - t) \log (1 - \sigma(x)) \right]

    computed as :math:`w[(1 - t)x + (p_w t + 1 - t)\,\mathrm{softplus}(-x)]`, finite
    for any finite ``x`` (1e30 included), with the closed-form gradient
    :math:`w[(p_w t + 1 - t)\sigma(x) - p_w t]`.

    Autodiff: a ``custom_jvp`` rule (forward and reverse mode, any order).

    Args:
      input: logits of any shape.
      target: targets in ``[0, 1]`` of ``input``'s shape (floats, ints or bools).
      weight: optional rescaling weight broadcastable to ``input``.
      pos_weight: optional weight of positive examples, broadcastable to ``input``
        (a ``(C,)`` vector weights the classes on the last axis, as in PyTorch).
      reduction: ``"mean"`` (over elements), ``"sum"`` or ``"none"``.
      where: optional boolean mask broadcastable to ``input``.

    Returns:
      A scalar, or elementwise losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> jaxlosses.binary_cross_entropy_with_logits(jnp.full(10, 1.3), jnp.ones(10)).round(4)
      Array(0.241, dtype=float32)
    """
    x, t, dtype = _elementwise_inputs(input, target)
    w = _broadcast_weight("weight", weight, x.shape, x.dtype)
    pw = _broadcast_weight("pos_weight", pos_weight, x.shape, x.dtype)
    pw = jnp.ones((), x.dtype) if pw is None else pw
    pw = jnp.broadcast_to(pw, x.shape)
    loss = stable.sigmoid_binary_cross_entropy(x, t, pw)
    return _finish(loss, w, where, dtype).reduce(reduction)


# --------------------------------------------------------------------------------------


@hyperparameters(alpha=real(0.0, 1.0, optional=True), gamma=real(low=0.0), reduction=REDUCTION)
def sigmoid_focal_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Sigmoid focal loss, as ``torchvision.ops.sigmoid_focal_loss``.

    .. math::
        p_t = \sigma(x) t + (1 - \sigma(x))(1 - t), \qquad
        \ell = \alpha_t (1 - p_t)^{\gamma}\, \mathrm{BCE}(x, t)

    with :math:`\alpha_t = \alpha t + (1 - \alpha)(1 - t)`, or 1 when ``alpha`` is None
    (torchvision disables it with a negative ``alpha``; here that is an error).
    :math:`1 - p_t` is computed in log space, so value and gradient stay finite for
    ``|x| = 1e30`` and ``0 < gamma < 1``.

    Autodiff: a ``custom_jvp`` rule (forward and reverse mode, any order).

    Args:
      input: logits of any shape.
      target: binary (or soft) targets of ``input``'s shape.
      alpha: weight of positives in ``[0, 1]``, or None for no weighting.
      gamma: focusing parameter ``>= 0``.
      reduction: ``"mean"`` (over elements), ``"sum"`` or ``"none"``.
      where: optional boolean mask broadcastable to ``input``.

    Returns:
      A scalar, or elementwise losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> jaxlosses.sigmoid_focal_loss(jnp.array([3.0, -3.0]), jnp.array([1.0, 1.0]),
      ...                              reduction="none").round(6)
      Array([2.7000e-05, 6.9157e-01], dtype=float32)

    References:
      Lin et al., "Focal Loss for Dense Object Detection",
      https://arxiv.org/abs/1708.02002
    """
    x, t, dtype = _elementwise_inputs(input, target)
    loss = stable.sigmoid_focal(x, t, jnp.asarray(gamma, x.dtype))
    alpha_t = None
    if alpha is not None:
        a = jnp.asarray(alpha, x.dtype)
        alpha_t = a * t + (1 - a) * (1 - t)
    return _finish(loss, alpha_t, where, dtype).reduce(reduction)
