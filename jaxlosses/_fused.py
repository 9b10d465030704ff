"""Fused linear layer + softmax cross-entropy that never builds the ``N x V`` logits.

``linear_cross_entropy(x, W, y)`` equals ``cross_entropy(x @ W.T + b, y)``, but streams
over chunks of tokens (and, on request, of the vocabulary) so that only one
``chunk x V`` block of logits exists at a time. Two custom-VJP kernels do the work:

* ``_fused_total`` (scalar reductions, whole vocabulary per chunk): the gradient of a
  mean or a sum is known in the forward pass up to the upstream scalar, so each chunk's
  logits are used once for the loss *and* for the input, weight and bias gradients.
  Three GEMMs (logits, ``G @ W``, ``G.T @ x``), like the naive path.
* ``_logit_stats`` (everything else: ``reduction="none"``, vocabulary chunks): a
  forward pass that keeps only per-token statistics (log-sum-exp, target logit, sum of
  logits) and a backward pass that recomputes each block of logits. Four GEMMs; every
  option is then plain JAX on per-token vectors.

Residuals are the inputs, the weight, the labels and per-token vectors (plus, for the
first kernel, the finished gradients); never an ``N x V`` array. Everything the loss adds
on top of the logits (label smoothing, z-loss, the reduction) is written once, in
:func:`_token_loss`, and differentiated by JAX; the backward passes are plain JAX, so
reverse-mode derivatives can themselves be differentiated (``jax.hessian`` works).
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxlosses._core import checks
from jaxlosses._core.classes import ClassInputs, ClassLabels, class_labels, finish_class_loss
from jaxlosses._core.reduction import compute_dtype, safe_divide
from jaxlosses._core.sharding import explicit_spec, vary_together

# The automatic token chunk. Every chunk streams the whole weight and its gradient once
# (several weight-sized memory passes), so larger chunks move fewer bytes; the chunk's
# T x V float32 block of logits bounds the memory. Measured on 2 CPU cores, N, H, V =
# 2048, 512, 32768, float32: chunks of 64 / 128 / 256 tokens ran 1.22 / 1.07 / 0.92 x
# the naive path; on an H200 (bf16, 16384, 4096, 131072) chunks of 64 / 256 / 1024 ran
# 7.5 / 2.2 / 0.96 x (an earlier kernel); with the current one, blocks of 2**27 / 2**28 /
# 2**29 logits (chunks of 1024 / 2048 / 4096) ran 1.32 / 1.14 / 1.06 x with 2.6 / 2.7 /
# 6.2 GiB of XLA temp memory (naive: 20 GiB). Hence a larger block on accelerators.
_LOGITS_BUDGET = {"cpu": 1 << 24, "accelerator": 1 << 28}  # elements of one block
_MAX_TOKEN_CHUNK = {"cpu": 1024, "accelerator": 8192}
_MIN_TOKEN_CHUNK = 16
# Blocks of the vocabulary in the backward pass hold at most _GRAD_BUDGET weight elements.
# Small blocks keep XLA:CPU's updates of the weight gradient in cache; on the H200 the
# 512 blocks that 2**20 gives at H, V = 4096, 131072 made the step 2.4 x slower than 8.
_GRAD_BUDGET = {"cpu": 1 << 20, "accelerator": 1 << 27}


class _Config(NamedTuple):
    """Static (hashable) description of one fused computation."""

    token_chunk: int
    vocab_chunk: int  # classes per block of logits (V: whole rows)
    grad_block: int  # classes per block of the gradient update
    num_classes: int
    has_bias: bool
    softcap: bool
    smoothing: bool
    z_loss: bool

    @property
    def vocab_chunked(self) -> bool:
        return self.vocab_chunk < self.num_classes


def _pow2_floor(n: int) -> int:
    return 1 << max(0, int(n).bit_length() - 1)


def _backend_kind(backend: str | None = None) -> str:
    backend = jax.default_backend() if backend is None else backend
    return "cpu" if backend == "cpu" else "accelerator"


def auto_chunk_size(num_tokens: int, num_classes: int, backend: str | None = None) -> int:
    """The token chunk chosen when ``chunk_size=None``.

    The largest power of two ``T`` with ``T * V <= 2**24`` on CPU (a 64 MiB float32
    block of logits) or ``2**28`` on GPU and TPU (1 GiB), and ``T <= N / 8`` (so the
    block stays well under the naive path's two ``N x V`` buffers); then clipped to
    ``[16, 1024]`` on CPU, ``[16, 8192]`` elsewhere. ``backend`` defaults to
    ``jax.default_backend()``.
    """
    kind = _backend_kind(backend)
    t = _pow2_floor(max(1, _LOGITS_BUDGET[kind] // max(1, num_classes)))
    t = min(t, _pow2_floor(max(1, num_tokens // 8)))
    return min(max(t, _MIN_TOKEN_CHUNK), _MAX_TOKEN_CHUNK[kind])


def _grad_block(num_classes: int, hidden: int) -> int:
    """Classes per backward block: ``V`` split evenly into blocks of ``<= 2**20 / H``
    (``2**27 / H`` on GPU and TPU).

    At least 8 blocks of at least 128 classes where ``V`` allows, so that a block's
    ``dL/dlogits`` stays small next to the chunk's logits.
    """
    budget = _GRAD_BUDGET[_backend_kind()]
    blocks = max(-(-num_classes * hidden // budget), min(8, num_classes // 128))
    return -(-num_classes // max(1, blocks))


# --------------------------------------------------------------------------------------
# The loss of one token from the statistics of its row of logits


def _token_loss(lse, target_logit, logit_sum, eps, z_loss, cfg: _Config):
    r"""``lse - (1 - eps) s_y - eps/V sum_c s_c + z_loss lse**2`` for every token.

    This is PyTorch's label-smoothed cross-entropy (``eps / V`` on every class) plus
    PaLM's z-loss; its derivatives with respect to the three statistics are the
    coefficients of ``softmax``, ``one_hot`` and ``1`` in the gradient of the logits.
    """
    loss = lse - target_logit
    if cfg.smoothing:
        loss = loss + eps * (target_logit - logit_sum / cfg.num_classes)
    if cfg.z_loss:
        loss = loss + z_loss * jnp.square(lse)
    return loss


# --------------------------------------------------------------------------------------
# Blocks of logits


def _dot(a, b, contract):
    """``a`` times ``b`` contracting ``contract`` dims, accumulating in float32."""
    acc = compute_dtype(jnp.promote_types(a.dtype, b.dtype))
    return lax.dot_general(a, b, (contract, ((), ())), preferred_element_type=acc)


def _logits(xc, w_blk, b_blk, cap):
    """Soft-capped logits ``cap * tanh((x W^T + b) / cap)`` of one block, in float32."""
    z = _dot(xc, w_blk, ((1,), (1,)))
    if b_blk is not None:
        z = z + b_blk.astype(z.dtype)
    if cap is not None:
        z = cap * jnp.tanh(z / cap)
    return z


def _num_blocks(width: int, cfg: _Config) -> int:
    return -(-cfg.num_classes // width)


class _Block(NamedTuple):
    """Logits of a chunk of tokens for the columns ``start + arange(width)``."""

    s: jax.Array  # (T, width) float32 logits (after the soft cap)
    label: jax.Array  # (T,) the label's column in the block (clipped into it)
    owned: jax.Array | None  # (T,) bool: the label is one of this block's columns
    valid: jax.Array | None  # (1, width) bool: columns this block owns (None: all)
    start: jax.Array | int
    w: jax.Array  # (width, H) rows of the weight

    @property
    def hot(self) -> jax.Array:
        """(T, width) bool: column == label."""
        cols = lax.broadcasted_iota(self.label.dtype, (1, self.s.shape[1]), 1)
        hot = cols == self.label[:, None]
        return hot if self.owned is None else hot & self.owned[:, None]


def _block(k, width: int, xc, yc, w, b, cap, cfg: _Config, s_full=None) -> _Block:
    """Block ``k`` of ``width`` classes: logits from a GEMM, or sliced from ``s_full``.

    The last block is clamped to end at ``V``; its columns that an earlier block already
    covered are marked invalid, so no padded copy of the weight is ever made.
    """
    v = cfg.num_classes
    if width >= v:
        s = _logits(xc, w, b, cap) if s_full is None else s_full
        return _Block(s, yc, None, None, 0, w)
    start = jnp.minimum(k * width, v - width)
    w_blk = lax.dynamic_slice_in_dim(w, start, width, axis=0)
    if s_full is None:
        b_blk = None if b is None else lax.dynamic_slice_in_dim(b, start, width, axis=0)
        s = _logits(xc, w_blk, b_blk, cap)
    else:
        s = lax.dynamic_slice_in_dim(s_full, start, width, axis=1)
    first = k * width  # columns before it belong to the previous block
    owned = (yc >= first) & (yc < start + width)
    label = jnp.clip(yc - start.astype(yc.dtype), 0, width - 1)
    valid = start + lax.broadcasted_iota(jnp.int32, (1, width), 1) >= first
    return _Block(s, label, owned, valid, start, w_blk)


def _block_stats(blk: _Block, cfg: _Config):
    """Logits with invalid columns at -inf, row max, target logit and logit sum."""
    s = blk.s
    zero = jnp.zeros((), s.dtype)
    masked = s if blk.valid is None else jnp.where(blk.valid, s, -jnp.inf)
    m = jnp.max(masked, axis=1)
    # A gather, not a masked sum: XLA would materialise the mask times the block.
    target = jnp.take_along_axis(s, blk.label[:, None], axis=1)[:, 0]
    if blk.owned is not None:
        target = jnp.where(blk.owned, target, zero)
    total = None
    if cfg.smoothing:
        total = jnp.sum(s if blk.valid is None else jnp.where(blk.valid, s, zero), axis=1)
    return masked, m, target, total


def _block_dlogits(blk: _Block, lse, coef, cap):
    """``dL/dlogits`` of a block from the per-token coefficients, in float32.

    ``coef = (a, c, d)`` are ``dL/dlse``, ``dL/ds_y`` and ``dL/dsum(s)`` per token, so
    ``dL/ds = a softmax(s) + c one_hot(y) + d``; the soft cap multiplies by
    ``1 - tanh**2``. Invalid columns get 0.
    """
    a, c, d = coef
    g = a[:, None] * jnp.exp(blk.s - lse[:, None])
    g = g + jnp.where(blk.hot, c[:, None], 0.0)
    if d is not None:
        g = g + d[:, None]
    if blk.valid is not None:
        g = jnp.where(blk.valid, g, 0.0)
    if cap is not None:
        g = g * (1.0 - jnp.square(blk.s / cap))
    return g


def _weight_grad(g, xc, w_dtype):
    """``g.T @ x``: a block's weight gradient rows, in float32."""
    return _dot(g.astype(w_dtype), xc.astype(w_dtype), ((0,), (0,)))


def _add_rows(acc, rows, start):
    """``acc[start:start + len(rows)] += rows``, in place."""
    old = lax.dynamic_slice_in_dim(acc, start, rows.shape[0], axis=0)
    return lax.dynamic_update_slice_in_dim(acc, old + rows, start, axis=0)


def _chunks(cfg: _Config, *arrays):
    """Splits arrays along their first axis into ``(num_chunks, token_chunk, ...)``."""
    return tuple(a.reshape((-1, cfg.token_chunk) + a.shape[1:]) for a in arrays)


def _unchunk(a):
    return a.reshape((-1,) + a.shape[2:])


def _cast_grads(dx, dw, db, x, w, b):
    dx = dx.astype(x.dtype)
    dw = dw.astype(w.dtype)
    db = None if b is None else db.astype(b.dtype)
    return dx, dw, db


def _lse_chunk(xc, yc, w, b, cap, cfg: _Config):
    """Whole-vocabulary logits of a chunk and ``(lse, target_logit, logit_sum)``."""
    blk = _block(0, cfg.num_classes, xc, yc, w, b, cap, cfg)
    masked, m, target, total = _block_stats(blk, cfg)
    lse = m + jnp.log(jnp.sum(jnp.exp(masked - m[:, None]), axis=1))
    return blk.s, (lse, target, total)


def _stats_chunk(xc, yc, w, b, cap, cfg: _Config):
    """``(lse, target_logit, logit_sum)`` of a chunk, online over vocabulary blocks."""
    if not cfg.vocab_chunked:
        return _lse_chunk(xc, yc, w, b, cap, cfg)[1]
    f32 = compute_dtype(w.dtype)

    def body(carry, k):
        m_run, l_run, target_run, total_run = carry
        blk = _block(k, cfg.vocab_chunk, xc, yc, w, b, cap, cfg)
        masked, m, target, total = _block_stats(blk, cfg)
        m_new = jnp.maximum(m_run, m)
        l_new = l_run * jnp.exp(m_run - m_new)
        l_new = l_new + jnp.sum(jnp.exp(masked - m_new[:, None]), axis=1)
        total_new = None if total is None else total_run + total
        return (m_new, l_new, target_run + target, total_new), None

    # *_like: the carries take the labels' type (inside shard_map, the axes they vary over).
    zeros = jnp.zeros_like(yc, dtype=f32)
    init = (jnp.full_like(yc, -jnp.inf, f32), zeros, zeros, zeros if cfg.smoothing else None)
    blocks = jnp.arange(_num_blocks(cfg.vocab_chunk, cfg))
    (m, l_sum, target, total), _ = lax.scan(body, init, blocks)
    return m + jnp.log(l_sum), target, total


def _grads_chunk(xc, yc, w, b, cap, lse, coef, dw, db, cfg: _Config, s_full=None):
    """Adds a chunk's weight and bias gradients to ``dw`` and ``db``; returns its ``dx``.

    Walks the vocabulary in blocks: each block's ``G = dL/dlogits`` gives its share of
    ``dx = G @ W`` and its rows of ``dw += G.T @ x``, added in place (a whole ``V x H``
    product per chunk would be a second weight-sized buffer, a whole ``G`` a second
    ``T x V`` one). The logits are sliced from ``s_full`` when given, else recomputed.
    """
    v, wdt = cfg.num_classes, w.dtype
    width = cfg.vocab_chunk if cfg.vocab_chunked else cfg.grad_block
    if not cfg.vocab_chunked and s_full is None and width < v:
        s_full = _block(0, v, xc, yc, w, b, cap, cfg).s  # one GEMM for the whole row

    def block(dx, dw, db, k):
        blk = _block(k, width, xc, yc, w, b, cap, cfg, s_full)
        g = _block_dlogits(blk, lse, coef, cap)
        dx = dx + _dot(g.astype(wdt), blk.w, ((1,), (0,)))
        dw = _add_rows(dw, _weight_grad(g, xc, wdt), blk.start)
        if cfg.has_bias:
            db = _add_rows(db, jnp.sum(g, axis=0), blk.start)
        return dx, dw, db

    dx0 = jnp.zeros_like(xc, dtype=dw.dtype)
    if width >= v:
        return block(dx0, dw, db, 0)

    def body(carry, k):
        return block(*carry, k), None

    blocks = jnp.arange(_num_blocks(width, cfg))
    (dx, dw, db), _ = lax.scan(body, (dx0, dw, db), blocks)
    return dx, dw, db


def _zero_grads(w):
    acc = compute_dtype(w.dtype)
    return jnp.zeros_like(w, dtype=acc), jnp.zeros_like(w, dtype=acc, shape=w.shape[:1])


# --------------------------------------------------------------------------------------
# Kernel 1: per-token statistics, gradient by recomputation (any cotangent)


def _recompute_grads(cfg: _Config, x, w, b, y, cap, lse, coef):
    """Float32 input, weight and bias gradients for per-token coefficients, by chunks."""
    a, c, d = coef

    def body(carry, chunk):
        xc, yc, lse_c, a_c, c_c, d_c = chunk
        dx, dw, db = _grads_chunk(xc, yc, w, b, cap, lse_c, (a_c, c_c, d_c), *carry, cfg)
        return (dw, db), dx

    xs = _chunks(cfg, x, y, lse, a, c) + (None if d is None else _chunks(cfg, d)[0],)
    (dw, db), dx = lax.scan(body, _zero_grads(w), xs)
    return _unchunk(dx), dw, db


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _logit_stats(cfg: _Config, x, w, b, y, cap):
    return _logit_stats_fwd(cfg, x, w, b, y, cap)[0]


def _logit_stats_fwd(cfg: _Config, x, w, b, y, cap):
    def body(_, chunk):
        return None, _stats_chunk(*chunk, w, b, cap, cfg)

    _, stats = lax.scan(body, None, _chunks(cfg, x, y))
    stats = tuple(None if s is None else _unchunk(s) for s in stats)
    return stats, (x, w, b, y, cap, stats[0])


def _logit_stats_bwd(cfg: _Config, res, cotangents):
    x, w, b, y, cap, lse = res
    grads = _recompute_grads(cfg, x, w, b, y, cap, lse, cotangents)
    return _cast_grads(*grads, x, w, b) + (None, None)


_logit_stats.defvjp(_logit_stats_fwd, _logit_stats_bwd)


# --------------------------------------------------------------------------------------
# Kernel 2: scalar loss with its gradients computed in the forward pass


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused_total(cfg: _Config, x, w, b, y, token_weight, hyper):
    # Without differentiation, only the statistics are needed.
    cap, eps, z_loss = hyper
    (lse, target, total), _ = _logit_stats_fwd(cfg, x, w, b, y, cap)
    loss = _token_loss(lse, target, total, eps, z_loss, cfg)
    return jnp.sum(token_weight * loss), lse


def _fused_total_fwd(cfg: _Config, x, w, b, y, token_weight, hyper):
    cap, eps, z_loss = hyper

    def body(carry, chunk):
        xc, yc, wc = chunk
        s, stats = _lse_chunk(xc, yc, w, b, cap, cfg)

        def weighted_loss(*stats):
            return jnp.sum(wc * _token_loss(*stats, eps, z_loss, cfg))

        loss, vjp = jax.vjp(weighted_loss, *stats)
        coef = vjp(jnp.ones_like(loss))
        lse = stats[0]
        dx, dw, db = _grads_chunk(xc, yc, w, b, cap, lse, coef, *carry, cfg, s_full=s)
        return (dw, db), (loss, lse, dx)

    (dw, db), (loss, lse, dx) = lax.scan(body, _zero_grads(w), _chunks(cfg, x, y, token_weight))
    lse = _unchunk(lse)
    return (jnp.sum(loss), lse), (x, w, b, y, cap, lse, _unchunk(dx), dw, db)


def _fused_total_bwd(cfg: _Config, res, cotangents):
    x, w, b, y, cap, lse, dx, dw, db = res
    g_total, g_lse = cotangents
    grads = (g_total * dx, g_total * dw, g_total * db)

    # A cotangent on the returned log-sum-exp (return_lse=True, when it feeds another
    # loss) needs a second pass over the logits; skip it when that cotangent is zero.
    def with_lse(grads):
        zero = jnp.zeros_like(g_lse)
        extra = _recompute_grads(cfg, x, w, b, y, cap, lse, (g_lse, zero, None))
        return tuple(g + e for g, e in zip(grads, extra, strict=True))

    grads = lax.cond(jnp.any(g_lse != 0), with_lse, lambda grads: grads, grads)
    return _cast_grads(*grads, x, w, b) + (None, None, None)


_fused_total.defvjp(_fused_total_fwd, _fused_total_bwd)


# --------------------------------------------------------------------------------------
# The public function


def _check_chunk_size(chunk_size) -> tuple[int | None, int | None]:
    if chunk_size is None:
        return None, None
    sizes = chunk_size if isinstance(chunk_size, tuple) else (chunk_size, None)
    if len(sizes) != 2:
        raise ValueError(
            f"chunk_size must be None, an int or a (tokens, vocab) pair, got {chunk_size!r}"
        )
    for name, size in zip(("chunk_size", "chunk_size[1]"), sizes, strict=True):
        if size is None:
            continue
        checks.check_int(name, size)
        if size < 1:
            raise ValueError(f"{name} must be a positive int, got {size}")
    return sizes


def _check_shapes(x, w, labels, bias) -> None:
    if x.ndim < 1:
        raise ValueError(f"inputs must have a last axis of features (H), got a scalar {x.shape}")
    if w.ndim != 2:
        raise ValueError(
            f"weight must have shape (V, H) (PyTorch's linear weight layout), got "
            f"weight.shape={w.shape}"
        )
    if x.shape[-1] != w.shape[1]:
        raise ValueError(
            "inputs.shape[-1] must equal weight.shape[1] (the hidden size H): got "
            f"inputs.shape={x.shape} and weight.shape={w.shape}"
        )
    if labels.shape != x.shape[:-1]:
        raise ValueError(
            "labels must have the shape of inputs without the last axis: expected "
            f"{x.shape[:-1]}, got labels.shape={labels.shape} for inputs.shape={x.shape}"
        )
    if bias is not None and bias.shape != (w.shape[0],):
        raise ValueError(
            f"bias must have shape (V,) = ({w.shape[0]},) for weight.shape={w.shape}, got "
            f"bias.shape={bias.shape}"
        )


def _is_static_zero(value) -> bool:
    v = checks.concrete_scalar(value)
    return v is not None and v == 0


class _Setup(NamedTuple):
    """Validated arguments of a fused loss, flattened to tokens, and its configuration."""

    x: jax.Array  # (N, H), in the promoted dtype of inputs and weight
    w: jax.Array  # (V, H), the same dtype
    b: jax.Array | None  # (V,)
    lab: ClassLabels  # (N,) labels made safe, with the kept and out-of-range masks
    cfg: _Config
    hyper: tuple  # (cap or None, label_smoothing, z_loss): non-differentiated scalars
    dtype: jnp.dtype  # the result's dtype
    batch_shape: tuple[int, ...]  # labels' shape

    def padded(self, a: jax.Array) -> jax.Array:
        """``a`` (tokens first) padded with zeros to a whole number of token chunks."""
        pad = -a.shape[0] % self.cfg.token_chunk
        return jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)) if pad else a


