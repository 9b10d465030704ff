"""Inputs and results of elementwise losses (regression, divergences), as PyTorch's.

``input`` and ``target`` broadcast against each other as in PyTorch (its L1, MSE, Huber
and smooth L1 warn when their shapes differ, since that is usually a mistake such as
``(N, 1)`` against ``(N,)``; :func:`elementwise_inputs` warns the same way, once per
trace). A rescaling ``weight`` and the ``where`` mask broadcast to the loss's shape.
Floating inputs are computed in float32 when they are 16-bit and the result is returned
in the input's dtype.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlosses._core import checks
from jaxlosses._core.reduction import Unreduced, apply_mask, compute_dtype


class Elementwise(NamedTuple):
    """An elementwise loss's input and target, in the compute dtype."""

    input: jax.Array
    target: jax.Array
    shape: tuple[int, ...]  # the loss's: input's and target's broadcast shape
    dtype: jnp.dtype  # the input's, for the result


def elementwise_inputs(input, target, *, warn_broadcast: bool = False) -> Elementwise:
    """Validates a floating ``input`` and a real ``target`` that broadcast together.

    ``warn_broadcast``: warn, as PyTorch's L1/MSE/Huber/smooth L1 do, when the shapes
    differ (the result is PyTorch's either way).
    """
    x = checks.as_float_array("input", input)
    t = checks.as_numeric_array("target", target)
    shape = checks.broadcast_shapes(input=x, target=t)
    if warn_broadcast and x.shape != t.shape:
        warnings.warn(
            f"Using a target size ({t.shape}) that is different to the input size "
            f"({x.shape}). This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            UserWarning,
            stacklevel=4,
        )
    dtype = compute_dtype(x.dtype)
    return Elementwise(x.astype(dtype), t.astype(dtype), shape, x.dtype)


def elementwise_weight(weight, shape: tuple[int, ...], dtype) -> jax.Array | None:
    """An optional floating ``weight`` that broadcasts to the loss's ``shape``."""
    if weight is None:
        return None
    weight = checks.as_numeric_array("weight", weight)
    checks.check_broadcastable("weight", weight, shape, to="loss (input and target broadcast)")
    return weight.astype(dtype)


def finish_elementwise(
    loss: jax.Array,
    inputs: Elementwise,
    *,
    weight: jax.Array | None = None,
    where=None,
    weighted_mean: bool = False,
) -> Unreduced:
    """Weights and masks an elementwise loss.

    ``weighted_mean``: ``"mean"`` divides by the sum of the weights over the kept
    elements (PyTorch's ``l1_loss`` and ``mse_loss``) instead of their number (its
    ``huber_loss``).
    """
    loss = jnp.broadcast_to(loss, inputs.shape)
    if weight is not None:
        loss = loss * weight
    mask = checks.as_where(where, inputs.shape, to="loss (input and target broadcast)")
    denominator = None
    if weighted_mean and weight is not None:
        denominator = apply_mask(jnp.broadcast_to(weight, inputs.shape), mask)
    return Unreduced(apply_mask(loss, mask), mask, denominator, inputs.dtype)
