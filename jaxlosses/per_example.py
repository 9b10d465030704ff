"""Single-example losses, for ``jax.vmap``: per-example gradients and DP-SGD.

Each function takes one example without a batch axis and returns a scalar. For an
example with one item (``(C,)`` logits and a scalar label, or one element for the
elementwise losses) it is exactly the batch loss's unreduced output, so::

    jax.vmap(per_example.cross_entropy)(logits, labels)
        == jaxlosses.cross_entropy(logits, labels, reduction="none")

For an example with several items (the tokens of a sequence, the pixels of an image,
the elements of a multi-label target) it is the mean of those unreduced losses over the
example's kept items (not ``ignore_index``, ``where`` True), 0 if none is kept.

Per-example gradients are then one line::

    grads = jax.vmap(jax.grad(per_example.cross_entropy))(logits, labels)

The set-level :func:`jaxlosses.f1_loss` and :func:`jaxlosses.dice_loss` have no
per-example version.
"""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from jaxlosses import _binary, _multiclass, _multilabel

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "focal_loss",
    "label_smoothing_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "sigmoid_focal_loss",
]


def binary_cross_entropy(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.binary_cross_entropy`: the mean over its elements."""
    return _binary._bce_unreduced(probs, targets, weight=weight, where=where).per_example()


def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.binary_cross_entropy_with_logits` (mean over elements)."""
    return _binary._bce_logits_unreduced(
        logits, targets, weight=weight, pos_weight=pos_weight, where=where
    ).per_example()


def sigmoid_focal_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.sigmoid_focal_loss`: the mean over its elements."""
    return _binary._sigmoid_focal_unreduced(
        logits, targets, alpha=alpha, gamma=gamma, where=where
    ).per_example()


def nll_loss(
    log_probs: ArrayLike,
    labels: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.nll_loss`."""
    return _multiclass._nll_unreduced(
        log_probs, labels, weight=weight, ignore_index=ignore_index, axis=axis, where=where
    ).per_example()


def cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.cross_entropy` (class indices or probabilities)."""
    return _multiclass._cross_entropy_unreduced(
        logits,
        targets,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        axis=axis,
        where=where,
    ).per_example()


def focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: float = 2.0,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.focal_loss`."""
    return _multiclass._focal_unreduced(
        logits,
        labels,
        gamma=gamma,
        weight=weight,
        ignore_index=ignore_index,
        axis=axis,
        where=where,
    ).per_example()


def label_smoothing_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    smoothing: float = 0.1,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.label_smoothing_loss`."""
    return _multiclass._label_smoothing_unreduced(
        logits, labels, smoothing=smoothing, axis=axis, where=where
    ).per_example()


def multilabel_soft_margin_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.multilabel_soft_margin_loss` for ``(C,)`` logits."""
    return _multilabel._multilabel_unreduced(
        logits, targets, weight=weight, where=where
    ).per_example()
