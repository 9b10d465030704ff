r"""Contrastive losses over a batch's similarity matrix: CLIP, SigLIP, InfoNCE, SupCon.

Each loss is a function of the ``N x M`` similarities of two sets of feature rows, which
:mod:`jaxlosses._core.pairwise` computes in chunks of rows without ever holding them all:
every loss here is written as per-row *statistics* of a block of similarities (a masked
log-sum-exp, a sum of softplus terms, a sum over positives), and its value is plain JAX on
those ``(N,)`` vectors. For ``"mean"`` and ``"sum"`` the statistics are weighted per row
before the scan, so the gradient is computed in the same pass as the value (three matrix
products, like the naive ``a @ b.T`` and its backward pass); ``"none"`` (and CLIP, whose
text-to-image term runs down the columns) recompute each block in the backward pass (four).

Names follow each loss's reference implementation: open_clip's ``image_features``,
``text_features``, ``logit_scale``, ``logit_bias``; info-nce-pytorch's ``query``,
``positive_key``, ``negative_keys``; SupContrast's ``features``, ``labels``.

``where`` drops items from the batch: a False item is neither an anchor nor anyone's
positive or negative, so every loss with ``where`` equals the loss of the kept sub-batch.

The shared kernel of the label-based losses is :func:`pair_contrastive`: SupCon is its
``denominator="all"``, ``average="anchors"`` case, optax's ``ntxent`` its
``denominator="negatives"``, ``average="pairs"`` case.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxlosses._core import checks, stable
from jaxlosses._core.checks import REDUCTION, choice, hyperparameters, integer, real
from jaxlosses._core.modules import LearnedInput
from jaxlosses._core.pairwise import pairwise_rows, pairwise_total
from jaxlosses._core.reduction import Unreduced, compute_dtype, safe_divide
from jaxlosses._core.sharding import explicit_spec

CHUNK_SIZE = integer(low=1, optional=True)

# The learned inputs of the Flax modules, initialised as their papers do: CLIP's
# temperature 0.07 (open_clip's init_logit_scale = log(1 / 0.07)), SigLIP's t' = log 10
# and b = -10. The parameter is the log of the scale; the loss gets its exp.
CLIP_LEARNED = {"logit_scale": LearnedInput(math.log(1 / 0.07), "init_logit_scale", jnp.exp)}
SIGLIP_LEARNED = {
    "logit_scale": LearnedInput(math.log(10.0), "init_logit_scale", jnp.exp),
    "logit_bias": LearnedInput(-10.0, "init_logit_bias"),
}

# --------------------------------------------------------------------------------------
# Argument checks (shared with the sharded versions)


def replicated(*inputs):
    """The arrays (None kept), replicated if any of them is explicitly sharded.

    Every item is compared with every other, so explicitly sharded features (a mesh of
    ``AxisType.Explicit`` axes) are gathered and every device computes the whole loss;
    the transpose of the reshard sends each gradient back to its shard. To split the work
    over devices, call :mod:`jaxlosses.sharded`'s versions inside ``shard_map``.
    """
    arrays = [None if a is None else jnp.asarray(a) for a in inputs]
    if not any(a is not None and any(s is not None for s in explicit_spec(a)) for a in arrays):
        return arrays
    from jax.sharding import PartitionSpec

    return [None if a is None else jax.sharding.reshard(a, PartitionSpec()) for a in arrays]


def feature_matrix(name: str, x) -> jax.Array:
    """A floating ``(N, D)`` matrix of feature rows, or a ``ValueError`` naming ``name``."""
    x = checks.as_float_array(name, x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a (N, D) matrix of feature rows, got shape {x.shape}")
    return x


def paired_features(name_a: str, a, name_b: str, b) -> tuple[jax.Array, jax.Array, jnp.dtype]:
    """Two ``(N, D)`` feature matrices of the same shape, in their promoted dtype."""
    a, b = feature_matrix(name_a, a), feature_matrix(name_b, b)
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must both be (N, D) with the same N and D (row i of one "
            f"is the positive of row i of the other), got {name_a}.shape={a.shape} and "
            f"{name_b}.shape={b.shape}"
        )
    dtype = jnp.result_type(a, b)
    return a.astype(dtype), b.astype(dtype), dtype


def scalar_input(name: str, value, dtype) -> jax.Array:
    """A differentiable scalar input (a learned scale or bias) in the compute dtype."""
    value = jnp.asarray(value)
    if value.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got an array of shape {value.shape}")
    if not (jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)):
        raise TypeError(f"{name} must be a real number, got dtype {value.dtype}")
    return value.astype(compute_dtype(dtype))


def item_mask(where, num_items: int) -> jax.Array:
    """The kept items: ``where`` as an ``(N,)`` boolean vector (all True for None)."""
    if where is None:
        return jnp.ones((num_items,), bool)
    return checks.as_where(where, (num_items,), to="batch of items")


def row_dot(a: jax.Array, b: jax.Array) -> jax.Array:
    """``sum(a * b, -1)`` accumulated in float32: the similarity of each row's pair."""
    acc = compute_dtype(a.dtype)
    return jnp.einsum("nd,nd->n", a, b, preferred_element_type=acc)


