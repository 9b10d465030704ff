"""Metric-learning losses: embeddings pulled together or pushed apart (PyTorch's criteria).

``cosine_embedding_loss`` scores pairs by their cosine similarity; the triplet losses
ask an anchor to be nearer its positive than its negative by a margin, with PyTorch's
pairwise distance or any distance function. The distances and the cosine are the stable
primitives of :mod:`jaxlosses._core.stable` (finite at distance 0 and at zero vectors,
finite for entries up to 1e30); the hinge is :func:`jaxlosses._margin.hinge`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlosses._core import checks, stable
from jaxlosses._core.checks import REDUCTION, flag, hyperparameters, real
from jaxlosses._core.reduction import compute_dtype
from jaxlosses._margin import finish_loss, float_inputs, hinge, sign_target

COSINE_EPS = 1e-12
"""PyTorch's ``EPSILON`` added to each squared norm in ``cosine_embedding_loss``."""

# --------------------------------------------------------------------------------------
# per-item kernels


def cosine_embedding(cos: jax.Array, y: jax.Array, margin) -> jax.Array:
    """``1 - cos`` where ``y = 1``, ``max(0, cos - margin)`` elsewhere (``y = -1``)."""
    return jnp.where(y == 1, 1 - cos, hinge(cos - margin))


def triplet_margin(d_pos: jax.Array, d_neg: jax.Array, margin) -> jax.Array:
    """``max(0, margin + d_pos - d_neg)`` (PyTorch's order of operations)."""
    return hinge(margin + d_pos - d_neg)


def pairwise_distance(x1: jax.Array, x2: jax.Array, *, p: float = 2.0, eps=1e-6) -> jax.Array:
    """PyTorch's ``F.pairwise_distance``: ``||x1 - x2 + eps||_p`` over the last axis.

    The default ``distance_function`` of :func:`triplet_margin_with_distance_loss`; the
    stable primitive :func:`jaxlosses._core.stable.pairwise_distance` (PyTorch's
    subgradients, finite at distance 0 and for entries up to 1e30).
    """
    dtype = jnp.result_type(x1, x2)
    return stable.pairwise_distance(x1, x2, jnp.asarray(eps, dtype), float(p))


# --------------------------------------------------------------------------------------
# argument handling


def _norm_degree(name: str, value) -> None:
    """``p`` of a p-norm: a concrete real number > 0 (``inf`` for the max norm)."""
    if isinstance(value, jax.core.Tracer):
        raise TypeError(f"{name} must be a concrete number (it selects the program), got a tracer")
    real(0.0, low_open=True)(name, value)


def _triplet_inputs(anchor, positive, negative):
    """PyTorch's rule: one rank, broadcasting (not broadcast here: the distances do)."""
    named = (("anchor", anchor), ("positive", positive), ("negative", negative))
    return float_inputs(*named, same_rank=True, broadcast=False)


def _callable_or_none(name: str, value) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a callable or None, got {type(value).__name__}")


# --------------------------------------------------------------------------------------
# losses


