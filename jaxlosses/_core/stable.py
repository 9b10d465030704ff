"""Numerically stable primitives with custom derivative rules.

Each primitive here exists because the naive autodiff graph of the same formula produces
a NaN or an Inf somewhere on finite inputs, or does needless work. Every rule is a
``jax.custom_jvp`` whose tangent is linear in the input tangents and written with
differentiable JAX operations, so JAX derives reverse mode by transposition and
higher-order derivatives (``jax.hessian``, grad-of-grad, ``jax.jvp``) keep working.
Where guarding an argument (``jnp.where`` before a ``log``) already makes autodiff of the
formula the right rule at every order, the primitive is that guarded formula (``xlogy``).

All functions expect their floating inputs already in the compute dtype (float32 for
16-bit inputs, see :mod:`jaxlosses._core.reduction`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from jaxlosses._core.sharding import take_class


def _tangent(out: jax.Array, *terms) -> jax.Array:
    """Sums the tangent terms ``(coefficient_fn, tangent)`` whose tangent is not zero.

    Rules are defined with ``symbolic_zeros=True``: an input that is not being
    differentiated (labels, weights, targets) arrives as a ``SymbolicZero`` and its term is
    never built, instead of a coefficient array multiplied by instantiated zeros that XLA
    would still compute in the forward pass of ``jax.grad``.
    """
    total = None
    for coefficient, t in terms:
        if isinstance(t, SymbolicZero):
            continue
        term = coefficient(t)
        total = term if total is None else total + term
    return jnp.zeros_like(out) if total is None else total


# --------------------------------------------------------------------------------------
# log-sum-exp and softmax


def finite_max(x: jax.Array, axis: int) -> jax.Array:
    """The max along ``axis`` (kept), a constant for differentiation: the softmax shift.

    A row whose entries are all -inf has no finite max; shifting by 0 keeps exp() at 0
    instead of producing -inf - -inf = nan.
    """
    m = jnp.max(x, axis=axis, keepdims=True)
    return jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m)))


def row_shift(x: jax.Array) -> jax.Array:
    """The softmax shift of the last axis (kept): its max, a constant for differentiation.

    A row of -inf shifts by the lowest finite value instead, so that ``x - shift`` stays
    -inf (not -inf - -inf = nan). The same as :func:`finite_max` for every row with a
    finite entry, written with a ``maximum`` rather than a select, which XLA:CPU fuses
    into the reductions that read ``x - shift`` instead of materialising the broadcast
    shift as an ``N x C`` buffer.
    """
    m = jnp.max(x, axis=-1, keepdims=True)
    return jax.lax.stop_gradient(jnp.maximum(m, jnp.finfo(x.dtype).min))


def softcap(x: jax.Array, cap) -> jax.Array:
    """Gemma 2's logit soft cap ``cap * tanh(x / cap)``; ``-inf`` (a masked class) stays -inf.

    ``tanh`` would map a masked class to the finite logit ``-cap``, a class again; the
    select keeps it masked, with a zero derivative.
    """
    capped = cap * jnp.tanh(x / cap)
    return jnp.where(x == -jnp.inf, jnp.asarray(-jnp.inf, capped.dtype), capped)


def softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """Softmax that maps -inf logits to exactly 0 and an all -inf row to all zeros."""
    e = jnp.exp(x - finite_max(x, axis))
    s = jnp.sum(e, axis=axis, keepdims=True)
    return e / jnp.where(s == 0, jnp.ones_like(s), s)


def _shift(x: jax.Array, axis: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``x - max``, ``log(sum(exp(x - max)))`` and ``max``, all along ``axis`` (kept).

    Differences are formed on the shifted logits, so ``-log p = lse_shifted - x_shifted``
    is exact for logits like ``[1e4, 1e4]`` where ``(max + log 2) - x`` loses the
    ``log 2`` to float32 rounding.
    """
    m = finite_max(x, axis)
    xs = x - m
    lse_s = jnp.log(jnp.sum(jnp.exp(xs), axis=axis, keepdims=True))
    return xs, lse_s, m


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def logsumexp(x: jax.Array, axis: int = -1) -> jax.Array:
    """``log(sum(exp(x), axis))`` without overflow; -inf entries are masked-out classes.

    Guards: logits of 1e30 (shift by the max), -inf entries (exp gives 0), and rows that
    are entirely -inf (value -inf, gradient 0 instead of nan).
    """
    _, lse_s, m = _shift(x, axis)
    return jnp.squeeze(lse_s + m, axis=axis)