# --------------------------------------------------------------------------------------
# Row statistics of a block of similarities


class LseConfig(NamedTuple):
    """Static description of :func:`lse_stats`."""

    col_mask: bool  # cols holds a (M,) kept mask
    extra: bool  # rows holds a (T,) extra logit joining each row's log-sum-exp
    row_sum: bool  # also return the sum of each row's kept logits (label smoothing)


def lse_stats(cfg: LseConfig, p, rows, cols, params):
    """``(logsumexp_j x_ij [, sum_j x_ij])`` of the logits ``x = scale * p``.

    ``cols``: the kept columns (masked ones leave both statistics); ``rows``: an extra
    logit per row that joins its log-sum-exp (InfoNCE's positive key beside explicit
    negatives); ``params``: the scale.
    """
    x = params * p
    if cfg.col_mask:
        x = jnp.where(cols[None, :], x, -jnp.inf)
    lse = stable.logsumexp(x, 1)
    if cfg.extra:
        lse = jnp.logaddexp(lse, rows)
    if not cfg.row_sum:
        return (lse,)
    kept = x if not cfg.col_mask else jnp.where(cols[None, :], x, 0.0)
    return lse, jnp.sum(kept, axis=1)


def _weighted(stats_fn, p, rows, cols, params):
    """``sum_k sum_i weights[k]_i stats[k]_i`` of one chunk: rows = (weights, stats rows)."""
    weights, inner = rows
    stats = stats_fn(p, inner, cols, params)
    # A row of weight 0 (dropped, padding) adds 0 even if its statistic is -inf (a
    # log-sum-exp over no kept column).
    return sum(jnp.sum(w * jnp.where(w == 0, 0.0, s)) for w, s in zip(weights, stats, strict=True))


def row_statistics(stats_fn, a, b, rows, cols, params, *, weights=None, chunk_size=None):
    """Per-row statistics of ``stats_fn`` over the blocks of ``a @ b.T``, or their total.

    ``weights=None``: the tuple of ``(N,)`` statistics (gradient by recomputation, any
    cotangent). Otherwise ``weights`` is a tuple of ``(N,)`` weights, one per statistic, and
    the result is the scalar ``sum_k sum_i weights[k]_i stats[k]_i``, its gradient computed
    in the forward pass. Padding rows get zero weights.
    """
    if weights is None:

        def block(p, rows_c, cols_, params_):
            return stats_fn(p, rows_c, cols_, params_), ()

        return pairwise_rows(block, a, b, rows, cols, params, chunk_size=chunk_size)[0]
    weights = tuple(lax.stop_gradient(w) for w in weights)
    block = functools.partial(_weighted, stats_fn)
    return pairwise_total(block, a, b, (weights, rows), cols, params, chunk_size=chunk_size)


def _mean_weights(reduction, kept, acc) -> jax.Array:
    """Per-item weights of a scalar reduction: 1 (sum) or 1 / kept count (mean); 0 if dropped."""
    w = kept.astype(acc)
    if reduction == "mean":
        w = safe_divide(w, jnp.sum(w))
    return w


def _scalar(reduction) -> bool:
    return reduction in ("mean", "sum")


# --------------------------------------------------------------------------------------
# CLIP


class _ClipConfig(NamedTuple):
    smoothing: bool
    col_mask: bool


