r"""Sequence losses: connectionist temporal classification (CTC) and its decoders.

CTC (Graves et al., 2006) scores a label sequence :math:`y` of length :math:`S` against
per-frame class log-probabilities :math:`\log p_t(c)` of :math:`T` frames, summed over
every alignment: every path :math:`\pi` of :math:`T` symbols over the classes and a
*blank* that collapses to :math:`y` once repeats are merged and blanks removed,

.. math::
    \ell = -\log \sum_{\pi \in \mathcal{B}^{-1}(y)} \prod_{t} p_t(\pi_t).

The sum is the forward (alpha) recursion over the extended label sequence
:math:`y' = (\varnothing, y_1, \varnothing, y_2, \ldots, y_S, \varnothing)` of
:math:`2S + 1` states, in log space. Its derivative is the backward (beta) recursion:

.. math::
    \frac{\partial \ell}{\partial \log p_t(c)} = -\gamma_t(c), \qquad
    \gamma_t(c) = \sum_{s:\, y'_s = c} \exp(\alpha_t(s) + \beta_t(s) + \ell),

the posterior probability that frame :math:`t` emits :math:`c`, with :math:`\alpha_t(s)`
the log-probability of frames :math:`\le t` ending in state :math:`s` and
:math:`\beta_t(s)` that of the frames after :math:`t` given state :math:`s`.

Both recursions run as ``lax.scan`` loops over the frames with the ``N x (2S + 1)``
states of a batch as one vector. The states are kept in two arrays, the ``S + 1`` blank
states and the ``S`` label states: a blank state has two predecessors (itself, the label
before it) and a label state three (itself, the blank before it, the label before that
unless it repeats), so the blank states need a 2-term log-sum-exp instead of a 3-term
one. Each log-sum-exp is ``max + log1p(sum of exp(others - max))`` with the ``log1p``
formed from one ``log`` (XLA:CPU's ``log1p`` costs about two), exact for tiny sums: a
confident alignment's loss of ``1e-15`` stays ``1e-15`` rather than rounding below 0.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.sharding import PartitionSpec as P
from jax.sharding import reshard
from jax.typing import ArrayLike

from jaxlosses._core import checks
from jaxlosses._core.checks import REDUCTION, flag, hyperparameters, integer
from jaxlosses._core.reduction import Unreduced, apply_mask, compute_dtype
from jaxlosses._core.sharding import explicit_spec

_NEG = -jnp.inf

# --------------------------------------------------------------------------------------
# log-space arithmetic of the recursions


def _log1p(s: jax.Array) -> jax.Array:
    """``log(1 + s)`` for ``s >= 0`` from one ``log``, exact for tiny ``s`` (Goldberg's trick).

    ``u = 1 + s`` rounds; ``(u - 1) - s`` is that rounding error, and dividing it by
    ``u`` corrects the logarithm to first order, so ``s = 1e-15`` gives ``1e-15``.
    """
    u = 1.0 + s
    return jnp.log(u) - ((u - 1.0) - s) / u


def _shift(hi: jax.Array) -> jax.Array:
    # A state no path reaches is -inf; shifting by 0 keeps exp(-inf - 0) = 0 rather than
    # exp(-inf + inf) = nan, and hi + log1p(0) stays -inf.
    return jnp.where(hi == _NEG, jnp.zeros_like(hi), hi)


def _logaddexp2(a: jax.Array, b: jax.Array) -> jax.Array:
    """``log(exp(a) + exp(b))`` with -inf for two -inf terms; one exp and one log."""
    hi, lo = jnp.maximum(a, b), jnp.minimum(a, b)
    return hi + _log1p(jnp.exp(lo - _shift(hi)))


def _logaddexp3(a: jax.Array, b: jax.Array, c: jax.Array) -> jax.Array:
    """``log(exp(a) + exp(b) + exp(c))``: the largest term is factored out, so two exps."""
    hi, lo = jnp.maximum(a, b), jnp.minimum(a, b)
    top, mid = jnp.maximum(hi, c), jnp.minimum(hi, c)
    shift = _shift(top)
    return top + _log1p(jnp.exp(mid - shift) + jnp.exp(lo - shift))


def _neg_column(x: jax.Array) -> jax.Array:
    return jnp.full_like(x[..., :1], _NEG)  # sharded like x


# --------------------------------------------------------------------------------------
# the forward and backward recursions over one frame
#
# States: blank states b (N, S + 1), b[k] the blank before label k (b[S] the last one);
# label states l (N, S). ``repeat`` (N, S) is 0 where label k may follow label k - 1
# directly and ``log_zero`` (-inf, or optax's log_epsilon) where they are equal.


def _emissions(lp_t: jax.Array, labels: jax.Array, blank: int) -> tuple[jax.Array, jax.Array]:
    """The frame's log-probabilities of each label state (N, S) and of the blank (N, 1)."""
    return jnp.take_along_axis(lp_t, labels, axis=1), lp_t[:, blank : blank + 1]


def _alpha_step(alpha, lp_t, keep_t, labels, repeat, blank):
    """alpha_t from alpha_{t-1}: each state's emission plus the log-sum of its predecessors."""
    a_b, a_l = alpha
    e_l, e_b = _emissions(lp_t, labels, blank)
    b = e_b + _logaddexp2(a_b, jnp.concatenate([_neg_column(a_l), a_l], axis=1))
    skip = jnp.concatenate([_neg_column(a_l), a_l[:, :-1]], axis=1) + repeat
    lab = e_l + _logaddexp3(a_l, a_b[:, :-1], skip)
    keep = keep_t[:, None]  # a padded frame leaves the states as they are
    return jnp.where(keep, b, a_b), jnp.where(keep, lab, a_l)


def _beta_step(beta, lp_t, keep_t, labels, repeat, blank):
    """beta_{t-1} from beta_t (the frames after t; frame t's emission is added here)."""
    b_b, b_l = beta
    e_l, e_b = _emissions(lp_t, labels, blank)
    via_b = e_b + b_b  # (N, S + 1): enter blank k at frame t
    via_l = e_l + b_l  # (N, S): enter label k at frame t
    b = _logaddexp2(via_b, jnp.concatenate([via_l, _neg_column(via_l)], axis=1))
    skip = jnp.concatenate([via_l[:, 1:] + repeat[:, 1:], _neg_column(via_l)], axis=1)
    lab = _logaddexp3(via_l, via_b[:, 1:], skip)
    keep = keep_t[:, None]
    return jnp.where(keep, b, b_b), jnp.where(keep, lab, b_l)


def _repeat_penalty(labels: jax.Array, log_zero: jax.Array, dtype) -> jax.Array:
    previous = jnp.concatenate([jnp.full_like(labels[:, :1], -1), labels[:, :-1]], axis=1)
    zero = jnp.zeros((), dtype)
    return jnp.where(labels == previous, log_zero.astype(dtype), zero)


def _alpha_init(log_probs, labels, log_zero):
    # Built from a (N, 1) slice of log_probs so that, under explicit sharding, the carry
    # has the batch axis's sharding as the recursion's output does.
    column = jnp.zeros_like(log_probs[0, :, :1])
    start = jnp.where(jnp.arange(labels.shape[1] + 1) == 0, 0.0, log_zero).astype(column.dtype)
    return column + start, column + start[1:]


def _log_likelihood(alpha, target_lengths):
    """log p(y | x): the last blank state plus the last label state (if any)."""
    a_b, a_l = alpha
    at_b = jnp.take_along_axis(a_b, target_lengths[:, None], axis=1)[:, 0]
    last = jnp.maximum(target_lengths - 1, 0)[:, None]
    at_l = jnp.take_along_axis(a_l, last, axis=1)[:, 0]
    at_l = jnp.where(target_lengths > 0, at_l, jnp.full_like(at_l, _NEG))
    return _logaddexp2(at_b, at_l)


# The recursions are jitted functions (keyed on shapes, dtypes and ``blank``), so that eager
# calls reuse one compiled scan instead of tracing and compiling a new one each time; under
# an enclosing ``jax.jit`` they are inlined.


@functools.partial(jax.jit, static_argnames=("blank",))
def ctc_forward_variables(
    log_probs: jax.Array,
    labels: jax.Array,
    frames: jax.Array,
    *,
    blank: int,
    log_zero: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Every frame's forward variables: blank states (T, N, S + 1), label states (T, N, S).

    Plain JAX (differentiable by autodiff); :func:`ctc_neg_log_likelihood` is the loss
    with its own derivative. ``log_probs`` is time-major ``(T, N, C)`` in the compute
    dtype, ``labels`` ``(N, S)`` in ``[0, C)``, ``frames`` ``(T, N)`` the kept frames.
    """
    repeat = _repeat_penalty(labels, log_zero, log_probs.dtype)

    def step(alpha, xs):
        lp_t, keep_t = xs
        alpha = _alpha_step(alpha, lp_t, keep_t, labels, repeat, blank)
        return alpha, alpha

    init = _alpha_init(log_probs, labels, log_zero)
    return jax.lax.scan(step, init, (log_probs, frames))[1]


@functools.partial(jax.jit, static_argnums=(5,))
def _negative_log_likelihood(log_probs, labels, frames, target_lengths, log_zero, blank):
    repeat = _repeat_penalty(labels, log_zero, log_probs.dtype)

    def step(alpha, xs):
        lp_t, keep_t = xs
        return _alpha_step(alpha, lp_t, keep_t, labels, repeat, blank), None

    init = _alpha_init(log_probs, labels, log_zero)
    alpha, _ = jax.lax.scan(step, init, (log_probs, frames))
    return _log_likelihood(alpha, target_lengths)


@functools.partial(jax.jit, static_argnums=(5,))
def _nll_and_gradient(log_probs, labels, frames, target_lengths, log_zero, blank):
    """The loss and its gradient ``-gamma`` (T, N, C), by the alpha and beta recursions."""
    dtype = log_probs.dtype
    num_frames, n, num_classes = log_probs.shape
    s = labels.shape[1]
    repeat = _repeat_penalty(labels, log_zero, dtype)

    def forward(alpha, xs):
        lp_t, keep_t = xs
        alpha = _alpha_step(alpha, lp_t, keep_t, labels, repeat, blank)
        return alpha, alpha

    init = _alpha_init(log_probs, labels, log_zero)
    alpha, alphas = jax.lax.scan(forward, init, (log_probs, frames))
    log_z = _log_likelihood(alpha, target_lengths)
    # An impossible alignment (log_z = -inf) has no path through any state: every
    # alpha + beta is -inf, and shifting by 0 makes its posteriors exactly 0.
    shift = jnp.where(jnp.isfinite(log_z), log_z, jnp.zeros_like(log_z))[:, None]

    # beta after the last kept frame: 0 in the two final states (the blank after the
    # last label, and the last label), -inf elsewhere, whatever ``log_zero`` is.
    column = jnp.zeros_like(log_probs[0, :, :1])
    k = jnp.arange(s + 1)
    final_b = column + jnp.where(k[None, :] == target_lengths[:, None], 0.0, _NEG).astype(dtype)
    final_l = column + jnp.where(k[None, :s] == target_lengths[:, None] - 1, 0.0, _NEG).astype(
        dtype
    )
    zero = jnp.zeros((), dtype)

    def backward(beta, xs):
        lp_t, keep_t, alpha_b, alpha_l = xs
        keep = keep_t[:, None]
        # posteriors of frame t: alpha_t (frames <= t) times beta_t (frames > t)
        post_b = jnp.sum(jnp.exp(alpha_b + beta[0] - shift), axis=1, keepdims=True)
        post = jnp.where(
            keep, jnp.concatenate([jnp.exp(alpha_l + beta[1] - shift), post_b], 1), zero
        )
        return _beta_step(beta, lp_t, keep_t, labels, repeat, blank), post

    xs = (log_probs, frames, *alphas)
    _, posteriors = jax.lax.scan(backward, (final_b, final_l), xs, reverse=True)
    # gamma_t(c): the posteriors of the states emitting c, added up per class. Scattered
    # along contiguous rows of T frames ((N, C, T) layout), which XLA:CPU does far faster
    # than T x N x (S + 1) single-element updates or a one-hot matrix product.
    classes = jnp.concatenate([labels, jnp.full_like(labels[:, :1], blank)], axis=1)
    # The batch is a vmapped (batching) dimension of the scatter, which XLA's partitioner
    # splits over devices like the batch (an indexed N dimension would be gathered).
    rows = jnp.zeros_like(jnp.transpose(log_probs, (1, 2, 0)))  # (N, C, T), sharded like N
    rows = jax.vmap(lambda r, c, p: r.at[c].add(p))(
        rows, classes, jnp.transpose(posteriors, (1, 2, 0))
    )
    gradient = -jnp.transpose(rows, (2, 0, 1))
    return log_z, gradient


@functools.partial(jax.custom_jvp, nondiff_argnums=(5,))
def ctc_neg_log_likelihood(
    log_probs: jax.Array,
    labels: jax.Array,
    frames: jax.Array,
    target_lengths: jax.Array,
    log_zero: jax.Array,
    blank: int,
) -> jax.Array:
    r"""``-log p(labels | log_probs)`` per sequence (N,), never below 0; its own derivative.

    Inputs are already checked and safe: time-major ``log_probs`` (T, N, C) in the compute
    dtype, ``labels`` (N, S) in ``[0, C)``, ``frames`` (T, N) the kept frames,
    ``target_lengths`` (N,) in ``[0, S]``, ``log_zero`` the log-weight of a forbidden
    transition (-inf; optax uses a finite ``log_epsilon``).

    Why a custom rule: autodiff through the forward scan stores every step's
    intermediates and runs a backward loop of their derivatives (optax's way); the
    derivative is instead the closed form :math:`-\gamma_t(c)`, the posteriors of the
    alpha-beta recursion, computed in one backward scan. The rule is a ``custom_jvp``
    whose tangent ``sum(-gamma * dlog_probs)`` is linear, so reverse mode is its
    transpose and forward mode, ``jax.hessian`` and grad-of-grad work (differentiating
    the recursions themselves). ``custom_vjp`` would save nothing here: the residuals
    are the ``(T, N, C)`` gradient either way. The value is clamped at 0: rounding can
    put ``log p`` a few ulps above 0 for a certain alignment (optax #1771); the
    derivative is the posterior's, unclamped.
    """
    log_z = _negative_log_likelihood(log_probs, labels, frames, target_lengths, log_zero, blank)
    return jnp.maximum(-log_z, 0.0)


@functools.partial(ctc_neg_log_likelihood.defjvp, symbolic_zeros=True)
def _ctc_neg_log_likelihood_jvp(blank, primals, tangents):
    log_probs, labels, frames, target_lengths, log_zero = primals
    lp_dot = tangents[0]
    if isinstance(lp_dot, SymbolicZero):
        out = ctc_neg_log_likelihood(log_probs, labels, frames, target_lengths, log_zero, blank)
        return out, jnp.zeros_like(out)
    log_z, gradient = _nll_and_gradient(log_probs, labels, frames, target_lengths, log_zero, blank)
    return jnp.maximum(-log_z, 0.0), jnp.sum(gradient * lp_dot, axis=(0, 2))


# --------------------------------------------------------------------------------------
# inputs: PyTorch's layouts, checked at trace time, made safe to index with


class CTCInputs(NamedTuple):
    """CTC inputs in one layout: time-major, batched, padded targets, safe indices."""

    log_probs: jax.Array  # (T, N, C) in the compute dtype
    labels: jax.Array  # (N, S) int32 in [0, C)
    frames: jax.Array  # (T, N) bool: t < input_length, for kept sequences
    target_lengths: jax.Array  # (N,) int32 in [0, S]; 0 for dropped sequences
    invalid: jax.Array  # (N,) bool: a length or label out of range (loss nan)
    mask: jax.Array | None  # (N,) kept sequences, from ``where``
    unbatched: bool
    dtype: jnp.dtype  # the input's dtype, for the result


def _concrete(x) -> np.ndarray | None:
    """``x`` as a NumPy array when its values are known at trace time, else None."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _lengths(name: str, lengths, n: int, unbatched: bool) -> jax.Array:
    """Integer lengths of shape (N,) (``()`` or ``(1,)`` unbatched) as int32 (N,)."""
    arr = jnp.asarray(lengths)
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype} (shape {arr.shape})")
    ok = arr.shape in ((), (1,)) if unbatched else arr.shape == (n,)
    if not ok:
        want = "() or (1,) for unbatched (T, C) log_probs" if unbatched else f"({n},)"
        raise ValueError(f"{name} must have shape {want}, got shape {arr.shape}")
    return arr.reshape(-1).astype(jnp.int32)


def _check_range(name: str, value: np.ndarray | None, high: int, what: str) -> None:
    if value is None or not np.issubdtype(value.dtype, np.integer):
        return
    value = value.reshape(-1)
    bad = (value < 0) | (value > high)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(f"{name} must be in [0, {high}] ({what}), got {int(value[i])} at {i}")


def check_concrete_lengths(
    log_probs, targets, input_lengths, target_lengths, *, batch_first: bool
) -> int | None:
    """Checks the lengths known before tracing (NumPy arrays, Python ints) against the shapes.

    Returns the padded width of concatenated 1-D targets when their lengths are known
    (``max(target_lengths)``), else None. Shapes that are wrong in other ways are left to
    :func:`ctc_inputs`, which names them.
    """
    shape, t_shape = np.shape(log_probs), np.shape(targets)
    if len(shape) not in (2, 3):
        return None
    num_frames = shape[1] if (len(shape) == 3 and batch_first) else shape[0]
    il, tl = _concrete(input_lengths), _concrete(target_lengths)
    _check_range("input_lengths", il, num_frames, "the number of frames T")
    if len(t_shape) == 1 and len(shape) == 3:  # concatenated
        if tl is None or not np.issubdtype(tl.dtype, np.integer):
            return None
        if np.sum(tl) > t_shape[0]:
            raise ValueError(
                f"sum(target_lengths) = {int(np.sum(tl))} exceeds the {t_shape[0]} "
                "concatenated targets"
            )
        _check_range("target_lengths", tl, t_shape[0], "the number of targets")
        return int(np.max(tl, initial=0))
    if t_shape:
        _check_range("target_lengths", tl, t_shape[-1], "the padded target length S")
    return None


def _time_major(log_probs, blank: int, batch_first: bool) -> tuple[jax.Array, bool]:
    """Floating log-probabilities as (T, N, C), and whether they were unbatched (T, C)."""
    lp = checks.as_float_array("log_probs", log_probs)
    if lp.ndim not in (2, 3):
        raise ValueError(
            "log_probs must be (T, N, C), (N, T, C) with batch_first=True, or unbatched "
            f"(T, C); got shape {lp.shape}"
        )
    unbatched = lp.ndim == 2
    lp = lp[:, None, :] if unbatched else (jnp.swapaxes(lp, 0, 1) if batch_first else lp)
    if not 0 <= blank < lp.shape[-1]:
        raise ValueError(f"blank={blank} must be a class index in [0, {lp.shape[-1]})")
    return lp, unbatched


def ctc_inputs(
    log_probs,
    targets,
    input_lengths,
    target_lengths,
    *,
    blank: int,
    batch_first: bool,
    where,
    width: int | None = None,
) -> CTCInputs:
    """Checks PyTorch-style CTC inputs and brings them to :class:`CTCInputs`' layout.

    Shapes, dtypes and ``blank`` raise here (lengths known before tracing are checked by
    :func:`check_concrete_lengths`); lengths and labels only known at run time mark
    their sequence ``invalid`` (its loss is nan). ``width``: the padded width of
    concatenated targets (default: their total, an upper bound).
    """
    lp, unbatched = _time_major(log_probs, blank, batch_first)
    num_frames, n, num_classes = lp.shape
    targets = jnp.asarray(targets)
    if not jnp.issubdtype(targets.dtype, jnp.integer):
        raise TypeError(
            f"targets must hold integer class indices, got dtype {targets.dtype} "
            f"(shape {targets.shape})"
        )
    il = _lengths("input_lengths", input_lengths, n, unbatched)
    tl = _lengths("target_lengths", target_lengths, n, unbatched)

    if targets.ndim == 2 and not unbatched:
        if targets.shape[0] != n:
            raise ValueError(
                f"targets of shape {targets.shape} must be (N, S) with N={n} sequences "
                f"(log_probs of shape {jnp.shape(log_probs)}), or 1-D concatenated"
            )
        labels = targets
        length_ok = tl <= labels.shape[1]
    elif targets.ndim == 1 and unbatched:
        labels = targets[None, :]
        length_ok = tl <= labels.shape[1]
    elif targets.ndim == 1:
        # Concatenated targets: sequence n is targets[offset_n : offset_n + tl_n], padded
        # to ``width`` (max(target_lengths) when known before tracing, else the total).
        total = targets.shape[0]
        width = total if width is None else width
        ends = jnp.cumsum(tl)
        index = (ends - tl)[:, None] + jnp.arange(max(width, 1))[None, :]
        source = targets if total else jnp.zeros((1,), targets.dtype)
        labels = source[jnp.clip(index, 0, max(total, 1) - 1)]
        length_ok = (ends <= total) & (tl <= labels.shape[1])
    else:
        want = "(S,)" if unbatched else f"({n}, S) or 1-D concatenated"
        raise ValueError(f"targets must be {want}, got shape {targets.shape}")
    if labels.shape[1] == 0:  # no target positions at all: one never-read placeholder
        labels = jnp.zeros((n, 1), targets.dtype)

    mask = checks.as_where(where, (n,), to="sequences (N,)") if where is not None else None
    if mask is not None and unbatched:
        raise ValueError("where= needs batched log_probs")
    s = labels.shape[1]
    inside = jnp.arange(s)[None, :] < tl[:, None]
    label_ok = (labels >= 0) & (labels < num_classes) & (labels != blank)
    invalid = (il < 0) | (il > num_frames) | (tl < 0) | ~length_ok | jnp.any(inside & ~label_ok, 1)
    kept = ~invalid if mask is None else mask & ~invalid
    frames = jnp.arange(num_frames)[:, None] < jnp.where(kept, il, 0)[None, :]
    tl = jnp.where(kept, tl, 0)
    labels = jnp.clip(labels, 0, num_classes - 1).astype(jnp.int32)
    if mask is not None:
        invalid = invalid & mask
    x = lp.astype(compute_dtype(lp.dtype))
    batch = explicit_spec(x)[1]
    if batch is not None:
        # Explicit sharding: the per-sequence arrays take the batch axis's sharding.
        labels, tl, invalid = (
            reshard(a, P(batch, *(None,) * (a.ndim - 1))) for a in (labels, tl, invalid)
        )
        frames = reshard(frames, P(None, batch))
        mask = None if mask is None else reshard(mask, P(batch))
    return CTCInputs(x, labels, frames, tl, invalid, mask, unbatched, lp.dtype)


# --------------------------------------------------------------------------------------
# ctc_loss


@hyperparameters(blank=integer(low=0), reduction=REDUCTION, zero_infinity=flag, batch_first=flag)
def ctc_loss(
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: ArrayLike,
    target_lengths: ArrayLike,
    *,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
    batch_first: bool = False,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Connectionist temporal classification loss (``torch.nn.functional.ctc_loss``).

    .. math::
        \ell_n = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_n)} \prod_{t=1}^{T_n}
        p_{t,n}(\pi_t)

    over the alignments :math:`\pi` of the targets :math:`y_n` (labels interleaved with
    ``blank``, repeats merged), computed by the alpha recursion in log space.
    ``"mean"`` divides each :math:`\ell_n` by its target length (at least 1) and
    averages over the kept sequences; ``"sum"`` adds the :math:`\ell_n`.

    The gradient is the true derivative of :math:`\ell` with respect to
    ``log_probs``, :math:`-\gamma_{t,n}(c)` (the posterior probability that frame
    :math:`t` emits :math:`c`, from the alpha-beta recursion). PyTorch's backward
    returns :math:`p_{t,n}(c) - \gamma_{t,n}(c)` instead, which is the derivative with
    respect to the logits *before* a ``log_softmax``: the two agree once chained through
    a ``log_softmax`` (whose Jacobian maps :math:`-\gamma` to
    :math:`p \sum_c \gamma - \gamma = p - \gamma`), and only then. With
    ``log_probs = log_softmax(logits)``, ``jax.grad`` with respect to the logits is
    exactly PyTorch's.

    Autodiff: a ``custom_jvp`` rule whose tangent is linear in ``log_probs``'s (forward
    and reverse mode; ``jax.hessian`` and grad-of-grad differentiate the recursions).

    Numerics: log space, float32 for 16-bit inputs; the loss is never negative (rounding
    cannot take a certain alignment below 0); ``-inf`` entries, repeated labels (which
    need a blank between them), empty targets and ``T`` equal to the shortest alignment
    give finite values and gradients. An impossible alignment (``T`` too short) gives
    ``inf`` with a zero gradient (PyTorch: nan gradient), or 0 with
    ``zero_infinity=True``. A length outside its range, a label outside ``[0, C)`` or
    equal to ``blank`` gives nan for that sequence (PyTorch raises for lengths and
    computes garbage for labels; use :func:`check_ctc_inputs` under ``checkify`` for an
    error); lengths known at trace time are checked then.

    Args:
      log_probs: log-probabilities ``(T, N, C)`` (PyTorch's layout), ``(N, T, C)`` with
        ``batch_first=True``, or unbatched ``(T, C)``; e.g. from :func:`log_softmax`.
      targets: integer labels, padded ``(N, S)``, or the ``sum(target_lengths)`` labels
        of every sequence concatenated (1-D; the padded width is ``max(target_lengths)``
        when the lengths are concrete, else the total: prefer padded targets under
        ``jit``), or ``(S,)`` unbatched. No label may be ``blank``.
      input_lengths: frames of each sequence ``(N,)`` (``()`` unbatched), each at most
        ``T``; an array or a Python sequence of ints.
      target_lengths: labels of each sequence ``(N,)`` (``()`` unbatched), at most
        ``S``.
      blank: the blank class index, in ``[0, C)``.
      reduction: ``"mean"`` (per-sequence losses divided by their target lengths, then
        averaged), ``"sum"`` or ``"none"``.
      zero_infinity: turn infinite losses (impossible alignments) and their gradients
        into 0.
      batch_first: ``log_probs`` is ``(N, T, C)`` (optax's layout).
      where: optional boolean mask of the sequences ``(N,)``; a False sequence counts 0,
        has a zero gradient and leaves the mean's denominator.

    Returns:
      A scalar, or the per-sequence losses ``(N,)`` (a scalar unbatched) for
      ``reduction="none"``, in ``log_probs``'s dtype.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxlosses
      >>> logits = jnp.zeros((4, 1, 3))  # (T, N, C): uniform over blank, a, b
      >>> log_probs = jaxlosses.log_softmax(logits)
      >>> # "ab" has 15 alignments among the 3 ** 4 paths: -log(15 / 81)
      >>> loss = jaxlosses.ctc_loss(log_probs, jnp.array([[1, 2]]), [4], [2], reduction="sum")
      >>> round(float(loss), 4)
      1.6864
      >>> # the gradient with respect to the logits: softmax - posterior (PyTorch's)
      >>> grad = jax.grad(lambda z: jaxlosses.ctc_loss(jaxlosses.log_softmax(z),
      ...                                             jnp.array([[1, 2]]), [4], [2]))(logits)
      >>> grad.shape
      (4, 1, 3)

    References:
      Graves et al., "Connectionist Temporal Classification: Labelling Unsegmented
      Sequence Data with Recurrent Neural Networks", ICML 2006,
      https://www.cs.toronto.edu/~graves/icml_2006.pdf
    """
    width = check_concrete_lengths(
        log_probs, targets, input_lengths, target_lengths, batch_first=batch_first
    )
    static = (blank, reduction, zero_infinity, batch_first, width)
    return _ctc_loss(log_probs, targets, input_lengths, target_lengths, where, *static)


# One compiled program per shape and options for eager calls (inlined under jax.jit).
@functools.partial(jax.jit, static_argnums=(5, 6, 7, 8, 9))
def _ctc_loss(
    log_probs,
    targets,
    input_lengths,
    target_lengths,
    where,
    blank,
    reduction,
    zero_infinity,
    batch_first,
    width,
):
    inputs = ctc_inputs(
        log_probs,
        targets,
        input_lengths,
        target_lengths,
        blank=blank,
        batch_first=batch_first,
        where=where,
        width=width,
    )
    x = inputs.log_probs
    log_zero = jnp.asarray(_NEG, x.dtype)
    loss = ctc_neg_log_likelihood(
        x, inputs.labels, inputs.frames, inputs.target_lengths, log_zero, blank
    )
    if zero_infinity:
        loss = jnp.where(jnp.isinf(loss), jnp.zeros_like(loss), loss)
    loss = jnp.where(inputs.invalid, jnp.full_like(loss, jnp.nan), loss)
    loss = apply_mask(loss, inputs.mask)
    if reduction == "mean":
        tl = jnp.asarray(target_lengths).reshape(-1)
        loss = loss / jnp.maximum(tl, 1).astype(loss.dtype)
    if inputs.unbatched:
        loss = loss[0]
    return Unreduced(loss, inputs.mask, None, inputs.dtype).reduce(reduction)


# --------------------------------------------------------------------------------------
# checks for checkify


def check_ctc_inputs(
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: ArrayLike,
    target_lengths: ArrayLike,
    *,
    blank: int = 0,
    batch_first: bool = False,
) -> None:
    """Raises through ``checkify`` if a CTC length or label is out of range.

    :func:`ctc_loss` gives nan for a sequence whose input length is outside ``[0, T]``,
    whose target length is outside ``[0, S]`` (or overruns the concatenated targets), or
    whose labels (within its target length) are outside ``[0, C)`` or equal ``blank``:
    under ``jax.jit`` it cannot raise. Call this inside a function transformed by
    ``jax.experimental.checkify.checkify`` for an error naming the sequence; outside
    ``checkify`` with concrete values it raises at once. Shapes and dtypes are checked
    at trace time, as by :func:`ctc_loss`.

    Args:
      log_probs: the ``log_probs`` given to :func:`ctc_loss` (only its shape is read).
      targets: padded ``(N, S)`` or concatenated 1-D labels.
      input_lengths: ``(N,)`` frames per sequence.
      target_lengths: ``(N,)`` labels per sequence.
      blank: the blank class index.
      batch_first: ``log_probs`` is ``(N, T, C)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax.experimental import checkify
      >>> import jaxlosses
      >>> def loss_fn(log_probs, targets, input_lengths, target_lengths):
      ...     args = (log_probs, targets, input_lengths, target_lengths)
      ...     jaxlosses.check_ctc_inputs(*args)
      ...     return jaxlosses.ctc_loss(*args)
      >>> checked = checkify.checkify(jax.jit(loss_fn))
      >>> log_probs = jaxlosses.log_softmax(jnp.zeros((5, 2, 4)))
      >>> lengths = jnp.array([5, 5]), jnp.array([2, 2])
      >>> err, loss = checked(log_probs, jnp.array([[1, 2], [3, 0]]), *lengths)
      >>> loss  # the unchecked loss is nan: label 0 is the blank
      Array(nan, dtype=float32)
      >>> print(err.get())  # doctest: +ELLIPSIS
      targets must be in [0, 4) and differ from blank=0; sequence 1 has 0 at position 1 ...
    """
    from jax.experimental import checkify

    inputs = ctc_inputs(
        log_probs,
        targets,
        input_lengths,
        target_lengths,
        blank=blank,
        batch_first=batch_first,
        where=None,
    )
    num_frames, _, num_classes = inputs.log_probs.shape
    targets = jnp.asarray(targets)
    il = jnp.asarray(input_lengths).reshape(-1)
    tl = jnp.asarray(target_lengths).reshape(-1)
    bad = (il < 0) | (il > num_frames)
    n = jnp.argmax(bad)
    checkify.check(
        ~jnp.any(bad),
        "input_lengths must be in [0, {t}]; sequence {n} has {value}",
        t=jnp.asarray(num_frames),
        n=n,
        value=il[n],
    )
    if targets.ndim == 1 and not inputs.unbatched:
        ends = jnp.cumsum(tl)
        bad = (tl < 0) | (ends > targets.shape[0])
        limit = "a total at most the number of concatenated targets, {s}"
        raw = jnp.clip(ends[:, None] - tl[:, None] + jnp.arange(inputs.labels.shape[1]), 0)
        labels = targets[jnp.clip(raw, 0, max(targets.shape[0], 1) - 1)] if targets.size else raw
    else:
        labels = targets.reshape(inputs.labels.shape[0], -1) if targets.size else inputs.labels
        bad = (tl < 0) | (tl > labels.shape[1])
        limit = "in [0, {s}]"
    n = jnp.argmax(bad)
    checkify.check(
        ~jnp.any(bad),
        "target_lengths must be " + limit + "; sequence {n} has {value}",
        s=jnp.asarray(targets.shape[-1]),
        n=n,
        value=tl[n],
    )
    inside = jnp.arange(labels.shape[1])[None, :] < tl[:, None]
    wrong = inside & ((labels < 0) | (labels >= num_classes) | (labels == blank))
    flat = jnp.argmax(wrong.ravel())
    n, j = jnp.divmod(flat, labels.shape[1])
    checkify.check(
        ~jnp.any(wrong),
        "targets must be in [0, {c}) and differ from blank={blank}; sequence {n} has "
        "{value} at position {j}",
        c=jnp.asarray(num_classes),
        blank=jnp.asarray(blank),
        n=n,
        j=j,
        value=labels.ravel()[flat],
    )


# --------------------------------------------------------------------------------------
# decoders


class CTCDecoding(NamedTuple):
    """Decoded label sequences: what :func:`ctc_greedy_decode` and beam search return.

    Attributes:
      labels: ``(N, T)`` int32 labels of each sequence, left-aligned and padded with -1
        (``(T,)`` for unbatched input).
      lengths: ``(N,)`` int32 number of labels of each sequence.
      scores: ``(N,)`` log-probability: of the best path (greedy), or of the labelling
        summed over its alignments kept in the beam (beam search).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> lp = jnp.log(jnp.array([[0.1, 0.8, 0.1], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]]))
      >>> out = jaxlosses.ctc_greedy_decode(lp, jnp.array(3))  # unbatched (T, C)
      >>> out.labels, out.lengths
      (Array([ 1,  2, -1], dtype=int32), Array(2, dtype=int32))
    """

    labels: jax.Array
    lengths: jax.Array
    scores: jax.Array


def _decoder_inputs(log_probs, input_lengths, blank: int, batch_first: bool):
    lp, unbatched = _time_major(log_probs, blank, batch_first)
    num_frames, n, _ = lp.shape
    il = jnp.clip(_lengths("input_lengths", input_lengths, n, unbatched), 0, num_frames)
    return lp.astype(compute_dtype(lp.dtype)), il, unbatched


def _finish_decoding(labels, lengths, scores, unbatched) -> CTCDecoding:
    out = CTCDecoding(labels.astype(jnp.int32), lengths.astype(jnp.int32), scores)
    return jax.tree.map(lambda a: a[0], out) if unbatched else out


@hyperparameters(blank=integer(low=0), batch_first=flag)
def ctc_greedy_decode(
    log_probs: ArrayLike,
    input_lengths: ArrayLike,
    *,
    blank: int = 0,
    batch_first: bool = False,
) -> CTCDecoding:
    """Best-path (greedy) CTC decoding: the most likely class per frame, collapsed.

    Each frame's most likely class is taken; repeats are merged and blanks removed
    (``a a _ a b b`` reads ``a a b``). This is the labelling of the single most likely
    alignment, not necessarily the most likely labelling (which sums over alignments;
    :func:`ctc_beam_search_decode` approximates it). Works under ``jax.jit`` and
    ``jax.vmap``; frames past a sequence's input length are ignored.

    Args:
      log_probs: ``(T, N, C)`` log-probabilities (or logits: the argmax is the same),
        ``(N, T, C)`` with ``batch_first=True``, or unbatched ``(T, C)``.
      input_lengths: ``(N,)`` frames per sequence (``()`` unbatched), at most ``T``.
      blank: the blank class index.
      batch_first: ``log_probs`` is ``(N, T, C)``.

    Returns:
      A :class:`CTCDecoding`: labels padded with -1, lengths, and the best path's
      log-probability (the sum of the frames' maxima).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> path = jnp.array([1, 1, 0, 1, 2, 2, 0])  # "a a _ a b b _" with blank 0
      >>> lp = jnp.log(jnp.where(jnp.eye(3)[path] > 0, 0.9, 0.05))[:, None, :]  # (T, 1, C)
      >>> out = jaxlosses.ctc_greedy_decode(lp, [7])
      >>> out.labels[0, : out.lengths[0]]
      Array([1, 1, 2], dtype=int32)
    """
    check_concrete_lengths(log_probs, [], input_lengths, 0, batch_first=batch_first)
    return _greedy_decode(log_probs, input_lengths, blank, batch_first)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _greedy_decode(log_probs, input_lengths, blank, batch_first):
    lp, il, unbatched = _decoder_inputs(log_probs, input_lengths, blank, batch_first)
    num_frames, n, _ = lp.shape
    best = jnp.argmax(lp, axis=-1).astype(jnp.int32)  # (T, N)
    t = jnp.arange(num_frames)[:, None]
    inside = t < il[None, :]
    previous = jnp.concatenate([jnp.full((1, n), -1, jnp.int32), best[:-1]], axis=0)
    emit = inside & (best != blank) & (best != previous)
    position = jnp.cumsum(emit, axis=0) - 1
    # Frames that emit nothing write out of bounds (dropped).
    slot = jnp.where(emit, position, num_frames)
    labels = jnp.full((n, num_frames), -1, jnp.int32)
    labels = labels.at[jnp.arange(n)[None, :], slot].set(best, mode="drop")
    lengths = jnp.sum(emit, axis=0)
    scores = jnp.sum(jnp.where(inside, jnp.max(lp, axis=-1), 0.0), axis=0)
    return _finish_decoding(labels, lengths, scores, unbatched)


# Prefix identities for beam search: two 32-bit multiplicative hashes of the label
# sequence (a collision, about 2**-64 per pair of prefixes, would merge two beams).
_HASH_MULTIPLIERS = (np.uint32(0x9E3779B1), np.uint32(0x85EBCA77))
_HASH_SEEDS = (np.uint32(0x3C6EF372), np.uint32(0x27D4EB2F))
_NO_HASH = np.uint32(0xFFFFFFFF)


class _Beams(NamedTuple):
    p_blank: jax.Array  # (K,) log-probability of the prefix, ending in a blank
    p_label: jax.Array  # (K,) ... ending in its last label
    length: jax.Array  # (K,) prefix length, -1 for an empty slot
    last: jax.Array  # (K,) last label, -1 for the empty prefix
    hash: jax.Array  # (2, K) the prefix's hash
    parent_hash: jax.Array  # (2, K) the hash of the prefix without its last label


def _extend_hash(h: jax.Array, label: jax.Array) -> jax.Array:
    m = jnp.asarray(_HASH_MULTIPLIERS, jnp.uint32).reshape((2,) + (1,) * (h.ndim - 1))
    return h * m + (label.astype(jnp.uint32) + jnp.uint32(1))


def _beam_step(beams: _Beams, lp_t: jax.Array, keep: jax.Array, blank: int):
    """One frame of prefix beam search for one sequence; returns beams and back-pointers."""
    width = beams.length.shape[0]
    num_classes = lp_t.shape[0]
    total = jnp.logaddexp(beams.p_blank, beams.p_label)
    # The prefix unchanged: a blank, or its last label repeated (merged).
    stay_blank = total + lp_t[blank]
    last_lp = jnp.where(beams.last >= 0, lp_t[jnp.maximum(beams.last, 0)], _NEG)
    stay_label = beams.p_label + last_lp
    # The prefix extended by class c: after a blank only, if c repeats the last label.
    classes = jnp.arange(num_classes)
    repeat = classes[None, :] == beams.last[:, None]
    ext = jnp.where(repeat, beams.p_blank[:, None], total[:, None]) + lp_t[None, :]
    ext = jnp.where(classes[None, :] == blank, _NEG, ext)
    # An extension of beam k that is beam j (j's parent is k's prefix) adds to j.
    same = (beams.parent_hash[:, None, :] == beams.hash[:, :, None]).all(axis=0)  # (k, j)
    same = same & (beams.length[None, :] == beams.length[:, None] + 1)
    same = same & (beams.length[:, None] >= 0)
    into_j = jnp.take_along_axis(ext, jnp.maximum(beams.last, 0)[None, :].repeat(width, 0), 1)
    merged = jax.nn.logsumexp(jnp.where(same, into_j, _NEG), axis=0)
    stay_label = jnp.logaddexp(stay_label, merged)
    taken = jnp.any(same[:, :, None] & (classes[None, None, :] == beams.last[None, :, None]), 1)
    ext = jnp.where(taken, _NEG, ext)
    # The best `width` of the stays and the extensions.
    scores = jnp.concatenate([jnp.logaddexp(stay_blank, stay_label), ext.reshape(-1)])
    top, index = jax.lax.top_k(scores, width)
    is_ext = index >= width
    k = jnp.where(is_ext, (index - width) // num_classes, index)
    c = (index - width) % num_classes
    alive = top > _NEG
    new_hash = _extend_hash(beams.hash[:, k], c)
    new = _Beams(
        p_blank=jnp.where(is_ext, _NEG, stay_blank[k]),
        p_label=jnp.where(is_ext, ext.reshape(-1)[jnp.maximum(index - width, 0)], stay_label[k]),
        length=jnp.where(alive, beams.length[k] + is_ext, -1),
        last=jnp.where(is_ext, c, beams.last[k]),
        hash=jnp.where(alive, jnp.where(is_ext, new_hash, beams.hash[:, k]), _NO_HASH),
        parent_hash=jnp.where(is_ext, beams.hash[:, k], beams.parent_hash[:, k]),
    )
    appended = jnp.where(is_ext & alive, c, -1)
    stay = jnp.arange(width)
    new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, beams)
    return new, (jnp.where(keep, k, stay), jnp.where(keep, appended, -1))


def _beam_search_one(lp: jax.Array, length: jax.Array, width: int, blank: int):
    """Prefix beam search over one sequence's (T, C) log-probabilities."""
    num_frames = lp.shape[0]
    first = jnp.arange(width) == 0
    seeds = jnp.asarray(_HASH_SEEDS, jnp.uint32)[:, None]
    beams = _Beams(
        p_blank=jnp.where(first, 0.0, _NEG).astype(lp.dtype),
        p_label=jnp.full((width,), _NEG, lp.dtype),
        length=jnp.where(first, 0, -1),
        last=jnp.full((width,), -1),
        hash=jnp.where(first[None, :], seeds, _NO_HASH),
        parent_hash=jnp.full((2, width), _NO_HASH, jnp.uint32),
    )

    def step(beams, xs):
        lp_t, t = xs
        return _beam_step(beams, lp_t, t < length, blank)

    beams, (parents, appended) = jax.lax.scan(step, beams, (lp, jnp.arange(num_frames)))
    total = jnp.logaddexp(beams.p_blank, beams.p_label)
    best = jnp.argmax(total)

    def back(k, xs):
        parent_t, appended_t = xs
        return parent_t[k], appended_t[k]

    _, emitted = jax.lax.scan(back, best, (parents, appended), reverse=True)
    emit = emitted >= 0
    slot = jnp.where(emit, jnp.cumsum(emit) - 1, num_frames)
    labels = jnp.full((num_frames,), -1, jnp.int32).at[slot].set(emitted, mode="drop")
    return labels, beams.length[best], total[best]


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _beam_search(log_probs, input_lengths, width: int, blank: int, batch_first: bool):
    lp, il, unbatched = _decoder_inputs(log_probs, input_lengths, blank, batch_first)
    search = functools.partial(_beam_search_one, width=width, blank=blank)
    labels, lengths, scores = jax.vmap(search, in_axes=(1, 0))(lp, il)
    return _finish_decoding(labels, lengths, scores, unbatched)


@hyperparameters(beam_width=integer(low=1), blank=integer(low=0), batch_first=flag)
def ctc_beam_search_decode(
    log_probs: ArrayLike,
    input_lengths: ArrayLike,
    *,
    beam_width: int = 10,
    blank: int = 0,
    batch_first: bool = False,
) -> CTCDecoding:
    r"""Prefix beam-search CTC decoding: the most likely labelling within a beam.

    Keeps the ``beam_width`` most likely label prefixes after each frame, each with the
    probability of all its alignments so far, split into those ending in a blank and
    those ending in its last label (so that ``a _ a`` extends ``a`` to ``a a`` but
    ``a a`` does not); an extension that equals a prefix already in the beam adds to
    it. With a beam as wide as the number of possible prefixes it finds the most likely
    labelling exactly; ``beam_width=1`` is close to :func:`ctc_greedy_decode`. No
    language model. Works under ``jax.jit`` and ``jax.vmap``: every frame scores
    ``beam_width x C`` extensions, so the cost is ``O(T N K C)`` plus a top-k.

    Args:
      log_probs: ``(T, N, C)`` log-probabilities, ``(N, T, C)`` with
        ``batch_first=True``, or unbatched ``(T, C)``.
      input_lengths: ``(N,)`` frames per sequence (``()`` unbatched), at most ``T``.
      beam_width: the number of prefixes kept, ``K >= 1``.
      blank: the blank class index.
      batch_first: ``log_probs`` is ``(N, T, C)``.

    Returns:
      A :class:`CTCDecoding`: the best prefix's labels padded with -1, its length, and
      its log-probability summed over the alignments the beam kept.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> # the single best path is "_ _" (0.36), but "a" has 0.64 over its alignments
      >>> p = jnp.array([[0.6, 0.4], [0.6, 0.4]])  # (T, C): blank, a
      >>> jaxlosses.ctc_greedy_decode(jnp.log(p), 2).lengths
      Array(0, dtype=int32)
      >>> out = jaxlosses.ctc_beam_search_decode(jnp.log(p), 2, beam_width=4)
      >>> out.labels, jnp.exp(out.scores).round(2)
      (Array([ 1, -1], dtype=int32), Array(0.64, dtype=float32))

    References:
      Hannun et al., "First-Pass Large Vocabulary Continuous Speech Recognition using
      Bi-Directional Recurrent DNNs", https://arxiv.org/abs/1408.2873
    """
    check_concrete_lengths(log_probs, [], input_lengths, 0, batch_first=batch_first)
    return _beam_search(log_probs, input_lengths, beam_width, blank, batch_first)
