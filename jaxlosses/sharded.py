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

from jaxlosses import _fused
from jaxlosses._core import checks, stable
from jaxlosses._core.classes import ClassLabels, class_inputs, class_labels, finish_class_loss
from jaxlosses._core.reduction import compute_dtype
from jaxlosses._core.sharding import class_iota, vary_together
from jaxlosses._sharded_contrastive import clip_loss as clip_loss
from jaxlosses._sharded_contrastive import siglip_loss as siglip_loss

__all__ = [
    "clip_loss",
    "siglip_loss",
    "vocab_parallel_cross_entropy",
    "vocab_parallel_linear_cross_entropy",
]

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
    # The shift is a constant for differentiation (pmax has no derivative rule).
    m = jax.lax.pmax(jax.lax.stop_gradient(jnp.where(has_any, local.max, -jnp.inf)), axis_name)
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


def _local_labels(lab: ClassLabels, local_classes: int, axis_name: AxisName):
    """Each label's column in this device's slice, and whether the slice holds it.

    The slices are ``[i * V_local, (i + 1) * V_local)``, ``i = axis_index(axis_name)``;
    the column is 0 where the slice does not hold the label (or it is dropped).
    """
    local_label = lab.safe - jax.lax.axis_index(axis_name) * local_classes
    hit = lab.kept & ~lab.out_of_range & (local_label >= 0) & (local_label < local_classes)
    return jnp.where(hit, local_label, jnp.zeros_like(local_label)), hit


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
    local_label, hit = _local_labels(lab, local_classes, axis_name)

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


# --------------------------------------------------------------------------------------
# vocab_parallel_linear_cross_entropy: the output layer fused in, its weight split over
# the vocabulary. The token chunks, blocks of logits and gradients are linear_cross_entropy's
# (jaxlosses._fused); only the combination of the statistics across devices is added.


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _linear_vocab_stats(cfg, axis_name, x, w, b, y, hit, cap) -> _VocabStats:
    return _linear_vocab_stats_fwd(cfg, axis_name, x, w, b, y, hit, cap)[0]


def _linear_vocab_stats_fwd(cfg, axis_name, x, w, b, y, hit, cap):
    # Every token's local statistics first (one chunk x V_local block of logits at a
    # time), then one pmax and one psum for all of them. The local log-sum-exp is the
    # shift of a slice whose sum of exponentials is 1.
    (lse, target, total), _ = _fused._logit_stats_fwd(cfg, x, w, b, y, cap)
    ones = jnp.ones_like(lse)
    local = _ShardStats(
        max=lse,
        sumexp=ones,
        target=jnp.where(hit, target, jnp.zeros_like(target)),
        logit_sum=None if total is None else total - cfg.num_classes * lse,
        num_finite=None if total is None else cfg.num_classes * ones,
    )
    stats = _combine_shards(local, axis_name)
    return stats, (x, w, b, y, hit, cap, stats.lse + stats.max)


def _linear_vocab_stats_bwd(cfg, axis_name, res, ct):
    # dL/dlogits = a softmax + c one_hot + d on each device's block, with the global
    # log-sum-exp: linear_cross_entropy's recomputing backward pass. `max` is a constant
    # (see _VocabStats); the one-hot term belongs to the device that holds the label.
    del axis_name
    x, w, b, y, hit, cap, lse = res
    coef = (ct.lse, jnp.where(hit, ct.target, jnp.zeros_like(ct.target)), ct.logit_sum)
    dx, dw, db, _, _ = _fused._logit_stats_bwd(cfg, (x, w, b, y, cap, lse), coef)
    return dx, dw, db, None, None, None


_linear_vocab_stats.defvjp(_linear_vocab_stats_fwd, _linear_vocab_stats_bwd)


