"""optax's classification losses, with optax's names and signatures, on jaxlosses' kernels.

Migrating is a one-line import change::

    import optax.losses as losses                # before
    import jaxlosses.optax_compat as losses      # after

Every function here has the argument names, defaults and output shapes of the
``optax.losses`` function of the same name (optax 0.2.8) and returns the same unreduced,
per-example values, computed by the stable primitives of :mod:`jaxlosses._core.stable`
and the jaxlosses loss functions: closed-form gradients, float32 accumulation for
16-bit inputs, and no nan on finite or masked inputs.

Where optax has a known problem, this module differs on purpose:

* :func:`softmax_cross_entropy`: a ``-inf`` logit (a masked class) with a zero label
  gives a finite loss (optax: nan); this is :func:`safe_softmax_cross_entropy`'s value.
* :func:`softmax_cross_entropy_with_integer_labels`: a label outside ``[0, C)`` gives
  nan (optax reads a wrapped class for negative labels: ``-1`` silently means
  ``C - 1``). With an elementwise ``where``, a label on a masked class gives ``inf``
  (optax: a finite value computed as if the class were not masked).
* :func:`dice_loss`, :func:`binary_dice_loss`: a zero denominator (``smooth=0`` and a
  class absent from both predictions and targets) gives a loss of 1 with a zero gradient
  (optax: nan). ``apply_softmax=False`` does not check that predictions sum to 1 (optax
  checks eagerly, which fails under ``jax.jit`` and, for one-channel binary
  predictions, always: ``optax.losses.binary_dice_loss(..., apply_sigmoid=False)``
  raises).
* :func:`smooth_labels`: an item whose ``where`` is all False gets ``(1 - alpha) *
  labels`` (optax: inf).

``alpha`` and ``gamma`` of :func:`sigmoid_focal_loss` must be scalars (optax also takes
arrays broadcastable to the logits).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses import _binary, _multiclass
from jaxlosses._core import checks, stable
from jaxlosses._core.reduction import compute_dtype, safe_divide

__all__ = [
    "binary_dice_loss",
    "dice_loss",
    "multiclass_generalized_dice_loss",
    "poly_loss_cross_entropy",
    "safe_softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "smooth_labels",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]

Axis = int | tuple[int, ...] | None

# --------------------------------------------------------------------------------------
# optax's class axes: an int, a tuple of axes (flattened into one class axis), or None


def _class_axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, tuple):
        return tuple(checks.normalize_axis(a, ndim) for a in axis)
    return (checks.normalize_axis(axis, ndim),)


def _classes_last(a: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """Moves ``axes`` last, in their given order, and flattens them into one class axis."""
    items = tuple(i for i in range(a.ndim) if i not in axes)
    a = jnp.transpose(a, items + axes)
    return a.reshape(a.shape[: len(items)] + (-1,))


def _class_mask(where, shape: tuple[int, ...], axes: tuple[int, ...]) -> jax.Array | None:
    """optax's ``where``: per item (expanded on the class axes) or per logit."""
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.ndim != len(shape):
        where = jnp.expand_dims(where, axes)
    mask = checks.as_where(where, shape, to="logits")
    assert mask is not None  # where is not None here
    return _classes_last(mask, axes)


