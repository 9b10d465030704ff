"""Losses over a pairwise score matrix ``a @ b.T``, in row chunks that are never all held.

Contrastive losses (CLIP, SigLIP, InfoNCE, SupCon, NT-Xent) are functions of the
``N x M`` matrix of dot products ``P = a @ b.T`` of two sets of feature rows. Materialised,
``P`` and its gradient are the largest buffers of a contrastive training step (two
``8192 x 8192`` float32 arrays are 512 MiB). This engine scans over chunks of ``T`` rows:
each chunk's ``T x M`` block ``P_c = a_c @ b.T`` is built in float32, handed to a *block
function* written in plain JAX, and dropped.

A block function ``block_fn(p, rows, cols, params)`` receives

* ``p``: the ``(T, M)`` float32 block of dot products;
* ``rows``: a pytree of per-row arguments of the chunk (leading axis ``T``: labels, masks,
  the global index of each row, ...), zero-filled for the padding rows of the last chunk
  (include a boolean row mask if padding must not count);
* ``cols``: a pytree of per-column arguments (leading axis ``M``), the same for every chunk;
* ``params``: a pytree of anything else (a learned scale and bias, hyperparameters).

Floating leaves of ``rows``, ``cols`` and ``params`` are differentiated; the others
(labels, masks) are not. Two entry points, both ``jax.custom_vjp`` whose backward passes
are plain JAX (so ``jax.hessian`` and other reverse-over-reverse derivatives work; forward
mode does not):

* :func:`pairwise_rows`: ``block_fn`` returns ``(row_values, col_partials)``; the row
  values of every chunk are concatenated, and each column partial (an ``(M,)`` array per
  chunk) is combined over chunks by ``"sum"`` or ``"logsumexp"`` (e.g. CLIP's text-to-image
  log-sum-exp runs down the columns). The forward pass costs one GEMM; the backward pass
  recomputes each block (one GEMM), takes the block function's VJP and forms the
  gradients of ``a`` and ``b`` (two GEMMs). Any cotangent.
* :func:`pairwise_total`: ``block_fn`` returns a chunk's scalar contribution to a total
  (a sum or a mean whose weights are already in ``rows``). Its gradient is known in the
  forward pass up to the upstream scalar, so each block is used once, for the value and
  for the gradients: three GEMMs, like the naive ``a @ b.T`` and its backward pass.

Both are layers over :mod:`jaxlosses._core.chunked`: its row helpers (``pad_rows``,
``split_rows``, ``merge_rows``) chunk the rows, and :func:`pairwise_total` is its
``sum_with_forward_gradients`` kernel with a block function of ``a_c @ b.T``. Only
:func:`pairwise_rows`, whose column reductions
run across chunks, has a scan of its own.

Only one block (and its VJP's temporaries) exists at a time. Residuals are the inputs and
``O(N + M)`` vectors (and, for :func:`pairwise_total`, the finished gradients).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxlosses._core.chunked import (
    backend_kind,
    merge_rows,
    pad_rows,
    split_rows,
    sum_with_forward_gradients,
)
from jaxlosses._core.reduction import compute_dtype
from jaxlosses._core.sharding import vary_together

COLUMN_REDUCTIONS = ("sum", "logsumexp")

# Elements of one T x M block. A block and the few temporaries of its VJP stay far below
# the naive N x M logits and gradient (measured in benchmarks/bench_contrastive.py).
_BLOCK_BUDGET = {"cpu": 1 << 21, "accelerator": 1 << 26}
_MIN_CHUNK = 8


def auto_chunk_size(num_rows: int, num_cols: int, backend: str | None = None) -> int:
    """Rows per chunk for ``chunk_size=None``.

    The largest power of two ``T`` with ``T * M <= 2**21`` on CPU (an 8 MiB float32 block)
    or ``2**26`` on GPU and TPU, and ``T <= N / 8`` (so that a block stays well under the
    naive ``N x M`` arrays), at least 8; never more than ``N``.
    """
    budget = _BLOCK_BUDGET[backend_kind(backend)]
    t = 1 << max(0, (budget // max(1, num_cols)).bit_length() - 1)
    t = min(t, 1 << max(0, (max(1, num_rows // 8)).bit_length() - 1))
    return max(1, min(max(t, _MIN_CHUNK), num_rows))


def dot_rows(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a @ b.T`` accumulated in float32 (float64 for float64 inputs)."""
    acc = compute_dtype(jnp.promote_types(a.dtype, b.dtype))
    return lax.dot_general(a, b, (((1,), (1,)), ((), ())), preferred_element_type=acc)