@hyperparameters(margin=real(-1.0, 1.0), reduction=REDUCTION)
def cosine_embedding_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 0.0,
    reduction: str = "mean",
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Cosine embedding loss (``torch.nn.functional.cosine_embedding_loss``).

    .. math::
        \cos = \frac{x_1 \cdot x_2}{\sqrt{(\|x_1\|^2 + \epsilon)(\|x_2\|^2 + \epsilon)}},
        \qquad
        \ell = \begin{cases} 1 - \cos & y = 1 \\ \max(0, \cos - \mathrm{margin}) & y = -1
        \end{cases}

    with PyTorch's :math:`\epsilon = 10^{-12}`, so a zero vector has cosine 0 and a
    finite gradient (PyTorch's). Entries up to 1e30 keep the value and gradient finite
    (PyTorch's float32 sums overflow from about 1e19, and their product from 1e10).
    At ``cos = margin`` with ``y = -1`` the gradient is PyTorch's: that of ``cos``.

    Autodiff: a ``custom_jvp`` rule for the cosine (forward and reverse mode, any order).

    Args:
      input1: embeddings ``(..., D)`` (the feature axis is ``axis``); unbatched ``(D,)``
        works.
      input2: embeddings that broadcast with ``input1``.
      target: 1 (similar) or -1 (dissimilar), integers or floats, of the inputs' shape
        without ``axis`` (or broadcastable to it); other values give nan (PyTorch's loss
        is 0 there).
      margin: in ``[-1, 1]``; PyTorch suggests 0 to 0.5.
      reduction: ``"mean"`` (over pairs), ``"sum"`` or ``"none"``.
      axis: the feature axis.
      where: optional boolean mask broadcastable to the per-pair losses.

    Returns:
      A scalar, or per-pair losses (the inputs' shape without ``axis``) for
      ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> a = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])  # the last is a zero vector
      >>> b = jnp.array([[1.0, 1.0], [2.0, 0.0], [1.0, 1.0]])
      >>> jaxlosses.cosine_embedding_loss(a, b, jnp.array([1, -1, 1]), margin=0.5,
      ...                                 reduction="none").round(4)
      Array([0.2929, 0.5   , 1.    ], dtype=float32)
    """
    (x1, x2), _, dtype = float_inputs(("input1", input1), ("input2", input2))
    axis = checks.normalize_axis(axis, x1.ndim)
    x1, x2 = jnp.moveaxis(x1, axis, -1), jnp.moveaxis(x2, axis, -1)
    y, valid = sign_target(target, x1.shape[:-1], x1.dtype, to="inputs without the axis")
    cos = stable.cosine_similarity(x1, x2, COSINE_EPS)
    loss = cosine_embedding(cos, y, jnp.asarray(margin, x1.dtype))
    return finish_loss(loss, where, dtype, valid=valid).reduce(reduction)


@hyperparameters(
    margin=real(0.0, low_open=True),
    p=_norm_degree,
    eps=real(0.0),
    swap=flag,
    reduction=REDUCTION,
)
def triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: str = "mean",
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Triplet margin loss (``torch.nn.functional.triplet_margin_loss``).

    .. math::
        d(x, y) = \|x - y + \epsilon\|_p, \qquad
        \ell = \max(0, \mathrm{margin} + d(a, p) - d(a, n))

    With ``swap`` (Balntas et al.), :math:`d(a, n)` becomes
    :math:`\min(d(a, n), d(p, n))`: the harder of the two negatives' distances; a tie
    splits the gradient equally (PyTorch's ``min``). :math:`\epsilon` is added to the
    difference as in PyTorch's ``pairwise_distance``, so identical vectors are at a
    small positive distance with a finite gradient; with ``eps=0`` the distance is 0
    and its gradient is PyTorch's subgradient 0 (naive autodiff gives nan). Entries up
    to 1e30 keep the distances and gradients finite. At the kink
    (:math:`\mathrm{margin} + d_p - d_n = 0`) the gradient is PyTorch's: that of the
    linear piece.

    Autodiff: a ``custom_jvp`` rule for the distance (forward and reverse mode, any
    order).

    Args:
      anchor: embeddings ``(..., D)`` (the feature axis is ``axis``); unbatched
        ``(D,)`` works.
      positive: embeddings of the anchor's class; same rank as ``anchor``, broadcasting.
      negative: embeddings of another class; same rank, broadcasting.
      margin: the margin, > 0.
      p: the norm's degree, > 0 (``float("inf")`` for the max norm); static.
      eps: added to each difference, >= 0.
      swap: use the distance swap.
      reduction: ``"mean"`` (over triplets), ``"sum"`` or ``"none"``.
      axis: the feature axis.
      where: optional boolean mask broadcastable to the per-triplet losses.

    Returns:
      A scalar, or per-triplet losses (the broadcast shape without ``axis``) for
      ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> anchor = jnp.array([[0.0, 0.0], [0.0, 0.0]])
      >>> positive = jnp.array([[0.3, 0.4], [0.0, 2.0]])
      >>> negative = jnp.array([[3.0, 4.0], [1.5, 0.0]])
      >>> jaxlosses.triplet_margin_loss(anchor, positive, negative, reduction="none")
      Array([0. , 1.5], dtype=float32)

    References:
      Balntas et al., "Learning local feature descriptors with triplets and shallow
      convolutional neural networks", BMVC 2016, https://doi.org/10.5244/C.30.119

      Schroff et al., "FaceNet: A Unified Embedding for Face Recognition and
      Clustering", https://arxiv.org/abs/1503.03832
    """
    (a, pos, neg), _, dtype = _triplet_inputs(anchor, positive, negative)
    axis = checks.normalize_axis(axis, a.ndim)
    a, pos, neg = (jnp.moveaxis(x, axis, -1) for x in (a, pos, neg))
    e, p = jnp.asarray(eps, a.dtype), float(p)
    d_pos = stable.pairwise_distance(a, pos, e, p)
    d_neg = stable.pairwise_distance(a, neg, e, p)
    if swap:
        d_neg = jnp.minimum(d_neg, stable.pairwise_distance(pos, neg, e, p))
    loss = triplet_margin(d_pos, d_neg, jnp.asarray(margin, a.dtype))
    return finish_loss(loss, where, dtype).reduce(reduction)


@hyperparameters(
    distance_function=_callable_or_none,
    margin=real(0.0, low_open=True),
    swap=flag,
    reduction=REDUCTION,
)
def triplet_margin_with_distance_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    distance_function: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Triplet loss with any distance (``F.triplet_margin_with_distance_loss``).

    .. math::
        \ell = \max(0, \mathrm{margin} + d(a, p) - d(a, n))

    :math:`d` is ``distance_function``, any JAX function of two embedding arrays that
    returns one distance per pair (it is traced with the loss, so it works under
    ``jax.jit``, ``jax.grad`` and ``jax.vmap``); None is PyTorch's default,
    ``pairwise_distance`` with ``p = 2`` and ``eps = 1e-6`` over the last axis, which is
    then :func:`triplet_margin_loss`. ``swap`` replaces :math:`d(a, n)` by
    :math:`\min(d(a, n), d(p, n))`. 16-bit inputs reach ``distance_function`` in
    float32. For a non-metric distance such as :math:`1 - \cos`, write it in JAX:
    ``lambda x, y: 1 - optax.losses.cosine_similarity(x, y)``.

    Autodiff: that of ``distance_function`` (the default one has a ``custom_jvp`` rule).

    Args:
      anchor: embeddings; ``distance_function`` decides the layout (the default reduces
        the last axis).
      positive: embeddings of the anchor's class, same rank as ``anchor``.
      negative: embeddings of another class, same rank as ``anchor``.
      distance_function: ``f(x1, x2) -> distances``, or None for the pairwise distance.
        In a Flax module it is a static field (a new function recompiles).
      margin: the margin, > 0.
      swap: use the distance swap.
      reduction: ``"mean"`` (over triplets), ``"sum"`` or ``"none"``.
      where: optional boolean mask broadcastable to the per-triplet losses.

    Returns:
      A scalar, or per-triplet losses (the distances' broadcast shape) for
      ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> def l1(x, y):
      ...     return jnp.sum(jnp.abs(x - y), axis=-1)
      >>> anchor, positive = jnp.array([[0.0, 0.0]]), jnp.array([[0.5, 0.5]])
      >>> negative = jnp.array([[1.0, 0.5]])
      >>> jaxlosses.triplet_margin_with_distance_loss(anchor, positive, negative,
      ...                                             distance_function=l1)
      Array(0.5, dtype=float32)
    """
    (a, pos, neg), _, dtype = _triplet_inputs(anchor, positive, negative)
    distance = pairwise_distance if distance_function is None else distance_function

    def dist(x, y, name):
        d = jnp.asarray(distance(x, y))
        if not jnp.issubdtype(d.dtype, jnp.floating):
            raise TypeError(f"distance_function must return floats, got {d.dtype} for {name}")
        return d.astype(compute_dtype(d.dtype))

    d_pos = dist(a, pos, "(anchor, positive)")
    d_neg = dist(a, neg, "(anchor, negative)")
    try:
        np.broadcast_shapes(d_pos.shape, d_neg.shape)
    except ValueError:
        raise ValueError(
            "distance_function's distances do not broadcast: "
            f"d(anchor, positive).shape={d_pos.shape}, d(anchor, negative).shape={d_neg.shape}"
        ) from None
    if swap:
        d_neg = jnp.minimum(d_neg, dist(pos, neg, "(positive, negative)"))
    loss = triplet_margin(d_pos, d_neg, jnp.asarray(margin, d_pos.dtype))
    return finish_loss(loss, where, dtype).reduce(reduction)