def _mask_classes(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Masked classes become ``-inf`` logits, which the stable kernels leave out."""
    if mask is None:
        return x
    return jnp.where(mask, x, jnp.full_like(x, -jnp.inf))


def _distribution_inputs(logits, labels, axis, where):
    """Logits and target distributions with the classes last and masked classes dropped."""
    logits = checks.as_float_array("logits", logits)
    labels = checks.as_numeric_array("labels", labels)
    axes = _class_axes(axis, logits.ndim)
    x = _classes_last(logits, axes)
    q = jnp.broadcast_to(labels, logits.shape).astype(compute_dtype(logits.dtype))
    q = _classes_last(q, axes)
    mask = _class_mask(where, logits.shape, axes)
    if mask is not None:
        q = jnp.where(mask, q, jnp.zeros_like(q))
    return _mask_classes(x, mask), q


# --------------------------------------------------------------------------------------
# softmax cross-entropies


def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Softmax cross-entropy against target distributions (``optax.softmax_cross_entropy``).

    .. math::
        \ell_n = -\sum_c y_{n,c} \log \mathrm{softmax}(x_n)_c

    computed by :func:`jaxlosses.cross_entropy` (closed-form gradient
    :math:`(\sum_c y_c)\,\mathrm{softmax}(x) - y`). Unlike optax, a ``-inf`` logit with
    a zero label contributes 0, not nan.

    Args:
      logits: unnormalised log-probabilities.
      labels: target distributions (e.g. one-hot), broadcastable to ``logits``.
      axis: the class axis, a tuple of axes (flattened into one class axis) or None
        (every axis).
      where: optional boolean mask of the items (the shape without ``axis``) or of the
        logits (the classes left out of the softmax).

    Returns:
      The per-item losses, ``logits``'s shape without ``axis``.

    Example:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> from jaxlosses import optax_compat
      >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
      >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
      >>> print(np.asarray(optax_compat.softmax_cross_entropy(logits, labels)).round(4))
      [0.2761 2.9518]
    """
    x, q = _distribution_inputs(logits, labels, axis, where)
    return _multiclass.cross_entropy(x, q, reduction="none")


def safe_softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    r"""Softmax cross-entropy with :math:`0 \log 0 = 0` (``optax.safe_softmax_cross_entropy``).

    The same function as :func:`softmax_cross_entropy` over the last axis, which is
    already safe for ``-inf`` logits with zero labels.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: target distributions broadcastable to ``logits``.

    Returns:
      The per-item losses, shape ``[...]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses import optax_compat
      >>> logits = jnp.array([1.0, -jnp.inf, 3.0])
      >>> optax_compat.safe_softmax_cross_entropy(logits, jnp.array([1.0, 0.0, 0.0])).round(4)
      Array(2.1269, dtype=float32)
    """
    return softmax_cross_entropy(logits, labels)


def softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: int | tuple[int, ...] = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Softmax cross-entropy of class indices (``softmax_cross_entropy_with_integer_labels``).

    .. math::
        \ell_n = \log \sum_c e^{x_{n,c}} - x_{n, y_n}

    computed by :func:`jaxlosses.cross_entropy` with no ``ignore_index``. Unlike optax,
    a label outside ``[0, C)`` gives nan instead of silently reading a wrapped class
    (optax reads class ``C - 1`` for the label ``-1``).

    Args:
      logits: unnormalised log-probabilities.
      labels: integer class indices, the logits' shape without ``axis``. For a tuple
        of axes, a flat index into the ``logits[axis]`` slice.
      axis: the class axis or a tuple of axes.
      where: optional boolean mask of the items or of the logits (classes left out of
        the normalizer; a label on such a class gives ``inf``). Items with no class
        kept have loss 0.

    Returns:
      The per-item losses, ``labels``'s shape.

    Example:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> from jaxlosses import optax_compat
      >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
      >>> loss = optax_compat.softmax_cross_entropy_with_integer_labels
      >>> print(np.asarray(loss(logits, jnp.array([0, 1]))).round(4))
      [0.2761 2.9518]
      >>> print(np.asarray(loss(logits, jnp.array([0, -1]))).round(4))  # optax: [0.2761 0.6518]
      [0.2761    nan]
    """
    logits = checks.as_float_array("logits", logits)
    axes = _class_axes(axis, logits.ndim)
    mask = _class_mask(where, logits.shape, axes)
    x = _mask_classes(_classes_last(logits, axes), mask)
    item_mask = None if mask is None else jnp.any(mask, axis=-1)
    return _multiclass.cross_entropy(
        x, jnp.asarray(labels), ignore_index=None, reduction="none", where=item_mask
    )


def poly_loss_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    epsilon: ArrayLike = 2.0,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Poly-1 loss, cross-entropy plus :math:`\epsilon (1 - p_t)` (``poly_loss_cross_entropy``).

    .. math::
        \ell_n = -\sum_c y_{n,c} \log p_{n,c} + \epsilon \sum_c y_{n,c} (1 - p_{n,c}),
        \qquad p = \mathrm{softmax}(x)

    Args:
      logits: unnormalised log-probabilities.
      labels: floating target distributions broadcastable to ``logits``.
      epsilon: the coefficient of the first polynomial term.
      axis: the class axis, a tuple of axes or None.
      where: optional boolean mask of the items or of the logits.

    Returns:
      The per-item losses, ``logits``'s shape without ``axis``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses import optax_compat
      >>> logits = jnp.log(jnp.array([[0.5, 0.25, 0.25]]))
      >>> # -log 0.5 + 2 * (1 - 0.5)
      >>> optax_compat.poly_loss_cross_entropy(logits, jnp.array([[1.0, 0.0, 0.0]])).round(4)
      Array([1.6931], dtype=float32)

    References:
      Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
      Functions", https://arxiv.org/abs/2204.12511
    """
    checks.as_float_array("labels", labels)
    x, q = _distribution_inputs(logits, labels, axis, where)
    ce = _multiclass.cross_entropy(x, q, reduction="none")
    p = stable.softmax(x.astype(q.dtype), -1)
    one_minus_pt = jnp.sum(q * (1 - p), axis=-1)
    return (ce.astype(q.dtype) + epsilon * one_minus_pt).astype(x.dtype)


def smooth_labels(
    labels: ArrayLike,
    alpha: ArrayLike,
    *,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Label smoothing, :math:`(1 - \alpha)\, y + \alpha / C` (``optax.smooth_labels``).

    ``softmax_cross_entropy(x, smooth_labels(one_hot(y), a))`` is
    :func:`jaxlosses.cross_entropy` ``(x, y, label_smoothing=a)`` (PyTorch's smoothing).

    Args:
      labels: one-hot (floating) labels.
      alpha: the smoothing factor.
      axis: the class axis or axes over which :math:`C` is counted.
      where: optional boolean mask of the classes counted in :math:`C` (items with no
        class counted get no smoothing mass instead of optax's inf).

    Returns:
      The smoothed labels, ``labels``'s shape.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses import optax_compat
      >>> optax_compat.smooth_labels(jnp.array([0.0, 1.0, 0.0, 0.0]), 0.2)
      Array([0.05, 0.85, 0.05, 0.05], dtype=float32)
    """
    labels = checks.as_float_array("labels", labels)
    axes = _class_axes(axis, labels.ndim)
    if where is None:
        num_classes = jnp.asarray(math.prod(labels.shape[a] for a in axes), labels.dtype)
    else:
        num_classes = jnp.sum(jnp.asarray(where), axis=axes, keepdims=True, dtype=labels.dtype)
    alpha = jnp.asarray(alpha, labels.dtype)
    return ((1 - alpha) * labels + safe_divide(alpha, num_classes)).astype(labels.dtype)


# --------------------------------------------------------------------------------------
# sigmoid losses


def _broadcast_pair(logits, labels):
    logits = checks.as_float_array("logits", logits)
    labels = checks.as_numeric_array("labels", labels)
    shape = jnp.broadcast_shapes(logits.shape, labels.shape)
    return jnp.broadcast_to(logits, shape), jnp.broadcast_to(labels, shape)


def sigmoid_binary_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    r"""Elementwise sigmoid cross-entropy (``optax.sigmoid_binary_cross_entropy``).

    .. math::
        \ell = -y \log \sigma(x) - (1 - y) \log(1 - \sigma(x))

    computed by :func:`jaxlosses.binary_cross_entropy_with_logits`.

    Args:
      logits: logits of binary predictions.
      labels: 0/1 labels or target probabilities, broadcastable with ``logits``.

    Returns:
      The elementwise losses, the broadcast shape of ``logits`` and ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses import optax_compat
      >>> optax_compat.sigmoid_binary_cross_entropy(jnp.array([0.0, 2.0]),
      ...                                           jnp.array([1.0, 0.0])).round(4)
      Array([0.6931, 2.1269], dtype=float32)
    """
    x, y = _broadcast_pair(logits, labels)
    return _binary.binary_cross_entropy_with_logits(x, y, reduction="none")


def sigmoid_focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: ArrayLike | None = None,
    gamma: ArrayLike = 2.0,
) -> jax.Array:
    r"""Sigmoid focal loss (``optax.sigmoid_focal_loss``).

    .. math::
        \ell = \alpha_t (1 - p_t)^\gamma\, \mathrm{BCE}(x, y)

    computed by :func:`jaxlosses.sigmoid_focal_loss` (log-space modulating factor).

    Args:
      logits: logits of binary predictions.
      labels: 0/1 labels or soft targets in ``[0, 1]``, broadcastable with ``logits``.
      alpha: optional scalar weight of positives; None for no weighting.
      gamma: the scalar focusing exponent.

    Returns:
      The elementwise losses.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses import optax_compat
      >>> optax_compat.sigmoid_focal_loss(jnp.array([3.0, -3.0]), jnp.array([1.0, 1.0]),
      ...                                 alpha=0.25).round(6)
      Array([2.7000e-05, 6.9157e-01], dtype=float32)

    References:
      Lin et al., "Focal Loss for Dense Object Detection",
      https://arxiv.org/abs/1708.02002
    """
    x, y = _broadcast_pair(logits, labels)
    # optax types alpha and gamma as arrays; the native loss takes scalars (traced or not)
    return _binary.sigmoid_focal_loss(
        x,
        y,
        alpha=alpha,  # type: ignore[arg-type]
        gamma=gamma,  # type: ignore[arg-type]
        reduction="none",
    )


# --------------------------------------------------------------------------------------
# Dice


def dice_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    class_weights: ArrayLike | None = None,
    smooth: ArrayLike = 1.0,
    alpha: ArrayLike = 0.5,
    beta: ArrayLike = 0.5,
    apply_softmax: bool = True,
    reduction: str = "mean",
    ignore_background: bool = False,
    axis: int | tuple[int, ...] | None = None,
) -> jax.Array:
    r"""Soft Dice (Tversky) loss per example and class (``optax.losses.dice_loss``).

    With soft counts summed over ``axis``,
    :math:`I_c = \sum p_c t_c`, :math:`P_c = \sum p_c`, :math:`T_c = \sum t_c`:

    .. math::
        \ell_c = 1 - \frac{I_c + s}{I_c + \alpha (P_c - I_c) + \beta (T_c - I_c) + s}

    then weighted by ``class_weights`` and reduced over classes. With
    :math:`\alpha = \beta = 1/2` this is :func:`jaxlosses.dice_loss` per example with
    smoothing ``2 s``. A zero denominator gives a loss of 1 (optax: nan).

    Args:
      predictions: logits ``[..., C]`` (softmax) or ``[..., 1]``/``[...]`` (sigmoid);
        probabilities with ``apply_softmax=False``.
      targets: one-hot or binary targets of the same shape.
      class_weights: optional per-class weights, shape ``(C,)``.
      smooth: additive smoothing :math:`s`.
      alpha: weight of false positives.
      beta: weight of false negatives.
      apply_softmax: whether ``predictions`` are logits.
      reduction: over classes: ``"mean"``, ``"sum"`` or ``"none"``.
      ignore_background: leave class 0 out (when there are several classes).
      axis: the axes summed over; None sums every axis but the first and the last.

    Returns:
      The losses: the batch shape for ``"mean"``/``"sum"``, with a trailing class axis
      for ``"none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses import optax_compat
      >>> logits = jnp.array([[[4.0, 0.0], [0.0, 4.0]]])  # one image of two pixels
      >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0]]])
      >>> optax_compat.dice_loss(logits, targets).round(4)
      Array([0.009], dtype=float32)

    References:
      Milletari et al., "V-Net", https://arxiv.org/abs/1606.04797
    """
    checks.check_reduction(reduction)
    predictions = checks.as_float_array("predictions", predictions)
    targets = checks.as_numeric_array("targets", targets)
    if predictions.ndim == targets.ndim - 1:
        predictions = predictions[..., None]
    if targets.ndim == predictions.ndim - 1:
        targets = targets[..., None]
    checks.check_same_shape("predictions", predictions, "targets", targets)
    dtype = compute_dtype(predictions.dtype)
    p, t = predictions.astype(dtype), targets.astype(dtype)
    if apply_softmax:
        p = jax.nn.sigmoid(p) if p.shape[-1] == 1 else stable.softmax(p, -1)
    axis = tuple(range(1, p.ndim - 1)) if axis is None else axis
    inter = jnp.sum(p * t, axis=axis)
    false_pos = jnp.sum(p, axis=axis) - inter
    false_neg = jnp.sum(t, axis=axis) - inter
    loss = 1 - safe_divide(inter + smooth, inter + alpha * false_pos + beta * false_neg + smooth)
    if class_weights is not None:
        loss = loss * checks.check_class_weight(class_weights, p.shape[-1], name="class_weights")
    if ignore_background and p.shape[-1] > 1:
        loss = loss[..., 1:]
    if reduction == "mean":
        loss = jnp.mean(loss, axis=-1)
    elif reduction == "sum":
        loss = jnp.sum(loss, axis=-1)
    return loss.astype(predictions.dtype)


def multiclass_generalized_dice_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    smooth: ArrayLike = 1.0,
    apply_softmax: bool = True,
    ignore_background: bool = False,
) -> jax.Array:
    r"""Generalised Dice loss (``optax.losses.multiclass_generalized_dice_loss``).

    :func:`dice_loss` per class, weighted by the inverse squared class frequencies of
    the targets :math:`w_c \propto 1 / (f_c^2 + 10^{-7})` (normalised to sum to
    :math:`C`), averaged over batch and classes.

    Args:
      predictions: logits (or probabilities), ``[..., C]``.
      targets: one-hot targets of the same shape.
      smooth: additive smoothing.
      apply_softmax: whether ``predictions`` are logits.
      ignore_background: leave class 0 out.

    Returns:
      A scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses import optax_compat
      >>> logits = jnp.array([[[4.0, 0.0], [0.0, 4.0]]])
      >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0]]])
      >>> optax_compat.multiclass_generalized_dice_loss(logits, targets).round(4)
      Array(0.009, dtype=float32)

    References:
      Sudre et al., "Generalised Dice overlap as a deep learning loss function for highly
      unbalanced segmentations", https://arxiv.org/abs/1707.03237
    """
    targets = checks.as_numeric_array("targets", targets)
    frequency = jnp.sum(targets, axis=tuple(range(targets.ndim - 1)))
    inverse = 1.0 / (frequency**2 + 1e-7)
    class_weights = inverse * (inverse.size / jnp.sum(inverse))
    per_class = dice_loss(
        predictions,
        targets,
        class_weights=class_weights,
        smooth=smooth,
        apply_softmax=apply_softmax,
        reduction="none",
        ignore_background=ignore_background,
    )
    return jnp.mean(per_class)


def binary_dice_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    smooth: ArrayLike = 1.0,
    apply_sigmoid: bool = True,
) -> jax.Array:
    r"""Binary Dice loss (``optax.losses.binary_dice_loss``): :func:`dice_loss` on one channel.

    Unlike optax, ``apply_sigmoid=False`` works (optax's probability check rejects any
    one-channel prediction that is not exactly 1).

    Args:
      predictions: logits (or probabilities) of shape ``[...]`` or ``[..., 1]``.
      targets: binary targets of the same shape.
      smooth: additive smoothing.
      apply_sigmoid: whether ``predictions`` are logits.

    Returns:
      The per-example losses, the batch shape.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses import optax_compat
      >>> probs = jnp.array([[0.9, 0.1, 0.8]])
      >>> optax_compat.binary_dice_loss(probs, jnp.array([[1.0, 0.0, 1.0]]),
      ...                               apply_sigmoid=False).round(4)
      Array([0.069], dtype=float32)
    """
    predictions = checks.as_float_array("predictions", predictions)
    targets = checks.as_numeric_array("targets", targets)
    if predictions.ndim == targets.ndim and predictions.shape[-1] != 1:
        predictions, targets = predictions[..., None], targets[..., None]
    return dice_loss(
        predictions, targets, smooth=smooth, apply_softmax=apply_sigmoid, reduction="mean"
    )
