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
cross-entropy) without gathering the logits: each device reduces its slice to a few
numbers per token (the softmax statistics of :mod:`jaxlosses._core.chunked`: log-sum-exp,
target logit, and with label smoothing or class weights the weighted sums they need),
then one ``pmax`` of the per-token max and one ``psum`` of the stacked statistics give
the whole vocabulary's. The backward pass is local: ``softmax - target`` on each
device's slice, with no collective. :func:`vocab_parallel_linear_cross_entropy` does the
same with the output layer fused in (no device builds even its ``N x V_local`` logits).
Both give exactly :func:`jaxlosses.cross_entropy` (and :func:`jaxlosses.linear_cross_entropy`)
of the gathered logits, with the same options and the same definition of each.

References:
  Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models Using
  Model Parallelism", https://arxiv.org/abs/1909.08053
"""

from __future__ import annotations

import functools
from collections.abc import Hashable

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxlosses._core import checks, chunked, stable
from jaxlosses._core.checks import REDUCTION, hyperparameters, integer, real
from jaxlosses._core.chunked import LinearHead, SoftmaxReads, SoftmaxStats, SoftmaxTerms
from jaxlosses._core.classes import class_inputs, class_labels, class_weight
from jaxlosses._core.reduction import Unreduced, compute_dtype
from jaxlosses._core.sharding import vary_together
from jaxlosses._fused import cross_entropy_from_statistics, prepare_linear_inputs
from jaxlosses._sharded_contrastive import clip_loss as clip_loss
from jaxlosses._sharded_contrastive import siglip_loss as siglip_loss

__all__ = [
    "clip_loss",
    "siglip_loss",
    "vocab_parallel_cross_entropy",
    "vocab_parallel_linear_cross_entropy",
]

AxisName = Hashable | tuple[Hashable, ...]


def _axis_name(name: str, value) -> None:
    """A mesh axis name (any hashable) or a tuple of them; None only for batch axes."""
    if value is None and name == "batch_axis_name":
        return
    message = f"{name} must be a mesh axis name or a tuple of them, got {value!r}"
    try:
        hash(value)
    except TypeError:
        raise TypeError(message) from None
    if value is None:
        raise TypeError(message)


# --------------------------------------------------------------------------------------
# The statistics of every device's slice of the vocabulary, combined


def _combine(local: SoftmaxStats, hit: jax.Array | None, extras: list, axis_name: AxisName):
    """The whole vocabulary's :class:`SoftmaxStats` from every device's: one pmax, one psum.

    Each device's statistics are relative to its own shift; they move to the global one
    (``+ mass * delta``, the sum of exponentials times ``exp(delta)``) and travel in one
    stacked ``psum`` with the label's score (from the device whose slice holds it,
    ``hit``) and ``extras`` (per-token vectors to add up, e.g. the label's class weight).
    Must be called inside ``shard_map`` (or another context where ``axis_name`` is bound).
    """
    # The shift is a constant for differentiation (pmax has no derivative rule).
    shift = lax.pmax(lax.stop_gradient(local.shift), axis_name)
    delta = local.shift - shift  # <= 0; a slice of -inf only (lowest - shift) adds nothing
    scale = jnp.exp(delta)

    def moved(total, mass):
        return total + jnp.where(mass == 0, 0.0, mass * delta)

    parts = [jnp.exp(local.lse) * scale]
    if local.label is not None:
        assert hit is not None  # given with the labels
        parts += [jnp.where(hit, local.label + delta, 0.0)]
    if local.dense is not None:
        assert local.target_mass is not None
        parts += [moved(local.dense, local.target_mass), local.target_mass]
    if local.column_sum is not None:
        assert local.column_mass is not None
        parts += [moved(local.column_sum, local.column_mass), local.column_mass]
    parts += extras
    total = lax.psum(jnp.stack(parts), axis_name)
    stats = SoftmaxStats(shift=shift, lse=jnp.log(total[0]))
    k = 1
    if local.label is not None:
        stats = stats._replace(label=total[1])
        k += 1
    if local.dense is not None:
        stats = stats._replace(dense=total[k], target_mass=total[k + 1])
        k += 2
    if local.column_sum is not None:
        stats = stats._replace(column_sum=total[k], column_mass=total[k + 1])
        k += 2
    return stats, list(total[k:])


def _local_labels(labels: jax.Array, counted: jax.Array, local_classes: int, axis_name):
    """Each label's column in this device's slice (-1 where it holds none of them).

    The slices are ``[i * V_local, (i + 1) * V_local)``, ``i = axis_index(axis_name)``.
    """
    local = labels - lax.axis_index(axis_name) * local_classes
    hit = counted & (local >= 0) & (local < local_classes)
    return jnp.where(hit, local, -jnp.ones_like(local))


def _item_weight(local_labels: jax.Array, weights: jax.Array) -> jax.Array:
    """This device's share of each label's class weight (0 where it does not hold it)."""
    w_y = weights[jnp.maximum(local_labels, 0)]
    return jnp.where(local_labels >= 0, w_y, jnp.zeros_like(w_y))


def _loss_from(stats, items, *, label_smoothing, z_loss, num_classes, dtype, reduction,
               batch_axis_name, item_shape):  # fmt: skip
    """The reduced loss from the whole vocabulary's statistics (``items``: target weight
    or None, item weight, kept, out of range or None)."""
    target_weight, item_weight, kept, out_of_range, denominator = items
    per = cross_entropy_from_statistics(
        stats, target_weight=target_weight, num_classes=num_classes,
        label_smoothing=label_smoothing, z_loss=z_loss, item_weight=item_weight,
    )  # fmt: skip
    per = jnp.where(kept, per, jnp.zeros_like(per))
    if out_of_range is not None:
        per = jnp.where(out_of_range, jnp.full_like(per, jnp.nan), per)
    if denominator is not None:
        denominator = denominator.reshape(item_shape)
    unreduced = Unreduced(per.reshape(item_shape), kept.reshape(item_shape), denominator, dtype)
    return unreduced.reduce(reduction, axis_name=batch_axis_name)


# --------------------------------------------------------------------------------------
# vocab_parallel_cross_entropy


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _vocab_stats(x, labels, targets, weights, extras, axis_name, reads):
    terms = SoftmaxTerms(labels, targets)
    local = chunked.softmax_statistics(x, terms, weights=weights, reads=reads)
    return _combine(local, None if labels is None else labels >= 0, list(extras), axis_name)


def _vocab_stats_fwd(x, labels, targets, weights, extras, axis_name, reads):
    out = _vocab_stats(x, labels, targets, weights, extras, axis_name, reads)
    # The residuals are the logits as given and O(tokens) vectors.
    return out, (x, labels, targets, weights, out[0])


def _vocab_stats_bwd(axis_name, reads, res, cotangents):
    # dL/dx = a softmax + c one_hot + d w t + e w [x > -inf] with the whole vocabulary's
    # statistics: all local, so the backward pass needs no collective.
    x, labels, targets, weights, stats = res
    cts, _ = cotangents
    g, dt = chunked.softmax_gradient(x, SoftmaxTerms(labels, targets), stats, cts, weights=weights)
    dt = None if dt is None else dt.astype(targets.dtype)
    return g.astype(x.dtype), None, dt, None, None


_vocab_stats.defvjp(_vocab_stats_fwd, _vocab_stats_bwd)


def _hyper(value, dtype):
    v = checks.concrete_scalar(value)
    return None if v is not None and v == 0 else lax.stop_gradient(jnp.asarray(value, dtype))


@hyperparameters(
    axis_name=_axis_name,
    ignore_index=integer(optional=True),
    label_smoothing=real(0.0, 1.0),
    z_loss=real(0.0),
    logit_softcap=real(0.0, low_open=True, optional=True),
    reduction=REDUCTION,
    batch_axis_name=_axis_name,
)
def vocab_parallel_cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    *,
    axis_name: AxisName,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    logit_softcap: float | None = None,
    reduction: str = "mean",
    axis: int = -1,
    batch_axis_name: AxisName | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Cross-entropy over a vocabulary split across devices, called inside ``shard_map``.

    Each device passes its slice of the logits, the classes
    ``[i * V_local, (i + 1) * V_local)`` with ``i = jax.lax.axis_index(axis_name)``, and
    the global class indices (or its slice of the target probabilities). The result
    equals :func:`jaxlosses.cross_entropy` of the whole logits with the same options
    (class ``weight``, ``ignore_index``, ``label_smoothing``, ``z_loss``,
    ``logit_softcap``), with :math:`C` the whole vocabulary:

    .. math::
        \ell_n = (1 - \varepsilon) \sum_c w_c t_{n,c} (\mathrm{lse}_n - s_{n,c})
               + \frac{\varepsilon}{C} \sum_{c \in F_n} w_c (\mathrm{lse}_n - s_{n,c})
               + \lambda_z\, \omega_n\, \mathrm{lse}_n^2

    where :math:`s` are the (soft-capped) logits, :math:`t` the one-hot label or the
    probabilities, :math:`F_n` the classes whose logit is not ``-inf`` and
    :math:`\omega_n` the item's weight in the mean (:math:`w_{y_n}` for class indices,
    1 for probabilities); see :func:`jaxlosses.linear_cross_entropy`.

    Collectives: one ``pmax`` and one ``psum`` (of a stacked array of per-token
    statistics) over ``axis_name`` in the forward pass, none in the backward pass (a
    ``custom_vjp`` whose gradient is computed on the local slice; forward-mode
    differentiation raises JAX's ``TypeError``). The logits are never gathered. With
    ``batch_axis_name``, one more ``psum`` of two scalars makes ``"mean"`` and ``"sum"``
    global.

    Args:
      input: this device's logits, the class axis ``axis`` of size ``V_local``; every
        device along ``axis_name`` holds the same ``V_local``. ``-inf`` marks masked
        classes (e.g. vocabulary padding), which take no label-smoothing mass.
      target: global class indices in ``[0, C)`` (``input``'s shape without ``axis``, the
        same on every device along ``axis_name``), or this device's slice of the class
        probabilities (``input``'s shape).
      axis_name: the mesh axis (or tuple of axes) the vocabulary is split over.
      weight: this device's slice of the class weights, ``(V_local,)``; the mean's
        denominator :math:`\sum_n w_{y_n}` is global.
      ignore_index: label value whose items are skipped (loss 0, not in the mean);
        None skips none.
      label_smoothing: :math:`\varepsilon \in [0, 1]`, spread over the whole vocabulary
        (PyTorch's: :math:`\varepsilon / C` on every class, the target included).
      z_loss: :math:`\lambda_z \ge 0`, the weight of the squared log-partition function
        (PaLM's auxiliary loss, 1e-4 there).
      logit_softcap: :math:`c > 0` to apply :math:`c \tanh(\cdot / c)` to the logits
        first, or None.
      reduction: ``"none"`` (per-item losses), ``"sum"`` or ``"mean"``.
      axis: the class axis of ``input``.
      batch_axis_name: the mesh axis (or axes) the items are split over, if any. Without
        it, ``"mean"`` and ``"sum"`` reduce this device's items only: if the items are
        also sharded over a data axis, pass that axis here (the mean is then the global
        sum over the global denominator, exact with ``ignore_index`` and class weights),
        or ``psum`` the ``"sum"`` yourself. Not used by ``"none"``.
      where: optional boolean mask broadcastable to the per-item losses; False items
        are skipped.

    Returns:
      A scalar (the same on every device of the reduced axes), or per-item losses for
      ``reduction="none"``. A mean over no kept item is 0. A label outside ``[0, C)``
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
    inputs, axis = class_inputs("input", input, axis, where)
    x, local_classes = inputs.x, inputs.num_classes
    acc = x.dtype
    num_classes = local_classes * lax.axis_size(axis_name)
    item_shape = inputs.item_shape
    eps, zl = _hyper(label_smoothing, acc), _hyper(z_loss, acc)
    if logit_softcap is not None:
        x = stable.softcap(x, lax.stop_gradient(jnp.asarray(logit_softcap, acc)))
    cw = class_weight(weight, local_classes, acc)
    cw = None if cw is None else lax.stop_gradient(cw)
    x = x.reshape(-1, local_classes)
    target = jnp.asarray(target)
    if jnp.issubdtype(target.dtype, jnp.floating):
        if target.shape != jnp.shape(input):
            raise ValueError(
                "a floating target holds this device's slice of the class probabilities "
                f"and must have the input's shape {jnp.shape(input)}, got "
                f"target.shape={target.shape}"
            )
        t = jnp.moveaxis(target, axis, -1).astype(acc).reshape(x.shape)
        kept = jnp.ones(x.shape[:1], bool) if inputs.mask is None else inputs.mask.reshape(-1)
        x, t, cw = vary_together([x, t, cw], _axes(axis_name))
        reads = SoftmaxReads(column_sum=eps is not None)
        stats, _ = _vocab_stats(x, None, t, cw, [], axis_name, reads)
        items = (None, kept.astype(acc), kept, None, None)
    else:
        lab = class_labels(inputs, target, axis, ignore_index, name="target",
                           num_classes=num_classes)  # fmt: skip
        lab = jax.tree.map(lambda a: a.reshape(-1), lab)
        counted = lab.kept & ~lab.out_of_range
        labels = _local_labels(lab.safe, counted, local_classes, axis_name)
        extras = [] if cw is None else [_item_weight(labels, cw)]
        x, labels, cw, *extras = vary_together([x, labels, cw, *extras], _axes(axis_name))
        reads = SoftmaxReads(column_sum=eps is not None)
        stats, summed = _vocab_stats(x, labels, None, cw, extras, axis_name, reads)
        w_y = summed[0] if cw is not None else counted.astype(acc)
        # the mean's denominator counts an out-of-range label (its loss is nan) as
        # cross_entropy does, so the other tokens' gradients match its
        denominator = w_y if cw is not None else lab.kept.astype(acc)
        items = (w_y, w_y, lab.kept, lab.out_of_range, denominator)
    return _loss_from(
        stats, items, label_smoothing=eps, z_loss=zl, num_classes=num_classes,
        dtype=inputs.dtype, reduction=reduction, batch_axis_name=batch_axis_name,
        item_shape=item_shape,
    )  # fmt: skip


def _axes(axis_name) -> tuple:
    return axis_name if isinstance(axis_name, tuple) else (axis_name,)


# --------------------------------------------------------------------------------------
# vocab_parallel_linear_cross_entropy: the output layer fused in, its weight split over
# the vocabulary. The chunks, blocks and gradients are the chunked engine's
# (linear_softmax_forward / linear_softmax_backward); only the combination across
# devices is added.


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _linear_vocab_stats(plan, reads, axis_name, x, w, b, cap, labels, targets, weights, extras):
    return _linear_vocab_stats_fwd(
        plan, reads, axis_name, x, w, b, cap, labels, targets, weights, extras
    )[0]


def _linear_vocab_stats_fwd(plan, reads, axis_name, x, w, b, cap, labels, targets, weights,
                            extras):  # fmt: skip
    # Every token's local statistics first (one chunk x V_local block of logits at a
    # time), then one pmax and one psum for all of them.
    terms = SoftmaxTerms(labels, targets)
    local = chunked.linear_softmax_forward(
        LinearHead(w, b, cap), x, terms, plan=plan, weights=weights, reads=reads
    )
    out = _combine(local, None if labels is None else labels >= 0, list(extras), axis_name)
    return out, (x, w, b, cap, labels, targets, weights, out[0])


def _linear_vocab_stats_bwd(plan, reads, axis_name, res, cotangents):
    # dL/dlogits from the whole vocabulary's statistics on each device's blocks: the
    # engine's recomputing backward pass. The one-hot term belongs to the device that
    # holds the label (the others' local label is -1).
    x, w, b, cap, labels, targets, weights, stats = res
    cts, _ = cotangents
    dx, grads, dt = chunked.linear_softmax_backward(
        LinearHead(w, b, cap), x, SoftmaxTerms(labels, targets), stats, cts,
        plan=plan, weights=weights,
    )  # fmt: skip
    return dx, grads.weight, grads.bias, None, None, dt, None, None


_linear_vocab_stats.defvjp(_linear_vocab_stats_fwd, _linear_vocab_stats_bwd)


@hyperparameters(
    axis_name=_axis_name,
    ignore_index=integer(optional=True),
    label_smoothing=real(0.0, 1.0),
    z_loss=real(0.0),
    logit_softcap=real(0.0, low_open=True, optional=True),
    reduction=REDUCTION,
    batch_axis_name=_axis_name,
    chunk_size=chunked.CHUNK_SIZE,
)
def vocab_parallel_linear_cross_entropy(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    axis_name: AxisName,
    linear_bias: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
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
    ``i = jax.lax.axis_index(axis_name)``, the same ``input`` as every device along
    ``axis_name`` and the global class indices (or its slice of the target
    probabilities). The value and the gradients with respect to ``input``, the local
    ``linear_weight`` and ``linear_bias`` (and soft targets) equal those of
    :func:`jaxlosses.linear_cross_entropy` with the whole weight (and of
    :func:`vocab_parallel_cross_entropy` of ``input @ linear_weight.T + linear_bias``),
    with the same options and definition:

    .. math::
        \ell = (1 - \varepsilon) \sum_c w_c t_c (\mathrm{lse} - s_c)
             + \frac{\varepsilon}{C} \sum_{c \in F} w_c (\mathrm{lse} - s_c)
             + \lambda_z\, \omega\, \mathrm{lse}^2

    over the whole vocabulary of :math:`C` classes, :math:`s` the soft-capped logits
    (see :func:`jaxlosses.linear_cross_entropy`). Neither the ``N x C`` logits nor this
    device's ``N x V_local`` slice of them is ever built.

    How: the tokens are processed in chunks (the chunked engine of
    :func:`jaxlosses.linear_cross_entropy`, on the local slice): the forward pass keeps
    each token's local softmax statistics, then combines them across ``axis_name`` for
    all tokens at once with one ``pmax`` and one ``psum`` (of a stacked array). The
    backward pass recomputes each block of logits (four GEMMs per step, like
    ``linear_cross_entropy`` with ``reduction="none"``; computing the gradient in the
    forward pass would save one but need the global statistics of every chunk before its
    gradient, so a ``pmax`` and a ``psum`` per chunk). 16-bit inputs and weights multiply
    in their own dtype with float32 accumulation.

    Collectives in the backward pass: the weight and bias gradients are local, but the
    input gradient :math:`\partial L / \partial s \; W_\mathrm{local}` is this device's
    share of a sum over the vocabulary, so one ``psum`` over ``axis_name`` of an
    ``input``-sized array adds the shares (inherent to a vocabulary-parallel output
    layer: Megatron-LM's all-reduce in the backward pass of the layer's input). JAX
    inserts it as the transpose of typing ``input`` as varying over ``axis_name``. When
    the tokens are also split over a data axis, the weight and bias gradients get the
    usual data-parallel ``psum`` over it (``shard_map`` does that for any parameter that
    is replicated over the data axis). Nothing of size ``C`` or ``V_local`` crosses
    ``axis_name``, and the weight is never gathered.

    Reverse mode only (a ``jax.custom_vjp``): ``jax.grad``, ``jax.vjp`` and
    ``jax.jacrev`` work, and second derivatives built on them; forward mode (``jax.jvp``,
    ``jax.jacfwd``) raises JAX's ``TypeError`` "can't apply forward-mode autodiff (jvp)
    to a custom_vjp function" (use :func:`vocab_parallel_cross_entropy` of
    ``input @ linear_weight.T + linear_bias`` there). Hyperparameters and class weights
    are not differentiated.

    Args:
      input: features, ``(*B, H)``, the same on every device along ``axis_name``.
      linear_weight: this device's rows of the output layer's weight, ``(V_local, H)``
        (PyTorch's layout); every device along ``axis_name`` holds the same ``V_local``.
      target: global class indices in ``[0, C)`` of shape ``(*B,)``, or this device's
        slice of the class probabilities, ``(*B, V_local)``.
      axis_name: the mesh axis (or tuple of axes) the vocabulary is split over.
      linear_bias: optional bias slice, ``(V_local,)``; a ``-inf`` entry masks its class.
      weight: this device's slice of the class weights, ``(V_local,)``; the mean's
        denominator is global.
      ignore_index: label value whose tokens are skipped (loss 0, not in the mean);
        None skips none.
      label_smoothing: :math:`\varepsilon \in [0, 1]`, spread over the whole vocabulary.
      z_loss: :math:`\lambda_z \ge 0`, the weight of :math:`\mathrm{lse}^2`.
      logit_softcap: :math:`c > 0` to apply :math:`c \tanh(\cdot / c)` to the logits, or
        None.
      reduction: ``"none"`` (per-token losses of shape ``B``), ``"sum"`` or ``"mean"``.
      batch_axis_name: the mesh axis (or axes) the tokens are split over, if any: then
        ``"mean"`` is the global sum over the global denominator, and ``"sum"`` global
        (one ``psum`` of two scalars). Without it they reduce this device's tokens only.
        Not used by ``"none"``.
      chunk_size: tokens per chunk, or a ``(tokens, classes)`` pair to also split the
        local vocabulary, as for :func:`jaxlosses.linear_cross_entropy` (with
        ``V_local`` in the automatic rule).
      where: optional boolean mask broadcastable to ``B``; False tokens are skipped.

    Returns:
      A scalar (the same on every device of the reduced axes), or per-token losses of
      shape ``B`` for ``reduction="none"``, in the promoted dtype of ``input`` and
      ``linear_weight``. A mean over no kept token is 0 with zero gradient; a kept label
      outside ``[0, C)`` gives nan.

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
    if jnp.ndim(linear_weight) != 2:
        raise ValueError(
            "linear_weight must be this device's (V_local, H) rows of the output layer, got "
            f"linear_weight.shape={jnp.shape(linear_weight)}"
        )
    shards = lax.axis_size(axis_name)
    inp = prepare_linear_inputs(
        input, linear_weight, target, linear_bias=linear_bias, weight=weight,
        ignore_index=ignore_index, where=where, shards=shards,
    )  # fmt: skip
    acc = compute_dtype(inp.dtype)
    local_classes, hidden = inp.num_classes, inp.x.shape[1]
    eps, zl = _hyper(label_smoothing, acc), _hyper(z_loss, acc)
    cap = None if logit_softcap is None else lax.stop_gradient(jnp.asarray(logit_softcap, acc))
    cw = None if inp.class_weight is None else lax.stop_gradient(inp.class_weight)
    plan = chunked.make_plan(inp.x.shape[0], local_classes, hidden, chunk_size)
    reads = SoftmaxReads(column_sum=eps is not None)
    w, b = inp.w[0], None if inp.b is None else inp.b[0]
    kept = inp.kept[:, 0]
    if inp.labels is None:
        assert inp.targets is not None  # probabilities when there are no labels
        labels, extras, targets = None, [], inp.targets[0]
    else:
        assert inp.out_of_range is not None  # given with the labels
        counted = kept & ~inp.out_of_range[:, 0]
        labels = _local_labels(inp.labels[:, 0], counted, local_classes, axis_name)
        extras = [] if cw is None else [_item_weight(labels, cw)]
        targets = None
    # Every device's gradient is its share (its tokens, its slice of the vocabulary).
    # Typed as varying over the vocabulary axis and every axis any of them varies over,
    # the inputs' and parameters' casts transpose to the psums that add the shares: for
    # the inputs, one psum over axis_name.
    x, w, b, labels, targets, cw, *extras = vary_together(
        [inp.x, w, b, labels, targets, cw, *extras], _axes(axis_name)
    )
    stats, summed = _linear_vocab_stats(
        plan, reads, axis_name, x, w, b, cap, labels, targets, cw, extras
    )
    items: tuple[jax.Array | None, jax.Array, jax.Array, jax.Array | None, jax.Array | None]
    if inp.labels is None:
        items = (None, kept.astype(acc), kept, None, None)
    else:
        w_y = summed[0] if cw is not None else counted.astype(acc)
        denominator = w_y if cw is not None else kept.astype(acc)
        assert inp.out_of_range is not None
        items = (w_y, w_y, kept, inp.out_of_range[:, 0], denominator)
    return _loss_from(
        stats, items, label_smoothing=eps, z_loss=zl, num_classes=local_classes * shards,
        dtype=inp.dtype, reduction=reduction, batch_axis_name=batch_axis_name,
        item_shape=inp.item_shape,
    )  # fmt: skip
