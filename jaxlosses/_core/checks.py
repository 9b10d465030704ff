"""Trace-time argument validation shared by every loss family.

Every check here runs on shapes, dtypes and static (concrete) hyperparameters, so it
raises while a function is being traced, before XLA sees anything. Values that are
tracers (a hyperparameter passed through ``jax.jit`` as an array) are not range-checked:
their value is unknown until run time.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, overload

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

REDUCTIONS = ("mean", "sum", "none")


class _PerExample:
    """The reduction of :mod:`jaxlosses.per_example`: the mean over one example's kept items.

    Not a value users pass: ``per_example.f(...)`` calls ``f(..., reduction=PER_EXAMPLE)``.
    """

    def __repr__(self) -> str:
        return "PER_EXAMPLE"


PER_EXAMPLE = _PerExample()


def check_reduction(reduction: Any, *, allowed: Sequence[str] = REDUCTIONS) -> Any:
    if reduction is PER_EXAMPLE:
        return reduction
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(f"reduction must be one of {tuple(allowed)}, got {reduction!r}")
    return reduction


def concrete_scalar(value: Any) -> Any:
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
    value: Any,
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
    shape = np.shape(np.asarray(value)) if isinstance(value, numbers.Number) else value.shape
    if shape != ():
        raise ValueError(f"{name} must be a scalar, got shape {shape}")
    concrete = concrete_scalar(value)
    if concrete is None:
        return value
    if isinstance(concrete, bool) or not isinstance(concrete, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(concrete)
    if np.isnan(v):
        raise ValueError(f"{name} must not be NaN")
    bad_low = low is not None and (v < low if low_inclusive else v <= low)
    bad_high = high is not None and (v > high if high_inclusive else v >= high)
    if bad_low or bad_high:
        lo = "(-inf" if low is None else ("[" if low_inclusive else "(") + f"{low}"
        hi = "inf)" if high is None else f"{high}" + ("]" if high_inclusive else ")")
        raise ValueError(f"{name} must be in {lo}, {hi}, got {concrete}")
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
        raise ValueError("input must have at least one dimension (the class axis), got a scalar")
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


def broadcast_shapes(**arrays: jax.Array) -> tuple[int, ...]:
    """The shape the named arrays broadcast to, or a ``ValueError`` naming their shapes."""
    try:
        return tuple(np.broadcast_shapes(*(a.shape for a in arrays.values())))
    except ValueError:
        shapes = ", ".join(f"{name}.shape={a.shape}" for name, a in arrays.items())
        names = " and ".join(arrays)
        raise ValueError(f"{names} must broadcast to one shape, got {shapes}") from None


@overload
def as_where(where: None, shape: tuple[int, ...], *, to: str = ...) -> None: ...
@overload
def as_where(where: ArrayLike, shape: tuple[int, ...], *, to: str = ...) -> jax.Array: ...
def as_where(where, shape: tuple[int, ...], *, to: str = "unreduced loss") -> jax.Array | None:
    """Validates an optional boolean mask and broadcasts it to ``shape``."""
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"where must be a boolean mask, got dtype {where.dtype}")
    check_broadcastable("where", where, shape, to=to)
    return jnp.broadcast_to(where, shape)


# --------------------------------------------------------------------------------------
# Declared hyperparameters: each public loss states the range of its options once, in a
# ``@hyperparameters(...)`` decorator. The function validates them when it is called
# (at trace time), and a Flax module validates the same declaration when it is built.

Spec = Callable[[str, Any], None]
"""Validates one hyperparameter: ``spec(name, value)`` raises, or returns None."""


def real(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> Spec:
    """A real scalar in ``[low, high]`` (``(low, ...`` with ``low_open``); None if ``optional``.

    Ints are accepted (a weight is a number). A traced value is not range-checked: its
    value is unknown until run time (see :func:`jaxlosses.check_hyperparameters`).
    """

    def spec(name: str, value) -> None:
        if value is None and optional:
            return
        check_scalar_range(
            name,
            value,
            low=low,
            high=high,
            low_inclusive=not low_open,
            high_inclusive=not high_open,
        )

    spec.bounds = (low, high, low_open, high_open, optional)  # type: ignore[attr-defined]
    return spec


def integer(low: int | None = None, *, optional: bool = False) -> Spec:
    """A Python int (not a bool) ``>= low``; None if ``optional``."""

    def spec(name: str, value) -> None:
        if value is None and optional:
            return
        check_int(name, value)
        if low is not None and value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value}")

    return spec


def choice(*values) -> Spec:
    """One of ``values`` (compared with ``==``, strings and bools exactly)."""

    def spec(name: str, value) -> None:
        ok = any(value is v or (type(value) is type(v) and value == v) for v in values)
        if not ok:
            raise ValueError(f"{name} must be one of {values}, got {value!r}")

    return spec


def flag(name: str, value) -> None:
    """A Python bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")


def reduction_spec(*allowed: str) -> Spec:
    """``reduction``: one of ``allowed`` (default ``"mean"``, ``"sum"``, ``"none"``)."""
    allowed = allowed or REDUCTIONS

    def spec(name: str, value) -> None:
        check_reduction(value, allowed=allowed)

    return spec


REDUCTION = reduction_spec()

P = ParamSpec("P")
R = TypeVar("R")


def hyperparameters(**specs: Spec) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declares a loss's hyperparameters: validated at each call, readable by modules.

    The decorated function gets a ``hyperparameter_specs`` attribute; its keyword-only
    arguments named in ``specs`` are validated before the body runs, so the body never
    checks them again. Defaults are not re-validated (a test checks they pass).
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)
        unknown = sorted(set(specs) - set(signature.parameters))
        if unknown:
            raise TypeError(f"{fn.__name__} declares specs for unknown arguments {unknown}")

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for name, value in kwargs.items():
                spec = specs.get(name)
                if spec is not None:
                    spec(name, value)
            return fn(*args, **kwargs)

        wrapper.hyperparameter_specs = dict(specs)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def validate_hyperparameters(fn: Callable, values: Mapping[str, Any]) -> None:
    """Validates ``values`` against ``fn``'s declared specs (a module's constructor)."""
    specs = getattr(fn, "hyperparameter_specs", {})
    for name, value in values.items():
        spec = specs.get(name)
        if spec is not None:
            spec(name, value)