def _vocab_parallel_linear_cross_entropy(
    inputs, weight, labels, *, axis_name, bias, reduction, batch_axis_name, **options
):
    setup = _fused._setup(
        inputs,
        weight,
        labels,
        bias=bias,
        reduction=reduction,
        shards=jax.lax.axis_size(axis_name),
        **options,
    )
    x, w, b, lab, cfg, (cap, eps, z), dtype, batch_shape = setup
    num_tokens = x.shape[0]
    local_label, hit = _local_labels(lab, cfg.num_classes, axis_name)
    # Every device's gradient is its share (its tokens, its slice of the vocabulary).
    # Typed as varying over the vocabulary axis and every axis any of them varies over,
    # the inputs' and parameters' casts transpose to the psums that add the shares: for
    # the inputs, one psum over axis_name.
    axes = axis_name if isinstance(axis_name, tuple) else (axis_name,)
    x, w, b, y, hit = vary_together([x, w, b, local_label, hit], axes)
    x, y, hit = (setup.padded(a) for a in (x, y, hit))
    stats = _linear_vocab_stats(cfg, axis_name, x, w, b, y, hit, cap)
    stats = _VocabStats(*(None if s is None else s[:num_tokens] for s in stats))
    loss = _token_loss(
        stats,
        cfg.num_classes * jax.lax.axis_size(axis_name),
        eps if cfg.smoothing else None,
        z if cfg.z_loss else None,
    )
    unreduced = finish_class_loss(loss, lab, lab.kept.astype(loss.dtype), dtype)
    loss = unreduced.reduce(reduction, axis_name=batch_axis_name)
    return loss.reshape(batch_shape) if reduction == "none" else loss