def _clip_block(cfg: _ClipConfig, p, rows, cols, params):
    """Row log-sum-exps (image to text) and column partial ones (text to image)."""
    kept = rows
    x = params * p
    xr = jnp.where(cols[None, :], x, -jnp.inf) if cfg.col_mask else x
    xc = jnp.where(kept[:, None], x, -jnp.inf)  # padding rows leave the columns too
    values: tuple[jax.Array, ...] = (stable.logsumexp(xr, 1),)
    parts: tuple[jax.Array, ...] = (stable.logsumexp(xc, 0),)
    if cfg.smoothing:
        values += (jnp.sum(jnp.where(cols[None, :], x, 0.0) if cfg.col_mask else x, 1),)
        parts += (jnp.sum(jnp.where(kept[:, None], x, 0.0), 0),)
    return values, parts


def clip_terms(
    image_features, text_features, logit_scale, *, label_smoothing, chunk_size, where
) -> Unreduced:
    """The per-item CLIP loss of every item (both directions' mean), unreduced."""
    image_features, text_features, logit_scale, where = replicated(
        image_features, text_features, logit_scale, where
    )
    a, b, dtype = paired_features("image_features", image_features, "text_features", text_features)
    scale = scalar_input("logit_scale", logit_scale, dtype)
    acc = compute_dtype(dtype)
    n = a.shape[0]
    kept = item_mask(where, n)
    smoothing = checks.concrete_scalar(label_smoothing) != 0
    cfg = _ClipConfig(smoothing, where is not None)
    block = functools.partial(_clip_block, cfg)
    col_reduce = ("logsumexp", "sum") if smoothing else ("logsumexp",)
    values, parts = pairwise_rows(
        block, a, b, kept, kept, scale, col_reduce=col_reduce, chunk_size=chunk_size
    )
    diag = scale * row_dot(a, b)
    eps = lax.stop_gradient(jnp.asarray(label_smoothing, acc))
    i2t = values[0] - diag
    t2i = parts[0] - diag
    if smoothing:
        k = jnp.maximum(jnp.sum(kept, dtype=acc), 1.0)
        i2t = i2t + eps * (diag - values[1] / k)
        t2i = t2i + eps * (diag - parts[1] / k)
    loss = jnp.where(kept, 0.5 * (i2t + t2i), 0.0)
    return Unreduced(loss, kept if where is not None else None, None, dtype)


