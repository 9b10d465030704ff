"""Margin losses: hinges on a score's distance to a margin (PyTorch's margin criteria).

``margin_ranking_loss``, ``hinge_embedding_loss`` and ``soft_margin_loss`` are elementwise
losses of a score and a target of 1 or -1; ``multi_margin_loss`` (Weston-Watkins) and
``multilabel_margin_loss`` compare a target class's score with every other class's.

The per-element kernels (:func:`hinge`, :func:`strict_hinge`, :func:`margin_ranking`,
:func:`hinge_embedding`, :func:`soft_margin`, :func:`multi_margin`,
:func:`multilabel_margin`) take arrays already in the compute dtype, validate nothing and
are reused by other faces (optax's and Keras' hinge losses). Two subgradient
conventions at a hinge's kink, both PyTorch's: its autograd's ``clamp_min(z, 0)`` passes
the gradient at ``z = 0`` (:func:`hinge`: margin ranking, hinge and cosine embedding,
triplet), its hand-written multi-class kernels test ``z > 0`` and do not
(:func:`strict_hinge`: multi-margin, multi-label margin).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses._core import checks, stable
from jaxlosses._core.checks import REDUCTION, choice, hyperparameters, real
from jaxlosses._core.classes import class_inputs, class_labels, class_weight, finish_class_loss
from jaxlosses._core.reduction import Unreduced, apply_mask, compute_dtype
from jaxlosses._core.sharding import class_iota, take_class

# --------------------------------------------------------------------------------------
# per-element kernels


def hinge(z: jax.Array) -> jax.Array:
    """``max(z, 0)`` with slope 1 at ``z = 0`` (PyTorch's ``clamp_min``); nan stays nan."""
    return jnp.where(z < 0, jnp.zeros_like(z), z)


def strict_hinge(z: jax.Array) -> jax.Array:
    """``max(z, 0)`` with slope 0 at ``z = 0`` (PyTorch's ``if (z > 0)``); nan stays nan."""
    return jnp.where(z <= 0, jnp.zeros_like(z), z)


def margin_ranking(x1: jax.Array, x2: jax.Array, y: jax.Array, margin) -> jax.Array:
    """``max(0, -y (x1 - x2) + margin)``, elementwise."""
    return hinge(margin - y * (x1 - x2))


def hinge_embedding(x: jax.Array, y: jax.Array, margin) -> jax.Array:
    """``x`` where ``y = 1``, ``max(0, margin - x)`` elsewhere (``y = -1``)."""
    return jnp.where(y == 1, x, hinge(margin - x))


def soft_margin(x: jax.Array, y: jax.Array) -> jax.Array:
    """``log(1 + exp(-y x))`` as :func:`stable.softplus`: finite for ``|y x|`` up to 1e30."""
    return stable.softplus(-y * x)


def multi_margin(x: jax.Array, y: jax.Array, margin, p: int) -> jax.Array:
    r"""Weston-Watkins: :math:`\sum_{c \ne y} \max(0, m - x_y + x_c)^p / C` (class axis last).

    ``y`` must be in ``[0, C)``. The hinge is :func:`strict_hinge` (PyTorch's kernel).
    """
    z = (margin - take_class(x, y))[..., None] + x
    h = strict_hinge(z)
    if p == 2:
        h = h * h
    h = jnp.where(class_iota(x, y.dtype) == y[..., None], jnp.zeros_like(h), h)
    return jnp.sum(h, axis=-1) / x.shape[-1]


def _multilabel_listed(carry):
    """Marks the classes listed at position ``j`` (a compare, not a scatter: sharding-safe)."""
    j, stop, safe, listed, is_target = carry
    hot = (class_iota(is_target, safe.dtype) == safe[:, j][:, None]) & listed[:, j][:, None]
    return j + 1, stop, safe, listed, is_target | hot


def _multilabel_step(carry):
    """One list position ``j`` for every row: its hinges against the rows' other classes."""
    j, stop, x, safe, listed, other, loss, slope = carry
    t = safe[:, j]
    z = (1 - take_class(x, t))[:, None] + x  # PyTorch's rounding: (1 - x_t) + x_i
    hit = (z > 0) & other & listed[:, j][:, None]
    loss = loss + jnp.sum(jnp.where(hit, z, jnp.zeros_like(z)), axis=-1)
    hits = hit.astype(x.dtype)
    hot = (class_iota(x, t.dtype) == t[:, None]).astype(x.dtype)
    # d z / d x_i = 1 for every hit, d z / d x_t = -1
    slope = slope + hits - hot * jnp.sum(hits, axis=-1, keepdims=True)
    return j + 1, stop, x, safe, listed, other, loss, slope


def _not_done(carry):
    return carry[0] < carry[1]


def multilabel_margin(x: jax.Array, target: jax.Array) -> jax.Array:
    r"""PyTorch's multi-label margin of ``x`` ``(..., C)`` against padded class lists.

    .. math::
        \ell = \frac{1}{C} \sum_{j} \sum_{i \notin T} \max(0, 1 - x_{t_j} + x_i)

    where :math:`t_j` runs over ``target``'s entries before its first negative one (a
    class listed twice counts twice, as in PyTorch) and :math:`T` is their set. Entries
    must be in ``[-1, C)``. One pass over the scores per list position, up to the
    longest list in the batch: :math:`O(K C)` per row for lists of at most :math:`K`
    classes, with no :math:`C \times C` array and no scatter (one-hot compares, so a
    batch sharded over devices stays sharded). The loop accumulates the value exactly as
    PyTorch sums it and the derivative's counts (:math:`z > 0` strictly: PyTorch's
    subgradient 0 at a kink, :func:`strict_hinge`); the gradient is attached to the value
    as those constant counts, so every autodiff mode works through the loop (the loss is
    piecewise linear: its second derivative is 0).
    """
    num_classes = x.shape[-1]
    rows_x = x.reshape(-1, num_classes)
    rows_t = target.reshape(rows_x.shape)
    listed = jnp.cumsum(rows_t < 0, axis=-1) == 0  # entries before the first negative
    safe = jnp.where(listed & (rows_t < num_classes), rows_t, jnp.zeros_like(rows_t))
    stop = jnp.max(jnp.sum(listed, axis=-1), initial=0)
    no = jnp.zeros_like(rows_x, dtype=bool)
    *_, is_target = jax.lax.while_loop(_not_done, _multilabel_listed, (0, stop, safe, listed, no))
    fixed = jax.lax.stop_gradient(rows_x)
    zeros = jnp.zeros_like(rows_x)
    init = (0, stop, fixed, safe, listed, ~is_target, zeros[:, 0], zeros)
    *_, loss, slope = jax.lax.while_loop(_not_done, _multilabel_step, init)
    # the value is the loop's sum; the gradient, the counts (x - stop_gradient(x) is 0)
    loss = jax.lax.stop_gradient(loss) + jnp.sum(
        jax.lax.stop_gradient(slope) * (rows_x - fixed), axis=-1
    )
    return loss.reshape(x.shape[:-1]) / num_classes


# --------------------------------------------------------------------------------------
# shared argument handling


def as_sign_target(target) -> jax.Array:
    """A target of 1 and -1: integers or floats (a bool is neither 1 nor -1)."""
    target = jnp.asarray(target)
    if target.dtype == jnp.bool_ or not (
        jnp.issubdtype(target.dtype, jnp.integer) or jnp.issubdtype(target.dtype, jnp.floating)
    ):
        raise TypeError(
            f"target must hold 1 and -1 as integers or floats, got dtype {target.dtype} "
            f"(shape {target.shape})"
        )
    return target


def sign_target(target, shape: tuple[int, ...], dtype, *, to: str) -> tuple[jax.Array, jax.Array]:
    """A target of 1 and -1 broadcast to ``shape``, in ``dtype``, and its validity.

    Entries other than 1 and -1 are marked invalid: the losses return nan there, where
    PyTorch's formulas quietly give a number (0 for the cosine embedding loss).
    """
    target = as_sign_target(target)
    checks.check_broadcastable("target", target, shape, to=to)
    target = jnp.broadcast_to(target, shape)
    return target.astype(dtype), (target == 1) | (target == -1)


def float_inputs(*named, same_rank: bool = False, broadcast: bool = True):
    """``(name, array)`` pairs of floating arrays that broadcast together.

    Returns them in their compute dtype (broadcast to one shape unless ``broadcast`` is
    False), that shape, and the result dtype. ``same_rank``: PyTorch's rule for the pair
    and triplet losses, which refuse inputs of different ranks even where they broadcast.
    The arrays are copies (free under ``jax.jit``): ``jax.vmap`` over NumPy arrays inside
    ``jax.jit`` would otherwise hand a ``custom_jvp`` primitive a non-canonical constant.
    """
    arrays = {name: checks.as_float_array(name, x) for name, x in named}
    if same_rank and len({x.ndim for x in arrays.values()}) != 1:
        shapes = ", ".join(f"{name}.shape={x.shape}" for name, x in arrays.items())
        raise ValueError(f"{', '.join(arrays)} must have the same rank, got {shapes}")
    shape = checks.broadcast_shapes(**arrays)
    dtype = jnp.result_type(*arrays.values())
    xs = [jnp.asarray(x, compute_dtype(dtype), copy=True) for x in arrays.values()]
    if broadcast:
        xs = [jnp.broadcast_to(x, shape) for x in xs]
    return xs, shape, dtype


def finish_loss(loss: jax.Array, where, dtype, *, valid=None) -> Unreduced:
    """Per-item losses, nan where ``valid`` is False (an invalid target), ``where`` applied."""
    if valid is not None:
        loss = jnp.where(valid, loss, jnp.full_like(loss, jnp.nan))
    mask = checks.as_where(where, loss.shape)
    return Unreduced(apply_mask(loss, mask), mask, None, dtype)


# --------------------------------------------------------------------------------------
# elementwise margin losses


@hyperparameters(margin=real(), reduction=REDUCTION)
def margin_ranking_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 0.0,
    reduction: str = "mean",
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Margin ranking loss (``torch.nn.functional.margin_ranking_loss``).

    .. math::
        \ell = \max(0, -y\,(x_1 - x_2) + \mathrm{margin})

    ``y = 1`` asks for :math:`x_1` to rank above :math:`x_2` by ``margin``, ``y = -1``
    for the reverse. At the kink (:math:`-y(x_1 - x_2) + m = 0`) the gradient is
    PyTorch's: that of the linear piece.

    Autodiff: plain JAX operations; every mode, any order.

    Args:
      input1: scores of any shape (a scalar works).
      input2: scores of ``input1``'s rank; the three inputs broadcast together.
      target: 1 or -1 (integers or floats), of the same rank; other values give nan
        (PyTorch computes the formula with them).
      margin: the margin (any real).
      reduction: ``"mean"`` (over elements), ``"sum"`` or ``"none"``.
      where: optional boolean mask broadcastable to ``input1``.

    Returns:
      A scalar, or elementwise losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> x1, x2 = jnp.array([1.0, 0.25, 0.5]), jnp.array([0.0, 0.5, 0.5])
      >>> jaxlosses.margin_ranking_loss(x1, x2, jnp.array([1, 1, -1]), margin=0.5,
      ...                               reduction="none")
      Array([0.  , 0.75, 0.5 ], dtype=float32)
    """
    target = as_sign_target(target)
    (x1, x2), shape, dtype = float_inputs(("input1", input1), ("input2", input2))
    if target.ndim != x1.ndim:  # PyTorch's rule: one rank for the three
        raise ValueError(
            f"input1, input2 and target must have the same rank, got input1.shape="
            f"{jnp.shape(input1)}, input2.shape={jnp.shape(input2)}, target.shape={target.shape}"
        )
    shape = checks.broadcast_shapes(inputs=x1, target=target)
    x1, x2 = jnp.broadcast_to(x1, shape), jnp.broadcast_to(x2, shape)
    y, valid = sign_target(target, shape, x1.dtype, to="inputs")
    loss = margin_ranking(x1, x2, y, jnp.asarray(margin, x1.dtype))
    return finish_loss(loss, where, dtype, valid=valid).reduce(reduction)


@hyperparameters(margin=real(), reduction=REDUCTION)
def hinge_embedding_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 1.0,
    reduction: str = "mean",
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Hinge embedding loss (``torch.nn.functional.hinge_embedding_loss``).

    .. math::
        \ell = \begin{cases} x & y = 1 \\ \max(0, \mathrm{margin} - x) & y = -1
        \end{cases}

    ``input`` is typically a distance between two embeddings: similar pairs (``y = 1``)
    are pulled together, dissimilar ones (``y = -1``) pushed to at least ``margin``.
    At ``x = margin`` with ``y = -1`` the gradient is PyTorch's, -1.

    Autodiff: plain JAX operations; every mode, any order.

    Args:
      input: distances (or scores) of any shape.
      target: 1 or -1 (integers or floats) that broadcasts with ``input``; other values
        give nan (PyTorch returns ``x + max(0, margin - x)`` for them).
      margin: the margin for ``y = -1`` (any real).
      reduction: ``"mean"`` (over elements), ``"sum"`` or ``"none"``.
      where: optional boolean mask broadcastable to ``input``.

    Returns:
      A scalar, or elementwise losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> distance = jnp.array([0.25, 0.25, 1.5])
      >>> jaxlosses.hinge_embedding_loss(distance, jnp.array([1, -1, -1]), reduction="none")
      Array([0.25, 0.75, 0.  ], dtype=float32)
    """
    (x,), _, dtype = float_inputs(("input", input))
    shape = checks.broadcast_shapes(input=x, target=as_sign_target(target))
    y, valid = sign_target(target, shape, x.dtype, to="loss")
    loss = hinge_embedding(jnp.broadcast_to(x, shape), y, jnp.asarray(margin, x.dtype))
    return finish_loss(loss, where, dtype, valid=valid).reduce(reduction)


@hyperparameters(reduction=REDUCTION)
def soft_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: str = "mean",
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Two-class logistic loss on 1/-1 targets (``torch.nn.functional.soft_margin_loss``).

    .. math::
        \ell = \log(1 + e^{-y x})

    computed as :math:`\mathrm{softplus}(-y x)`: finite for :math:`|x|` up to 1e30, where
    PyTorch's ``log(1 + exp(-y x))`` overflows to inf. The gradient is
    :math:`-y\,\sigma(-y x)`.

    Autodiff: plain JAX operations; every mode, any order.

    Args:
      input: scores (logits) of any shape.
      target: 1 or -1 (integers or floats) broadcastable to ``input``'s shape; other
        values give nan.
      reduction: ``"mean"`` (over elements), ``"sum"`` or ``"none"``.
      where: optional boolean mask broadcastable to ``input``.

    Returns:
      A scalar, or elementwise losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> jaxlosses.soft_margin_loss(jnp.array([2.0, -1.0]), jnp.array([1, 1]),
      ...                            reduction="none").round(4)
      Array([0.1269, 1.3133], dtype=float32)
    """
    (x,), _, dtype = float_inputs(("input", input))
    y, valid = sign_target(target, x.shape, x.dtype, to="input")  # PyTorch's: to the input
    mask = checks.as_where(where, x.shape, to="input")
    # nan in the target itself, not a select after softplus: XLA:CPU then keeps the loss
    # and its gradient in one pass each (masked items keep their target: no nan there)
    keep = valid if mask is None else valid | ~mask
    y = jnp.where(keep, y, jnp.full_like(y, jnp.nan))
    return finish_loss(soft_margin(x, y), mask, dtype).reduce(reduction)


# --------------------------------------------------------------------------------------
# multi-class and multi-label margins


@hyperparameters(p=choice(1, 2), margin=real(), reduction=REDUCTION)
def multi_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    p: int = 1,
    margin: float = 1.0,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Multi-class hinge loss, Weston-Watkins (``torch.nn.functional.multi_margin_loss``).

    .. math::
        \ell_n = \frac{w_{y_n}}{C} \sum_{c \ne y_n}
                 \max(0, \mathrm{margin} - x_{n, y_n} + x_{n, c})^p

    Every class within ``margin`` of the target's score adds its violation. This is the
    Weston-Watkins multi-class SVM loss; optax's ``multiclass_hinge_loss`` is
    Crammer-Singer, :math:`\max_c (x_c + [c \ne y]) - x_y`, which keeps only the largest
    violation. ``"mean"`` averages over items whatever the ``weight`` (PyTorch's). At a
    kink (``margin - x_y + x_c = 0``) the gradient is PyTorch's: 0.

    Autodiff: plain JAX operations; every mode, any order.

    Args:
      input: scores; the class axis is ``axis``. Unbatched ``(C,)`` scores work.
      target: integer class indices, ``input``'s shape without ``axis``. An index
        outside ``[0, C)`` gives nan (PyTorch raises).
      p: 1 (hinge) or 2 (squared hinge).
      margin: the margin (any real).
      weight: optional per-class weights ``(C,)``; the target class's weight scales the
        item's loss.
      reduction: ``"mean"`` (over items), ``"sum"`` or ``"none"``.
      axis: the class axis.
      where: optional boolean mask broadcastable to ``target``.

    Returns:
      A scalar, or per-item losses (``target``'s shape) for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8]])
      >>> jaxlosses.multi_margin_loss(x, jnp.array([3])).round(4)  # PyTorch's docs example
      Array(0.325, dtype=float32)

    References:
      Weston and Watkins, "Support Vector Machines for Multi-Class Pattern Recognition",
      ESANN 1999, https://www.esann.org/sites/default/files/proceedings/legacy/es1999-461.pdf

      Crammer and Singer, "On the Algorithmic Implementation of Multiclass Kernel-based
      Vector Machines", JMLR 2001, https://www.jmlr.org/papers/v2/crammer01a.html
    """
    inputs, axis = class_inputs("input", input, axis, where)
    lab = class_labels(inputs, target, axis, None, name="target")
    w = class_weight(weight, inputs.num_classes, inputs.x.dtype)
    loss = multi_margin(inputs.x, lab.safe, jnp.asarray(margin, inputs.x.dtype), p)
    if w is not None:
        loss = loss * lab.item_weight(w, inputs.x.dtype)
    kept = lab.item_weight(None, inputs.x.dtype)
    return finish_class_loss(loss, lab, kept, inputs.dtype).reduce(reduction)


@hyperparameters(reduction=REDUCTION)
def multilabel_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: str = "mean",
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Multi-label hinge loss (``torch.nn.functional.multilabel_margin_loss``).

    .. math::
        \ell_n = \frac{1}{C} \sum_{j} \sum_{i \notin T_n}
                 \max(0, 1 - x_{n, t_{n,j}} + x_{n, i})

    ``target`` lists each item's classes :math:`t_{n,j}` and is padded with -1: the list
    ends at the first negative entry, and :math:`T_n` is its set of classes. Every target
    class's score should exceed every other class's by 1. Computed in one pass over the
    scores per list position, up to the longest list in the batch (:math:`O(K C)` per
    item for lists of at most :math:`K` classes, no :math:`C \times C` array); at a kink
    (``1 - x_t + x_i = 0``) the gradient is PyTorch's: 0.

    Autodiff: the loop sums the value and counts the gradient's hinges; the gradient is
    attached to the value as those counts, so every mode and order works (the second
    derivative of this piecewise-linear loss is 0).

    Args:
      input: scores; the class axis is ``axis``. Unbatched ``(C,)`` scores work.
      target: integer class lists of ``input``'s shape, padded with -1. An item with an
        entry below -1 or at least ``C`` (anywhere, as PyTorch checks) gives nan
        (PyTorch raises).
      reduction: ``"mean"`` (over items), ``"sum"`` or ``"none"``.
      axis: the class axis (of both ``input`` and ``target``).
      where: optional boolean mask broadcastable to the per-item losses.

    Returns:
      A scalar, or per-item losses (``input``'s shape without ``axis``) for
      ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8]])
      >>> y = jnp.array([[3, 0, -1, 1]])  # classes 3 and 0; the 1 after -1 is not read
      >>> round(float(jaxlosses.multilabel_margin_loss(x, y)), 4)  # PyTorch's docs example
      0.85
    """
    inputs, axis = class_inputs("input", input, axis, where)
    target = checks.as_label_array("target", target)
    if target.shape != jnp.shape(input):
        raise ValueError(
            "target must have the input's shape (class lists padded with -1): got "
            f"target.shape={target.shape} for input.shape={jnp.shape(input)}"
        )
    target = jnp.moveaxis(target, axis, -1)
    loss = multilabel_margin(inputs.x, target)
    bad = jnp.any((target < -1) | (target >= inputs.num_classes), axis=-1)
    return finish_loss(loss, inputs.mask, inputs.dtype, valid=~bad).reduce(reduction)