def _is_float(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def _zero_cotangent(x):
    """The cotangent of a leaf that is not differentiated: float0 zeros for ints and bools."""
    if _is_float(x):
        return jnp.zeros_like(x)
    return np.zeros(np.shape(x), jax.dtypes.float0)


def _split(tree):
    """(floating leaves, a function putting new floating leaves back in ``tree``)."""
    leaves, treedef = jax.tree.flatten(tree)
    floats = [x for x in leaves if _is_float(x)]

    def merge(new_floats):
        it = iter(new_floats)
        return jax.tree.unflatten(treedef, [next(it) if _is_float(x) else x for x in leaves])

    return floats, merge


def _cotangents(tree, float_grads):
    """Cotangents for ``tree``: ``float_grads`` for its floating leaves, float0 elsewhere."""
    leaves, treedef = jax.tree.flatten(tree)
    it = iter(float_grads)
    return jax.tree.unflatten(
        treedef,
        [next(it).astype(x.dtype) if _is_float(x) else _zero_cotangent(x) for x in leaves],
    )


class _Chunks(NamedTuple):
    """Static chunking of ``num_rows`` rows into chunks of ``size`` (the last one padded)."""

    size: int
    num_rows: int


def _chunking(num_rows: int, num_cols: int, chunk_size: int | None) -> _Chunks:
    size = auto_chunk_size(num_rows, num_cols) if chunk_size is None else chunk_size
    return _Chunks(max(1, min(size, num_rows)), num_rows)


def _chunked(ch: _Chunks, tree):
    """Every leaf padded with zeros along axis 0 and split into ``(count, size, ...)``."""
    return jax.tree.map(lambda x: split_rows(pad_rows(jnp.asarray(x), ch.size), ch.size), tree)


def _unchunked(ch: _Chunks, tree):
    return jax.tree.map(lambda x: merge_rows(x)[: ch.num_rows], tree)


def _grad_ab(dp, a_c, b, acc):
    """``(dp @ b, dp.T @ a_c)`` in float32, multiplying in the features' dtype."""
    dp = dp.astype(b.dtype)
    da = lax.dot_general(dp, b, (((1,), (0,)), ((), ())), preferred_element_type=acc)
    db = lax.dot_general(dp, a_c, (((0,), (0,)), ((), ())), preferred_element_type=acc)
    return da, db


def _zeros(shape, dtype, like: jax.Array) -> jax.Array:
    """Zeros of ``shape`` typed like ``like`` inside ``shard_map`` (the axes it varies over)."""
    return jnp.zeros(shape, dtype) + jnp.zeros_like(like[(0,) * like.ndim], dtype=dtype)


def _add(tree_a, tree_b):
    return jax.tree.map(jnp.add, tree_a, tree_b)


def _one_type(*trees):
    """Every leaf typed as varying over the ``shard_map`` axes any leaf varies over.

    Inside ``shard_map`` the scan carries (gradient accumulators) and the custom VJP's
    cotangents must have one type; a replicated input cast to varying gets a gradient per
    device, which the cast's transpose sums. A no-op outside ``shard_map``.
    """
    leaves, treedef = jax.tree.flatten(trees)
    return jax.tree.unflatten(treedef, vary_together(leaves, ()))


# --------------------------------------------------------------------------------------
# Row values and column reductions; gradient by recomputation


def _combine(reduce: str, running, part):
    if reduce == "sum":
        return running + part
    return jnp.logaddexp(running, part)


def _initial(reduce: str, like):
    fill = 0.0 if reduce == "sum" else -jnp.inf
    return jnp.full_like(like, fill)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _rows(block_fn, col_reduce, ch, a, b, rows, cols, params):
    return _rows_fwd(block_fn, col_reduce, ch, a, b, rows, cols, params)[0]


def _rows_fwd(block_fn, col_reduce, ch, a, b, rows, cols, params):
    shapes = jax.eval_shape(
        block_fn,
        jax.ShapeDtypeStruct((ch.size, b.shape[0]), compute_dtype(a.dtype)),
        jax.tree.map(lambda x: x[0], _chunked(ch, rows)),
        cols,
        params,
    )[1]
    init = tuple(
        _initial(r, _zeros(s.shape, s.dtype, b)) for r, s in zip(col_reduce, shapes, strict=True)
    )

    def body(running, chunk):
        a_c, rows_c = chunk
        values, parts = block_fn(dot_rows(a_c, b), rows_c, cols, params)
        running = tuple(
            _combine(r, x, p) for r, x, p in zip(col_reduce, running, parts, strict=True)
        )
        return running, values

    col_out, values = lax.scan(body, init, _chunked(ch, (a, rows)))
    out = (_unchunked(ch, values), col_out)
    return out, (a, b, rows, cols, params, col_out)


def _rows_bwd(block_fn, col_reduce, ch, res, cotangents):
    a, b, rows, cols, params, col_out = res
    g_rows, g_cols = cotangents
    acc = compute_dtype(jnp.promote_types(a.dtype, b.dtype))
    col_floats, merge_cols = _split(cols)
    par_floats, merge_params = _split(params)

    def body(carry, chunk):
        db, d_cols, d_params = carry
        a_c, rows_c, g_c = chunk
        row_floats, merge_rows = _split(rows_c)

        def fn(p, row_f, col_f, par_f):
            return block_fn(p, merge_rows(row_f), merge_cols(col_f), merge_params(par_f))

        (_, parts), vjp = jax.vjp(fn, dot_rows(a_c, b), row_floats, col_floats, par_floats)
        # d combined / d part: 1 for a sum; exp(part - combined) for a log-sum-exp (0 for
        # a chunk that adds nothing, also when the combination is itself -inf).
        g_parts = tuple(
            g
            if r == "sum"
            else g * jnp.where(p == -jnp.inf, 0.0, jnp.exp(p - jnp.where(o == -jnp.inf, 0.0, o)))
            for r, g, p, o in zip(col_reduce, g_cols, parts, col_out, strict=True)
        )
        dp, d_rows, d_col, d_par = vjp((g_c, g_parts))
        da_c, db_c = _grad_ab(dp, a_c, b, acc)
        carry = (db + db_c, _add(d_cols, d_col), _add(d_params, d_par))
        return carry, (da_c, d_rows)

    init = (
        _zeros(b.shape, acc, b),
        [jnp.zeros_like(x) for x in col_floats],
        [jnp.zeros_like(x) for x in par_floats],
    )
    (db, d_cols, d_params), (da, d_rows) = lax.scan(body, init, _chunked(ch, (a, rows, g_rows)))
    da = _unchunked(ch, da)
    d_rows = _unchunked(ch, d_rows)
    return (
        da.astype(a.dtype),
        db.astype(b.dtype),
        _cotangents(rows, d_rows),
        _cotangents(cols, d_cols),
        _cotangents(params, d_params),
    )


_rows.defvjp(_rows_fwd, _rows_bwd)


def pairwise_rows(
    block_fn: Callable[..., tuple[Any, tuple[jax.Array, ...]]],
    a: jax.Array,
    b: jax.Array,
    rows: Any = (),
    cols: Any = (),
    params: Any = (),
    *,
    col_reduce: tuple[str, ...] = (),
    chunk_size: int | None = None,
) -> tuple[Any, tuple[jax.Array, ...]]:
    """Row values and column reductions of ``block_fn`` over the blocks of ``a @ b.T``.

    Args:
      block_fn: ``block_fn(p, rows, cols, params) -> (row_values, col_partials)`` (see the
        module docstring); ``row_values`` is a pytree of arrays with leading axis ``T``,
        ``col_partials`` a tuple of ``(M,)`` arrays, one per entry of ``col_reduce``.
        Must be a pure function of its arguments (it must not close over traced values).
      a: ``(N, D)`` rows.
      b: ``(M, D)`` columns.
      rows, cols, params: pytrees of arrays (see the module docstring).
      col_reduce: how each column partial combines over chunks: ``"sum"`` or
        ``"logsumexp"``.
      chunk_size: rows per chunk; None picks :func:`auto_chunk_size`.

    Returns:
      ``(row_values, col_values)``: the row values of all ``N`` rows, and the combined
      ``(M,)`` column values.
    """
    for r in col_reduce:
        if r not in COLUMN_REDUCTIONS:
            raise ValueError(f"col_reduce entries must be in {COLUMN_REDUCTIONS}, got {r!r}")
    ch = _chunking(a.shape[0], b.shape[0], chunk_size)
    a, b, rows, cols, params = _one_type(a, b, rows, cols, params)
    return _rows(block_fn, tuple(col_reduce), ch, a, b, rows, cols, params)


# --------------------------------------------------------------------------------------
# A scalar total, its gradient computed in the forward pass


def _total_chunk(block_fn, shared, rows, grads):
    """One chunk of :func:`pairwise_total` for ``sum_with_forward_gradients``: its value,
    the gradients of its rows, and ``grads`` plus its share of the shared arguments'."""
    b, cols, params = shared
    a_c, rows_c = rows
    acc = compute_dtype(jnp.promote_types(a_c.dtype, b.dtype))
    col_floats, merge_cols = _split(cols)
    par_floats, merge_params = _split(params)
    row_floats, merge_rows_c = _split(rows_c)

    def fn(p, row_f, col_f, par_f):
        return block_fn(p, merge_rows_c(row_f), merge_cols(col_f), merge_params(par_f))

    value, vjp = jax.vjp(fn, dot_rows(a_c, b), row_floats, col_floats, par_floats)
    dp, d_rows, d_col, d_par = vjp(jnp.ones_like(value))
    da_c, db_c = _grad_ab(dp, a_c, b, acc)
    db, d_cols, d_params = grads
    grads = (
        db + db_c,
        _merged(cols, _add(_floats(d_cols), d_col)),
        _merged(params, _add(_floats(d_params), d_par)),
    )
    return value, (da_c, _merged(rows_c, d_rows)), grads


def _floats(tree) -> list:
    """The non-None leaves of an accumulator tree (the floating leaves' gradients)."""
    return [x for x in jax.tree.leaves(tree) if x is not None]


def _merged(tree, float_grads):
    """A tree like ``tree``: ``float_grads`` at its floating leaves, None elsewhere."""
    leaves, treedef = jax.tree.flatten(tree)
    it = iter(float_grads)
    return jax.tree.unflatten(treedef, [next(it) if _is_float(x) else None for x in leaves])


def _total_zero_grads(shared):
    b, cols, params = shared
    acc = compute_dtype(b.dtype)
    zeros = lambda tree: _merged(tree, [jnp.zeros_like(x) for x in _split(tree)[0]])  # noqa: E731
    return _zeros(b.shape, acc, b), zeros(cols), zeros(params)


def pairwise_total(
    block_fn: Callable[..., jax.Array],
    a: jax.Array,
    b: jax.Array,
    rows: Any = (),
    cols: Any = (),
    params: Any = (),
    *,
    chunk_size: int | None = None,
) -> jax.Array:
    """``sum over chunks of block_fn(a_c @ b.T, rows_c, cols, params)``, a scalar.

    The gradients of ``a``, ``b`` and of the floating leaves of ``rows``, ``cols`` and
    ``params`` are computed in the forward pass (three GEMMs in all) and scaled by the
    upstream cotangent in the backward pass. ``block_fn`` returns a chunk's scalar
    contribution in float32 and must give 0 for padding rows (zero-filled ``rows``). For
    per-row values, or column reductions, use :func:`pairwise_rows`.
    """
    ch = _chunking(a.shape[0], b.shape[0], chunk_size)
    a, b, rows, cols, params = _one_type(a, b, rows, cols, params)
    return sum_with_forward_gradients(
        functools.partial(_total_chunk, block_fn),
        _total_zero_grads,
        (b, cols, params),
        (a, rows),
        row_chunk=ch.size,
    )
