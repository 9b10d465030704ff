"""Elementwise regression losses: L1, squared error, Huber and smooth L1, as PyTorch's.

Each element's loss is a function of the error :math:`d = x - y`. ``input`` and
``target`` broadcast as in PyTorch (which warns when their shapes differ; so does this
module, at trace time). The per-element kernels (:func:`absolute_error`,
:func:`squared_error`, :func:`huber`, :func:`smooth_l1`) are named functions of the
error, for other families (optax's and Keras' names) to reuse.

At the kinks the derivatives are PyTorch's: ``sign(0) = 0`` for the absolute value, and
at ``|d| = delta`` (``beta``) the first derivative is ``delta * sign(d)`` (``sign(d)``)
from either side and the second derivative is that of the linear piece, 0.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses._core import stable
from jaxlosses._core.checks import REDUCTION, hyperparameters, real
from jaxlosses._core.elementwise import (
    elementwise_inputs,
    elementwise_weight,
    finish_elementwise,
)
from jaxlosses._core.reduction import Unreduced

# --------------------------------------------------------------------------------------
# per-element kernels of the error d = input - target


def absolute_error(d: jax.Array) -> jax.Array:
    """``|d|``, whose derivative at 0 is PyTorch's ``sign(0) = 0`` (``jnp.abs``'s is 1)."""
    return stable.absolute(d)


def squared_error(d: jax.Array) -> jax.Array:
    """``d ** 2``."""
    return d * d


def huber(d: jax.Array, delta) -> jax.Array:
    r"""Huber's function: ``d**2 / 2`` for ``|d| < delta``, ``delta (|d| - delta / 2)`` beyond.

    ``delta > 0``. At ``|d| = delta`` the value and the first derivative of both pieces
    agree; the second derivative is the linear piece's (0), as in PyTorch.
    """
    a = absolute_error(d)
    delta = jnp.asarray(delta, d.dtype)
    return jnp.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))


def smooth_l1(d: jax.Array, beta) -> jax.Array:
    r"""Smooth L1: ``d**2 / (2 beta)`` for ``|d| < beta``, ``|d| - beta / 2`` beyond.

    ``huber(d, beta) / beta`` for ``beta > 0``, and ``|d|`` for ``beta = 0`` (whose
    quadratic piece is empty; its ``0 / 0`` is kept out of the value and the gradient).
    """
    a = absolute_error(d)
    beta = jnp.asarray(beta, d.dtype)
    safe_beta = jnp.where(beta > 0, beta, jnp.ones_like(beta))
    return jnp.where(a < beta, 0.5 * d * d / safe_beta, a - 0.5 * beta)


def _loss_of_error(kernel, input, target, weight, where, *, weighted_mean=False) -> Unreduced:
    """``weight * kernel(input - target)``, masked, with PyTorch's broadcasting warning."""
    inputs = elementwise_inputs(input, target, warn_broadcast=True)
    w = elementwise_weight(weight, inputs.shape, inputs.input.dtype)
    loss = kernel(inputs.input - inputs.target)
    return finish_elementwise(loss, inputs, weight=w, where=where, weighted_mean=weighted_mean)


# --------------------------------------------------------------------------------------


@hyperparameters(reduction=REDUCTION)
def l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Mean absolute error (``torch.nn.functional.l1_loss``).

    .. math::
        \ell = w\,|x - y|

    With a ``weight``, ``"mean"`` is the weighted mean :math:`\sum w |x - y| / \sum w`
    over the kept elements, as PyTorch 2.13's. The derivative at :math:`x = y` is 0.

    Args:
      input: predictions, any float shape.
      target: targets that broadcast with ``input`` (PyTorch warns when the shapes
        differ, and so does this function).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      weight: optional elementwise rescaling weight, broadcastable to the loss.
      where: optional boolean mask broadcastable to the loss.

    Returns:
      A scalar, or elementwise losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> jaxlosses.l1_loss(jnp.array([1.0, 2.0, 4.0]), jnp.array([1.5, 2.0, 2.0]))
      Array(0.8333333, dtype=float32)
    """
    unreduced = _loss_of_error(absolute_error, input, target, weight, where, weighted_mean=True)
    return unreduced.reduce(reduction)


@hyperparameters(reduction=REDUCTION)
def mse_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Mean squared error (``torch.nn.functional.mse_loss``).

    .. math::
        \ell = w\,(x - y)^2

    With a ``weight``, ``"mean"`` is the weighted mean :math:`\sum w (x - y)^2 / \sum w`
    over the kept elements, as PyTorch 2.13's.

    Args:
      input: predictions, any float shape.
      target: targets that broadcast with ``input`` (PyTorch warns when the shapes
        differ, and so does this function).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      weight: optional elementwise rescaling weight, broadcastable to the loss.
      where: optional boolean mask broadcastable to the loss.

    Returns:
      A scalar, or elementwise losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> jaxlosses.mse_loss(jnp.array([1.0, 2.0, 4.0]), jnp.array([1.5, 2.0, 2.0]))
      Array(1.4166666, dtype=float32)
    """
    unreduced = _loss_of_error(squared_error, input, target, weight, where, weighted_mean=True)
    return unreduced.reduce(reduction)


