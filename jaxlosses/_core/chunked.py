r"""The chunked engine: losses over the rows of a score matrix that is never materialised.

A loss over the rows of a large ``N x V`` matrix of scores :math:`S` (the logits
:math:`x W^\top + b` of a linear layer over a vocabulary; the similarities
:math:`\tau\, a b^\top` of a contrastive batch) usually reads each row through a few
numbers: its log-sum-exp, the score of its label, a weighted sum of its scores. This
module computes them a chunk of rows at a time and, within a chunk, a block of columns at
a time, so that one ``T x V_block`` block of :math:`S` exists at a time; and it
differentiates them by writing each block's :math:`\partial L / \partial S` from a few
per-row coefficients, so that neither :math:`S` nor its gradient is ever kept.

It knows no particular loss. The layers, each usable on its own:

* **Plans** (:class:`Plan`, :func:`make_plan`, :func:`auto_chunk_size`,
  :func:`grad_block_size`, :data:`CHUNK_SIZE`): rows per chunk and columns per block.
* **Rows** (:func:`pad_rows`, :func:`split_rows`, :func:`merge_rows`) and **columns**
  (:class:`Columns`, :func:`scan_columns`): a ``lax.scan`` over blocks of columns whose
  last block is shifted back to end at ``V`` (its columns already covered are marked
  invalid), so no padded copy of a weight is made.
* **Heads** (:class:`LinearHead`, :class:`HeadGrads`): the block of scores
  ``softcap(x W[cols]^T + b[cols])`` and its backward pass (``dx += G W[cols]``,
  ``dW[cols] += G^T x``, ``db[cols] += sum G``, accumulated in float32 in place).
* **Softmax statistics** (:class:`SoftmaxTerms`, :class:`SoftmaxStats`,
  :func:`softmax_statistics`, :func:`softmax_gradient`): per row, relative to a shift
  (the row's max), the log-sum-exp, the label's score, a dense dot with target weights,
  a weighted sum over the columns that are not masked (``-inf``), the softmax-weighted
  score (for entropies); online over blocks, and the block gradient for per-row
  cotangents of each.
* **Kernels** (generic ``custom_vjp`` builders): :func:`rows_with_recompute` (per-row
  outputs chunk by chunk; the backward pass recomputes each chunk from the per-row
  outputs and their cotangents) and :func:`sum_with_forward_gradients` (a scalar summed
  over chunks whose gradient is computed in the forward pass: the gradient of a sum is
  known up to the upstream scalar, so each chunk's scores are used once for the value and
  for every gradient).
* **Softmax kernels over a linear head**: :func:`linear_softmax_statistics` (differentiable,
  by recomputation), its two halves :func:`linear_softmax_forward` and
  :func:`linear_softmax_backward` (for callers that combine statistics across devices in
  between), and :func:`linear_softmax_loss` (a scalar loss of the statistics, gradients in
  the forward pass).

How the next losses build on it: a fused loss of per-token log-probabilities and
entropies reads ``label``, ``lse`` and ``expected`` from :func:`linear_softmax_statistics`;
a two-head loss (a student and a teacher) runs two :class:`LinearHead` on each chunk inside
its own chunk function given to :func:`sum_with_forward_gradients`; a contrastive loss over
``scale * a @ b.T`` is a :class:`LinearHead` with ``weight = scale * b`` (CLIP's two
cross-entropies) or, for an elementwise loss of the scores (SigLIP's pairwise sigmoid),
:func:`scan_columns` with its own block function inside either kernel.

Every callable handed to a kernel must close over Python values only (shapes, flags):
arrays go in ``shared`` or ``rows``, where they can be differentiated or declared
constant. Reverse mode only: the kernels are ``jax.custom_vjp`` functions whose backward
passes are plain JAX, so reverse-over-reverse (``jax.hessian``) works and forward mode
raises JAX's own ``TypeError``.

References:
  Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
  https://arxiv.org/abs/2411.09009; Milakov and Gimelshein, "Online normalizer calculation
  for softmax", https://arxiv.org/abs/1805.02867
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, overload

import jax
import jax.numpy as jnp
from jax import lax

from jaxlosses._core import checks, stable
from jaxlosses._core.reduction import compute_dtype

# --------------------------------------------------------------------------------------
# Plans

# The automatic row chunk. Every chunk streams the whole weight and its gradient once
# (several weight-sized memory passes), so larger chunks move fewer bytes; the chunk's
# T x V float32 block of logits bounds the memory. Measured on 2 CPU cores, N, H, V =
# 2048, 512, 32768, float32: chunks of 64 / 128 / 256 tokens ran 1.22 / 1.07 / 0.92 x
# the naive path; on an H200 (bf16, 16384, 4096, 131072) chunks of 64 / 256 / 1024 ran
# 7.5 / 2.2 / 0.96 x (an earlier kernel); with the current one, blocks of 2**27 / 2**28 /
# 2**29 logits (chunks of 1024 / 2048 / 4096) ran 1.32 / 1.14 / 1.06 x with 2.6 / 2.7 /
# 6.2 GiB of XLA temp memory (naive: 20 GiB). Hence a larger block on accelerators.
LOGITS_BUDGET = {"cpu": 1 << 24, "accelerator": 1 << 28}  # elements of one block
MAX_ROW_CHUNK = {"cpu": 1024, "accelerator": 8192}
MIN_ROW_CHUNK = 16
# Blocks of columns in the backward pass hold at most GRAD_BUDGET weight elements. Small
# blocks keep XLA:CPU's updates of the weight gradient in cache; on the H200 the 512
# blocks that 2**20 gives at H, V = 4096, 131072 made the step 2.4 x slower than 8.
GRAD_BUDGET = {"cpu": 1 << 20, "accelerator": 1 << 27}

_LOWEST = {jnp.dtype(t): float(jnp.finfo(t).min) for t in (jnp.float32, jnp.float64)}


def _pow2_floor(n: int) -> int:
    return 1 << max(0, int(n).bit_length() - 1)


def backend_kind(backend: str | None = None) -> str:
    """``"cpu"`` or ``"accelerator"`` (GPU, TPU) for ``backend`` (default: JAX's)."""
    backend = jax.default_backend() if backend is None else backend
    return "cpu" if backend == "cpu" else "accelerator"


def auto_chunk_size(num_rows: int, num_columns: int, backend: str | None = None) -> int:
    """The row chunk chosen when ``chunk_size=None``.

    The largest power of two ``T`` with ``T * V <= 2**24`` on CPU (a 64 MiB float32
    block of logits) or ``2**28`` on GPU and TPU (1 GiB), and ``T <= N / 8`` (so the
    block stays well under the naive path's two ``N x V`` buffers); then clipped to
    ``[16, 1024]`` on CPU, ``[16, 8192]`` elsewhere. ``backend`` defaults to
    ``jax.default_backend()``.
    """
    kind = backend_kind(backend)
    t = _pow2_floor(max(1, LOGITS_BUDGET[kind] // max(1, num_columns)))
    t = min(t, _pow2_floor(max(1, num_rows // 8)))
    return min(max(t, MIN_ROW_CHUNK), MAX_ROW_CHUNK[kind])


def grad_block_size(num_columns: int, hidden: int, backend: str | None = None) -> int:
    """Columns per backward block: ``V`` split evenly into blocks of ``<= 2**20 / H``
    (``2**27 / H`` on GPU and TPU).

    At least 8 blocks of at least 128 columns where ``V`` allows, so that a block's
    ``dL/dS`` stays small next to the chunk's scores.
    """
    budget = GRAD_BUDGET[backend_kind(backend)]
    blocks = max(-(-num_columns * hidden // budget), min(8, num_columns // 128))
    return -(-num_columns // max(1, blocks))


class Plan(NamedTuple):
    """How a chunked computation walks an ``N x V`` matrix (static, hashable).

    Attributes:
      row_chunk: rows per chunk (a ``lax.scan`` over chunks).
      column_block: columns per block of the statistics pass (``num_columns``: whole
        rows, one block).
      grad_block: columns per block of the gradient of whole rows.
      num_columns: ``V``.
    """

    row_chunk: int
    column_block: int
    grad_block: int
    num_columns: int

    @property
    def whole_rows(self) -> bool:
        """The statistics of a chunk come from one block of whole rows."""
        return self.column_block >= self.num_columns


def _chunk_sizes(chunk_size) -> tuple[int | None, int | None]:
    if chunk_size is None:
        return None, None
    return chunk_size if isinstance(chunk_size, tuple) else (chunk_size, None)


def check_chunk_size(name: str, value) -> None:
    """Validates a ``chunk_size``: None, a positive int, or a ``(rows, columns)`` pair."""
    if value is None:
        return
    if isinstance(value, tuple) and len(value) != 2:
        raise ValueError(f"{name} must be None, an int or a (tokens, vocab) pair, got {value!r}")
    for label, size in zip((name, f"{name}[1]"), _chunk_sizes(value), strict=True):
        if size is None:
            continue
        checks.check_int(label, size)
        if size < 1:
            raise ValueError(f"{label} must be a positive int, got {size}")


CHUNK_SIZE = check_chunk_size
"""The ``@hyperparameters`` spec of a ``chunk_size`` option."""


def make_plan(
    num_rows: int, num_columns: int, hidden: int, chunk_size=None, backend: str | None = None
) -> Plan:
    """The :class:`Plan` for ``chunk_size`` (rows, or ``(rows, columns)``; None: automatic)."""
    rows, columns = _chunk_sizes(chunk_size)
    if rows is None:
        rows = auto_chunk_size(num_rows, num_columns, backend)
    rows = max(1, min(rows, num_rows))
    columns = num_columns if columns is None else min(columns, num_columns)
    return Plan(rows, columns, grad_block_size(num_columns, hidden, backend), num_columns)


# --------------------------------------------------------------------------------------
# Rows


@overload
def pad_rows(a: jax.Array, multiple: int) -> jax.Array: ...
@overload
def pad_rows(a: None, multiple: int) -> None: ...
def pad_rows(a: jax.Array | None, multiple: int) -> jax.Array | None:
    """``a`` padded with zeros along its first axis to a multiple of ``multiple``."""
    if a is None:
        return None
    pad = -a.shape[0] % multiple
    return jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)) if pad else a


@overload
def split_rows(a: jax.Array, row_chunk: int) -> jax.Array: ...
@overload
def split_rows(a: None, row_chunk: int) -> None: ...
def split_rows(a: jax.Array | None, row_chunk: int) -> jax.Array | None:
    """``(N, ...)`` to ``(N / row_chunk, row_chunk, ...)`` (``N`` a multiple)."""
    return None if a is None else a.reshape((-1, row_chunk) + a.shape[1:])


@overload
def merge_rows(a: jax.Array) -> jax.Array: ...
@overload
def merge_rows(a: None) -> None: ...
def merge_rows(a: jax.Array | None) -> jax.Array | None:
    """The inverse of :func:`split_rows`."""
    return None if a is None else a.reshape((-1,) + a.shape[2:])


def _map(fn, tree):
    """``fn`` on every array of ``tree``; None entries stay None."""
    return jax.tree.map(lambda a: None if a is None else fn(a), tree, is_leaf=lambda a: a is None)


def _num_rows(rows) -> int:
    return next(a.shape[0] for a in jax.tree.leaves(rows))


# --------------------------------------------------------------------------------------
# Columns


class Columns(NamedTuple):
    """A block of columns: ``start + arange(width)``, of which those ``>= first`` are its own.

    Blocks of a fixed ``width`` tile ``[0, V)``; the last one is shifted back to end at
    ``V``, and its columns that the previous block already covered are not its own
    (``valid`` is False there). ``valid`` is None when the block is every column.
    """

    start: Any  # int or a traced int
    width: int
    first: Any  # int or a traced int
    valid: jax.Array | None  # (1, width) bool

    @overload
    def take(self, a: jax.Array, axis: int = 0) -> jax.Array: ...
    @overload
    def take(self, a: None, axis: int = 0) -> None: ...
    def take(self, a: jax.Array | None, axis: int = 0) -> jax.Array | None:
        """The block's slice of ``a`` along ``axis``."""
        if a is None or self.valid is None:
            return a
        return lax.dynamic_slice_in_dim(a, self.start, self.width, axis=axis)

    def add(self, acc: jax.Array, part: jax.Array, axis: int = 0) -> jax.Array:
        """``acc[..., start:start + width, ...] += part`` along ``axis``, in place."""
        if self.valid is None:
            return acc + part
        old = lax.dynamic_slice_in_dim(acc, self.start, self.width, axis=axis)
        return lax.dynamic_update_slice_in_dim(acc, old + part, self.start, axis=axis)

    def local(self, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Each label's column in the block (clipped into it) and whether it is its own."""
        start = jnp.asarray(self.start, labels.dtype)
        hit = (labels >= self.first) & (labels < start + self.width) & (labels >= 0)
        return jnp.clip(labels - start, 0, self.width - 1), hit


def all_columns(num_columns: int) -> Columns:
    """One block of every column."""
    return Columns(0, num_columns, 0, None)


def block_columns(k, width: int, num_columns: int) -> Columns:
    """Block ``k`` of ``width`` columns out of ``num_columns`` (see :class:`Columns`)."""
    if width >= num_columns:
        return all_columns(num_columns)
    start = jnp.minimum(k * width, num_columns - width)
    first = k * width
    valid = start + lax.broadcasted_iota(jnp.int32, (1, width), 1) >= first
    return Columns(start, width, first, valid)


def scan_columns(width: int, num_columns: int, body: Callable, carry):
    """``carry = body(carry, columns)`` for each block of ``width`` columns, in order.

    One call on every column when ``width >= num_columns``, else a ``lax.scan``.
    """
    if width >= num_columns:
        return body(carry, all_columns(num_columns))

    def step(c, k):
        return body(c, block_columns(k, width, num_columns)), None

    blocks = jnp.arange(-(-num_columns // width))
    return lax.scan(step, carry, blocks)[0]


# --------------------------------------------------------------------------------------
# A linear head: blocks of x @ W.T + b (soft-capped) and their backward pass


def dot(a: jax.Array, b: jax.Array, contract) -> jax.Array:
    """``a`` times ``b`` contracting the ``contract`` dims, accumulating in float32."""
    acc = compute_dtype(jnp.promote_types(a.dtype, b.dtype))
    return lax.dot_general(a, b, (contract, ((), ())), preferred_element_type=acc)


class HeadGrads(NamedTuple):
    """Float32 (float64) accumulators of a :class:`LinearHead`'s gradients."""

    weight: jax.Array  # (V, H)
    bias: jax.Array | None  # (V,)


class LinearHead(NamedTuple):
    """Scores ``softcap(x W^T + b)`` of ``V`` columns, computed a block at a time.

    ``weight`` is ``(V, H)`` (PyTorch's layout); 16-bit weights multiply in their own
    dtype with float32 accumulation. ``softcap`` (a scalar or None) applies
    :func:`jaxlosses._core.stable.softcap`; a ``-inf`` bias masks a column.
    """

    weight: jax.Array
    bias: jax.Array | None = None
    softcap: jax.Array | None = None

    @property
    def num_columns(self) -> int:
        return self.weight.shape[0]

    def logits(self, x: jax.Array, cols: Columns) -> jax.Array:
        """The ``(T, width)`` block of scores of the rows ``x`` (``(T, H)``), float32."""
        z = dot(x, cols.take(self.weight), ((1,), (1,)))
        if self.bias is not None:
            z = z + cols.take(self.bias).astype(z.dtype)
        if self.softcap is not None:
            z = stable.softcap(z, self.softcap)
        return z

    def backprop(
        self, g: jax.Array, x: jax.Array, s: jax.Array, cols: Columns, grads: HeadGrads
    ) -> tuple[jax.Array, HeadGrads]:
        """The block's share of ``dL/dx`` and ``grads`` plus its rows of ``dW``, ``db``.

        ``g`` is ``dL/ds`` of the block's scores ``s`` (after the soft cap), float32.
        """
        if self.softcap is not None:
            # d(c tanh(z / c))/dz = 1 - tanh**2; clipped so a masked (-inf) column gives 0
            g = g * (1.0 - jnp.square(jnp.clip(s / self.softcap, -1.0, 1.0)))
        wdt = self.weight.dtype
        gw = g.astype(wdt)
        dx = dot(gw, cols.take(self.weight), ((1,), (0,)))
        dw = cols.add(grads.weight, dot(gw, x.astype(wdt), ((0,), (0,))))
        db = None if grads.bias is None else cols.add(grads.bias, jnp.sum(g, axis=0))
        return dx, HeadGrads(dw, db)

    def zero_grads(self) -> HeadGrads:
        acc = compute_dtype(self.weight.dtype)
        w = self.weight
        bias = None if self.bias is None else jnp.zeros_like(w, dtype=acc, shape=w.shape[:1])
        return HeadGrads(jnp.zeros_like(w, dtype=acc), bias)


# --------------------------------------------------------------------------------------
# Softmax statistics of rows of scores, online over blocks of columns


class SoftmaxTerms(NamedTuple):
    """What the statistics read from each row besides its scores (rows first).

    Attributes:
      labels: ``(N,)`` integer columns; the ``label`` statistic is the score there
        (0 where the label is outside ``[0, V)``: a dropped token, or a column held by
        another device). None: no ``label`` statistic.
      targets: ``(N, V)`` floating target weights ``t``; the ``dense`` statistic is
        :math:`\\sum_c w_c t_c s_c`. None: no ``dense`` statistic.
    """

    labels: jax.Array | None = None
    targets: jax.Array | None = None


class SoftmaxReads(NamedTuple):
    """Which optional statistics to compute (static).

    Attributes:
      column_sum: ``column_sum`` and ``column_mass`` (label smoothing).
      expected: ``expected``, the softmax-weighted score (entropies).
    """

    column_sum: bool = False
    expected: bool = False


NO_TERMS = SoftmaxTerms()
DEFAULT_READS = SoftmaxReads()


class SoftmaxStats(NamedTuple):
    r"""Per-row statistics of scores :math:`s`, relative to a per-row shift :math:`m`.

    Every entry is relative to ``shift``, the row's largest score, so that differences
    of large scores lose no precision (rows of ``1e30`` give the same statistics as rows
    of 0). For differentiation ``shift`` is a constant, and each relative entry has the
    derivative of the absolute quantity it stands for, so a loss written from them has the
    exact gradient of the same loss written from absolute scores: ``lse`` has the
    softmax :math:`p`, ``label`` the one-hot, ``dense`` :math:`w t`, ``column_sum``
    :math:`w [s > -\infty]`, ``expected`` :math:`p (1 + s - E)`. Entries not computed are
    None. ``-inf`` scores are masked columns: they add nothing to any sum.

    Attributes:
      shift: :math:`m`, the row's max (the lowest finite value for a row of ``-inf``).
      lse: :math:`\log \sum_c e^{s_c - m}`.
      label: :math:`s_y - m` (0 where the label is outside ``[0, V)``).
      dense: :math:`\sum_c w_c t_c (s_c - m)`.
      target_mass: :math:`\sum_c w_c t_c` (with ``dense``).
      column_sum: :math:`\sum_{c:\, s_c > -\infty} w_c (s_c - m)`.
      column_mass: :math:`\sum_{c:\, s_c > -\infty} w_c` (with ``column_sum``; a constant).
      expected: :math:`\sum_c p_c (s_c - m)`.
    """

    shift: jax.Array
    lse: jax.Array
    label: jax.Array | None = None
    dense: jax.Array | None = None
    target_mass: jax.Array | None = None
    column_sum: jax.Array | None = None
    column_mass: jax.Array | None = None
    expected: jax.Array | None = None

    def absolute_lse(self) -> jax.Array:
        """:math:`\\log \\sum_c e^{s_c}` (``shift + lse``)."""
        return self.shift + self.lse


class _Running(NamedTuple):
    """Online statistics over the blocks seen so far, relative to ``max(m, lowest)``."""

    m: jax.Array  # max so far (-inf: nothing finite yet)
    sumexp: jax.Array  # sum of exp(s - shift)
    label: jax.Array | None  # the label's absolute score (0 until its block)
    dense: jax.Array | None
    target_mass: jax.Array | None
    column_sum: jax.Array | None
    column_mass: jax.Array | None
    weighted: jax.Array | None  # sum of exp(s - shift) (s - shift)


def _shift(m: jax.Array) -> jax.Array:
    # max(m, lowest) rather than a select: a row of -inf shifts by the lowest finite value
    # (s - shift stays -inf), and XLA:CPU fuses the shift into the reductions.
    return jnp.maximum(m, _LOWEST[jnp.dtype(m.dtype)])


def _empty(rows: jax.Array, terms: SoftmaxTerms, reads: SoftmaxReads) -> _Running:
    # *_like a (T,) vector of the rows: inside shard_map the carries take its varying axes.
    zero = jnp.zeros_like(rows)
    dense = None if terms.targets is None else zero
    col = zero if reads.column_sum else None
    return _Running(
        m=jnp.full_like(rows, -jnp.inf),
        sumexp=zero,
        label=None if terms.labels is None else zero,
        dense=dense,
        target_mass=dense,
        column_sum=col,
        column_mass=col,
        weighted=zero if reads.expected else None,
    )


def _update(
    run: _Running,
    s: jax.Array,
    cols: Columns,
    terms: SoftmaxTerms,
    weights: jax.Array | None,
    reads: SoftmaxReads,
    column_kept: jax.Array | None = None,
) -> _Running:
    """Adds the block of scores ``s`` (``(T, width)``, the columns ``cols``) to ``run``.

    ``column_kept``: see :func:`softmax_statistics`.
    """
    masked = s if cols.valid is None else jnp.where(cols.valid, s, -jnp.inf)
    m = jnp.maximum(run.m, jnp.max(masked, axis=1))
    shift = _shift(m)
    lowest = _LOWEST[jnp.dtype(s.dtype)]
    # The old statistics move from the old shift to the new one: + mass * delta.
    delta = jnp.maximum(_shift(run.m) - shift, lowest)
    scale = jnp.exp(delta)
    xs = masked - shift[:, None]
    e = jnp.exp(xs)
    total = jnp.sum(e, axis=1)
    w = None if weights is None else cols.take(weights)[None, :].astype(s.dtype)

    label = run.label
    if terms.labels is not None:
        assert run.label is not None  # _empty starts every statistic that terms or reads ask for
        local, hit = cols.local(terms.labels)
        # A gather, not a masked sum: XLA would materialise the mask times the block.
        at = jnp.take_along_axis(s, local[:, None], axis=1)[:, 0]
        label = run.label + jnp.where(hit, at, jnp.zeros_like(at))

    dense, target_mass = run.dense, run.target_mass
    if terms.targets is not None:
        assert run.dense is not None and run.target_mass is not None
        tw = cols.take(terms.targets, axis=1).astype(s.dtype)
        tw = tw if w is None else tw * w
        if cols.valid is not None:
            tw = jnp.where(cols.valid, tw, 0.0)
        # t_c = 0 adds exactly 0, also on a masked column where 0 * -inf would be nan
        part = jnp.sum(jnp.where(tw == 0, 0.0, tw * xs), axis=1)
        dense = _moved(run.dense, run.target_mass, delta) + part
        target_mass = run.target_mass + jnp.sum(tw, axis=1)

    column_sum, column_mass = run.column_sum, run.column_mass
    if reads.column_sum:
        assert run.column_sum is not None and run.column_mass is not None
        # sum of w_c (s_c - shift) over the columns that are not masked; a masked column's
        # 0 multiplies a finite stand-in for its -inf (and a second expression of the
        # shift keeps XLA:CPU from materialising the one the exponentials use)
        rel = stable.finite_floor(masked - _shift_again(m)[:, None])
        if column_kept is None:
            kept = stable.unmasked(masked, 1)  # 0 on masked and invalid columns
            kept = kept if w is None else kept * w
            mass = jnp.sum(kept, axis=1)
        else:
            kept = cols.take(column_kept)[None, :].astype(s.dtype)
            kept = kept if cols.valid is None else jnp.where(cols.valid, kept, 0.0)
            mass = jnp.sum(kept) * jnp.ones_like(run.column_mass)
        column_sum = _moved(run.column_sum, run.column_mass, delta) + jnp.sum(kept * rel, axis=1)
        column_mass = run.column_mass + mass

    weighted = run.weighted
    if reads.expected:
        assert run.weighted is not None
        moved = scale * (run.weighted + delta * run.sumexp)
        moved = jnp.where(scale == 0, 0.0, moved)
        weighted = moved + jnp.sum(e * stable.finite_floor(xs), axis=1)

    l_sum = run.sumexp * scale + total
    return _Running(m, l_sum, label, dense, target_mass, column_sum, column_mass, weighted)


def _shift_again(m: jax.Array) -> jax.Array:
    # The same shift as _shift, written differently: XLA:CPU would otherwise share one
    # broadcast of it between the exponentials and the reductions and materialise it.
    lowest = _LOWEST[jnp.dtype(m.dtype)]
    return -jnp.minimum(-m, -lowest)


def _moved(total: jax.Array, mass: jax.Array, delta: jax.Array) -> jax.Array:
    """``total + mass * delta``: a sum of ``mass``-weighted relative scores, re-shifted."""
    return total + jnp.where(mass == 0, 0.0, mass * delta)


def _finish(run: _Running, terms: SoftmaxTerms, num_columns: int) -> SoftmaxStats:
    shift = _shift(run.m)
    label = None
    if terms.labels is not None:
        assert run.label is not None
        y = terms.labels
        hit = (y >= 0) & (y < num_columns)
        label = jnp.where(hit, run.label - shift, jnp.zeros_like(run.label))
    expected = None if run.weighted is None else run.weighted / run.sumexp
    return SoftmaxStats(
        shift=shift,
        lse=jnp.log(run.sumexp),
        label=label,
        dense=run.dense,
        target_mass=run.target_mass,
        column_sum=run.column_sum,
        column_mass=run.column_mass,
        expected=expected,
    )


def softmax_statistics(
    s: jax.Array,
    terms: SoftmaxTerms = NO_TERMS,
    *,
    weights: jax.Array | None = None,
    reads: SoftmaxReads = DEFAULT_READS,
    cols: Columns | None = None,
    column_kept: jax.Array | None = None,
) -> SoftmaxStats:
    """The :class:`SoftmaxStats` of materialised scores ``s`` (``(N, V)``, compute dtype).

    ``weights`` (``(V,)`` or None for ones) are the class weights :math:`w` of ``dense``
    and ``column_sum``. ``column_kept`` (``(V,)``), when the masked classes are the same
    in every row (a ``-inf`` bias), is :math:`w_c` for the columns that are not masked
    and 0 for the others: ``column_mass`` is then its sum instead of a reduction per row.
    Not differentiable by itself: pair it with :func:`softmax_gradient` in a
    ``custom_vjp``.
    """
    cols = all_columns(s.shape[-1]) if cols is None else cols
    run = _empty(s[:, 0], terms, reads)
    run = _update(run, s, cols, terms, weights, reads, column_kept)
    return _finish(run, terms, s.shape[-1])


def softmax_gradient(
    s: jax.Array,
    terms: SoftmaxTerms,
    stats: SoftmaxStats,
    cotangents: SoftmaxStats,
    *,
    weights: jax.Array | None = None,
    cols: Columns | None = None,
    column_kept: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array | None]:
    """``dL/ds`` of a block of scores and ``dL/dtargets``, from per-row cotangents.

    ``stats`` are the whole rows' statistics (their ``shift``, ``lse`` and ``expected``
    give the softmax); ``cotangents`` holds ``dL/d(statistic)`` per row, None (or absent)
    for a statistic the loss does not use; ``shift`` and ``column_mass`` are constants and
    their cotangents are ignored. Columns that are not the block's own get 0. The target
    gradient of a masked column takes 0 for its score (whose true value is ``-inf``).
    ``column_kept``: see :func:`softmax_statistics`.
    """
    cols = all_columns(s.shape[-1]) if cols is None else cols
    xs = s - stats.shift[:, None]
    p = jnp.exp(xs - stats.lse[:, None])
    g = jnp.zeros_like(s) if cotangents.lse is None else cotangents.lse[:, None] * p
    w = None if weights is None else cols.take(weights)[None, :].astype(s.dtype)
    if cotangents.label is not None and terms.labels is not None:
        local, hit = cols.local(terms.labels)
        iota = lax.broadcasted_iota(local.dtype, s.shape, 1)
        hot = (iota == local[:, None]) & hit[:, None]
        g = g + jnp.where(hot, cotangents.label[:, None], 0.0)
    if cotangents.column_sum is not None:
        if column_kept is None:
            kept = stable.unmasked(s, 2)
            kept = kept if w is None else kept * w
        else:
            kept = cols.take(column_kept)[None, :].astype(s.dtype)
        g = g + cotangents.column_sum[:, None] * kept
    if cotangents.expected is not None:
        assert stats.expected is not None  # a cotangent comes with its statistic
        centred = 1.0 + stable.finite_floor(xs) - stats.expected[:, None]
        g = g + cotangents.expected[:, None] * (p * centred)
    dt = None
    if terms.targets is not None:
        tw = cols.take(terms.targets, axis=1).astype(s.dtype)
        unit = jnp.ones_like(tw) if w is None else jnp.broadcast_to(w, tw.shape)
        if cotangents.dense is not None:
            g = g + cotangents.dense[:, None] * (tw if w is None else tw * w)
            dt = cotangents.dense[:, None] * unit * jnp.where(s == -jnp.inf, 0.0, xs)
        if cotangents.target_mass is not None:
            extra = cotangents.target_mass[:, None] * unit
            dt = extra if dt is None else dt + extra
        if dt is None:
            dt = jnp.zeros_like(tw)
        if cols.valid is not None:
            dt = jnp.where(cols.valid, dt, 0.0)
    if cols.valid is not None:
        g = jnp.where(cols.valid, g, 0.0)
    return g, dt


# --------------------------------------------------------------------------------------
# Generic kernels: chunks of rows, differentiated by recomputation or in the forward pass


def _cast_like(grads, primals):
    """Accumulated cotangents in their primals' dtypes (None for integer primals)."""

    def cast(g, p):
        if g is None or p is None or not jnp.issubdtype(p.dtype, jnp.inexact):
            return None
        return g.astype(p.dtype)

    return jax.tree.map(cast, grads, primals, is_leaf=lambda a: a is None)


def rows_with_recompute(
    forward: Callable,
    backward: Callable,
    zero_grads: Callable,
    shared,
    rows,
    *,
    row_chunk: int,
):
    """Per-row outputs computed a chunk of rows at a time; the backward pass recomputes.

    ``forward(shared, rows_chunk) -> outs_chunk`` maps a chunk of ``row_chunk`` rows to
    per-row outputs (a pytree of ``(row_chunk, ...)`` arrays).
    ``backward(shared, rows_chunk, outs_chunk, cotangents_chunk, grads) ->
    (rows_cotangents_chunk, grads)`` returns the chunk's row cotangents (a pytree like
    ``rows_chunk``, None for rows not differentiated) and adds its share to ``grads``,
    the cotangents of ``shared`` started by ``zero_grads(shared)`` (float32 accumulators;
    None for leaves not differentiated). Residuals are ``shared``, ``rows`` and the
    outputs: nothing per chunk. ``rows`` (arrays with a common first axis ``N``) are
    padded with zeros to whole chunks; the outputs of padded rows are dropped.
    """
    num_rows = _num_rows(rows)
    padded = _map(lambda a: pad_rows(a, row_chunk), rows)

    def scan_forward(shared, rows):
        def body(_, chunk):
            return None, forward(shared, chunk)

        outs = lax.scan(body, None, _map(lambda a: split_rows(a, row_chunk), rows))[1]
        return _map(merge_rows, outs)

    @jax.custom_vjp
    def apply(shared, rows):
        return scan_forward(shared, rows)

    def apply_fwd(shared, rows):
        outs = scan_forward(shared, rows)
        return outs, (shared, rows, outs)

    def apply_bwd(res, cotangents):
        shared, rows, outs = res

        def body(grads, chunk):
            rows_c, outs_c, cts_c = chunk
            row_cts, grads = backward(shared, rows_c, outs_c, cts_c, grads)
            return grads, row_cts

        split = _map(lambda a: split_rows(a, row_chunk), (rows, outs, cotangents))
        grads, row_cts = lax.scan(body, zero_grads(shared), split)
        return _cast_like(grads, shared), _cast_like(_map(merge_rows, row_cts), rows)

    apply.defvjp(apply_fwd, apply_bwd)
    outs = apply(shared, padded)
    return _map(lambda a: a[:num_rows], outs)


def sum_with_forward_gradients(
    chunk: Callable, zero_grads: Callable, shared, rows, *, row_chunk: int
) -> jax.Array:
    """A scalar summed over chunks of rows whose gradient is computed in the forward pass.

    ``chunk(shared, rows_chunk, grads) -> (value, rows_gradients_chunk, grads)`` returns
    the chunk's scalar value, its gradient with respect to the chunk's rows (a pytree like
    ``rows_chunk``; None for rows not differentiated) and ``grads`` plus its gradient with
    respect to ``shared`` (float32 accumulators from ``zero_grads(shared)``; None for
    leaves not differentiated). The gradient of a sum is known in the forward pass up to
    the upstream scalar, so the backward pass only scales the stored gradients: the
    residuals are the finished gradients (the size of the differentiated inputs).
    """
    padded = _map(lambda a: pad_rows(a, row_chunk), rows)

    def scan_forward(shared, rows):
        def body(grads, rows_c):
            value, row_grads, grads = chunk(shared, rows_c, grads)
            return grads, (value, row_grads)

        split = _map(lambda a: split_rows(a, row_chunk), rows)
        grads, (values, row_grads) = lax.scan(body, zero_grads(shared), split)
        return jnp.sum(values), grads, _map(merge_rows, row_grads)

    @jax.custom_vjp
    def apply(shared, rows):
        return scan_forward(shared, rows)[0]

    def apply_fwd(shared, rows):
        total, grads, row_grads = scan_forward(shared, rows)
        return total, (_cast_like(grads, shared), _cast_like(row_grads, rows))

    def apply_bwd(res, g):
        grads, row_grads = res
        scale = lambda a: None if a is None else (g * a).astype(a.dtype)  # noqa: E731
        return _map(scale, grads), _map(scale, row_grads)

    apply.defvjp(apply_fwd, apply_bwd)
    return apply(shared, padded)


# --------------------------------------------------------------------------------------
# Softmax statistics of a linear head's scores


class _Shared(NamedTuple):
    weight: jax.Array
    bias: jax.Array | None
    softcap: jax.Array | None
    weights: jax.Array | None  # class weights (not differentiated)
    column_kept: jax.Array | None  # w_c [bias_c > -inf] (see softmax_statistics)


class _Rows(NamedTuple):
    x: jax.Array
    labels: jax.Array | None
    targets: jax.Array | None


def _split(head: LinearHead, x, terms: SoftmaxTerms, weights, reads: SoftmaxReads):
    kept = None
    if reads.column_sum:
        # A linear head's masked classes are its -inf biases: the same in every row.
        acc = compute_dtype(head.weight.dtype)
        kept = jnp.ones(head.weight.shape[:1], acc) if weights is None else weights.astype(acc)
        if head.bias is not None:
            kept = jnp.where(head.bias == -jnp.inf, 0.0, kept)
        kept = lax.stop_gradient(kept)
    shared = _Shared(head.weight, head.bias, head.softcap, weights, kept)
    return shared, _Rows(x, terms.labels, terms.targets)


def _head(shared: _Shared) -> LinearHead:
    return LinearHead(shared.weight, shared.bias, shared.softcap)


def _zero_grads(shared: _Shared):
    grads = _head(shared).zero_grads()
    return _Shared(grads.weight, grads.bias, None, None, None)


def _chunk_statistics(shared: _Shared, rows: _Rows, plan: Plan, reads: SoftmaxReads):
    head, terms = _head(shared), SoftmaxTerms(rows.labels, rows.targets)

    def body(run, cols):
        s = head.logits(rows.x, cols)
        return _update(run, s, cols, terms, shared.weights, reads, shared.column_kept)

    run = _empty(jnp.zeros_like(rows.x[:, 0], dtype=compute_dtype(rows.x.dtype)), terms, reads)
    run = scan_columns(plan.column_block, plan.num_columns, body, run)
    return _finish(run, terms, plan.num_columns)


def _chunk_backward(shared, rows, stats, cts, grads, plan: Plan, s_full=None):
    """``(dx, d_targets)`` of a chunk; adds its weight and bias gradients to ``grads``.

    Walks the columns in blocks: each block's ``G = dL/ds`` gives its share of
    ``dx = G W`` and its rows of ``dW += G^T x``, added in place (a whole ``V x H``
    product per chunk would be a second weight-sized buffer, a whole ``G`` a second
    ``T x V`` one). The scores are sliced from ``s_full`` when given (or computed once
    for whole rows), else recomputed per block.
    """
    head, terms = _head(shared), SoftmaxTerms(rows.labels, rows.targets)
    v = plan.num_columns
    width = plan.grad_block if plan.whole_rows else plan.column_block
    if plan.whole_rows and s_full is None and width < v:
        s_full = head.logits(rows.x, all_columns(v))  # one GEMM for the whole rows

    def block(carry, cols):
        dx, dt, hg = carry
        s = head.logits(rows.x, cols) if s_full is None else cols.take(s_full, axis=1)
        g, dt_block = softmax_gradient(
            s, terms, stats, cts, weights=shared.weights, cols=cols, column_kept=shared.column_kept
        )
        dx_block, hg = head.backprop(g, rows.x, s, cols, hg)
        dt = dt if dt_block is None else cols.add(dt, dt_block, axis=1)
        return dx + dx_block, dt, hg

    acc = grads.weight.dtype
    dx = jnp.zeros_like(rows.x, dtype=acc)
    dt = None if rows.targets is None else jnp.zeros_like(rows.targets, dtype=acc)
    hg = HeadGrads(grads.weight, grads.bias)
    dx, dt, hg = scan_columns(width, v, block, (dx, dt, hg))
    return _Rows(dx, None, dt), _Shared(hg.weight, hg.bias, None, None, None)


def linear_softmax_statistics(
    head: LinearHead,
    x: jax.Array,
    terms: SoftmaxTerms = NO_TERMS,
    *,
    plan: Plan,
    weights: jax.Array | None = None,
    reads: SoftmaxReads = DEFAULT_READS,
) -> SoftmaxStats:
    """The :class:`SoftmaxStats` of every row of ``head``'s scores of ``x`` (``(N, H)``).

    Differentiable (reverse mode) with respect to ``x``, the head's weight and bias and
    ``terms.targets``: the backward pass recomputes each block of scores from the per-row
    statistics and their cotangents (one more GEMM than the forward pass). Class weights
    and the soft cap are constants. Only per-row vectors are kept between the passes.
    """
    shared, rows = _split(head, x, terms, weights, reads)

    def forward(shared, rows):
        return _chunk_statistics(shared, rows, plan, reads)

    def backward(shared, rows, stats, cts, grads):
        return _chunk_backward(shared, rows, stats, cts, grads, plan)

    shared = shared._replace(softcap=_constant(shared.softcap), weights=_constant(weights))
    return rows_with_recompute(
        forward, backward, _zero_grads, shared, rows, row_chunk=plan.row_chunk
    )


def _constant(a):
    return None if a is None else lax.stop_gradient(a)


def linear_softmax_forward(
    head: LinearHead,
    x: jax.Array,
    terms: SoftmaxTerms = NO_TERMS,
    *,
    plan: Plan,
    weights: jax.Array | None = None,
    reads: SoftmaxReads = DEFAULT_READS,
) -> SoftmaxStats:
    """:func:`linear_softmax_statistics` without a derivative rule: the forward half.

    For a ``custom_vjp`` that combines the statistics (e.g. across the devices that hold
    slices of the columns) before its loss; its backward half is
    :func:`linear_softmax_backward`.
    """
    shared, rows = _split(head, x, terms, weights, reads)
    num_rows = x.shape[0]

    def body(_, chunk):
        return None, _chunk_statistics(shared, chunk, plan, reads)

    padded = _map(lambda a: split_rows(pad_rows(a, plan.row_chunk), plan.row_chunk), rows)
    stats = lax.scan(body, None, padded)[1]
    return _map(lambda a: None if a is None else merge_rows(a)[:num_rows], stats)


def linear_softmax_backward(
    head: LinearHead,
    x: jax.Array,
    terms: SoftmaxTerms,
    stats: SoftmaxStats,
    cotangents: SoftmaxStats,
    *,
    plan: Plan,
    weights: jax.Array | None = None,
) -> tuple[jax.Array, HeadGrads, jax.Array | None]:
    """The backward half: ``(dx, head gradients, d targets)`` in the inputs' dtypes.

    ``stats`` give the softmax of each row (``shift``, ``lse``, ``expected``; after a
    combination across devices, the global ones), ``cotangents`` the per-row
    ``dL/d(statistic)``. Recomputes each block of scores.
    """
    reads = SoftmaxReads(column_sum=cotangents.column_sum is not None)
    shared, rows = _split(head, x, terms, weights, reads)
    num_rows = x.shape[0]
    split = _map(
        lambda a: split_rows(pad_rows(a, plan.row_chunk), plan.row_chunk),
        (rows, stats, cotangents),
    )

    def body(grads, chunk):
        rows_c, stats_c, cts_c = chunk
        row_cts, grads = _chunk_backward(shared, rows_c, stats_c, cts_c, grads, plan)
        return grads, row_cts

    grads, row_cts = lax.scan(body, _zero_grads(shared), split)
    row_cts = _cast_like(_map(lambda a: merge_rows(a)[:num_rows], row_cts), rows)
    grads = _cast_like(grads, shared)
    return row_cts.x, HeadGrads(grads.weight, grads.bias), row_cts.targets


def linear_softmax_loss(
    row_loss: Callable[[SoftmaxStats, Any, Any], jax.Array],
    head: LinearHead,
    x: jax.Array,
    terms: SoftmaxTerms = NO_TERMS,
    row_data=None,
    constants=None,
    *,
    plan: Plan,
    weights: jax.Array | None = None,
    reads: SoftmaxReads = DEFAULT_READS,
) -> jax.Array:
    """``sum(row_loss(stats, row_data, constants))`` over every row, gradients in the forward pass.

    ``row_loss(stats_chunk, row_data_chunk, constants) -> (T,)`` is a loss of each row's
    :class:`SoftmaxStats` (weights included); ``row_data`` per-row arrays (a pytree, rows
    first) and ``constants`` other arrays (hyperparameters) it reads, both constants for
    differentiation (``row_loss`` must not close over arrays). Each chunk computes its whole
    rows of scores once (``plan.column_block`` is ignored), the statistics, the loss's
    coefficients by ``jax.vjp`` of ``row_loss``, and from them ``dL/ds`` block by block:
    three GEMMs per step, like the naive path, and the backward pass only scales the
    finished gradients of ``x``, the head and ``terms.targets``.
    """
    shared, rows = _split(head, x, terms, weights, reads)
    shared = shared._replace(softcap=_constant(shared.softcap), weights=_constant(weights))
    row_data = _map(lax.stop_gradient, row_data)
    constants = _map(lax.stop_gradient, constants)
    v = plan.num_columns

    def chunk(shared_and_constants, rows_c, grads):
        shared, constants = shared_and_constants
        rows_c, data_c = rows_c
        head = _head(shared)
        terms = SoftmaxTerms(rows_c.labels, rows_c.targets)
        s = head.logits(rows_c.x, all_columns(v))
        stats = softmax_statistics(
            s, terms, weights=shared.weights, reads=reads, column_kept=shared.column_kept
        )

        def total(stats):
            return jnp.sum(row_loss(stats, data_c, constants))

        value, vjp = jax.vjp(total, stats)
        (cts,) = vjp(jnp.ones_like(value))
        row_grads, head_grads = _chunk_backward(shared, rows_c, stats, cts, grads[0], plan, s)
        return value, (row_grads, _map(lambda a: None, data_c)), (head_grads, grads[1])

    def zero_grads(shared_and_constants):
        shared, constants = shared_and_constants
        return _zero_grads(shared), _map(lambda a: None, constants)

    return sum_with_forward_gradients(
        chunk, zero_grads, (shared, constants), (rows, row_data), row_chunk=plan.row_chunk
    )