def _setup(
    inputs,
    weight,
    labels,
    *,
    bias,
    ignore_index,
    label_smoothing,
    z_loss,
    logit_softcap,
    reduction,
    chunk_size,
    where=None,
    shards: int = 1,
) -> _Setup:
    """Validates a fused loss's arguments at trace time and picks its chunks.

    ``weight`` holds ``V`` classes, one of ``shards`` equal slices of the vocabulary
    (vocabulary-parallel losses): labels must lie in ``[0, shards * V)``. ``where``
    (broadcastable to ``labels``) drops tokens like ``ignore_index``.
    """
    checks.check_reduction(reduction)
    x = checks.as_float_array("inputs", inputs)
    w = checks.as_float_array("weight", weight)
    labels = checks.as_label_array("labels", labels)
    b = None if bias is None else checks.as_float_array("bias", bias)
    _check_shapes(x, w, labels, b)
    checks.check_int("ignore_index", ignore_index)
    checks.check_scalar_range("label_smoothing", label_smoothing, low=0.0, high=1.0)
    checks.check_scalar_range("z_loss", z_loss, low=0.0)
    if logit_softcap is not None:
        checks.check_scalar_range("logit_softcap", logit_softcap, low=0.0, low_inclusive=False)
    token_chunk, vocab_chunk = _check_chunk_size(chunk_size)

    dtype = jnp.result_type(*(a for a in (x, w, b) if a is not None))
    acc = compute_dtype(dtype)
    # Mixed input and weight dtypes compute like ``inputs @ weight.T``: in the promoted one.
    x, w = x.astype(dtype), w.astype(dtype)
    batch_shape, (num_classes, hidden) = x.shape[:-1], w.shape
    num_tokens = math.prod(batch_shape)
    x = x.reshape(num_tokens, hidden)
    mask = checks.as_where(where, batch_shape)

    lab = class_labels(
        ClassInputs(
            jax.ShapeDtypeStruct((num_tokens, num_classes), acc),
            None if mask is None else mask.reshape(num_tokens),
            dtype,
        ),
        labels.reshape(num_tokens),
        -1,
        ignore_index,
        num_classes=shards * num_classes,
    )
    if token_chunk is None:
        token_chunk = auto_chunk_size(num_tokens, num_classes)
    token_chunk = max(1, min(token_chunk, num_tokens))
    vocab_chunk = num_classes if vocab_chunk is None else min(vocab_chunk, num_classes)
    cfg = _Config(
        token_chunk=token_chunk,
        vocab_chunk=vocab_chunk,
        grad_block=_grad_block(num_classes, hidden),
        num_classes=num_classes,
        has_bias=b is not None,
        softcap=logit_softcap is not None,
        smoothing=not _is_static_zero(label_smoothing),
        z_loss=not _is_static_zero(z_loss),
    )
    # Hyperparameters are not differentiated.
    cap = None if logit_softcap is None else lax.stop_gradient(jnp.asarray(logit_softcap, acc))
    eps = lax.stop_gradient(jnp.asarray(label_smoothing, acc))
    zl = lax.stop_gradient(jnp.asarray(z_loss, acc))
    return _Setup(x, w, b, lab, cfg, (cap, eps, zl), dtype, batch_shape)