@hyperparameters(reduction=REDUCTION, delta=real(low=0.0, low_open=True))
def huber_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Huber loss (``torch.nn.functional.huber_loss``): quadratic near 0, linear beyond.

    .. math::
        \ell = w \begin{cases} \tfrac12 (x - y)^2 & |x - y| < \delta \\
        \delta \left(|x - y| - \tfrac12 \delta\right) & \text{otherwise} \end{cases}

    Quadratic for small errors and linear, with slope :math:`\delta`, for large ones, so
    outliers pull on the fit with a bounded force. With a ``weight``, ``"mean"`` divides
    by the number of kept elements (PyTorch 2.13's ``huber_loss``, unlike its ``l1_loss``
    and ``mse_loss``). ``smooth_l1_loss(beta=delta)`` is this loss divided by ``delta``.

    Args:
      input: predictions, any float shape.
      target: targets that broadcast with ``input`` (PyTorch warns when the shapes
        differ, and so does this function).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      delta: the threshold between the quadratic and the linear piece, ``> 0``.
      weight: optional elementwise rescaling weight, broadcastable to the loss.
      where: optional boolean mask broadcastable to the loss.

    Returns:
      A scalar, or elementwise losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> jaxlosses.huber_loss(jnp.array([0.5, 3.0]), jnp.zeros(2), reduction="none")
      Array([0.125, 2.5  ], dtype=float32)

    References:
      Huber, "Robust Estimation of a Location Parameter", Annals of Mathematical
      Statistics 35 (1), 1964, https://doi.org/10.1214/aoms/1177703732
    """
    kernel = functools.partial(huber, delta=delta)
    return _loss_of_error(kernel, input, target, weight, where).reduce(reduction)


@hyperparameters(reduction=REDUCTION, beta=real(low=0.0))
def smooth_l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: str = "mean",
    beta: float = 1.0,
    weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Smooth L1 loss (``torch.nn.functional.smooth_l1_loss``), as in Fast R-CNN.

    .. math::
        \ell = w \begin{cases} \tfrac{1}{2\beta} (x - y)^2 & |x - y| < \beta \\
        |x - y| - \tfrac12 \beta & \text{otherwise} \end{cases}

    An L1 loss whose kink at 0 is rounded off over :math:`|x - y| < \beta`; with
    ``beta=0`` it is :func:`l1_loss` exactly (value and gradient), as PyTorch's. For
    ``beta > 0`` it is :func:`huber_loss` with ``delta=beta`` divided by ``beta``.
    PyTorch 2.13's ``smooth_l1_loss`` has no ``weight``; this one has
    :func:`huber_loss`'s (``"mean"`` divides by the number of kept elements).

    Args:
      input: predictions, any float shape.
      target: targets that broadcast with ``input`` (PyTorch warns when the shapes
        differ, and so does this function).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      beta: the width of the quadratic piece, ``>= 0``.
      weight: optional elementwise rescaling weight, broadcastable to the loss.
      where: optional boolean mask broadcastable to the loss.

    Returns:
      A scalar, or elementwise losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> jaxlosses.smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.zeros(2), reduction="none")
      Array([0.125, 2.5  ], dtype=float32)
      >>> jaxlosses.smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.zeros(2), beta=0.0,
      ...                          reduction="none")
      Array([0.5, 3. ], dtype=float32)

    References:
      Girshick, "Fast R-CNN", https://arxiv.org/abs/1504.08083
    """
    kernel = functools.partial(smooth_l1, beta=beta)
    return _loss_of_error(kernel, input, target, weight, where).reduce(reduction)
