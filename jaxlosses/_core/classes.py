"""Class-axis handling shared by the losses of logits over classes.

One place moves the class axis last, validates labels against the logits, and turns
``ignore_index`` and ``where`` into a mask *before* any label is used as an index.
``jnp.take_along_axis`` wraps negative indices like NumPy, so gathering an
``ignore_index`` of -100 would silently read class ``C - 100`` (or fill nan when
``C < 100``); here dropped and out-of-range labels are replaced by 0 first.

A label outside ``[0, C)`` that is not ``ignore_index`` cannot raise under ``jax.jit``
(PyTorch raises); its item's loss is nan instead, so the mistake is loud. Use
:func:`jaxlosses.check_labels` under ``jax.experimental.checkify`` for an error.

Sharding: every array built here takes the sharding of the array it is derived from
(see :mod:`jaxlosses._core.sharding`), so the losses type-check under explicit sharding
with the batch and the class axis sharded, and the logits are never gathered.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses._core import checks
from jaxlosses._core.reduction import Unreduced, compute_dtype
from jaxlosses._core.sharding import class_iota, take_class


class ClassInputs(NamedTuple):
    """Logits with the class axis last, in the compute dtype, plus the item mask."""

    x: jax.Array  # (..., C)
    mask: jax.Array | None  # (...) kept items, from ``where`` only
    dtype: jnp.dtype  # the input's dtype, for the result

    @property
    def num_classes(self) -> int:
        return self.x.shape[-1]

    @property
    def item_shape(self) -> tuple[int, ...]:
        return self.x.shape[:-1]


class ClassShape(NamedTuple):
    """What :func:`class_labels` reads of a :class:`ClassInputs`, for logits never formed."""

    item_shape: tuple[int, ...]
    num_classes: int
    mask: jax.Array | None  # (...) kept items, from ``where`` only


def class_inputs(name: str, logits, axis: int, where) -> tuple[ClassInputs, int]:
    """Validates floating logits, moves ``axis`` last and broadcasts ``where``."""
    logits = checks.as_float_array(name, logits)
    axis = checks.normalize_axis(axis, logits.ndim)
    x = jnp.moveaxis(logits, axis, -1).astype(compute_dtype(logits.dtype))
    mask = checks.as_where(where, x.shape[:-1])
    return ClassInputs(x, mask, logits.dtype), axis


class ClassLabels(NamedTuple):
    """Integer labels made safe to index with, and the masks that go with them."""

    safe: jax.Array  # labels, with 0 where an item is dropped or out of range
    kept: jax.Array  # items that count: not ignore_index, and where=True
    out_of_range: jax.Array  # kept items whose label is outside [0, C)

    def one_hot(self, num_classes: int, dtype, *, like: jax.Array | None = None) -> jax.Array:
        """One-hot of the kept labels; dropped items get an all-zero row.

        ``like``, the ``(..., C)`` logits, gives the result its sharding, so that a class
        axis sharded over a mesh axis stays sharded (see :func:`class_iota`).
        """
        if like is None:
            classes = jnp.arange(num_classes, dtype=self.safe.dtype)
        else:
            classes = class_iota(like, self.safe.dtype)
        hot = self.safe[..., None] == classes
        return (hot & self.kept[..., None]).astype(dtype)

    def take(self, x: jax.Array) -> jax.Array:
        """``x[..., label]`` along the last axis, reading class 0 for dropped items."""
        return take_class(x, self.safe)

    def item_weight(self, weight: jax.Array | None, dtype) -> jax.Array:
        """``weight[label]`` for kept items, 0 for dropped ones (PyTorch's denominators)."""
        if weight is None:
            return self.kept.astype(dtype)
        # The gather's result is sharded like the labels (explicit sharding needs it said).
        w = weight.astype(dtype).at[self.safe].get(out_sharding=jax.typeof(self.safe).sharding)
        return jnp.where(self.kept, w, jnp.zeros_like(w))


def class_labels(
    inputs: ClassInputs | ClassShape,
    labels,
    axis: int,
    ignore_index: int | None,
    *,
    name: str = "labels",
    num_classes: int | None = None,
) -> ClassLabels:
    """Validates labels against ``inputs``; ``ignore_index=None`` keeps every label.

    ``num_classes`` is the range labels must lie in, ``inputs.num_classes`` by default;
    a shard of a vocabulary-parallel loss holds a slice of the classes but takes global
    labels.
    """
    labels = checks.as_label_array(name, labels)
    expected = inputs.item_shape
    if labels.shape != expected:
        full = list(expected)
        full.insert(axis, inputs.num_classes)
        raise ValueError(
            f"{name} must have the shape of the input without the class axis {axis}: "
            f"expected {expected}, got {name}.shape={labels.shape} for an input of shape "
            f"{tuple(full)}"
        )
    if ignore_index is None:
        kept = jnp.ones_like(labels, dtype=bool)  # sharded like the labels
    else:
        checks.check_int("ignore_index", ignore_index)
        kept = labels != ignore_index
    if inputs.mask is not None:
        kept = kept & inputs.mask
    num_classes = inputs.num_classes if num_classes is None else num_classes
    in_range = (labels >= 0) & (labels < num_classes)
    safe = jnp.where(kept & in_range, labels, jnp.zeros_like(labels))
    return ClassLabels(safe, kept, kept & ~in_range)


def finish_class_loss(
    loss: jax.Array,
    labels: ClassLabels,
    item_weight: jax.Array,
    dtype,
) -> Unreduced:
    """Zeroes dropped items, marks out-of-range labels with nan, and packs the result."""
    loss = jnp.where(labels.kept, loss, jnp.zeros_like(loss))
    loss = jnp.where(labels.out_of_range, jnp.full_like(loss, jnp.nan), loss)
    return Unreduced(loss, labels.kept, item_weight, dtype)


def class_weight(weight, num_classes: int, dtype) -> jax.Array | None:
    if weight is None:
        return None
    return checks.check_class_weight(weight, num_classes).astype(dtype)


def check_labels(labels: ArrayLike, *, num_classes: int, ignore_index: int = -100) -> None:
    """Raises through ``checkify`` if a label is outside ``[0, num_classes)``.

    Class-index losses return nan for such labels, since an error cannot be raised from
    inside ``jax.jit``. Call this inside a function transformed by
    ``jax.experimental.checkify.checkify`` to turn that nan into a clear error::

        from jax.experimental import checkify

        def loss_fn(logits, labels):
            jaxlosses.check_labels(labels, num_classes=logits.shape[-1])
            return jaxlosses.cross_entropy(logits, labels)

        err, loss = checkify.checkify(jax.jit(loss_fn))(logits, labels)
        err.throw()  # JaxRuntimeError: labels must be in [0, 10) or ignore_index=-100 ...

    Outside ``checkify`` with concrete labels it raises immediately.

    Args:
      labels: integer class indices of any shape.
      num_classes: the number of classes ``C``.
      ignore_index: a label value that is allowed and skipped.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax.experimental import checkify
      >>> import jaxlosses
      >>> def loss_fn(logits, labels):
      ...     jaxlosses.check_labels(labels, num_classes=logits.shape[-1])
      ...     return jaxlosses.cross_entropy(logits, labels)
      >>> checked = checkify.checkify(jax.jit(loss_fn))
      >>> err, loss = checked(jnp.zeros((2, 3)), jnp.array([0, 3]))
      >>> loss  # the unchecked loss is nan
      Array(nan, dtype=float32)
      >>> print(err.get())  # doctest: +ELLIPSIS
      labels must be in [0, 3) or equal ignore_index=-100; found label 3 at flat position 1 ...
      >>> err, loss = checked(jnp.zeros((2, 3)), jnp.array([0, -100]))
      >>> print(err.get())
      None
    """
    from jax.experimental import checkify

    labels = checks.as_label_array("labels", labels)
    checks.check_int("num_classes", num_classes)
    checks.check_int("ignore_index", ignore_index)
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    first = jnp.argmax(bad.ravel()) if labels.size else jnp.asarray(0)
    value = labels.ravel()[first] if labels.size else jnp.asarray(0)
    checkify.check(
        ~jnp.any(bad),
        "labels must be in [0, {num_classes}) or equal ignore_index={ignore_index}; "
        "found label {value} at flat position {first}",
        num_classes=jnp.asarray(num_classes),
        ignore_index=jnp.asarray(ignore_index),
        value=value,
        first=first,
    )
