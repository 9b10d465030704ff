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
* :func:`ctc_loss`, :func:`ctc_loss_with_forward_probs`: the loss is never negative
  (optax's float32 recursion rounds a confident alignment's loss below 0, optax #1771),
  its gradient is the alpha-beta posterior's (optax differentiates its forward scan),
  ``-inf`` logits give finite values (optax: nan), and a label inside a sequence's
  length that is outside ``[0, K)`` or equal to ``blank_id`` gives nan (optax computes
  with it). The forward probabilities of label positions past a sequence's length match
  optax's only where the padding labels are class indices.

``alpha`` and ``gamma`` of :func:`sigmoid_focal_loss` must be scalars (optax also takes
arrays broadcastable to the logits).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses import _binary, _multiclass, _sequence
from jaxlosses._core import checks, stable
from jaxlosses._core.reduction import compute_dtype, safe_divide

__all__ = [
    "binary_dice_loss",
    "ctc_loss",
    "ctc_loss_with_forward_probs",
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


# --------------------------------------------------------------------------------------
# CTC


def _ctc(logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon):
    """The loss of optax's batch-first logits and paddings, and the recursion's inputs."""
    logits = checks.as_float_array("logits", logits)
    labels = checks.as_label_array("labels", labels)
    logit_paddings, label_paddings = jnp.asarray(logit_paddings), jnp.asarray(label_paddings)
    if logits.ndim != 3 or labels.ndim != 2:
        raise ValueError(
            f"logits must be (B, T, K) and labels (B, N), got shapes {logits.shape} and "
            f"{labels.shape}"
        )
    checks.check_same_shape("labels", labels, "label_paddings", label_paddings)
    if logit_paddings.shape != logits.shape[:2]:
        raise ValueError(
            f"logit_paddings must have shape (B, T) = {logits.shape[:2]}, got "
            f"{logit_paddings.shape}"
        )
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels have batch size {labels.shape[0]}, logits {logits.shape[0]}")
    num_classes = logits.shape[-1]
    checks.check_int("blank_id", blank_id)
    if not 0 <= blank_id < num_classes:
        raise ValueError(f"blank_id={blank_id} must be a class index in [0, {num_classes})")
    dtype = compute_dtype(logits.dtype)
    lp = jnp.swapaxes(stable.log_softmax(logits.astype(dtype), -1), 0, 1)  # (T, B, K)
    frames = jnp.swapaxes(logit_paddings < 0.5, 0, 1)
    width = labels.shape[1]
    lengths = width - jnp.sum(label_paddings, axis=1).astype(jnp.int32)
    inside = jnp.arange(width)[None, :] < lengths[:, None]
    bad_label = (labels < 0) | (labels >= num_classes) | (labels == blank_id)
    invalid = jnp.any(inside & bad_label, axis=1) | (lengths < 0)
    lengths = jnp.clip(lengths, 0, width)
    safe = jnp.clip(labels, 0, num_classes - 1).astype(jnp.int32)
    if width == 0:
        safe = jnp.zeros((labels.shape[0], 1), jnp.int32)
    log_zero = jax.lax.stop_gradient(jnp.asarray(log_epsilon, dtype))
    loss = _sequence.ctc_neg_log_likelihood(lp, safe, frames, lengths, log_zero, blank_id)
    loss = jnp.where(invalid, jnp.full_like(loss, jnp.nan), loss).astype(logits.dtype)
    return loss, (lp, safe, frames, log_zero)


def ctc_loss(
    logits: ArrayLike,
    logit_paddings: ArrayLike,
    labels: ArrayLike,
    label_paddings: ArrayLike,
    *,
    blank_id: int = 0,
    log_epsilon: ArrayLike = -1e5,
) -> jax.Array:
    r"""CTC loss per sequence with optax's layout (``optax.ctc_loss``).

    The loss of :func:`jaxlosses.ctc_loss` on ``log_softmax(logits)`` with optax's
    conventions: batch-first logits, 0/1 paddings instead of lengths (a padded frame
    leaves the recursion's state unchanged), and ``log_epsilon`` standing for
    :math:`\log 0` in the recursion's start and in the forbidden step between repeated
    labels, so an impossible alignment costs about ``-log_epsilon`` per missing frame
    instead of ``inf``. Never negative (optax's can be, #1771); the gradient is the
    posterior's (:func:`jaxlosses.ctc_loss`).

    Args:
      logits: ``(B, T, K)`` logits, the blank among the ``K`` classes.
      logit_paddings: ``(B, T)``, 1.0 for a padded frame, 0.0 for a frame.
      labels: ``(B, N)`` integer labels, right-padded.
      label_paddings: ``(B, N)``, 1.0 for a padding label, 0.0 for a label.
      blank_id: the blank class.
      log_epsilon: the log-weight of a forbidden transition (optax's approximation of
        :math:`\log 0`).

    Returns:
      The ``(B,)`` per-sequence losses.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses import optax_compat
      >>> logits = jnp.array([[[0.0, 17.0], [0.0, 17.0]]])  # optax #1771
      >>> labels, paddings = jnp.array([[1]]), jnp.zeros((1, 1))
      >>> optax_compat.ctc_loss(logits, jnp.zeros((1, 2)), labels, paddings)  # optax: -8e-08
      Array([0.], dtype=float32)

    References:
      Graves et al., "Connectionist Temporal Classification", ICML 2006,
      https://www.cs.toronto.edu/~graves/icml_2006.pdf
    """
    loss, _ = _ctc(logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon)
    return loss


def ctc_loss_with_forward_probs(
    logits: ArrayLike,
    logit_paddings: ArrayLike,
    labels: ArrayLike,
    label_paddings: ArrayLike,
    *,
    blank_id: int = 0,
    log_epsilon: ArrayLike = -1e5,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""CTC loss and forward log-probabilities (``optax.ctc_loss_with_forward_probs``).

    The loss is :func:`ctc_loss`'s. The forward variables are optax's: at frame
    :math:`t`, ``logalpha_blank[t, b, n]`` is the log-probability of the frames up to
    :math:`t` ending in the blank before label :math:`n` (after the last one for
    :math:`n = N`), and ``logalpha_nonblank[t, b, n]`` that of ending in label
    :math:`n`; in the last frame's row the blank states also hold the label before them
    (optax's final epsilon transition). They are computed by a second forward scan,
    differentiable by autodiff; when only the loss is used, ``jax.jit`` drops it.

    Args:
      logits: ``(B, T, K)`` logits, the blank among the ``K`` classes.
      logit_paddings: ``(B, T)``, 1.0 for a padded frame, 0.0 for a frame.
      labels: ``(B, N)`` integer labels, right-padded.
      label_paddings: ``(B, N)``, 1.0 for a padding label, 0.0 for a label.
      blank_id: the blank class.
      log_epsilon: the log-weight of a forbidden transition.

    Returns:
      ``(loss, logalpha_blank, logalpha_nonblank)``: the ``(B,)`` losses, and the
      ``(T, B, N + 1)`` and ``(T, B, N)`` forward log-probabilities.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses import optax_compat
      >>> logits = jnp.zeros((1, 3, 2))  # uniform over blank and one label
      >>> loss, blank, label = optax_compat.ctc_loss_with_forward_probs(
      ...     logits, jnp.zeros((1, 3)), jnp.array([[1]]), jnp.zeros((1, 1)))
      >>> loss.round(4)  # 6 of the 8 paths contain the label: -log(6 / 8)
      Array([0.2877], dtype=float32)
      >>> blank.shape, label.shape
      ((3, 1, 2), (3, 1, 1))
    """
    loss, (lp, safe, frames, log_zero) = _ctc(
        logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon
    )
    alpha_blank, alpha_label = _sequence.ctc_forward_variables(
        lp, safe, frames, blank=blank_id, log_zero=log_zero
    )
    alpha_label = alpha_label[..., : jnp.asarray(labels).shape[1]]
    last = alpha_blank[-1]
    last = jnp.concatenate([last[:, :1], jnp.logaddexp(last[:, 1:], alpha_label[-1])], axis=1)
    alpha_blank = alpha_blank.at[-1].set(last)
    dtype = loss.dtype
    return loss, alpha_blank.astype(dtype), alpha_label.astype(dtype)
