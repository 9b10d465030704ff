"""Losses of logits over mutually exclusive classes.

``log_softmax``, ``nll_loss``, ``cross_entropy`` (class indices or probabilities),
the softmax ``focal_loss`` (Lin et al.) and ``label_smoothing_loss`` (the smoothing of
Szegedy et al. with the mass spread over the other classes only).

Every loss here is ``sum_c q_c * (-log softmax(x)_c)`` for some target distribution
``q`` (or, for NLL and focal loss, a function of the target's log-probability), reduced
with PyTorch's denominators by :mod:`jaxlosses._core.reduction`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses._core import checks, stable
from jaxlosses._core.checks import REDUCTION, hyperparameters, integer, real
from jaxlosses._core.classes import (
    class_inputs,
    class_labels,
    class_weight,
    finish_class_loss,
)
from jaxlosses._core.reduction import Unreduced, compute_dtype

# --------------------------------------------------------------------------------------
# log_softmax


def log_softmax(input: ArrayLike, *, axis: int = -1) -> jax.Array:
    r"""Log of the softmax along ``axis``, computed stably (``torch.log_softmax``).

    .. math::
        \log \mathrm{softmax}(x)_c = x_c - \log \sum_k e^{x_k}

    16-bit inputs are computed in float32 and returned in their own dtype (so float16
    over 2**16 or more classes does not overflow). ``-inf`` entries (masked classes) give
    ``-inf``; their gradient is 0.

    Autodiff: a ``custom_jvp`` rule (``x_dot - sum(softmax(x) x_dot)``); forward and
    reverse mode, any order.

    Args:
      input: logits, any shape with at least one dimension.
      axis: the class axis.

    Returns:
      Log-probabilities of ``input``'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> jaxlosses.log_softmax(jnp.array([0.0, 0.0])).round(4)
      Array([-0.6931, -0.6931], dtype=float32)
    """
    x = checks.as_float_array("input", input)
    axis = checks.normalize_axis(axis, x.ndim)
    out = stable.log_softmax(x.astype(compute_dtype(x.dtype)), axis)
    return out.astype(x.dtype)


# --------------------------------------------------------------------------------------
# nll_loss


@hyperparameters(ignore_index=integer(optional=True), reduction=REDUCTION)
def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
    reduction: str = "mean",
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Negative log-likelihood of class indices (``torch.nn.functional.nll_loss``).

    .. math::
        \ell_n = -w_{y_n} \log p_{n, y_n}, \qquad
        \mathrm{mean} = \frac{\sum_n \ell_n}{\sum_n w_{y_n}}

    where the sums run over kept items (``y_n != ignore_index`` and ``where``).

    Autodiff: plain JAX operations (a gather of the target log-probability); every
    mode, any order.

    Args:
      input: log-probabilities, e.g. from :func:`log_softmax`; the class axis is
        ``axis`` (PyTorch's ``(N, C, d1, ...)`` layout is ``axis=1``).
      target: integer class indices, ``input``'s shape without ``axis``.
      weight: optional per-class weights, shape ``(C,)``.
      ignore_index: label value whose items are skipped (loss 0, not in the mean);
        None skips none.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      axis: the class axis.
      where: optional boolean mask broadcastable to ``target``; False items are skipped.

    Returns:
      A scalar, or the per-item losses (``target``'s shape) for ``reduction="none"``.
      A mean over no kept item is 0 (PyTorch: nan). A label outside ``[0, C)`` that is
      not ``ignore_index`` gives nan (see :func:`check_labels`).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> x = jnp.array([[0.8982, 0.805, 0.6393, 0.9983, 0.5731,
      ...                 0.0469, 0.556, 0.1476, 0.8404, 0.5544]])
      >>> jaxlosses.nll_loss(jaxlosses.log_softmax(x), jnp.array([1])).round(4)
      Array(2.1438, dtype=float32)
    """
    inputs, axis = class_inputs("input", input, axis, where)
    lab = class_labels(inputs, target, axis, ignore_index, name="target")
    w = class_weight(weight, inputs.num_classes, inputs.x.dtype)
    item_w = lab.item_weight(w, inputs.x.dtype)
    loss = -item_w * lab.take(inputs.x)
    return finish_class_loss(loss, lab, item_w, inputs.dtype).reduce(reduction)


# --------------------------------------------------------------------------------------
# cross_entropy