def _linear_cross_entropy(
    inputs, weight, labels, *, reduction, return_lse, fuse_backward=None, **options
):
    """``linear_cross_entropy``; ``options``: the keyword arguments of :func:`_setup`.

    ``fuse_backward`` forces (True) or forbids (False) the gradient-in-forward kernel;
    None picks it for scalar reductions without vocabulary chunks.
    """
    if not isinstance(return_lse, bool):
        raise TypeError(f"return_lse must be a bool, got {return_lse!r}")
    setup = _setup(inputs, weight, labels, reduction=reduction, **options)
    token_spec = explicit_spec(jnp.asarray(inputs))[:-1]
    if any(s is not None for s in token_spec):
        return _over_token_shards(
            token_spec,
            setup,
            inputs,
            weight,
            labels,
            reduction=reduction,
            return_lse=return_lse,
            fuse_backward=fuse_backward,
            **options,
        )
    x, w, b, lab, cfg, (cap, eps, zl), dtype, batch_shape = setup
    acc = compute_dtype(dtype)
    num_tokens = x.shape[0]

    if fuse_backward is None:
        fuse_backward = reduction != "none" and not cfg.vocab_chunked
    if fuse_backward:
        if cfg.vocab_chunked or reduction == "none":
            raise ValueError("fuse_backward needs a scalar reduction and whole-vocabulary chunks")
        counted = (lab.kept & ~lab.out_of_range).astype(acc)
        if reduction == "mean":
            counted = safe_divide(counted, jnp.sum(lab.kept, dtype=acc))
        padded = setup.padded
        loss, lse = _fused_total(
            cfg, padded(x), w, b, padded(lab.safe), padded(counted), (cap, eps, zl)
        )
        # A kept label outside [0, V) makes the loss nan, like cross_entropy.
        loss = loss + jnp.where(jnp.any(lab.out_of_range), jnp.nan, 0.0).astype(acc)
        loss = loss.astype(dtype)
        lse = lse[:num_tokens]
    else:
        stats = _logit_stats(cfg, setup.padded(x), w, b, setup.padded(lab.safe), cap)
        lse, target, total = (None if s is None else s[:num_tokens] for s in stats)
        per_token = _token_loss(lse, target, total, eps, zl, cfg)
        unreduced = finish_class_loss(per_token, lab, lab.kept.astype(acc), dtype)
        loss = unreduced.reduce(reduction)
        if reduction == "none":
            loss = loss.reshape(batch_shape)
    if return_lse:
        return loss, lse.reshape(batch_shape)
    return loss


