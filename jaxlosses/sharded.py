r"""Losses for models split over several devices.

**Sharded inputs under** ``jax.jit``. Every loss in :mod:`jaxlosses` is plain ``jax.numpy``
code, so inputs placed with a ``jax.sharding.NamedSharding`` (the batch over a
``"data"`` axis, the classes over a ``"model"`` axis, or both) give the same value and
gradients as on one device: the compiler partitions the computation and every mean is a
global sum over a global count (``ignore_index`` and ``where`` included), not a mean of
per-shard means. The losses also type-check under explicit sharding
(``jax.sharding.AxisType.Explicit``, what ``jax.make_mesh`` gives by default; use
``jax.set_mesh``), and class-sharded logits are never gathered.

**Vocabulary-parallel cross-entropy inside** ``jax.shard_map``. When the output layer of
a language model is split over the vocabulary, each device holds the logits of its
``V_local`` classes only. :func:`vocab_parallel_cross_entropy` computes the exact
cross-entropy over the whole vocabulary from those slices (Megatron-LM's vocab-parallel
cross-entropy) without gathering the logits: per token, the max goes through one
``pmax`` and the sum of exponentials, the target logit and (with label smoothing) the sum
and count of the logits through one ``psum`` of a stacked array. The backward pass is
local: ``softmax - one_hot`` on each device's slice, with no collective.

References:
  Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models Using
  Model Parallelism", https://arxiv.org/abs/1909.08053
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses._core import checks, stable
from jaxlosses._core.classes import class_inputs, class_labels, finish_class_loss
from jaxlosses._core.reduction import compute_dtype
from jaxlosses._core.sharding import class_iota

__all__ = ["vocab_parallel_cross_entropy"]

AxisName = Hashable | tuple[Hashable, ...]

# --------------------------------------------------------------------------------------
# Statistics of the vocabulary, one device's slice at a time, then across devices.
#
# A vocabulary-parallel loss (this module's, or one fused with the output projection
# that computes its logits chunk by chunk) reduces its local logits to a few numbers per
# token (`_ShardStats`), then combines them across the vocabulary axis with
# `_combine_shards` (one pmax, one psum), and writes its loss from the result
# (`_VocabStats`, `_token_loss`).


class _ShardStats(NamedTuple):
    """Per-token statistics of one device's slice of the vocabulary, before any collective.

    Attributes:
      max: the largest finite local logit (0 where no local logit is finite).
      sumexp: ``sum(exp(x - max))`` over the local logits (0 where all are ``-inf``).
      target: the target logit where this slice holds the label, else 0.
      logit_sum: ``sum(x - max)`` over the finite local logits (label smoothing), or None.
      num_finite: the number of finite (not ``-inf``) local logits, or None.
    """

    max: jax.Array
    sumexp: jax.Array
    target: jax.Array
    logit_sum: jax.Array | None
    num_finite: jax.Array | None


class _VocabStats(NamedTuple):
    """Per-token statistics of the whole vocabulary, relative to a per-token shift.

    Every entry but ``num_finite`` is relative to ``max``, the largest finite logit of the
    whole vocabulary, so that differences of large logits lose no precision. For
    differentiation ``max`` is a constant and each relative entry has the derivative of
    the absolute quantity it stands for (``lse + max`` is the logsumexp, whose derivative
    is the softmax); any loss written from ``lse + max``, ``target + max`` and
    ``logit_sum + num_finite * max`` therefore has the exact gradient.

    Attributes:
      lse: ``logsumexp(x) - max``.
      max: the shift, the largest finite logit (0 for a row of ``-inf``).
      target: ``x[label] - max``.
      logit_sum: ``sum(x_c - max)`` over the finite classes, or None.
      num_finite: the number of finite classes, or None.
    """

    lse: jax.Array
    max: jax.Array
    target: jax.Array
    logit_sum: jax.Array | None
    num_finite: jax.Array | None


def _shard_stats(x: jax.Array, local_label: jax.Array, hit: jax.Array, with_sum: bool):
    """The :class:`_ShardStats` of local logits ``x`` (``(..., V_local)``, compute dtype).

    ``local_label`` indexes the label inside this slice where ``hit`` is True.
    """
    m = stable._finite_max(x, -1)
    sumexp = jnp.sum(jnp.exp(x - m), axis=-1)
    target = jnp.take_along_axis(x, local_label[..., None], axis=-1)[..., 0]
    target = jnp.where(hit, target, jnp.zeros_like(target))
    m = m[..., 0]
    if not with_sum:
        return _ShardStats(m, sumexp, target, None, None)
    # Masks in arithmetic (stable._unmasked: 1 for a finite logit, 0 for -inf), which
    # XLA:CPU fuses into the reductions instead of materialising a V_local-wide mask.
    unmasked = stable._unmasked(x, stable._BIG)
    logit_sum = jnp.sum(unmasked * (jnp.maximum(x, -stable._BIG) - m[..., None]), axis=-1)
    num_finite = jnp.sum(stable._unmasked(x, 2 * stable._BIG), axis=-1)
    return _ShardStats(m, sumexp, target, logit_sum, num_finite)


def _combine_shards(local: _ShardStats, axis_name: AxisName) -> _VocabStats:
    """Combines every device's :class:`_ShardStats` over ``axis_name``: one pmax, one psum.

    The local sums of exponentials are rescaled from their local max to the global one
    before the ``psum``; the target logit (nonzero on one device only) and the logit sums
    travel in the same stacked ``psum``. Must be called inside ``shard_map`` (or another
    context where ``axis_name`` is bound).
    """
    has_any = local.sumexp > 0
    m = jax.lax.pmax(jnp.where(has_any, local.max, -jnp.inf), axis_name)
    m = jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))
    # max <= m where has_any, so the scale is at most 1; a slice of -inf adds nothing.
    scale = jnp.where(has_any, jnp.exp(local.max - m), 0.0)
    parts = [local.sumexp * scale, local.target]
    if local.logit_sum is not None:
        parts += [local.logit_sum + local.num_finite * (local.max - m), local.num_finite]
    total = jax.lax.psum(jnp.stack(parts), axis_name)
    lse = jnp.log(total[0])
    target = total[1] - m
    if local.logit_sum is None:
        return _VocabStats(lse, m, target, None, None)
    return _VocabStats(lse, m, target, total[2], total[3])


def _token_loss(stats: _VocabStats, num_classes: int, label_smoothing, z_loss) -> jax.Array:
    r"""Per-token cross-entropy (+ z-loss) from the vocabulary's statistics.

    With :math:`\varepsilon` spread over the :math:`V` classes (PyTorch's label
    smoothing, masked ``-inf`` classes getting none) and :math:`F` finite classes,

    .. math::
        \ell = \left(1 - \varepsilon + \varepsilon \tfrac{F}{V}\right) \mathrm{lse}
               - (1 - \varepsilon)\, x_y - \tfrac{\varepsilon}{V} \sum_{c\ \mathrm{finite}} x_c
               + z\, \mathrm{lse}^2

    ``label_smoothing``/``z_loss`` of None (statically zero) drop their terms.
    """
    if label_smoothing is None:
        loss = stats.lse - stats.target
    else:
        eps = label_smoothing
        coef = (1 - eps) + eps * stats.num_finite / num_classes
        loss = coef * stats.lse - (1 - eps) * stats.target - eps / num_classes * stats.logit_sum
    if z_loss is not None:
        loss = loss + z_loss * jnp.square(stats.lse + stats.max)
    return loss


# --------------------------------------------------------------------------------------
# The differentiable statistics of local logits.


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _vocab_stats(logits, local_label, hit, axis_name, with_sum) -> _VocabStats:
    x = logits.astype(compute_dtype(logits.dtype))
    return _combine_shards(_shard_stats(x, local_label, hit, with_sum), axis_name)


def _vocab_stats_fwd(logits, local_label, hit, axis_name, with_sum):
    stats = _vocab_stats(logits, local_label, hit, axis_name, with_sum)
    # The residuals are the logits as given (no float32 copy) and O(tokens) vectors.
    return stats, (logits, local_label, hit, stats.lse + stats.max)


def _vocab_stats_bwd(axis_name, with_sum, res, ct):
    # d lse = softmax, d target = one_hot, d logit_sum = [x finite]: all local, so the
    # backward pass needs no collective. `max` is a constant (see _VocabStats).
    del axis_name
    logits, local_label, hit, lse = res
    x = logits.astype(compute_dtype(logits.dtype))
    lse = jnp.where(jnp.isfinite(lse), lse, jnp.zeros_like(lse))  # a row of -inf: p = 0
    grad = ct.lse[..., None] * jnp.exp(x - lse[..., None])
    hot = (class_iota(x, local_label.dtype) == local_label[..., None]) & hit[..., None]
    grad = grad + jnp.where(hot, ct.target[..., None], jnp.zeros((), x.dtype))
    if with_sum:
        grad = grad + ct.logit_sum[..., None] * stable._unmasked(x, 3 * stable._BIG)
    return grad.astype(logits.dtype), None, None


_vocab_stats.defvjp(_vocab_stats_fwd, _vocab_stats_bwd)


# --------------------------------------------------------------------------------------
# vocab_parallel_cross_entropy


def _static_or_none(name: str, value, **limits):
    """Range-checks ``value``; None when it is statically 0 (its term is then skipped)."""
    checks.check_scalar_range(name, value, **limits)
    concrete = checks.concrete_scalar(value)
    return None if concrete == 0 else value


def vocab_parallel_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis_name: AxisName,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    reduction: str = "mean",
    batch_axis_name: AxisName | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Cross-entropy over a vocabulary split across devices, called inside ``shard_map``.

    Each device passes its slice of the logits, the classes
    ``[i * V_local, (i + 1) * V_local)`` with ``i = jax.lax.axis_index(axis_name)``, and
    the global labels. The result equals
    ``jaxlosses.cross_entropy(full_logits, labels, ignore_index=..., label_smoothing=...)``
    plus the z-loss, with :math:`V` the whole vocabulary:

    .. math::
        \ell_n = -\sum_{c=1}^{V} q_{n,c} \log \mathrm{softmax}(x_n)_c
                 + z \left(\log \sum_{c=1}^{V} e^{x_{n,c}}\right)^2, \qquad
        q_{n,c} = (1 - \varepsilon)[c = y_n] + \frac{\varepsilon}{V}

    Collectives: one ``pmax`` and one ``psum`` (of a stacked array: sum of exponentials,
    target logit and, with label smoothing, the sum and count of the logits) over
    ``axis_name`` in the forward pass, none in the backward pass (a ``custom_vjp`` whose
    gradient is ``softmax - one_hot`` on the local slice; forward-mode differentiation
    is not supported). The logits are never gathered. With ``batch_axis_name``, one more
    ``psum`` of two scalars makes ``"mean"`` and ``"sum"`` global.

    Args:
      logits: this device's logits, ``(..., V_local)``, the class axis last; every
        device along ``axis_name`` holds the same ``V_local``. ``-inf`` marks masked
        classes (e.g. vocabulary padding), which take no label-smoothing mass.
      labels: global class ids in ``[0, V)``, ``logits.shape[:-1]``, the same on every
        device along ``axis_name``.
      axis_name: the mesh axis (or tuple of axes) the vocabulary is split over.
      ignore_index: label value whose tokens are skipped (loss 0, not in the mean).
      label_smoothing: :math:`\varepsilon \in [0, 1]`, spread over the whole vocabulary
        (PyTorch's: :math:`\varepsilon / V` on every class, the target included).
      z_loss: coefficient :math:`z \ge 0` of the squared log-partition function per
        kept token (PaLM's auxiliary loss, 1e-4 there).
      reduction: ``"none"`` (per-token losses, ``labels``' shape), ``"sum"`` or
        ``"mean"`` (over the kept tokens).
      batch_axis_name: the mesh axis (or axes) the tokens are split over, if any. Without
        it, ``"mean"`` and ``"sum"`` reduce this device's tokens only: if the tokens are
        also sharded over a data axis, pass that axis here (the mean is then the global
        sum over the global count of kept tokens, exact with ``ignore_index``), or
        ``psum`` the ``"sum"`` yourself. Not used by ``"none"``.
      where: optional boolean mask broadcastable to ``labels``; False tokens are skipped.

    Returns:
      A scalar (the same on every device of the reduced axes), or per-token losses for
      ``reduction="none"``. A mean over no kept token is 0. A label outside ``[0, V)``
      that is not ``ignore_index`` gives nan.

    Example:
      >>> import functools
      >>> import jax, jax.numpy as jnp
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> import jaxlosses
      >>> mesh = jax.make_mesh((jax.device_count(),), ("model",))
      >>> logits = jnp.arange(16.0).reshape(2, 8) / 4  # 2 tokens, a vocabulary of 8
      >>> labels = jnp.array([3, 7])
      >>> # each device holds the logits of its slice of the vocabulary
      >>> sharded = jax.device_put(logits, NamedSharding(mesh, P(None, "model")))
      >>> loss = jax.jit(jax.shard_map(
      ...     functools.partial(
      ...         jaxlosses.sharded.vocab_parallel_cross_entropy, axis_name="model"
      ...     ),
      ...     mesh=mesh,
      ...     in_specs=(P(None, "model"), P()),
      ...     out_specs=P(),
      ... ))
      >>> print(loss(sharded, labels).round(4), jaxlosses.cross_entropy(logits, labels).round(4))
      1.8633 1.8633

    References:
      Shoeybi et al., "Megatron-LM", https://arxiv.org/abs/1909.08053 (vocab-parallel
      cross-entropy); Chowdhery et al., "PaLM", https://arxiv.org/abs/2204.02311 (z-loss)
    """
    checks.check_reduction(reduction)
    eps = _static_or_none("label_smoothing", label_smoothing, low=0.0, high=1.0)
    z = _static_or_none("z_loss", z_loss, low=0.0)
    inputs, _ = class_inputs("logits", logits, -1, where)
    local_classes = inputs.num_classes
    num_classes = local_classes * jax.lax.axis_size(axis_name)
    lab = class_labels(inputs, labels, -1, ignore_index, num_classes=num_classes)
    local_label = lab.safe - jax.lax.axis_index(axis_name) * local_classes
    hit = lab.kept & ~lab.out_of_range & (local_label >= 0) & (local_label < local_classes)
    local_label = jnp.where(hit, local_label, jnp.zeros_like(local_label))

    dtype = inputs.x.dtype
    logits = jnp.asarray(logits)
    stats = _vocab_stats(logits, local_label, hit, axis_name, eps is not None)
    loss = _token_loss(
        stats,
        num_classes,
        None if eps is None else jnp.asarray(eps, dtype),
        None if z is None else jnp.asarray(z, dtype),
    )
    unreduced = finish_class_loss(loss, lab, lab.kept.astype(dtype), inputs.dtype)
    return unreduced.reduce(reduction, axis_name=batch_axis_name)