@hyperparameters(label_smoothing=real(0.0, 1.0), reduction=REDUCTION, chunk_size=CHUNK_SIZE)
def clip_loss(
    image_features: ArrayLike,
    text_features: ArrayLike,
    logit_scale: ArrayLike,
    *,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    chunk_size: int | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""CLIP's symmetric contrastive loss (open_clip's ``ClipLoss``).

    With logits :math:`x_{ij} = s\, \langle a_i, b_j \rangle` of image features
    :math:`a` and text features :math:`b` (``logit_scale`` :math:`s`), the mean of the
    image-to-text and text-to-image cross-entropies with the matching pair (the diagonal)
    as the label:

    .. math::
        \ell_i = \tfrac12 \Big[\big(\log \textstyle\sum_j e^{x_{ij}} - x_{ii}\big)
                 + \big(\log \textstyle\sum_j e^{x_{ji}} - x_{ii}\big)\Big]

    With ``label_smoothing`` :math:`\varepsilon`, each cross-entropy is PyTorch's
    label-smoothed one over the :math:`N` candidates (:math:`\varepsilon / N` on each).
    ``"mean"`` is open_clip's loss. The features are used as given (open_clip's models
    L2-normalise them before the loss); ``logit_scale`` is the multiplier itself
    (open_clip's ``logit_scale.exp()``) and is differentiated.

    Memory: computed in chunks of ``chunk_size`` rows of the ``N x N`` logits with a
    custom VJP, so neither the logits nor their gradient is ever held whole (see the
    Contrastive guide). Reverse-mode only (``jax.grad``, ``jax.vjp``, ``jax.hessian``);
    forward mode (``jax.jvp``) raises JAX's error for a ``custom_vjp``. For several
    devices see :func:`jaxlosses.sharded.clip_loss`.

    Args:
      image_features: ``(N, D)`` image embeddings.
      text_features: ``(N, D)`` text embeddings; row ``i`` matches image ``i``.
      logit_scale: the scalar :math:`s` (e.g. ``1 / 0.07`` at initialisation, at most 100
        in CLIP's training).
      label_smoothing: :math:`\varepsilon \in [0, 1]`.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the ``(N,)`` per-item losses
        :math:`\ell_i`).
      chunk_size: rows of the logits per chunk; None picks one (at most ``N / 8``).
      where: optional ``(N,)`` boolean mask; False items leave the batch (neither
        anchors nor negatives), so the loss equals that of the kept sub-batch.

    Returns:
      A scalar, or ``(N,)`` per-item losses for ``reduction="none"``, in the features'
      dtype (computed in float32 for 16-bit features).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxlosses
      >>> img = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
      >>> txt = jnp.array([[0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
      >>> round(float(jaxlosses.clip_loss(img, txt, 10.0)), 4)
      0.4896

    References:
      Radford et al., "Learning Transferable Visual Models From Natural Language
      Supervision" (CLIP), https://arxiv.org/abs/2103.00020
    """
    return clip_terms(
        image_features,
        text_features,
        logit_scale,
        label_smoothing=label_smoothing,
        chunk_size=chunk_size,
        where=where,
    ).reduce(reduction)


# --------------------------------------------------------------------------------------
# SigLIP


class SigmoidConfig(NamedTuple):
    """Static description of :func:`negative_sigmoid_stats`."""

    col_mask: bool


def negative_sigmoid_stats(cfg: SigmoidConfig, p, rows, cols, params):
    """``sum_j softplus(scale * p_ij + bias)`` over the kept columns: every pair's loss
    as a negative pair (the diagonal is corrected outside)."""
    scale, bias = params
    loss = jax.nn.softplus(scale * p + bias)
    if cfg.col_mask:
        loss = jnp.where(cols[None, :], loss, 0.0)
    return (jnp.sum(loss, axis=1),)


@hyperparameters(reduction=REDUCTION, chunk_size=CHUNK_SIZE)
def siglip_loss(
    image_features: ArrayLike,
    text_features: ArrayLike,
    logit_scale: ArrayLike,
    logit_bias: ArrayLike,
    *,
    reduction: str = "mean",
    chunk_size: int | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""SigLIP's pairwise sigmoid loss (open_clip's ``SigLipLoss``, big_vision's SigLIP).

    Every image-text pair is an independent binary problem, positive on the diagonal:
    with :math:`x_{ij} = s \langle a_i, b_j \rangle + c` (``logit_scale`` :math:`s`,
    ``logit_bias`` :math:`c`) and :math:`z_{ij} = 1` if :math:`i = j`, else -1,

    .. math::
        \ell_i = -\sum_j \log \sigma(z_{ij}\, x_{ij}), \qquad
        \text{loss} = \frac1N \sum_i \ell_i

    the paper's loss (``"mean"``; open_clip sums the pairs and divides by the batch
    size, the same number). Both scalars are differentiated; SigLIP initialises
    :math:`s = 10` (:math:`\log s = \log 10`) and :math:`c = -10`. The features are used
    as given (SigLIP's models L2-normalise them).

    Memory: chunks of ``chunk_size`` rows of the logits, with a custom VJP; for ``"mean"``
    and ``"sum"`` the gradient is formed in the same pass as the value. Reverse-mode only.
    For several devices see :func:`jaxlosses.sharded.siglip_loss` (the text features
    travel around a ring of devices).

    Args:
      image_features: ``(N, D)`` image embeddings.
      text_features: ``(N, D)`` text embeddings; row ``i`` matches image ``i``.
      logit_scale: the scalar :math:`s` (the multiplier, ``exp`` of the learned
        :math:`t'`).
      logit_bias: the scalar :math:`c`.
      reduction: ``"mean"`` (over images), ``"sum"`` or ``"none"`` (the ``(N,)`` per-image
        sums :math:`\ell_i`).
      chunk_size: rows of the logits per chunk; None picks one.
      where: optional ``(N,)`` boolean mask; False items leave the batch.

    Returns:
      A scalar, or ``(N,)`` per-image losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> img = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
      >>> txt = jnp.array([[0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
      >>> jaxlosses.siglip_loss(img, txt, 10.0, -10.0).round(4)
      Array(1.4388, dtype=float32)

    References:
      Zhai et al., "Sigmoid Loss for Language Image Pre-Training",
      https://arxiv.org/abs/2303.15343
    """
    image_features, text_features, logit_scale, logit_bias, where = replicated(
        image_features, text_features, logit_scale, logit_bias, where
    )
    a, b, dtype = paired_features("image_features", image_features, "text_features", text_features)
    acc = compute_dtype(dtype)
    scale = scalar_input("logit_scale", logit_scale, dtype)
    bias = scalar_input("logit_bias", logit_bias, dtype)
    kept = item_mask(where, a.shape[0])
    stats = functools.partial(negative_sigmoid_stats, SigmoidConfig(where is not None))
    cols = kept if where is not None else None
    # softplus(-d) - softplus(d) = -d: the diagonal pair, counted as a negative in the
    # statistics, becomes a positive.
    diag = scale * row_dot(a, b) + bias
    if _scalar(reduction):
        w = _mean_weights(reduction, kept, acc)
        total = row_statistics(
            stats, a, b, (), cols, (scale, bias), weights=(w,), chunk_size=chunk_size
        )
        return (total - jnp.sum(w * diag)).astype(dtype)
    (neg,) = row_statistics(stats, a, b, (), cols, (scale, bias), chunk_size=chunk_size)
    loss = jnp.where(kept, neg - diag, 0.0)
    return Unreduced(loss, kept if where is not None else None, None, dtype).reduce(reduction)


# --------------------------------------------------------------------------------------
# InfoNCE


def _info_nce_inputs(query, positive_key, negative_keys):
    q = checks.as_float_array("query", query)
    k = checks.as_float_array("positive_key", positive_key)
    if q.ndim not in (1, 2):
        raise ValueError(f"query must be (N, D) (or (D,) for one example), got shape {q.shape}")
    if k.shape != q.shape:
        raise ValueError(
            f"positive_key must have query's shape, got positive_key.shape={k.shape} and "
            f"query.shape={q.shape}"
        )
    n = None if negative_keys is None else checks.as_float_array("negative_keys", negative_keys)
    if n is None and q.ndim == 1:
        raise ValueError(
            "in-batch negatives need a batch of queries: query must be (N, D) when "
            f"negative_keys is None, got query.shape={q.shape}"
        )
    if n is not None:
        ok = n.ndim == 2 and n.shape[1] == q.shape[-1]
        paired = q.ndim == 2 and n.ndim == 3 and n.shape[0] == q.shape[0]
        if not (ok or (paired and n.shape[2] == q.shape[-1])):
            raise ValueError(
                "negative_keys must be (M, D) (shared by every query) or (N, M, D) (each "
                f"query's own), with query's D: got negative_keys.shape={n.shape} for "
                f"query.shape={q.shape}"
            )
    dtype = jnp.result_type(*(x for x in (q, k, n) if x is not None))

    def norm(x):
        if x is None:
            return None
        return stable.l2_normalize(x.astype(compute_dtype(dtype)), -1).astype(dtype)

    return norm(q), norm(k), norm(n), dtype


@hyperparameters(temperature=real(0.0, low_open=True), reduction=REDUCTION, chunk_size=CHUNK_SIZE)
def info_nce(
    query: ArrayLike,
    positive_key: ArrayLike,
    negative_keys: ArrayLike | None = None,
    *,
    temperature: float = 0.1,
    reduction: str = "mean",
    chunk_size: int | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""InfoNCE: each query's positive key against negatives (info-nce-pytorch's ``info_nce``).

    The vectors are L2-normalised (cosine similarities :math:`s`), divided by the
    temperature :math:`\tau`, and each query's positive key is classified against its
    negatives with a cross-entropy:

    .. math::
        \ell_i = -\log \frac{e^{s(q_i, k_i^+) / \tau}}
                 {e^{s(q_i, k_i^+)/\tau} + \sum_{k^-} e^{s(q_i, k^-) / \tau}}

    Without ``negative_keys`` the negatives are the other queries' positive keys (in-batch
    negatives: sentence-transformers' ``MultipleNegativesRankingLoss`` with
    ``scale = 1 / temperature``); with ``(M, D)`` ``negative_keys`` they are shared by
    every query (info-nce-pytorch's ``negative_mode="unpaired"``, a memory bank), with
    ``(N, M, D)`` each query has its own (``"paired"``, e.g. mined hard negatives).

    Memory: in-batch and shared negatives run in chunks of ``chunk_size`` queries with a
    custom VJP (reverse-mode only); the ``N x N`` (or ``N x M``) similarities are never
    held whole.

    Args:
      query: ``(N, D)`` queries, or one ``(D,)`` query with ``negative_keys``.
      positive_key: the positive of each query, ``query``'s shape.
      negative_keys: None (in-batch negatives), ``(M, D)`` or ``(N, M, D)``.
      temperature: :math:`\tau > 0`.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the ``(N,)`` per-query losses).
      chunk_size: queries per chunk; None picks one.
      where: optional ``(N,)`` boolean mask of kept queries; with in-batch negatives a
        False item also stops being a negative (the loss of the kept sub-batch).

    Returns:
      A scalar, or ``(N,)`` per-query losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> q = jnp.array([[1.0, 0.0], [0.0, 2.0]])
      >>> k = jnp.array([[0.9, 0.1], [0.1, 0.9]])
      >>> jaxlosses.info_nce(q, k, temperature=0.5).round(4)
      Array(0.1577, dtype=float32)

    References:
      van den Oord et al., "Representation Learning with Contrastive Predictive Coding",
      https://arxiv.org/abs/1807.03748;
      Henderson et al., "Efficient Natural Language Response Suggestion for Smart Reply"
      (in-batch negatives), https://arxiv.org/abs/1705.00652
    """
    query, positive_key, negative_keys, where = replicated(
        query, positive_key, negative_keys, where
    )
    q, k, neg, dtype = _info_nce_inputs(query, positive_key, negative_keys)
    acc = compute_dtype(dtype)
    single = q.ndim == 1
    if single:
        q, k = q[None], k[None]
    n = q.shape[0]
    kept = item_mask(where, n) if not single else item_mask(where, 1)
    inv_t = lax.stop_gradient(1.0 / jnp.asarray(temperature, acc))
    pos = inv_t * row_dot(q, k)
    if neg is not None and neg.ndim == 3:
        # Each query's own negatives: (N, M) logits, no N x N matrix to chunk.
        logits = inv_t * jnp.einsum("nd,nmd->nm", q, neg, preferred_element_type=acc)
        lse = jnp.logaddexp(stable.logsumexp(logits, 1), pos)
        per = lse - pos
    else:
        keys = k if neg is None else neg
        in_batch = neg is None
        cfg = LseConfig(col_mask=in_batch and where is not None, extra=not in_batch, row_sum=False)
        stats = functools.partial(lse_stats, cfg)
        rows = None if in_batch else pos
        cols = kept if cfg.col_mask else None
        if _scalar(reduction):
            w = _mean_weights(reduction, kept, acc)
            total = row_statistics(
                stats, q, keys, rows, cols, inv_t, weights=(w,), chunk_size=chunk_size
            )
            return (total - jnp.sum(w * pos)).astype(dtype)
        (lse,) = row_statistics(stats, q, keys, rows, cols, inv_t, chunk_size=chunk_size)
        per = lse - pos
    loss = jnp.where(kept, per, 0.0)
    if single:
        loss = loss[0]
        kept = kept[0]
    unreduced = Unreduced(loss, kept if where is not None else None, None, dtype)
    return unreduced.reduce(reduction)


# --------------------------------------------------------------------------------------
# Label-based contrastive losses: SupCon and NT-Xent


class LabelConfig(NamedTuple):
    """Static description of :func:`label_stats`."""

    negatives_only: bool
    col_mask: bool


def label_stats(cfg: LabelConfig, p, rows, cols, params):
    """Row statistics of the label-based losses over the logits ``x = p / temperature``.

    ``rows``: (global index, label) of each anchor; ``cols``: (label, kept) of each
    candidate. An anchor's positives share its label (itself excluded). Returns
    ``(lse over every other item, sum of the positives' logits)`` for
    ``negatives_only=False`` (SupCon), else ``(sum over positives p of
    softplus(lse over negatives - x_ip),)`` (NT-Xent with each positive against the
    negatives only).
    """
    index, label = rows
    col_label, col_kept = cols
    x = params * p
    cols_idx = lax.broadcasted_iota(index.dtype, x.shape, 1)
    other = cols_idx != index[:, None]
    if cfg.col_mask:
        other = other & col_kept[None, :]
    same = col_label[None, :] == label[:, None]
    pos = other & same
    if cfg.negatives_only:
        lse_neg = stable.logsumexp(jnp.where(other & ~same, x, -jnp.inf), 1)
        pair = jax.nn.softplus(lse_neg[:, None] - x)
        return (jnp.sum(jnp.where(pos, pair, 0.0), axis=1),)
    lse = stable.logsumexp(jnp.where(other, x, -jnp.inf), 1)
    lse = jnp.where(lse == -jnp.inf, 0.0, lse)  # no other item: no loss
    return lse, jnp.sum(jnp.where(pos, x, 0.0), axis=1)


def positive_counts(labels: jax.Array, kept: jax.Array) -> jax.Array:
    """For each kept item, the number of other kept items with its label (0 if dropped).

    Sorts the labels (``O(N log N)``) instead of comparing all ``N x N`` pairs.
    """
    n = labels.shape[0]
    order = jnp.lexsort((labels, ~kept))  # kept items first, by label
    sl, sk = labels[order], kept[order]
    new_run = jnp.concatenate([jnp.ones((1,), bool), (sl[1:] != sl[:-1]) | (sk[1:] != sk[:-1])])
    run = jnp.cumsum(new_run) - 1
    run_len = jax.ops.segment_sum(jnp.ones((n,), jnp.int32), run, num_segments=n)
    counts = jnp.zeros((n,), jnp.int32).at[order].set(run_len[run])
    return jnp.where(kept, counts - 1, 0)


@hyperparameters(
    temperature=real(0.0, low_open=True),
    denominator=choice("all", "negatives"),
    average=choice("anchors", "pairs"),
    reduction=REDUCTION,
    chunk_size=CHUNK_SIZE,
)
def pair_contrastive(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: float,
    denominator: str = "all",
    average: str = "anchors",
    reduction: str = "mean",
    chunk_size: int | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""The kernel of the label-based contrastive losses (SupCon, NT-Xent).

    With cosine similarities :math:`x_{ij} = \cos(f_i, f_j) / \tau`, the positives
    :math:`P(i)` of anchor :math:`i` (the other kept items with its label) and its
    negatives :math:`N(i)` (the kept items with another label), each positive pair costs
    :math:`-\log(e^{x_{ip}} / D_{ip})` with :math:`D_{ip} = \sum_{a \ne i} e^{x_{ia}}`
    (``denominator="all"``, SupCon) or :math:`e^{x_{ip}} + \sum_{n \in N(i)} e^{x_{in}}`
    (``"negatives"``, optax's ``ntxent``). ``average="anchors"``: an anchor's loss is the
    mean over its positives (0 without any), and ``"mean"`` averages over kept anchors;
    ``"pairs"``: an anchor's loss is the sum over its positives, and ``"mean"`` divides the
    total by the number of positive pairs (optax's ``ntxent``, which this equals with
    ``temperature=0.07`` where optax is finite). Not exported: the public faces are
    :func:`jaxlosses.supervised_contrastive_loss` and ``optax_compat.ntxent``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses._contrastive import pair_contrastive
      >>> f = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
      >>> y = jnp.array([0, 0, 1, 1])
      >>> loss = pair_contrastive(f, y, temperature=0.5, denominator="negatives",
      ...                         average="pairs")
      >>> round(float(loss), 4)
      0.3438
    """
    features, labels, where = replicated(features, labels, where)
    x = feature_matrix("features", features)
    labels = checks.as_label_array("labels", labels)
    if labels.shape != x.shape[:1]:
        raise ValueError(
            f"labels must be (N,) with features' N, got labels.shape={labels.shape} for "
            f"features.shape={x.shape}"
        )
    dtype = x.dtype
    acc = compute_dtype(dtype)
    n = x.shape[0]
    f = stable.l2_normalize(x.astype(acc), -1).astype(dtype)
    kept = item_mask(where, n)
    inv_t = lax.stop_gradient(1.0 / jnp.asarray(temperature, acc))
    cfg = LabelConfig(denominator == "negatives", where is not None)
    stats = functools.partial(label_stats, cfg)
    rows = (jnp.arange(n, dtype=jnp.int32), labels)
    cols = (labels, kept)
    npos = positive_counts(labels, kept).astype(acc)
    has_pos = kept & (npos > 0)
    coef: tuple[jax.Array, ...]  # a row weight for each statistic of label_stats
    if average == "anchors":
        # SupCon: (lse - sum_pos / |P|) per anchor with positives, 0 otherwise.
        coef = (jnp.where(has_pos, 1.0, 0.0), -jnp.where(has_pos, 1.0 / jnp.maximum(npos, 1), 0.0))
        if cfg.negatives_only:
            coef = (jnp.where(has_pos, 1.0 / jnp.maximum(npos, 1), 0.0),)
        count = jnp.sum(kept, dtype=acc)
    else:
        coef = (jnp.where(has_pos, npos, 0.0), -jnp.where(has_pos, 1.0, 0.0))
        if cfg.negatives_only:
            coef = (jnp.where(has_pos, 1.0, 0.0),)
        count = jnp.sum(npos)
    if _scalar(reduction):
        scale = safe_divide(jnp.ones((), acc), count) if reduction == "mean" else 1.0
        weights = tuple(scale * c for c in coef)
        total = row_statistics(
            stats, f, f, rows, cols, inv_t, weights=weights, chunk_size=chunk_size
        )
        return total.astype(dtype)
    values = row_statistics(stats, f, f, rows, cols, inv_t, chunk_size=chunk_size)
    loss = sum(c * v for c, v in zip(coef, values, strict=True))
    loss = jnp.where(kept, loss, 0.0)
    return Unreduced(loss, kept if where is not None else None, None, dtype).reduce(reduction)


@hyperparameters(temperature=real(0.0, low_open=True), reduction=REDUCTION, chunk_size=CHUNK_SIZE)
def supervised_contrastive_loss(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: float = 0.1,
    reduction: str = "mean",
    chunk_size: int | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Supervised contrastive loss (SupCon; SupContrast's ``SupConLoss``).

    Every item is an anchor; its positives :math:`P(i)` are the other items with its
    label, and every other item :math:`a \ne i` is in the denominator. With cosine
    similarities divided by the temperature, :math:`x_{ij} = \cos(f_i, f_j) / \tau`,

    .. math::
        \ell_i = -\frac{1}{|P(i)|} \sum_{p \in P(i)}
                 \log \frac{e^{x_{ip}}}{\sum_{a \ne i} e^{x_{ia}}}

    (0 for an anchor without positives, which still counts in the mean, as in the
    reference code). Several views of each sample are rows with the same label
    (SupContrast's ``(bsz, n_views, D)`` features are ``features.reshape(-1, D)`` with
    the labels repeated per view); one positive per anchor (labels that pair two views)
    is SimCLR's NT-Xent. The features are L2-normalised here. SupContrast's code also
    multiplies by ``temperature / base_temperature`` (1 at its defaults); multiply the
    result by it to match that code at other temperatures.

    Memory: chunks of ``chunk_size`` anchors with a custom VJP (reverse-mode only); no
    ``N x N`` array, labels' comparisons included.

    Args:
      features: ``(N, D)`` embeddings.
      labels: ``(N,)`` integer class labels.
      temperature: :math:`\tau > 0`.
      reduction: ``"mean"`` (over anchors), ``"sum"`` or ``"none"``.
      chunk_size: anchors per chunk; None picks one.
      where: optional ``(N,)`` boolean mask; False items leave the batch.

    Returns:
      A scalar, or ``(N,)`` per-anchor losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> f = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
      >>> jaxlosses.supervised_contrastive_loss(f, jnp.array([0, 0, 1, 1])).round(4)
      Array(0.0013, dtype=float32)

    References:
      Khosla et al., "Supervised Contrastive Learning", https://arxiv.org/abs/2004.11362;
      Chen et al., "A Simple Framework for Contrastive Learning of Visual
      Representations" (NT-Xent), https://arxiv.org/abs/2002.05709
    """
    return pair_contrastive(
        features,
        labels,
        temperature=temperature,
        denominator="all",
        average="anchors",
        reduction=reduction,
        chunk_size=chunk_size,
        where=where,
    )