@logsumexp.defjvp
def _logsumexp_jvp(axis, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    p = softmax(x, axis)
    return logsumexp(x, axis), jnp.sum(p * x_dot, axis=axis)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def log_softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """``x - logsumexp(x)``, formed on shifted logits; -inf entries stay -inf.

    The derivative ``x_dot - sum(softmax(x) x_dot)`` is 0 for a masked class and for a row
    that is entirely -inf (where autodiff of ``log(sum(exp))`` divides 0 by 0).
    """
    xs, lse_s, _ = _shift(x, axis)
    return xs - lse_s


@log_softmax.defjvp
def _log_softmax_jvp(axis, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    p = softmax(x, axis)
    return log_softmax(x, axis), x_dot - jnp.sum(p * x_dot, axis=axis, keepdims=True)


# --------------------------------------------------------------------------------------
# softmax cross-entropy against a (possibly unnormalised) target distribution q


def _masked_xent(x: jax.Array, q: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
    """The loss ``sum_c q_c (-log p_c)`` and ``-log p`` itself (inf for masked classes)."""
    xs, lse_s, _ = _shift(x, axis)
    nlp = lse_s - xs
    # q_c == 0 contributes exactly 0, also for a masked class (-inf) where 0 * inf = nan.
    loss = jnp.sum(jnp.where(q == 0, jnp.zeros_like(x), q * nlp), axis=axis)
    return loss, nlp


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def softmax_cross_entropy(x: jax.Array, q: jax.Array, axis: int = -1) -> jax.Array:
    r"""``sum_c q_c * (logsumexp(x) - x_c)``, reduced over ``axis``.

    ``q`` is the (weighted) target distribution. Entries with ``q_c == 0`` contribute
    exactly 0 even when ``x_c = -inf`` (a masked class), where the naive ``0 * -inf`` is
    nan. The gradient is the closed form ``sum(q) * softmax(x) - q``, one fused
    elementwise expression instead of the backward pass of a log-softmax.
    """
    return _masked_xent(x, q, axis)[0]


@functools.partial(softmax_cross_entropy.defjvp, symbolic_zeros=True)
def _softmax_cross_entropy_jvp(axis, primals, tangents):
    x, q = primals
    x_dot, q_dot = tangents
    out, nlp = _masked_xent(x, q, axis)

    def d_x(t):
        grad_x = jnp.sum(q, axis=axis, keepdims=True) * softmax(x, axis) - q
        return jnp.sum(grad_x * t, axis=axis)

    def d_q(t):
        # d/dq_c = -log p_c, infinite for a masked class; the finite stand-in 0 keeps the
        # gradient with respect to soft targets free of nan.
        return jnp.sum(jnp.where(jnp.isfinite(nlp), nlp, jnp.zeros_like(nlp)) * t, axis=axis)

    return out, _tangent(out, (d_x, x_dot), (d_q, q_dot))


# --------------------------------------------------------------------------------------
# softmax cross-entropy against class indices (one-hot plus uniform targets)


def label_cross_entropy(
    x: jax.Array,
    labels: jax.Array,
    alpha: jax.Array,
    beta: jax.Array | None = None,
    class_weight: jax.Array | None = None,
) -> jax.Array:
    r"""Cross-entropy against ``q = alpha * one_hot(labels) + beta * class_weight * [x > -inf]``.

    The class axis is last; ``labels`` must already be in ``[0, C)`` and ``alpha``,
    ``beta`` are per-item (the target weight and the label-smoothing mass per class).

    .. math::
        \ell_i = \alpha_i (-\log p_{i,y_i}) + \beta_i \sum_c w_c [x_{ic} > -\infty]
        (-\log p_{ic})

    Never builds the ``N x C`` target: the label term gathers one logit per item, and the
    gradient ``sum(q) softmax(x) - q`` is a single elementwise pass over ``exp(x - max)``,
    which the forward pass already computed. Classes with ``-inf`` logits (masked) take no
    smoothing mass and get a zero gradient.
    """
    smooth = beta is not None
    if not smooth:
        beta = jnp.zeros((), x.dtype)
    if class_weight is None:
        class_weight = jnp.ones((x.shape[-1],), x.dtype)
    return _label_cross_entropy(x, labels, alpha, beta, class_weight, smooth)


def unmasked(x: jax.Array, k: int = 1) -> jax.Array:
    """1.0 where ``x`` is a class (any finite value), 0.0 where it is ``-inf`` (masked).

    No threshold: with ``a = 2**-k (x + max)`` (``max`` the dtype's largest finite value;
    computed as ``2**-k x + 2**-k max``, which cannot overflow), ``a >= 0`` for every
    finite ``x`` and ``a = -inf`` only for ``-inf``, so ``exp(a - |a|)`` is exactly 1 or
    0. Arithmetic (mul, add, abs, exp), which XLA:CPU fuses into a reduction, where it
    materialises a compare/select mask (or the broadcast constant of a ``min``) as an
    extra ``N x C`` buffer; callers pass a different ``k`` for each use so that XLA does
    not merge the masks of the forward and backward passes into one materialised array.
    """
    scale = 0.5**k  # a different expression for each k
    a = scale * x + jnp.asarray(scale * float(jnp.finfo(x.dtype).max), x.dtype)
    return jnp.exp(a - jnp.abs(a))


def finite_floor(x: jax.Array) -> jax.Array:
    """``x`` with ``-inf`` replaced by the lowest finite value (every finite ``x`` unchanged);
    a finite stand-in to multiply by :func:`unmasked`'s 0 without ``0 * inf = nan``."""
    return jnp.maximum(x, jnp.finfo(x.dtype).min)


def _label_xent_parts(x, labels, alpha, beta, w, smooth):
    # Every term is formed from the shifted logits x - m, so the loss is exactly
    # shift-invariant: logits of [1e30, 1e30] give log 2 for the label and for the
    # smoothing term alike (unshifted, lse - x_c would lose the log 2 to rounding).
    m = finite_max(x, -1)
    e = jnp.exp(x - m)
    s = jnp.sum(e, axis=-1, keepdims=True)
    lse_s = jnp.log(s)
    x_y = take_class(x, labels)[..., None]
    nll = (lse_s - (x_y - m))[..., 0]
    # a dropped item (alpha = 0) contributes 0 even if its placeholder logit is -inf
    loss = jnp.where(alpha == 0, jnp.zeros_like(nll), alpha * nll)
    smooth_nlp = None
    if smooth:
        smooth_nlp = _smoothing_nlp(x, lse_s, w)
        loss = loss + jnp.where(beta == 0, jnp.zeros_like(loss), beta * smooth_nlp)
    return loss, nll, smooth_nlp, e, s


def _smoothing_nlp(x, lse_s, t):
    """``sum_c t_c (-log p_c)`` over the classes that are not masked (``t``: the class
    weights, or a tangent of them), from shifted logits.

    Only -inf is a masked class: every finite logit, however large, takes its share. The
    shift is :func:`row_shift`, equal to the exponentials' :func:`finite_max` on every row
    with a finite logit; a second expression of it keeps XLA:CPU from materialising the
    broadcast shift that both would share (see :func:`row_shift`).
    """
    xs = finite_floor(x) - row_shift(x)
    return jnp.sum(unmasked(x, 1) * t * (lse_s - xs), axis=-1)


@functools.partial(jax.custom_jvp, nondiff_argnums=(5,))
def _label_cross_entropy(x, labels, alpha, beta, w, smooth):
    return _label_xent_parts(x, labels, alpha, beta, w, smooth)[0]


@functools.partial(_label_cross_entropy.defjvp, symbolic_zeros=True)
def _label_cross_entropy_jvp(smooth, primals, tangents):
    x, labels, alpha, beta, w = primals
    x_dot, _, alpha_dot, beta_dot, w_dot = tangents
    out, nll, smooth_nlp, e, s = _label_xent_parts(x, labels, alpha, beta, w, smooth)

    def d_x(t):
        # sum(q) p - q, with the one-hot part of q applied as a gather of the tangent
        # (a scatter-add in reverse mode, done in place) rather than a compare against
        # the class index in the N x C pass, which XLA:CPU may materialise.
        p = e * (1 / jnp.where(s == 0, jnp.ones_like(s), s))
        total = alpha
        dense = None
        if smooth:
            # the smoothing mass w_c on every class but the masked (-inf) ones; the same
            # test as the value's, so value and gradient agree on what is masked
            dense = beta[..., None] * w * unmasked(x, 2)
            total = total + beta * jnp.sum(w * unmasked(x, 3), axis=-1)
        grad = total[..., None] * p if dense is None else total[..., None] * p - dense
        return jnp.sum(grad * t, axis=-1) - alpha * take_class(t, labels)

    def d_alpha(t):
        return jnp.where(alpha == 0, jnp.zeros_like(nll), nll) * t

    def d_beta(t):
        return smooth_nlp * t

    def d_w(t):
        return beta * _smoothing_nlp(x, jnp.log(s), t)

    terms = [(d_x, x_dot), (d_alpha, alpha_dot)]
    if smooth:
        terms += [(d_beta, beta_dot), (d_w, w_dot)]
    return out, _tangent(out, *terms)


# --------------------------------------------------------------------------------------
# sigmoid binary cross-entropy (with logits)


@jax.custom_jvp
def sigmoid_binary_cross_entropy(x: jax.Array, t: jax.Array, pos_weight: jax.Array) -> jax.Array:
    r"""``-(pos_weight * t * log(sigmoid(x)) + (1 - t) * log(1 - sigmoid(x)))``.

    Written as ``(1 - t) x + (pos_weight t + 1 - t) softplus(-x)``, finite for
    ``|x| = 1e30``; the gradient is the closed form ``(pos_weight t + 1 - t) sigmoid(x) -
    pos_weight t`` (``sigmoid(x) - t`` without ``pos_weight``).
    """
    lw = pos_weight * t + 1 - t
    return (1 - t) * x + lw * jax.nn.softplus(-x)


@functools.partial(sigmoid_binary_cross_entropy.defjvp, symbolic_zeros=True)
def _sigmoid_bce_jvp(primals, tangents):
    x, t, pw = primals
    x_dot, t_dot, pw_dot = tangents
    sp = jax.nn.softplus(-x)
    lw = pw * t + 1 - t
    out = (1 - t) * x + lw * sp
    return out, _tangent(
        out,
        (lambda d: (lw * jax.nn.sigmoid(x) - pw * t) * d, x_dot),
        (lambda d: (-x + (pw - 1) * sp) * d, t_dot),
        (lambda d: t * sp * d, pw_dot),
    )


# --------------------------------------------------------------------------------------
# binary cross-entropy on probabilities (PyTorch's clamped logs)

_LOG_CLAMP = -100.0
_BCE_GRAD_EPS = 1e-12


@jax.custom_jvp
def binary_cross_entropy(p: jax.Array, t: jax.Array) -> jax.Array:
    r"""``-(t * max(log p, -100) + (1 - t) * max(log(1 - p), -100))``, as PyTorch.

    The naive gradient at ``p = 0`` or ``p = 1`` is ``0 * inf = nan`` (the clamp's zero
    slope times ``1/p``). The rule uses PyTorch's backward,
    ``(p - t) / max(p (1 - p), 1e-12)``, which is finite everywhere on ``[0, 1]``.
    """
    log_p = jnp.maximum(jnp.log(p), _LOG_CLAMP)
    log_1mp = jnp.maximum(jnp.log1p(-p), _LOG_CLAMP)
    return -(t * log_p + (1 - t) * log_1mp)


@functools.partial(binary_cross_entropy.defjvp, symbolic_zeros=True)
def _binary_cross_entropy_jvp(primals, tangents):
    p, t = primals
    p_dot, t_dot = tangents
    log_p = jnp.maximum(jnp.log(p), _LOG_CLAMP)
    log_1mp = jnp.maximum(jnp.log1p(-p), _LOG_CLAMP)
    out = -(t * log_p + (1 - t) * log_1mp)
    return out, _tangent(
        out,
        (lambda d: (p - t) / jnp.maximum(p * (1 - p), _BCE_GRAD_EPS) * d, p_dot),
        (lambda d: (log_1mp - log_p) * d, t_dot),
    )


# --------------------------------------------------------------------------------------
# focal modulation


@jax.custom_jvp
def safe_power(u: jax.Array, gamma: jax.Array) -> jax.Array:
    """``u ** gamma`` for ``u >= 0`` whose derivative is 0 (not inf) at ``u = 0``.

    For ``0 < gamma < 1`` the true derivative ``gamma u**(gamma - 1)`` is infinite at 0.
    Every caller multiplies it by a tangent that vanishes there at least as fast as ``u``
    (the focal factor's ``du = -p dlog p``), so the finite stand-in 0 is the limit of
    the product; it keeps second derivatives (``jax.hessian``) free of ``inf * 0``.
    """
    return jnp.power(u, gamma)


@functools.partial(safe_power.defjvp, symbolic_zeros=True)
def _safe_power_jvp(primals, tangents):
    u, gamma = primals
    u_dot, gamma_dot = tangents
    out = safe_power(u, gamma)
    positive = u > 0
    safe_u = jnp.where(positive, u, jnp.ones_like(u))
    zero = jnp.zeros_like(out)
    return out, _tangent(
        out,
        (lambda d: jnp.where(positive, gamma * jnp.power(safe_u, gamma - 1), zero) * d, u_dot),
        (lambda d: jnp.where(positive, out * jnp.log(safe_u), zero) * d, gamma_dot),
    )


def _neg_log_ratio(log_p: jax.Array, u: jax.Array) -> jax.Array:
    """``-log(p) / (1 - p)`` given ``log p`` and ``u = 1 - p``; its limit at p = 1 is 1."""
    safe_u = jnp.where(u > 0, u, jnp.ones_like(u))
    return jnp.where(u > 0, -log_p / safe_u, jnp.ones_like(u))


@jax.custom_jvp
def focal_log_prob(log_p: jax.Array, gamma: jax.Array) -> jax.Array:
    r"""``(1 - p)**gamma * log p`` as a function of ``log p`` (``p <= 1``).

    For ``gamma < 1`` the naive derivative ``gamma (1 - p)**(gamma - 1)`` is infinite at
    ``p = 1`` and the chain rule multiplies it by ``dp = 0``: nan. The rule uses the
    closed form ``(1 - p)**gamma * (1 + gamma * p * (-log p) / (1 - p))``, whose ratio
    tends to 1, so the derivative is finite for every ``gamma >= 0``.
    """
    u = jnp.maximum(-jnp.expm1(log_p), 0.0)
    return safe_power(u, gamma) * log_p


@functools.partial(focal_log_prob.defjvp, symbolic_zeros=True)
def _focal_log_prob_jvp(primals, tangents):
    log_p, gamma = primals
    lp_dot, gamma_dot = tangents
    u = jnp.maximum(-jnp.expm1(log_p), 0.0)
    mod = safe_power(u, gamma)
    out = mod * log_p
    p = jnp.exp(log_p)
    # p * (-log p) / (1 - p); a -inf log-probability has p = 0 and contributes 0.
    ratio = jnp.where(p > 0, p * _neg_log_ratio(log_p, u), jnp.zeros_like(p))
    grad_lp = mod * (1 + gamma * ratio)

    def d_gamma(d):
        # d/dgamma of u**gamma * log p = u**gamma * log(u) * log p, 0 where u = 0.
        safe_log_u = jnp.log(jnp.where(u > 0, u, jnp.ones_like(u)))
        return jnp.where(u > 0, out * safe_log_u, jnp.zeros_like(u)) * d

    return out, _tangent(out, (lambda d: grad_lp * d, lp_dot), (d_gamma, gamma_dot))


@jax.custom_jvp
def sigmoid_focal(x: jax.Array, t: jax.Array, gamma: jax.Array) -> jax.Array:
    r"""``BCE_with_logits(x, t) * (1 - p_t)**gamma`` with ``p_t = p t + (1 - p)(1 - t)``.

    ``1 - p_t = t sigmoid(-x) + (1 - t) sigmoid(x)`` is computed in log space, so the
    modulating factor and its derivative stay finite at ``|x| = 1e30`` and for
    ``gamma < 1``, where the naive graph multiplies an infinite power derivative by 0.
    """
    ce = sigmoid_binary_cross_entropy(x, t, jnp.ones_like(x))
    log_u = _log_one_minus_pt(x, t)
    return ce * _exp_gamma(gamma, log_u)


def _log_one_minus_pt(x, t):
    # log(t * sigmoid(-x) + (1 - t) * sigmoid(x)); log(0) = -inf terms drop out exactly.
    return jnp.logaddexp(
        _safe_log(t) + jax.nn.log_sigmoid(-x), _safe_log(1 - t) + jax.nn.log_sigmoid(x)
    )


def _safe_log(t):
    return jnp.where(t > 0, jnp.log(jnp.where(t > 0, t, jnp.ones_like(t))), -jnp.inf)


def _exp_gamma(gamma, log_u):
    # u**gamma from log u, with 0**0 = 1.
    return jnp.where(gamma == 0, jnp.ones_like(log_u), jnp.exp(gamma * log_u))


@functools.partial(sigmoid_focal.defjvp, symbolic_zeros=True)
def _sigmoid_focal_jvp(primals, tangents):
    x, t, gamma = primals
    x_dot, t_dot, gamma_dot = tangents
    ls_pos = jax.nn.log_sigmoid(x)
    ls_neg = jax.nn.log_sigmoid(-x)
    ce = (1 - t) * x - ls_pos  # = (1 - t) x + softplus(-x)
    log_u = _log_one_minus_pt(x, t)
    mod = _exp_gamma(gamma, log_u)
    out = ce * mod

    def d_x(d):
        # d log u / dx = (1 - 2t) sigmoid(x) sigmoid(-x) / u, bounded; in log space.
        dlogu_dx = (1 - 2 * t) * jnp.exp(ls_pos + ls_neg - log_u)
        return ((jax.nn.sigmoid(x) - t) * mod + gamma * ce * mod * dlogu_dx) * d

    def d_t(d):
        # d log u / dt = (sigmoid(-x) - sigmoid(x)) / u
        dlogu_dt = jnp.exp(ls_neg - log_u) - jnp.exp(ls_pos - log_u)
        return ((-x) * mod + gamma * ce * mod * dlogu_dt) * d

    def d_gamma(d):
        return jnp.where(mod > 0, out * log_u, jnp.zeros_like(out)) * d

    return out, _tangent(out, (d_x, x_dot), (d_t, t_dot), (d_gamma, gamma_dot))


# --------------------------------------------------------------------------------------
# x log y with 0 log 0 = 0 (entropy, Kullback-Leibler, Poisson terms; with finite_floor
# for 0 * -inf = 0)
#
# Written without a compare or a select on the elements: XLA:CPU fuses such a formula into
# the reduction that consumes it, where a jnp.where in the forward pass makes it keep
# N x D temporaries (twice the time of the naive formula at (4096, 1024)).


def xlogy(x: jax.Array, y: jax.Array) -> jax.Array:
    r"""``x * log(y)`` with ``0 * log(0) = 0``, and finite derivatives there.

    The naive product is ``0 * -inf = nan`` at ``x = y = 0`` (a zero probability in an
    entropy term ``p log p``, a zero count against a zero rate). Here ``y`` is shifted by
    the smallest normal float, ``x * log(y + tiny)``: the value at ``y = 0`` is
    ``x * log(tiny)`` (0 for ``x = 0``, about ``-87 x`` in float32 where the true one is
    ``-inf``), ``d/dy = x / (y + tiny)`` is 0 at ``x = 0`` (the naive ``0 / 0`` is nan),
    ``d/dx = log(y + tiny)`` is finite. For ``y > 2e-31`` (float32; ``4e-292`` in
    float64) ``y + tiny`` rounds to ``y``: the value and derivatives are the true ones. A
    negative ``y`` (below ``-tiny``) gives nan, as ``log`` does.
    """
    return x * jnp.log(y + jnp.finfo(jnp.result_type(y)).tiny)


# --------------------------------------------------------------------------------------
# PyTorch's clamp under no_grad


@jax.custom_jvp
def clamp_min_pass_through(x: jax.Array, low: jax.Array) -> jax.Array:
    r"""``max(x, low)`` whose derivative with respect to ``x`` is 1 everywhere.

    PyTorch's ``gaussian_nll_loss`` clamps the variance in place under ``no_grad``, so its
    gradient is that of the loss at the clamped value, passed to ``var`` unchanged even
    where ``var < eps`` (where the derivative of ``max`` is 0: a variance below ``eps``
    would never be pushed up). ``low`` gets no derivative. Unlike ``x + stop_gradient(
    max(x, low) - x)``, it keeps ``x = inf`` (``inf - inf = nan``) and nan (loud).
    """
    return jnp.where(x < low, jnp.asarray(low, x.dtype), x)


@clamp_min_pass_through.defjvp
def _clamp_min_pass_through_jvp(primals, tangents):
    x, low = primals
    x_dot, _ = tangents
    return clamp_min_pass_through(x, low), x_dot


# --------------------------------------------------------------------------------------
# absolute value with PyTorch's derivative at 0


@jax.custom_jvp
def absolute(x: jax.Array) -> jax.Array:
    """``|x|`` whose derivative at 0 is 0 (PyTorch's ``sign(0)``), not ``jnp.abs``'s 1.

    The rule selects ``t``, ``-t`` or 0 by the sign of ``x``: the same function as
    ``x * sign(x)``, whose autodiff graph XLA:CPU does not fuse (it keeps the ``sign``
    array between the forward and the backward pass: two ``N x D`` temporaries and 3.7
    times the time of ``jnp.abs`` at ``(4096, 1024)``); this rule fuses into the
    gradient's one elementwise pass.
    """
    return jnp.abs(x)


@absolute.defjvp
def _absolute_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    zero = jnp.zeros_like(t)
    return jnp.abs(x), jnp.where(x > 0, t, jnp.where(x < 0, -t, zero))


def tangent_sum(out: jax.Array, *terms) -> jax.Array:
    """The tangent of a rule: ``_tangent`` for custom rules written beside a family's kernel.

    ``terms`` are ``(coefficient_fn, tangent)`` pairs; symbolic-zero tangents (inputs not
    being differentiated, with ``symbolic_zeros=True``) are skipped, never built.
    """
    return _tangent(out, *terms)


# --------------------------------------------------------------------------------------
# L2 normalisation (cosine similarities of contrastive losses)


def _scaled_norm(x: jax.Array, axis: int) -> jax.Array:
    # ||x|| computed from x / max|x|, so that entries of 1e30 do not overflow the squares
    # (the textbook sqrt(sum(x**2)) is inf there and the normalised vector 0).
    m = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=axis, keepdims=True))
    safe_m = jnp.where(m > 0, m, jnp.ones_like(m))
    return m * jnp.sqrt(jnp.sum(jnp.square(x / safe_m), axis=axis, keepdims=True))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    r"""``x / max(||x||, eps)`` along ``axis`` (``torch.nn.functional.normalize``).

    Guards: a zero vector stays 0 with the finite derivative ``1 / eps`` (autodiff of
    ``x / ||x||`` divides 0 by 0 there), and entries of 1e30 give a unit vector (the
    squares would overflow). The derivative is the closed form
    ``(x_dot - u (u . x_dot)) / ||x||`` with ``u = x / ||x||`` where ``||x|| > eps``.
    """
    return x / jnp.maximum(_scaled_norm(x, axis), eps)


@l2_normalize.defjvp
def _l2_normalize_jvp(axis, eps, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    norm = _scaled_norm(x, axis)
    big = norm > eps
    denom = jnp.where(big, norm, jnp.full_like(norm, eps))
    u = x / denom
    radial = jnp.where(big, u * jnp.sum(u * x_dot, axis=axis, keepdims=True), 0.0)
    return u, (x_dot - radial) / denom


# --------------------------------------------------------------------------------------
# softplus


@jax.custom_jvp
def softplus(z: jax.Array) -> jax.Array:
    """``log(1 + exp(z))`` as ``max(z, 0) + log1p(exp(-|z|))``, with derivative ``sigmoid(z)``.

    Guards: the naive ``log1p(exp(z))`` is inf from ``z = 89`` (and its gradient nan);
    autodiff of the stable form is wrong at ``z = 0`` (JAX's slopes of ``max`` and ``abs``
    there give 0, not 1/2). About half the cost of ``jax.nn.softplus`` (``logaddexp``) on
    XLA:CPU.
    """
    return jnp.maximum(z, 0) + jnp.log1p(jnp.exp(-jnp.abs(z)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (z,), (z_dot,) = primals, tangents
    return softplus(z), jax.nn.sigmoid(z) * z_dot


# --------------------------------------------------------------------------------------
# distances and similarities of vectors (the feature axis is last)


def _pnorm(d: jax.Array, p: float) -> jax.Array:
    """``(sum |d|**p)**(1/p)`` over the last axis, computed as written (may overflow)."""
    if p == 2:
        return jnp.sqrt(jnp.sum(d * d, axis=-1))
    return jnp.power(jnp.sum(jnp.power(jnp.abs(d), p), axis=-1), 1 / p)


def _row_scale(x: jax.Array, floor: float = 0.0) -> jax.Array:
    """``max(max |x|, floor)`` over the last axis (kept), 1 where that is 0 or not finite.

    A norm or a cosine is homogeneous in its vector, so it can be computed on ``x / s``
    and scaled back: every value is then at most 1 and nothing overflows. The scale is a
    ``stop_gradient``: the result does not depend on it, so its derivative does not either.
    """
    s = jnp.maximum(jnp.max(jnp.abs(x), axis=-1, keepdims=True), floor)
    s = jnp.where((s > 0) & jnp.isfinite(s), s, jnp.ones_like(s))
    return jax.lax.stop_gradient(s)


def _all_finite(x: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(x))


def _keep(value, *_):
    """The branch of ``lax.cond`` that keeps the naively computed value."""
    return value


@functools.lru_cache
def _rescaled_distance(p: float):
    """The branch that recomputes the distance on rows scaled to a maximum of 1.

    One function per ``p`` (cached), so that JAX reuses the traced and compiled ``cond``
    instead of tracing a new closure at every eager call.
    """

    def branch(n, x1, x2, eps):
        d = x1 - x2 + eps
        s = _row_scale(d)
        return _pnorm(d / s, p) * s[..., 0]

    return branch


def _distance(x1: jax.Array, x2: jax.Array, eps: jax.Array, p: float) -> jax.Array:
    d = x1 - x2 + eps
    if p == jnp.inf:
        return jnp.max(jnp.abs(d), axis=-1)
    if p == 1:
        return jnp.sum(jnp.abs(d), axis=-1)
    n = _pnorm(d, p)
    # The naive sum of |d|**p overflows for |d| around 1e19 (p = 2), where the distance is
    # finite; only then is the batch recomputed on scaled rows (one more pass).
    return jax.lax.cond(_all_finite(n), _keep, _rescaled_distance(p), n, x1, x2, eps)


def _distance_tangent(d: jax.Array, n: jax.Array, t: jax.Array, p: float) -> jax.Array:
    """``sum(dn/dd * t)`` with PyTorch's subgradients (``norm_backward``).

    Written as an elementwise function of ``d`` times per-row scalars, so that XLA
    recomputes ``d`` inside the gradient's loop (as for naive autodiff) instead of
    storing an ``N x D`` coefficient; its powers are taken of ``d / n``, at most 1.
    """
    if p == 1:
        return jnp.sum(jnp.sign(d) * t, axis=-1)
    if p == jnp.inf:
        hit = (jnp.abs(d) == n[..., None]).astype(d.dtype)  # the maximal entries share it
        count = jnp.sum(hit, axis=-1)
        return jnp.sum(jnp.sign(d) * hit * t, axis=-1) / jnp.where(count > 0, count, 1)
    inv = jnp.where(n > 0, 1 / jnp.where(n > 0, n, 1), 0)[..., None]  # 0: subgradient at 0
    if p == 2:
        return jnp.sum(d * t, axis=-1) * inv[..., 0]
    u = jnp.abs(d) * inv
    if p < 1:  # |d|**(p - 1) is infinite at d = 0, where PyTorch's subgradient is 0
        u = jnp.where(d == 0, 1, u)
        return jnp.sum(jnp.where(d == 0, 0, jnp.sign(d) * jnp.power(u, p - 1)) * t, axis=-1)
    return jnp.sum(jnp.sign(d) * jnp.power(u, p - 1) * t, axis=-1)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def pairwise_distance(x1: jax.Array, x2: jax.Array, eps: jax.Array, p: float) -> jax.Array:
    r"""PyTorch's ``pairwise_distance``: ``||x1 - x2 + eps||_p`` over the last axis.

    ``x1`` and ``x2`` broadcast; ``p > 0`` (``jnp.inf`` for the max norm) is static.
    Guards: the gradient at distance 0 is PyTorch's subgradient 0 (naive autodiff of
    ``sqrt(sum d**2)`` gives nan there, which ``eps = 0`` and identical vectors reach);
    entries ``|d| = 0`` give a 0 derivative for ``p < 1`` (an infinite one naively);
    ties of the max norm share the gradient equally (PyTorch's choice); and ``|d|`` up to
    the float32 maximum keeps the value and gradient finite (a rescaled recomputation
    when the naive sum of powers overflows). The gradient is written in ``d / n``, whose
    entries are at most 1.
    """
    return _distance(x1, x2, eps, p)


@functools.partial(pairwise_distance.defjvp, symbolic_zeros=True)
def _pairwise_distance_jvp(p, primals, tangents):
    x1, x2, eps = primals
    t1, t2, t_eps = tangents
    n = pairwise_distance(x1, x2, eps, p)

    def along(sign):
        return lambda t: sign * _distance_tangent(x1 - x2 + eps, n, t, p)

    return n, _tangent(n, (along(1), t1), (along(-1), t2), (along(1), t_eps))


@functools.lru_cache
def _rescaled_norm(eps: float):
    """The branch that recomputes ``sqrt(sum x**2 + eps)`` on rows scaled to a maximum of 1."""

    def branch(r, x):
        s = _row_scale(x, eps**0.5)  # s >= sqrt(eps): eps / s**2 <= 1
        u = x / s
        return jnp.sqrt(jnp.sum(u * u, axis=-1) + eps / (s * s)[..., 0]) * s[..., 0]

    return branch


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def eps_norm(x: jax.Array, eps: float) -> jax.Array:
    """``sqrt(sum x**2 + eps)`` over the last axis, finite for entries up to the float32 max.

    Guards: ``eps > 0`` keeps it positive (its gradient ``x / r`` finite at ``x = 0``), and
    the rows are rescaled when the naive sum of squares overflows (entries around 1e19).
    """
    r = jnp.sqrt(jnp.sum(x * x, axis=-1) + eps)
    return jax.lax.cond(_all_finite(r), _keep, _rescaled_norm(eps), r, x)


@eps_norm.defjvp
def _eps_norm_jvp(eps, primals, tangents):
    (x,), (t,) = primals, tangents
    r = eps_norm(x, eps)
    return r, jnp.sum((x / r[..., None]) * t, axis=-1)


@functools.lru_cache
def _rescaled_cosine(eps: float):
    """The branch that recomputes the cosine on rows scaled to a maximum of 1."""

    def branch(cos, x1, x2):
        # cos is homogeneous of degree 0 in each vector: on x / s with s >= sqrt(eps) the
        # sums are at most the dimension and eps / s**2 at most 1.
        s1, s2 = _row_scale(x1, eps**0.5), _row_scale(x2, eps**0.5)
        u1, u2 = x1 / s1, x2 / s2
        q1 = jnp.sqrt(jnp.sum(u1 * u1, axis=-1) + eps / (s1 * s1)[..., 0])
        q2 = jnp.sqrt(jnp.sum(u2 * u2, axis=-1) + eps / (s2 * s2)[..., 0])
        return jnp.sum(u1 * u2, axis=-1) / (q1 * q2)

    return branch


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def cosine_similarity(x1: jax.Array, x2: jax.Array, eps: float) -> jax.Array:
    r"""``x1 . x2 / sqrt((|x1|^2 + eps)(|x2|^2 + eps))`` over the last axis (PyTorch's
    ``cosine_embedding_loss`` form, ``eps = 1e-12`` there).

    Guards: a zero vector gives cosine 0 and PyTorch's finite gradient (``eps`` keeps
    the denominator positive); entries up to the float32 maximum keep the value and
    gradient finite (rescaled rows when the naive sums overflow, from entries around
    1e19, or their product, from norms around 1e10, where PyTorch returns nan or 0). The
    gradient is the closed form :math:`x_2 / (r_1 r_2) - \cos\, x_1 / r_1^2` (and
    symmetrically), with :math:`r = \sqrt{|x|^2 + \mathrm{eps}}` from :func:`eps_norm`,
    evaluated as ``(x / r)`` scaled once more so that no product overflows.
    """
    dot = jnp.sum(x1 * x2, axis=-1)
    m12 = (jnp.sum(x1 * x1, axis=-1) + eps) * (jnp.sum(x2 * x2, axis=-1) + eps)
    cos = dot / jnp.sqrt(m12)  # PyTorch's rounding: one square root of the product
    ok = _all_finite(dot) & _all_finite(m12)
    return jax.lax.cond(ok, _keep, _rescaled_cosine(eps), cos, x1, x2)


@functools.partial(cosine_similarity.defjvp, symbolic_zeros=True)
def _cosine_similarity_jvp(eps, primals, tangents):
    x1, x2 = primals
    t1, t2 = tangents
    cos = cosine_similarity(x1, x2, eps)
    a1, a2 = (1 / eps_norm(x1, eps))[..., None], (1 / eps_norm(x2, eps))[..., None]
    c = cos[..., None]

    def d1(t):
        return jnp.sum(((x2 * a2) * a1 - (x1 * a1) * (c * a1)) * t, axis=-1)

    def d2(t):
        return jnp.sum(((x1 * a1) * a2 - (x2 * a2) * (c * a2)) * t, axis=-1)

    return cos, _tangent(cos, (d1, t1), (d2, t2))
