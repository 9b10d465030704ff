"""Trace-time argument validation shared by every loss family.

Every check here runs on shapes, dtypes and static (concrete) hyperparameters, so it
raises while a function is being traced, before XLA sees anything. Values that are
tracers (a hyperparameter passed through ``jax.jit`` as an array) are not range-checked:
their value is unknown until run time.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str, *, allowed: Sequence[str] = REDUCTIONS) -> str:
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(f"reduction must be one of {tuple(allowed)}, got {reduction!r}")
    return reduction


def concrete_scalar(value) -> float | None:
    """Returns ``value`` as a Python number when it is known at trace time, else None."""
    if isinstance(value, numbers.Number):
        return value
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        arr = np.asarray(value)
    except Exception:  # pragma: no cover - exotic array-likes
        return None
    if arr.shape != ():
        raise ValueError(f"expected a scalar, got an array of shape {arr.shape}")
    return arr.item()


def check_scalar_range(
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
):
    """Checks a scalar hyperparameter's range when it is concrete; returns it unchanged."""
    if value is None:
        raise TypeError(f"{name} must be a number, got None")
    if not isinstance(value, numbers.Number | jax.Array | np.ndarray | np.generic):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if np.shape(value) != ():
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}")
    v = concrete_scalar(value)
    if v is None:
        return value
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if np.isnan(v):
        raise ValueError(f"{name} must not be NaN")
    bad_low = low is not None and (v < low if low_inclusive else v <= low)
    bad_high = high is not None and (v > high if high_inclusive else v >= high)
    if bad_low or bad_high:
        lo = "(-inf" if low is None else ("[" if low_inclusive else "(") + f"{low}"
        hi = "inf)" if high is None else f"{high}" + ("]" if high_inclusive else ")")
        raise ValueError(f"{name} must be in {lo}, {hi}, got {v}")
    return value


def check_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a Python int, got {value!r}")
    return int(value)


def as_float_array(name: str, x) -> jax.Array:
    """Converts ``x`` to an array and requires a floating dtype."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype} (shape {x.shape})")
    return x


def as_numeric_array(name: str, x) -> jax.Array:
    """Converts ``x`` to an array of a real (bool, integer or floating) dtype."""
    x = jnp.asarray(x)
    if not (
        jnp.issubdtype(x.dtype, jnp.floating)
        or jnp.issubdtype(x.dtype, jnp.integer)
        or x.dtype == jnp.bool_
    ):
        raise TypeError(f"{name} must be real-valued, got {x.dtype} (shape {x.shape})")
    return x


def as_label_array(name: str, x) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(
            f"{name} must hold integer class indices, got dtype {x.dtype} (shape {x.shape})"
        )
    return x


def normalize_axis(axis: int, ndim: int, *, name: str = "axis") -> int:
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {axis!r}")
    if ndim == 0:
        raise ValueError("logits must have at least one dimension (the class axis), got a scalar")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an input of rank {ndim}")
    return int(axis) % ndim


def check_same_shape(name_a: str, a: jax.Array, name_b: str, b: jax.Array) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {name_a}.shape={a.shape} "
            f"and {name_b}.shape={b.shape}"
        )


def check_class_weight(weight, num_classes: int, *, name: str = "weight") -> jax.Array:
    weight = as_float_array(name, weight)
    if weight.shape != (num_classes,):
        raise ValueError(
            f"{name} must be a vector with one entry per class, shape ({num_classes},), "
            f"got shape {weight.shape}"
        )
    return weight


def check_broadcastable(name: str, x: jax.Array, shape: tuple[int, ...], *, to: str) -> None:
    """Requires ``x`` to broadcast to ``shape`` without changing ``shape``."""
    try:
        out = np.broadcast_shapes(x.shape, shape)
    except ValueError:
        out = None
    if out != tuple(shape):
        raise ValueError(
            f"{name} of shape {x.shape} does not broadcast to the {to} of shape {tuple(shape)}"
        )


def as_where(where, shape: tuple[int, ...], *, to: str = "unreduced loss") -> jax.Array | None:
    """Validates an optional boolean mask and broadcasts it to ``shape``."""
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"where must be a boolean mask, got dtype {where.dtype}")
    check_broadcastable("where", where, shape, to=to)
    return jnp.broadcast_to(where, shape)


def check_labels_for_logits(logits: jax.Array, labels: jax.Array, axis: int) -> None:
    """Class-index labels have the logits' shape with the class axis removed."""
    expected = logits.shape[:axis] + logits.shape[axis + 1 :]
    if labels.shape != expected:
        raise ValueError(
            f"labels must have the shape of logits without the class axis {axis}: "
            f"expected {expected}, got labels.shape={labels.shape} for logits.shape={logits.shape}"
        )
