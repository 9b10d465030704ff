"""Class-axis building blocks that keep the logits' sharding.

Under explicit sharding (``jax.sharding.AxisType.Explicit``, what ``jax.make_mesh`` gives
by default) every array's type carries its sharding, and an operation whose result's
sharding is ambiguous raises ``ShardingTypeError``. Two class-axis idioms are ambiguous
when the logits' class axis is sharded: ``labels[..., None] == jnp.arange(C)`` builds a
replicated ``(..., C)`` mask that a ``jnp.where`` with the sharded logits rejects, and a
gather along a sharded axis (``jnp.take_along_axis``) has no defined output sharding.
The helpers here build the same values with the logits' sharding. Without a mesh, with
``AxisType.Auto`` axes or inside ``shard_map`` they reduce to the usual operations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def explicit_spec(x: jax.Array) -> tuple:
    """The mesh axes each dimension of ``x`` is explicitly sharded over (None: not).

    Without a mesh, with ``AxisType.Auto`` axes or inside ``shard_map`` every entry is
    None: there the compiler, not the type, decides the layout.
    """
    spec = tuple(jax.typeof(x).sharding.spec)
    return spec + (None,) * (x.ndim - len(spec))


def class_iota(x: jax.Array, dtype=jnp.int32) -> jax.Array:
    """The class index of every entry of ``x`` (class axis last), sharded like ``x``.

    ``labels[..., None] == class_iota(x)`` is the one-hot mask of ``labels`` in the
    logits' layout.
    """
    return jax.lax.broadcasted_iota(dtype, x.shape, x.ndim - 1, out_sharding=jax.typeof(x).sharding)


def take_class(x: jax.Array, index: jax.Array) -> jax.Array:
    """``x[..., index]`` along the last axis, for ``index`` of ``x.shape[:-1]`` in range.

    A gather, unless ``x``'s class axis is explicitly sharded: there the entry is selected
    and summed over the classes instead (the same value, and its gradient is the same
    one-hot; each device reduces its own slice and one all-reduce adds them).
    """
    if explicit_spec(x)[-1] is None:
        return jnp.take_along_axis(x, index[..., None], axis=-1)[..., 0]
    hit = class_iota(x, index.dtype) == index[..., None]
    return jnp.sum(jnp.where(hit, x, jnp.zeros((), x.dtype)), axis=-1)


def varying_axes(x: jax.Array) -> frozenset:
    """The ``shard_map`` mesh axes along which ``x``'s value may differ between devices.

    Empty outside ``shard_map`` and with ``check_vma=False``.
    """
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)  # jax >= 0.9
    if manual is not None:
        return frozenset(manual.varying)
    return frozenset(getattr(aval, "vma", ()))


def vary(x: jax.Array, axes: tuple) -> jax.Array:
    """``x`` typed as varying over ``axes`` (inside ``shard_map``), a no-op where it is.

    A value is the same on every device of an axis it does not vary over. Casting it to
    varying moves no data; the cast's transpose is a ``psum`` over those axes, so a
    gradient computed per device (a partial sum) is summed where the value was shared.
    Axes that are not ``shard_map``'s (e.g. ``jax.vmap``'s ``axis_name``) are skipped.
    """
    manual = jax.sharding.get_abstract_mesh().manual_axes
    missing = tuple(a for a in axes if a in manual and a not in varying_axes(x))
    if not missing:
        return x
    if hasattr(jax.lax, "pcast"):
        return jax.lax.pcast(x, missing, to="varying")
    return jax.lax.pvary(x, missing)  # type: ignore[attr-defined]  # jax < 0.8


def vary_together(arrays, axes: tuple) -> list:
    """Every array (None kept) typed as varying over ``axes`` and over every axis any of
    them varies over: one type for all, as ``lax.scan`` carries and ``custom_vjp``
    cotangents computed from all of them need."""
    varying = frozenset().union(*(varying_axes(a) for a in arrays if a is not None))
    axes = tuple(axes) + tuple(sorted(varying - set(axes), key=str))
    return [None if a is None else vary(a, axes) for a in arrays]