def _finite_mask(x: jax.Array) -> jax.Array:
    # Classes whose logit is -inf are masked out: they take no label-smoothing mass.
    return (x > -jnp.inf).astype(x.dtype)


def _cross_entropy_unreduced(
    logits, targets, *, weight, ignore_index, label_smoothing, z_loss, logit_softcap, axis, where
) -> Unreduced:
    inputs, axis = class_inputs("input", logits, axis, where)
    x, num_classes = inputs.x, inputs.num_classes
    if logit_softcap is not None:
        x = stable.softcap(x, jnp.asarray(logit_softcap, x.dtype))
    w = class_weight(weight, num_classes, x.dtype)
    targets = jnp.asarray(targets)
    smoothing = checks.concrete_scalar(label_smoothing)
    smooth = smoothing is None or smoothing != 0
    eps = jnp.asarray(label_smoothing, x.dtype)
    z = checks.concrete_scalar(z_loss)
    with_z = z is None or z != 0

    def plus_z_loss(loss, item_weight):
        # PaLM's z-loss, weighted like the item's cross-entropy in the mean (w_y for a
        # label, 1 for probabilities): see linear_cross_entropy, which defines it alike.
        if not with_z:
            return loss
        lse = stable.logsumexp(x, -1)
        term = jnp.asarray(z_loss, x.dtype) * item_weight * jnp.square(lse)
        return loss + jnp.where(item_weight == 0, jnp.zeros_like(term), term)

    if jnp.issubdtype(targets.dtype, jnp.integer):
        lab = class_labels(inputs, targets, axis, ignore_index, name="target")
        item_w = lab.item_weight(w, x.dtype)
        if smooth:
            beta = eps / num_classes * lab.kept.astype(x.dtype)
            loss = stable.label_cross_entropy(x, lab.safe, (1 - eps) * item_w, beta, w)
        else:
            loss = stable.label_cross_entropy(x, lab.safe, item_w)
        return finish_class_loss(plus_z_loss(loss, item_w), lab, item_w, inputs.dtype)

    if not jnp.issubdtype(targets.dtype, jnp.floating):
        raise TypeError(
            "target must be integer class indices or floating class probabilities, got "
            f"dtype {targets.dtype} (shape {targets.shape})"
        )
    full_shape = jnp.shape(logits)
    if targets.shape != full_shape:
        hint = ""
        if targets.shape == inputs.item_shape:
            hint = " (for class indices, pass an integer dtype)"
        raise ValueError(
            "a floating target holds class probabilities and must have the input's shape: "
            f"got target.shape={targets.shape} for input.shape={full_shape}{hint}"
        )
    q = jnp.moveaxis(targets, axis, -1).astype(x.dtype)
    if smooth:
        q = (1 - eps) * q + eps * _finite_mask(x) / num_classes
    if w is not None:
        q = q * w
    if inputs.mask is not None:
        q = jnp.where(inputs.mask[..., None], q, jnp.zeros_like(q))
    loss = stable.softmax_cross_entropy(x, q, -1)
    kept = jnp.ones_like(loss) if inputs.mask is None else inputs.mask.astype(x.dtype)
    return Unreduced(plus_z_loss(loss, kept), inputs.mask, None, inputs.dtype)