def vocab_parallel_linear_cross_entropy(
    inputs: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    axis_name: AxisName,
    bias: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    logit_softcap: float | None = None,
    reduction: str = "mean",
    batch_axis_name: AxisName | None = None,
    chunk_size: int | tuple[int, int] | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Fused linear layer + cross-entropy with the weight split over the vocabulary.

    Called inside ``shard_map``: each device holds the rows of the output layer for its
    slice of the vocabulary, the classes ``[i * V_local, (i + 1) * V_local)`` with
    ``i = jax.lax.axis_index(axis_name)``, the same ``inputs`` as every device along
    ``axis_name`` and the global labels. The value and the gradients with respect to
    ``inputs``, the local ``weight`` and the local ``bias`` equal those of
    :func:`jaxlosses.linear_cross_entropy` with the whole weight (and of
    :func:`vocab_parallel_cross_entropy` of ``inputs @ weight.T + bias``), but neither
    the ``N x V`` logits nor this device's ``N x V_local`` slice of them is ever built.
    With the soft-capped logits :math:`s = c \tanh((x W^\top + b) / c)` (identity
    without ``logit_softcap``) over the whole vocabulary of :math:`V` classes, each kept
    token's loss is

    .. math::
        \ell = \mathrm{lse} - (1 - \varepsilon)\, s_y
               - \frac{\varepsilon}{V} \sum_{v=1}^{V} s_v + \lambda_z\, \mathrm{lse}^2,
        \qquad \mathrm{lse} = \log \sum_{v=1}^{V} e^{s_v}

    How: the tokens are processed in chunks (``linear_cross_entropy``'s chunks and
    blocks, on the local slice): the forward pass keeps each token's local
    log-sum-exp, target logit (on the device that holds the label) and, with label
    smoothing, sum of logits, then combines them across ``axis_name`` for all tokens at
    once with one ``pmax`` and one ``psum`` (of a stacked array). The backward pass
    recomputes each block of logits (four GEMMs per step, like ``linear_cross_entropy``
    with ``reduction="none"``; computing the gradient in the forward pass would save one
    but need the global statistics of every chunk before its gradient, so a ``pmax`` and
    a ``psum`` per chunk). 16-bit inputs and weights multiply in their own dtype with
    float32 accumulation.

    Collectives in the backward pass: the weight and bias gradients are local, but the
    input gradient :math:`\partial L / \partial s \; W_\mathrm{local}` is this device's
    share of a sum over the vocabulary, so one ``psum`` over ``axis_name`` of an
    ``inputs``-sized array adds the shares (inherent to a vocabulary-parallel output
    layer: Megatron-LM's all-reduce in the backward pass of the layer's input). JAX
    inserts it as the transpose of typing ``inputs`` as varying over ``axis_name``. When
    the tokens are also split over a data axis, the weight and bias gradients get the
    usual data-parallel ``psum`` over it (``shard_map`` does that for any parameter that
    is replicated over the data axis). Nothing of size ``V`` or ``V_local`` crosses
    ``axis_name``, and the weight is never gathered.

    Reverse mode only: ``jax.grad``, ``jax.vjp`` and ``jax.jacrev`` work; forward mode
    (``jax.jvp``, ``jax.jacfwd``) is not supported (a ``custom_vjp``; use
    :func:`vocab_parallel_cross_entropy` of ``inputs @ weight.T + bias`` there). Applied
    inside ``shard_map`` it raises a ``TypeError`` saying so; applied to a jitted
    ``shard_map``, whose body is already staged out, JAX's own "can't apply forward-mode
    autodiff (jvp) to a custom_vjp function". Hyperparameters are not differentiated.

    Args:
      inputs: features, ``(..., H)``, the same on every device along ``axis_name``.
      weight: this device's rows of the output layer's weight, ``(V_local, H)``
        (PyTorch's layout); every device along ``axis_name`` holds the same ``V_local``.
      labels: global class ids in ``[0, V)``, ``inputs.shape[:-1]``.
      axis_name: the mesh axis (or tuple of axes) the vocabulary is split over.
      bias: optional bias slice, ``(V_local,)``.
      ignore_index: label value whose tokens are skipped (loss 0, not in the mean).
      label_smoothing: :math:`\varepsilon \in [0, 1]`, spread over the whole vocabulary
        (PyTorch's: :math:`\varepsilon / V` on every class, the target included).
      z_loss: :math:`\lambda_z \ge 0`, the weight of :math:`\mathrm{lse}^2` (PaLM's
        auxiliary loss).
      logit_softcap: :math:`c > 0` to apply :math:`c \tanh(\cdot / c)` to the logits, or
        None.
      reduction: ``"none"`` (per-token losses, ``labels``' shape), ``"sum"`` or
        ``"mean"`` (over the kept tokens).
      batch_axis_name: the mesh axis (or axes) the tokens are split over, if any: then
        ``"mean"`` is the global sum over the global count of kept tokens, and ``"sum"``
        global (one ``psum`` of two scalars). Without it they reduce this device's
        tokens only. Not used by ``"none"``.
      chunk_size: tokens per chunk, or a ``(tokens, vocab)`` pair to also split the
        local vocabulary, as for :func:`jaxlosses.linear_cross_entropy` (with
        ``V_local`` in the automatic rule).
      where: optional boolean mask broadcastable to ``labels``; False tokens are skipped.

    Returns:
      A scalar (the same on every device of the reduced axes), or per-token losses of
      ``labels``' shape for ``reduction="none"``, in the promoted dtype of ``inputs`` and
      ``weight``. A mean over no kept token is 0 with zero gradient; a kept label outside
      ``[0, V)`` gives nan.

    Example:
      >>> import functools
      >>> import jax, jax.numpy as jnp
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> import jaxlosses
      >>> mesh = jax.make_mesh((jax.device_count(),), ("model",))
      >>> x = jax.random.normal(jax.random.key(0), (6, 4))  # 6 tokens, H = 4
      >>> w = jax.random.normal(jax.random.key(1), (8, 4))  # a vocabulary of 8
      >>> y = jnp.array([1, 2, 3, -100, 5, 7])
      >>> loss_fn = jax.jit(jax.shard_map(
      ...     functools.partial(
      ...         jaxlosses.sharded.vocab_parallel_linear_cross_entropy, axis_name="model"
      ...     ),
      ...     mesh=mesh,
      ...     in_specs=(P(), P("model"), P()),  # each device holds rows of the weight
      ...     out_specs=P(),
      ... ))
      >>> sharded_w = jax.device_put(w, NamedSharding(mesh, P("model")))
      >>> with jax.set_mesh(mesh):
      ...     loss, (dx, dw) = jax.value_and_grad(loss_fn, argnums=(0, 1))(x, sharded_w, y)
      >>> want, (want_dx, want_dw) = jax.value_and_grad(
      ...     jaxlosses.linear_cross_entropy, argnums=(0, 1))(x, w, y)
      >>> print(loss.round(4), want.round(4))
      4.3385 4.3385
      >>> bool(jnp.allclose(dx, want_dx, atol=1e-6) & jnp.allclose(dw, want_dw, atol=1e-6))
      True

    References:
      Shoeybi et al., "Megatron-LM", https://arxiv.org/abs/1909.08053 (vocab-parallel
      cross-entropy); Wijmans et al., "Cut Your Losses in Large-Vocabulary Language
      Models", https://arxiv.org/abs/2411.09009 (fused linear cross-entropy)
    """
    alternative = "vocab_parallel_cross_entropy(inputs @ weight.T + bias, labels, ...)"
    with _fused._reverse_mode_only("vocab_parallel_linear_cross_entropy", alternative):
        return _vocab_parallel_linear_cross_entropy(
            inputs,
            weight,
            labels,
            axis_name=axis_name,
            bias=bias,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            z_loss=z_loss,
            logit_softcap=logit_softcap,
            reduction=reduction,
            batch_axis_name=batch_axis_name,
            chunk_size=chunk_size,
            where=where,
        )