def _over_token_shards(token_spec, setup, inputs, weight, labels, *, reduction, return_lse,
                       bias=None, where=None, **options):  # fmt: skip
    """``_linear_cross_entropy`` of tokens explicitly sharded over mesh axes.

    A ``lax.scan`` over token chunks cannot split its chunks over devices, so each device
    runs the fused loss on its own tokens (``shard_map`` over the tokens' axes, the
    weight and bias replicated there) and the sums are added with one ``psum``: the
    input gradient stays local and the weight gradient is one all-reduce, as for
    ``cross_entropy`` of ``inputs @ weight.T``. ``token_spec``: the mesh axes of each
    token dimension of ``inputs``; ``setup``: the validated global arguments.
    """
    from jax.sharding import PartitionSpec as P

    mesh = jax.typeof(jnp.asarray(inputs)).sharding.mesh
    axes = tuple(
        a for s in token_spec if s is not None for a in (s if isinstance(s, tuple) else (s,))
    )
    tokens = P(*token_spec)
    x = setup.x.reshape(setup.batch_shape + setup.x.shape[-1:])
    x = jax.sharding.reshard(x, P(*token_spec, None))
    y = jax.sharding.reshard(jnp.asarray(labels), tokens)
    w = jax.sharding.reshard(setup.w, P())
    b = None if setup.b is None else jax.sharding.reshard(setup.b, P())
    mask = checks.as_where(where, setup.batch_shape)
    mask = None if mask is None else jax.sharding.reshard(mask, tokens)
    local_reduction = "none" if reduction == "none" else "sum"

    def local(x, w, b, y, mask):
        # The weight and bias typed as varying over the token axes: each device's
        # gradient is its tokens' share, and the cast's transpose (a psum) adds them.
        x, w, b, y, mask = vary_together([x, w, b, y, mask], axes)
        out = _linear_cross_entropy(
            x, w, y, bias=b, where=mask, reduction=local_reduction, return_lse=return_lse,
            **options,
        )  # fmt: skip
        loss, lse = out if return_lse else (out, None)
        if reduction != "none":
            loss = jax.lax.psum(loss, axes)
        return loss, lse

    out_specs = (tokens if reduction == "none" else P(), tokens if return_lse else None)
    loss, lse = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(*token_spec, None), P(), None if b is None else P(), tokens,
                  None if mask is None else tokens),
        out_specs=out_specs,
        axis_names=set(axes),
    )(x, w, b, y, mask)  # fmt: skip
    if reduction == "mean":
        kept = jnp.sum(setup.lab.kept, dtype=compute_dtype(setup.dtype))
        loss = safe_divide(loss, kept).astype(loss.dtype)
    return (loss, lse) if return_lse else loss