@hyperparameters(
    ignore_index=integer(optional=True),
    label_smoothing=real(0.0, 1.0),
    z_loss=real(0.0),
    logit_softcap=real(0.0, low_open=True, optional=True),
    reduction=REDUCTION,
)
def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    logit_softcap: float | None = None,
    reduction: str = "mean",
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Softmax cross-entropy (``torch.nn.functional.cross_entropy``).

    ``target`` holds integer class indices (the input's shape without ``axis``) or
    floating class probabilities (the input's shape). With label smoothing
    :math:`\varepsilon`, the target distribution is

    .. math::
        q_{n,c} = (1 - \varepsilon)\, t_{n,c} + \frac{\varepsilon}{C}, \qquad
        \ell_n = -\sum_c w_c\, q_{n,c} \log \mathrm{softmax}(s_n)_c
                 + \lambda_z\, \omega_n \Big(\log \sum_c e^{s_{n,c}}\Big)^2

    where :math:`t` is the one-hot label or the given probabilities and :math:`s` the
    logits, soft-capped to :math:`s = c \tanh(x / c)` with ``logit_softcap`` (Gemma 2).
    For class indices, ``"mean"`` divides by :math:`\sum_n w_{y_n}` over kept items
    (PyTorch's weighted mean, smoothing term included); for probabilities, by the number
    of items. The optional z-loss (PaLM's, :math:`\lambda_z` = ``z_loss``) is weighted
    like the item's cross-entropy in that mean, :math:`\omega_n = w_{y_n}` for class
    indices and 1 for probabilities, so ``"mean"`` averages it with the same weights;
    :func:`linear_cross_entropy` and the vocabulary-parallel losses
    (:func:`jaxlosses.sharded.vocab_parallel_cross_entropy` and its kin) define it alike.

    The gradient is the closed form :math:`(\sum_c q_c)\,\mathrm{softmax}(s) - q`
    (a ``custom_jvp``, so forward mode and Hessians work). Every term is formed from
    logits shifted by their max, so the loss is exactly invariant to adding a constant to
    every logit (``[[1e30, 1e30]]`` gives :math:`\log 2` with or without smoothing).
    Only ``-inf`` logits mark masked classes (any finite logit is a class, in every
    dtype): they take no label-smoothing mass (PyTorch returns inf there) and get a zero
    gradient; the soft cap keeps them at ``-inf``.

    Autodiff: ``custom_jvp`` rules (forward and reverse mode, any order: ``jax.jvp``,
    ``jax.hessian`` work).

    Args:
      input: logits (unnormalised scores); the class axis is ``axis`` (``axis=1`` for
        PyTorch's ``(N, C, d1, ...)`` layout). Unbatched ``(C,)`` logits work.
      target: integer class indices or floating probabilities, see above.
      weight: optional per-class weights, shape ``(C,)``.
      ignore_index: label value whose items are skipped (class indices only); None
        skips none.
      label_smoothing: :math:`\varepsilon \in [0, 1]`.
      z_loss: :math:`\lambda_z \ge 0`, the weight of the squared log-partition
        function (PaLM uses ``1e-4``).
      logit_softcap: :math:`c > 0` to apply :math:`c \tanh(\cdot / c)` to the logits
        first (Gemma 2 uses 30), or None.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      axis: the class axis.
      where: optional boolean mask broadcastable to the per-item losses; False items
        contribute 0 and leave the mean's denominator.

    Returns:
      A scalar, or per-item losses (the input's shape without ``axis``) for
      ``reduction="none"``. A mean over no kept item is 0 (PyTorch: nan). A class index
      outside ``[0, C)`` that is not ``ignore_index`` gives nan (see
      :func:`check_labels`).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> score = jnp.array([0.8982, 0.805, 0.6393, 0.9983, 0.5731,
      ...                    0.0469, 0.556, 0.1476, 0.8404, 0.5544])
      >>> jaxlosses.cross_entropy(score, jnp.array(1)).round(4)
      Array(2.1438, dtype=float32)

    References:
      Szegedy et al., "Rethinking the Inception Architecture for Computer Vision"
      (label smoothing), https://arxiv.org/abs/1512.00567;
      Chowdhery et al., "PaLM" (z-loss), https://arxiv.org/abs/2204.02311;
      Gemma Team, "Gemma 2" (logit soft-capping), https://arxiv.org/abs/2408.00118
    """
    return _cross_entropy_unreduced(
        input,
        target,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        logit_softcap=logit_softcap,
        axis=axis,
        where=where,
    ).reduce(reduction)


# --------------------------------------------------------------------------------------
# focal_loss (softmax)


@hyperparameters(gamma=real(low=0.0), ignore_index=integer(optional=True), reduction=REDUCTION)
def focal_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    gamma: float = 2.0,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
    reduction: str = "mean",
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Softmax focal loss over class indices.

    .. math::
        \ell_n = -w_{y_n} (1 - p_{n,y_n})^{\gamma} \log p_{n,y_n}, \qquad
        p = \mathrm{softmax}(x)

    It equals ``nll_loss((1 - p) ** gamma * log p, target, weight=weight)`` (the form
    common in PyTorch code), so ``"mean"`` divides by :math:`\sum_n w_{y_n}` like
    :func:`nll_loss`. ``gamma = 0`` is cross-entropy. The
    derivative stays finite at :math:`p = 1` for :math:`0 < \gamma < 1`, where the naive
    one is ``inf * 0``.

    Autodiff: ``custom_jvp`` rules (forward and reverse mode, any order).

    Args:
      input: logits (unnormalised scores) with the class axis ``axis``.
      target: integer class indices, the input's shape without ``axis``.
      gamma: focusing parameter :math:`\gamma \ge 0`.
      weight: optional per-class weights, shape ``(C,)`` (the :math:`\alpha` of the
        paper, per class).
      ignore_index: label value whose items are skipped; None skips none.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      axis: the class axis.
      where: optional boolean mask broadcastable to ``target``.

    Returns:
      A scalar, or per-item losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> # an easy example (p = 0.98) is down-weighted far more than a hard one (p = 0.2)
      >>> logits = jnp.log(jnp.array([[0.98, 0.02], [0.2, 0.8]]))
      >>> jaxlosses.focal_loss(logits, jnp.array([0, 0]), reduction="none").round(6)
      Array([8.00000e-06, 1.03004e+00], dtype=float32)

    References:
      Lin et al., "Focal Loss for Dense Object Detection",
      https://arxiv.org/abs/1708.02002
    """
    inputs, axis = class_inputs("input", input, axis, where)
    x = inputs.x
    lab = class_labels(inputs, target, axis, ignore_index, name="target")
    w = class_weight(weight, inputs.num_classes, x.dtype)
    item_w = lab.item_weight(w, x.dtype)
    log_p = lab.take(stable.log_softmax(x, -1))
    loss = -item_w * stable.focal_log_prob(log_p, jnp.asarray(gamma, x.dtype))
    return finish_class_loss(loss, lab, item_w, inputs.dtype).reduce(reduction)


# --------------------------------------------------------------------------------------
# label_smoothing_loss (the smoothing mass on the other classes only)


@hyperparameters(
    label_smoothing=real(0.0, 1.0), ignore_index=integer(optional=True), reduction=REDUCTION
)
def label_smoothing_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    label_smoothing: float = 0.1,
    ignore_index: int | None = -100,
    reduction: str = "mean",
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Cross-entropy against one-hot labels smoothed over the other classes.

    .. math::
        q_{n,c} = \begin{cases} 1 - s & c = y_n \\ s / (C - 1) & c \ne y_n \end{cases},
        \qquad \ell_n = -\sum_c q_{n,c} \log \mathrm{softmax}(x_n)_c

    with :math:`s` = ``label_smoothing``. This differs from :func:`cross_entropy`'s
    ``label_smoothing`` (PyTorch's), which gives every class :math:`\varepsilon / C`,
    the target included: ``label_smoothing_loss(x, y, label_smoothing=s)`` equals
    ``cross_entropy(x, y, label_smoothing=s * C / (C - 1))``. ``"mean"`` averages the
    kept items.

    Autodiff: the ``custom_jvp`` rule of :func:`cross_entropy` (forward and reverse
    mode, any order).

    Args:
      input: logits (unnormalised scores) with the class axis ``axis``; ``C >= 2``.
      target: integer class indices in ``[0, C)``, the input's shape without ``axis``.
      label_smoothing: :math:`s \in [0, 1]`, the mass moved off the target.
      ignore_index: label value whose items are skipped (loss 0, not in the mean);
        None skips none.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      axis: the class axis.
      where: optional boolean mask broadcastable to ``target``.

    Returns:
      A scalar, or per-item losses for ``reduction="none"``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> x = jnp.zeros(3)
      >>> jaxlosses.label_smoothing_loss(x, jnp.array(0), label_smoothing=0.2).round(4)
      Array(1.0986, dtype=float32)

    References:
      Müller et al., "When Does Label Smoothing Help?", https://arxiv.org/abs/1906.02629
    """
    inputs, axis = class_inputs("input", input, axis, where)
    x, num_classes = inputs.x, inputs.num_classes
    if num_classes < 2:
        raise ValueError(
            "label_smoothing_loss spreads label_smoothing / (C - 1) over the other classes "
            f"and needs C >= 2 classes, got C={num_classes} (input.shape={jnp.shape(input)})"
        )
    lab = class_labels(inputs, target, axis, ignore_index, name="target")
    # (1 - s) on the target and s / (C - 1) elsewhere is a target weight of
    # 1 - s C / (C - 1) plus s / (C - 1) on every class.
    s = jnp.asarray(label_smoothing, x.dtype)
    kept = lab.kept.astype(x.dtype)
    off = s / (num_classes - 1)
    loss = stable.label_cross_entropy(x, lab.safe, (1 - s - off) * kept, off * kept)
    return finish_class_loss(loss, lab, kept, inputs.dtype).reduce(reduction)
