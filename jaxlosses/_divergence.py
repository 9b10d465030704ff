"""Divergences and likelihoods of elementwise targets: KL, Poisson and Gaussian NLL.

PyTorch's ``kl_div``, ``poisson_nll_loss`` and ``gaussian_nll_loss``, with PyTorch's
values and gradients wherever PyTorch's are finite, and finite ones where the math is
finite but PyTorch's formula multiplies 0 by infinity (a zero target against a ``-inf``
log-probability, a zero count against a zero rate). ``input`` and ``target`` broadcast
as in PyTorch. The per-element kernels (:func:`kl_div_elementwise`,
:func:`poisson_nll`, :func:`stirling_term`, :func:`gaussian_nll`) are named functions
for other families (optax's and Keras' names) to reuse.
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses._core import checks, stable
from jaxlosses._core.checks import (
    PER_EXAMPLE,
    REDUCTION,
    flag,
    hyperparameters,
    real,
    reduction_spec,
)
from jaxlosses._core.elementwise import elementwise_inputs, finish_elementwise

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

# --------------------------------------------------------------------------------------
# per-element kernels


def kl_div_elementwise(input: jax.Array, target: jax.Array, *, log_target: bool) -> jax.Array:
    r"""``p (log p - input)`` with ``p = target`` (or ``exp(target)`` for ``log_target``).

    ``input`` is ``log q``. A zero target probability contributes exactly 0 with zero
    derivatives, also where ``input`` is ``-inf`` (PyTorch: ``0 * -inf = nan``; see
    :func:`jaxlosses._core.stable.finite_floor` and :func:`~jaxlosses._core.stable.xlogy`),
    and the derivative with respect to the target there, ``-inf`` from the right, is the
    finite 0, which is what the chain rule needs when the target is a softmax that
    underflowed to 0. A positive target against ``input = -inf`` (an impossible event)
    gives about ``p * 3.4e38`` where PyTorch gives inf. A negative target probability, or
    a nan input, gives nan, as in PyTorch.
    """
    if log_target:
        return _kl_log_target(input, target)
    return _kl(input, target)


# The KL and Poisson kernels have custom rules for speed: their derivatives are closed
# forms (-p, exp(x) - t) that do not go through the guards of the forward pass, so XLA:CPU
# fuses the backward pass into one elementwise loop. Autodiff of the guarded formulas
# keeps two N x D temporaries and takes 2 to 4 times as long at (4096, 1024).


def _kl_forward(x, p):
    return stable.xlogy(p, p) - p * stable.finite_floor(x)


@jax.custom_jvp
def _kl(x: jax.Array, p: jax.Array) -> jax.Array:
    return _kl_forward(x, p)


@functools.partial(_kl.defjvp, symbolic_zeros=True)
def _kl_jvp(primals, tangents):
    x, p = primals
    x_dot, p_dot = tangents
    out = _kl_forward(x, p)

    def d_p(t):  # log p + 1 - input; 0 (for -inf) where p = 0
        zero = p == 0
        log_p = jnp.log(jnp.where(zero, jnp.ones_like(p), p))
        return jnp.where(zero, jnp.zeros_like(p), log_p + 1 - stable.finite_floor(x)) * t

    return out, stable.tangent_sum(out, (lambda t: -p * t, x_dot), (d_p, p_dot))


def _kl_log_target_forward(x, log_p):
    p = jnp.exp(log_p)
    return p * stable.finite_floor(log_p) - p * stable.finite_floor(x)


@jax.custom_jvp
def _kl_log_target(x: jax.Array, log_p: jax.Array) -> jax.Array:
    return _kl_log_target_forward(x, log_p)


@functools.partial(_kl_log_target.defjvp, symbolic_zeros=True)
def _kl_log_target_jvp(primals, tangents):
    x, log_p = primals
    x_dot, lp_dot = tangents
    out = _kl_log_target_forward(x, log_p)
    p = jnp.exp(log_p)

    def d_log_p(t):  # p (log p - input + 1); 0 where p = 0
        return (out + p) * t

    return out, stable.tangent_sum(out, (lambda t: -p * t, x_dot), (d_log_p, lp_dot))


def stirling_term(target: jax.Array) -> jax.Array:
    r"""``t log t - t + log(2 pi t) / 2`` for ``t > 1``, else 0 (PyTorch's ``full=True``).

    Stirling's approximation of :math:`\log t!`, the term of the Poisson NLL that does
    not depend on the rate; PyTorch adds it only where the target exceeds 1.
    """
    big = target > 1
    t = jnp.where(big, target, jnp.full_like(target, 2.0))  # log(t) safe where unused
    term = t * jnp.log(t) - t + 0.5 * jnp.log(2 * math.pi * t)
    return jnp.where(big, term, jnp.zeros_like(term))


@jax.custom_jvp
def _poisson_log_input(x: jax.Array, t: jax.Array) -> jax.Array:
    return jnp.exp(x) - t * stable.finite_floor(x)


@functools.partial(_poisson_log_input.defjvp, symbolic_zeros=True)
def _poisson_log_input_jvp(primals, tangents):
    x, t = primals
    x_dot, t_dot = tangents
    e, floor_x = jnp.exp(x), stable.finite_floor(x)
    out = e - t * floor_x
    return out, stable.tangent_sum(
        out, (lambda d: (e - t) * d, x_dot), (lambda d: -floor_x * d, t_dot)
    )


def poisson_nll(
    input: jax.Array, target: jax.Array, *, log_input: bool, full: bool, eps
) -> jax.Array:
    r"""Poisson negative log-likelihood of the count ``target`` under the rate ``input``.

    ``exp(input) - target * input`` (log-rate input), or
    ``input - target * log(input + eps)``, plus :func:`stirling_term` with ``full``. A
    zero count contributes ``target * ...`` = 0 also against a zero rate (``input = -inf``
    or ``input + eps = 0``), where PyTorch's ``0 * -inf`` is nan.
    """
    if log_input:
        loss = _poisson_log_input(input, target)
    else:
        loss = input - stable.xlogy(target, input + eps)
    if full:
        loss = loss + stirling_term(target)
    return loss


def gaussian_nll(input: jax.Array, target: jax.Array, var: jax.Array, *, full: bool, eps):
    r"""``(log v + (input - target)**2 / v) / 2`` with ``v = max(var, eps)``, nan for ``var < 0``.

    The clamp passes the gradient through to ``var`` unchanged (PyTorch clamps in place
    under ``no_grad``; :func:`jaxlosses._core.stable.clamp_min_pass_through`).
    ``full`` adds :math:`\log(2\pi) / 2`.
    """
    v = stable.clamp_min_pass_through(var, eps)
    d = input - target
    loss = 0.5 * (jnp.log(v) + d * d / v)
    if full:
        loss = loss + _HALF_LOG_2PI
    return jnp.where(var < 0, jnp.full_like(loss, jnp.nan), loss)


# --------------------------------------------------------------------------------------


@hyperparameters(reduction=reduction_spec("mean", "sum", "none", "batchmean"), log_target=flag)
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: str = "mean",
    log_target: bool = False,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Kullback-Leibler divergence ``KL(target || exp(input))`` (``torch.nn.functional.kl_div``).

    ``input`` holds log-probabilities :math:`\log q`; ``target`` holds probabilities
    :math:`p` (or :math:`\log p` with ``log_target=True``). Elementwise,

    .. math::
        \ell = p \,(\log p - \log q), \qquad 0 \log 0 = 0,

    and ``reduction="batchmean"`` (the sum over ``input.shape[0]``) is the divergence
    :math:`\sum_c p_c \log(p_c / q_c)` averaged over the batch; ``"mean"`` divides by
    the number of elements instead (PyTorch's, not the KL divergence). With ``where``,
    ``"batchmean"`` divides by the kept elements counted in rows of
    ``input[0].size`` elements, so rows masked whole leave the denominator.

    A zero target probability contributes exactly 0 with zero gradient, also where
    ``input`` is ``-inf`` (a masked class), where PyTorch's ``0 * -inf`` is nan; its
    derivative with respect to the target (``-inf`` from the right) is 0 there. A
    positive target against ``input = -inf`` reads ``-inf`` as the most negative float:
    about ``3.4e38 p`` where PyTorch has inf (a select-free pass, twice as fast). A
    negative target probability gives nan, as in PyTorch. The per-example version
    (:func:`jaxlosses.per_example.kl_div`) is the sum over the example's elements, the
    example's divergence, so its mean over a batch is ``"batchmean"``.

    Args:
      input: log-probabilities :math:`\log q`, any float shape (a batch on the first axis
        for ``"batchmean"``).
      target: probabilities :math:`p` (or log-probabilities with ``log_target=True``) that
        broadcast with ``input``.
      reduction: ``"mean"`` (over elements), ``"batchmean"``, ``"sum"`` or ``"none"``.
      log_target: whether ``target`` holds log-probabilities.
      where: optional boolean mask broadcastable to the loss.

    Returns:
      A scalar, or elementwise terms for ``reduction="none"``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxlosses
      >>> log_q = jax.nn.log_softmax(jnp.array([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]]))
      >>> p = jnp.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
      >>> jaxlosses.kl_div(log_q, p, reduction="batchmean").round(4)
      Array(0.6565, dtype=float32)

    References:
      Kullback and Leibler, "On Information and Sufficiency", Annals of Mathematical
      Statistics 22 (1), 1951, https://doi.org/10.1214/aoms/1177729694
    """
    inputs = elementwise_inputs(input, target)
    loss = kl_div_elementwise(inputs.input, inputs.target, log_target=log_target)
    if reduction is PER_EXAMPLE:
        reduction = "sum"  # one example's divergence: the sum over its elements
    return finish_elementwise(loss, inputs, where=where).reduce(reduction)


@hyperparameters(log_input=flag, full=flag, eps=real(low=0.0), reduction=REDUCTION)
def poisson_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    reduction: str = "mean",
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Poisson negative log-likelihood (``torch.nn.functional.poisson_nll_loss``).

    For a count :math:`y` with rate :math:`\lambda`, the negative log-likelihood without
    the constant :math:`\log y!`:

    .. math::
        \ell = \begin{cases} e^{x} - y\,x & \text{log\_input (} x = \log\lambda \text{)} \\
        x - y \log(x + \varepsilon) & \text{otherwise (} x = \lambda \text{)}
        \end{cases}

    ``full=True`` adds Stirling's approximation of :math:`\log y!`,
    :math:`y \log y - y + \tfrac12 \log(2\pi y)`, where :math:`y > 1` (PyTorch's). A zero
    count against a zero rate (``input = -inf`` with ``log_input``, or
    ``input + eps = 0``) contributes 0 with a finite gradient, where PyTorch's
    ``0 * -inf`` is nan; a positive count against ``input = -inf`` gives about
    ``3.4e38 y`` (PyTorch: inf); a negative rate without ``log_input`` gives nan.

    Args:
      input: the log-rate (``log_input=True``) or the rate, any float shape.
      target: counts (floats or integers) that broadcast with ``input``.
      log_input: whether ``input`` is the log of the rate.
      full: add the Stirling term.
      eps: added to the rate inside the log when ``log_input=False``, ``>= 0``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      where: optional boolean mask broadcastable to the loss.

    Returns:
      A scalar, or elementwise losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> log_rate, counts = jnp.array([0.0, 0.5, 2.0]), jnp.array([1, 0, 5])
      >>> jaxlosses.poisson_nll_loss(log_rate, counts, reduction="none").round(4)
      Array([ 1.    ,  1.6487, -2.6109], dtype=float32)
    """
    inputs = elementwise_inputs(input, target)
    loss = poisson_nll(
        inputs.input,
        inputs.target,
        log_input=log_input,
        full=full,
        eps=jnp.asarray(eps, inputs.input.dtype),
    )
    return finish_elementwise(loss, inputs, where=where).reduce(reduction)


def _gaussian_var(var, input: jax.Array, dtype) -> jax.Array:
    """``var`` as PyTorch accepts it, shaped to broadcast with ``input``."""
    if isinstance(var, numbers.Real) and not isinstance(var, bool):
        if var < 0:
            raise ValueError(f"var must be non-negative, got {var}")
        return jnp.asarray(var, dtype)
    var = checks.as_float_array("var", var)
    if var.ndim == 0 or var.shape == input.shape:
        return var.astype(dtype)  # a 0-d array: one variance for all, as a float
    if var.shape == input.shape[:-1]:
        return var[..., None].astype(dtype)  # one variance per row (homoscedastic)
    mismatched = [v for i, v in zip(input.shape, var.shape, strict=False) if i != v]
    if var.ndim == input.ndim and sum(mismatched) == 1:
        return var.astype(dtype)  # a single axis of size 1 broadcast (homoscedastic)
    raise ValueError(
        f"var of shape {var.shape} does not fit input of shape {input.shape}: it must have "
        "input's shape, input's shape without the last axis, or input's shape with one "
        "axis of size 1 (or be a scalar)"
    )


@hyperparameters(full=flag, eps=real(low=0.0), reduction=REDUCTION)
def gaussian_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    var: ArrayLike | float,
    *,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Gaussian negative log-likelihood (``torch.nn.functional.gaussian_nll_loss``).

    The negative log-likelihood of ``target`` under a normal distribution of mean
    ``input`` and variance ``var``, for models that predict their own uncertainty:

    .. math::
        \ell = \tfrac12 \left( \log \max(\sigma^2, \varepsilon)
        + \frac{(x - y)^2}{\max(\sigma^2, \varepsilon)} \right)
        \;\left[ + \tfrac12 \log 2\pi \right]_{\text{full}}

    ``var`` is one variance per element (``input``'s shape), one per row (``input``'s
    shape without the last axis, or with one axis of size 1), or a scalar, as PyTorch
    accepts it. The clamp at ``eps`` passes the gradient through to ``var`` unchanged
    (PyTorch clamps in place under ``no_grad``), so a variance below ``eps`` still gets the
    gradient of the loss at ``eps``. A negative variance gives nan (PyTorch raises; a
    jitted function cannot look at values); a negative Python float raises here too.

    Args:
      input: predicted means, any float shape.
      target: observations that broadcast with ``input``.
      var: predicted variances (see above), or a Python float.
      full: add the constant :math:`\tfrac12 \log 2\pi`.
      eps: the variance's lower clamp, ``>= 0``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      where: optional boolean mask broadcastable to the loss.

    Returns:
      A scalar, or elementwise losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> mean, target = jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0])
      >>> jaxlosses.gaussian_nll_loss(mean, target, jnp.array([1.0, 0.5]),
      ...                             reduction="none").round(4)
      Array([ 0.5   , -0.3466], dtype=float32)

    References:
      Nix and Weigend, "Estimating the mean and variance of the target probability
      distribution", ICNN 1994, https://doi.org/10.1109/ICNN.1994.374138
    """
    inputs = elementwise_inputs(input, target)
    v = _gaussian_var(var, checks.as_float_array("input", input), inputs.input.dtype)
    eps_array = jnp.asarray(eps, inputs.input.dtype)
    loss = gaussian_nll(inputs.input, inputs.target, v, full=full, eps=eps_array)
    return finish_elementwise(loss, inputs, where=where).reduce(reduction)