def _forward_mode_hint(name: str, alternative: str) -> str:
    return (
        f"{name} supports reverse-mode differentiation only (jax.grad, jax.vjp, "
        "jax.jacrev, and jax.hessian on top of them); it is a jax.custom_vjp that never "
        f"builds the N x V logits. For forward mode (jax.jvp, jax.jacfwd) use {alternative} "
        "instead."
    )


@contextlib.contextmanager
def _reverse_mode_only(name: str, alternative: str):
    """Turns JAX's error for forward-mode differentiation of a custom_vjp into a hint.

    ``name`` is the public function, ``alternative`` the call to use for forward mode.
    """
    try:
        yield
    except TypeError as err:
        if "forward-mode" in str(err) and "custom_vjp" in str(err):
            raise TypeError(_forward_mode_hint(name, alternative)) from err
        raise


def linear_cross_entropy(
    inputs: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    logit_softcap: float | None = None,
    reduction: str = "mean",
    chunk_size: int | tuple[int, int] | None = None,
    return_lse: bool = False,
    where: ArrayLike | None = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r"""Cross-entropy of a linear layer's logits, without materialising the logits.

    Equals ``cross_entropy(inputs @ weight.T + bias, labels, ...)`` in value and in its
    gradients with respect to ``inputs``, ``weight`` and ``bias``
    (``torch.nn.functional.linear_cross_entropy``), but only one ``chunk x V`` block of
    logits exists at a time, so the memory of the ``N x V`` logits and of their gradient
    (the largest buffers of a language model's training step) is never used. With the
    soft-capped logits :math:`s = c \tanh((x W^\top + b) / c)` (identity without
    ``logit_softcap``) and :math:`\mathrm{lse} = \log \sum_v e^{s_v}`, each kept token's
    loss is

    .. math::
        \ell = \mathrm{lse} - (1 - \varepsilon)\, s_y
               - \frac{\varepsilon}{V} \sum_v s_v + \lambda_z\, \mathrm{lse}^2

    (PyTorch's label smoothing, :math:`\varepsilon / V` on every class, plus PaLM's
    z-loss). ``"mean"`` divides by the number of kept tokens.

    How: the tokens are processed in chunks of ``chunk_size`` (a ``lax.scan``) with a
    float32 log-sum-exp. For ``"mean"`` and ``"sum"`` the gradients are computed in the
    forward pass (the gradient of a scalar is known up to the upstream factor), so a
    training step costs three GEMMs like the naive path; ``"none"`` and vocabulary chunks
    keep per-token statistics and recompute each block of logits in the backward pass
    (four GEMMs). No residual is ``N x V``. 16-bit inputs and weights multiply in their
    own dtype with float32 accumulation (the weight is never copied to float32; its
    gradient is accumulated in float32 and returned in the weight's dtype).

    Reverse mode only: ``jax.grad``, ``jax.vjp`` and ``jax.jacrev`` work, and so do
    second derivatives built on them (``jax.hessian``, a gradient of a gradient), since
    the backward pass is plain JAX. Forward mode on the loss itself (``jax.jvp``,
    ``jax.jacfwd``) raises a ``TypeError`` saying so (when the forward-mode transform is
    applied to a function already under ``jax.jit``, JAX's own "can't apply forward-mode
    autodiff (jvp) to a custom_vjp function"); use ``cross_entropy(inputs @ weight.T,
    labels)`` there. Hyperparameters are not differentiated. Works under ``jax.jit`` and
    ``jax.vmap``.

    Several devices: with the tokens of ``inputs`` explicitly sharded (a mesh of
    ``AxisType.Explicit`` axes, ``jax.make_mesh``'s default, under ``jax.set_mesh``),
    each device runs the loss on its own tokens and the sums are added: no activation
    is gathered, and the weight's gradient is one all-reduce, as for the naive path. On
    ``AxisType.Auto`` axes the compiler cannot split the chunk loop and gathers the
    tokens on every device (correct, but every device computes every token): use
    explicit axes, or call it inside ``shard_map`` on each device's tokens. With the
    weight split over the vocabulary, use
    :func:`jaxlosses.sharded.vocab_parallel_linear_cross_entropy`.

    Args:
      inputs: features, shape ``(..., H)`` (e.g. ``(B, T, H)``).
      weight: the output layer's weight, shape ``(V, H)`` (PyTorch's layout; a Flax
        ``Dense`` kernel of shape ``(H, V)`` is ``kernel.T``).
      labels: integer class indices, shape ``inputs.shape[:-1]``.
      bias: optional bias, shape ``(V,)``.
      ignore_index: label value whose tokens are skipped (loss 0, not in the mean).
      label_smoothing: :math:`\varepsilon \in [0, 1]`.
      z_loss: :math:`\lambda_z \ge 0`, the weight of :math:`\mathrm{lse}^2`
        (e.g. ``1e-4``).
      logit_softcap: :math:`c > 0` to apply :math:`c \tanh(\cdot / c)` to the logits
        (Gemma 2 uses 30), or None.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      chunk_size: tokens per chunk, or a ``(tokens, vocab)`` pair to also split the
        vocabulary (for vocabularies so large that even a few rows of logits do not fit;
        costs a fourth GEMM). Sizes need not divide ``N`` or ``V``. ``None`` picks the
        largest power of two ``T <= N / 8`` with ``T * V <= 2**24`` on CPU (a 64 MiB
        float32 block of logits; ``2**28`` on GPU/TPU), within ``[16, 1024]`` on CPU
        (``[16, 8192]`` elsewhere): see :func:`jaxlosses._fused.auto_chunk_size`.
      return_lse: also return the per-token log-sum-exp of the (capped) logits.
      where: optional boolean mask broadcastable to ``labels``' shape (optax's
        convention); False tokens are skipped like ``ignore_index`` (loss 0, not in the
        mean, no gradient).

    Returns:
      The loss: a scalar, or per-token losses of ``labels``'s shape for
      ``reduction="none"``, in the promoted dtype of ``inputs`` and ``weight``. A mean
      over no kept token is 0 with zero gradient; a kept label outside ``[0, V)`` gives
      nan. With ``return_lse=True``, ``(loss, lse)`` where ``lse`` has ``labels``'s shape
      in float32 (float64 for float64 inputs); a gradient through ``lse`` is supported.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxlosses
      >>> x = jax.random.normal(jax.random.key(0), (6, 4))
      >>> w = jax.random.normal(jax.random.key(1), (10, 4))
      >>> y = jnp.array([1, 2, 3, -100, 5, 9])
      >>> fused = jaxlosses.linear_cross_entropy(x, w, y, chunk_size=4)
      >>> naive = jaxlosses.cross_entropy(x @ w.T, y)
      >>> bool(jnp.allclose(fused, naive, rtol=1e-5))
      True

    References:
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
      https://arxiv.org/abs/2411.09009;
      Chowdhery et al., "PaLM" (z-loss), https://arxiv.org/abs/2204.02311;
      Gemma Team, "Gemma 2" (logit soft-capping), https://arxiv.org/abs/2408.00118
    """
    with _reverse_mode_only(
        "linear_cross_entropy", "jaxlosses.cross_entropy(inputs @ weight.T + bias, labels, ...)"
    ):
        return _linear_cross_entropy(
            inputs,
            weight,
            labels,
            bias=bias,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            z_loss=z_loss,
            logit_softcap=logit_softcap,
            reduction=reduction,
            chunk_size=chunk_size,
            return_lse=return_lse,
            where=where,
        )
