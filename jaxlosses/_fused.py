"""Fused linear layer + softmax cross-entropy that never builds the ``N x C`` logits.

``linear_cross_entropy(input, linear_weight, target)`` equals ``cross_entropy`` of
``input @ linear_weight.T + linear_bias`` (PyTorch's ``F.linear_cross_entropy``), computed
by the chunked engine of :mod:`jaxlosses._core.chunked` a chunk of tokens (and, on request,
a block of classes) at a time. The cross-entropy is a function of per-token softmax
statistics (log-sum-exp, label score, weighted sums of the logits), written once in
:func:`cross_entropy_from_statistics`, which the vocabulary-parallel losses of
:mod:`jaxlosses.sharded` share.

Two kernels: scalar reductions (``"mean"``, ``"sum"``) over whole rows compute the
gradients in the forward pass (:func:`~jaxlosses._core.chunked.linear_softmax_loss`,
three GEMMs per step like the naive path); everything else keeps per-token statistics and
recomputes each block of logits in the backward pass
(:func:`~jaxlosses._core.chunked.linear_softmax_statistics`, four GEMMs).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxlosses._core import checks, chunked
from jaxlosses._core.checks import REDUCTION, hyperparameters, integer, real
from jaxlosses._core.chunked import LinearHead, SoftmaxReads, SoftmaxStats, SoftmaxTerms
from jaxlosses._core.classes import ClassShape, class_labels, class_weight
from jaxlosses._core.reduction import Unreduced, compute_dtype, safe_divide
from jaxlosses._core.sharding import explicit_spec, vary_together

__all__ = ["linear_cross_entropy", "linear_logsumexp"]


# --------------------------------------------------------------------------------------
# The cross-entropy of one token from its softmax statistics


def cross_entropy_from_statistics(
    stats: SoftmaxStats,
    *,
    target_weight: jax.Array | None,
    num_classes: int,
    label_smoothing: jax.Array | None,
    z_loss: jax.Array | None,
    item_weight: jax.Array | None,
) -> jax.Array:
    r"""Each token's cross-entropy (+ z-loss) from its :class:`SoftmaxStats`.

    With logits :math:`s` over :math:`C` classes, class weights :math:`w`, the target
    :math:`t` (a one-hot label, or probabilities), label smoothing :math:`\varepsilon` and
    :math:`F` the classes whose logit is not ``-inf``,

    .. math::
        \ell = (1 - \varepsilon) \sum_c w_c t_c (\mathrm{lse} - s_c)
             + \frac{\varepsilon}{C} \sum_{c \in F} w_c (\mathrm{lse} - s_c)
             + \lambda_z\, \omega\, \mathrm{lse}^2

    where :math:`\omega` is the token's weight in the mean (``item_weight``:
    :math:`w_y` for a label, 1 for probabilities). Every term is formed from the shifted
    statistics, so the cross-entropy is exactly shift-invariant (a bias of ``1e7`` on
    every class changes nothing); only the z-loss reads the absolute log-sum-exp.

    Args:
      stats: with ``label`` (class indices) or ``dense`` and ``target_mass``
        (probabilities, already weighted by :math:`w`), and ``column_sum`` /
        ``column_mass`` when smoothing.
      target_weight: :math:`w_y` per token (0 for a dropped token), with ``label``.
      num_classes: :math:`C`, the whole vocabulary.
      label_smoothing: :math:`\varepsilon`, or None (statically 0).
      z_loss: :math:`\lambda_z`, or None (statically 0).
      item_weight: :math:`\omega`, with ``z_loss``.
    """
    if stats.label is not None:
        assert target_weight is not None
        loss = target_weight * (stats.lse - stats.label)
    else:
        assert stats.target_mass is not None and stats.dense is not None
        loss = stats.target_mass * stats.lse - stats.dense
    if label_smoothing is not None:
        assert stats.column_mass is not None and stats.column_sum is not None
        eps = label_smoothing
        uniform = stats.column_mass * stats.lse - stats.column_sum
        loss = (1 - eps) * loss + eps / num_classes * uniform
    if z_loss is not None:
        assert item_weight is not None
        loss = loss + z_loss * item_weight * jnp.square(stats.absolute_lse())
    return loss


# --------------------------------------------------------------------------------------
# Validated inputs, flattened to tokens x positions


class LinearInputs(NamedTuple):
    """A fused loss's validated inputs: tokens flattened, positions of a K-dimensional
    loss (``linear_weight`` of shape ``(C, d1, ..., dk, H)``) flattened to ``D``.

    Attributes:
      x: ``(N, H)`` in the promoted dtype of the input and the weight.
      w: ``(D, C, H)``, the same dtype (position-major).
      b: ``(D, C)`` or None.
      class_weight: ``(C,)`` in the compute dtype, or None.
      labels: ``(N, D)`` labels made safe (0 where dropped or out of range), or None.
      targets: ``(D, N, C)`` probabilities in the compute dtype, or None.
      kept: ``(N, D)`` items that count (not ``ignore_index``, ``where`` True).
      out_of_range: ``(N, D)`` kept labels outside ``[0, shards * C)``, or None.
      dtype: the result's dtype.
      batch_shape: the input's shape without ``H``.
      item_shape: the unreduced loss's shape: ``batch_shape + (d1, ..., dk)``.
    """

    x: jax.Array
    w: jax.Array
    b: jax.Array | None
    class_weight: jax.Array | None
    labels: jax.Array | None
    targets: jax.Array | None
    kept: jax.Array
    out_of_range: jax.Array | None
    dtype: jnp.dtype
    batch_shape: tuple[int, ...]
    item_shape: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return self.w.shape[1]

    @property
    def positions(self) -> int:
        return self.w.shape[0]

    def head(self, position: int = 0, softcap=None) -> LinearHead:
        b = None if self.b is None else self.b[position]
        return LinearHead(self.w[position], b, softcap)


def prepare_linear_inputs(
    input,
    linear_weight,
    target,
    *,
    linear_bias=None,
    weight=None,
    ignore_index: int | None = -100,
    where=None,
    shards: int = 1,
) -> LinearInputs:
    """Validates a fused cross-entropy's inputs at trace time (shapes, dtypes) and flattens.

    ``linear_weight`` holds ``C`` classes, one of ``shards`` equal slices of the
    vocabulary (vocabulary-parallel losses): integer targets must lie in
    ``[0, shards * C)``; a floating target is this slice of the probabilities.
    """
    x = checks.as_float_array("input", input)
    w = checks.as_float_array("linear_weight", linear_weight)
    b = None if linear_bias is None else checks.as_float_array("linear_bias", linear_bias)
    if x.ndim < 1:
        raise ValueError(f"input must have a last axis of features (H), got shape {x.shape}")
    if w.ndim < 2:
        raise ValueError(
            "linear_weight must have shape (C, H) or (C, d1, ..., dk, H) (PyTorch's "
            f"layout), got linear_weight.shape={w.shape}"
        )
    if x.shape[-1] != w.shape[-1]:
        raise ValueError(
            "input.shape[-1] must equal linear_weight.shape[-1] (the features H): got "
            f"input.shape={x.shape} and linear_weight.shape={w.shape}"
        )
    num_classes, out, hidden = w.shape[0], w.shape[1:-1], w.shape[-1]
    if b is not None and b.shape != w.shape[:-1]:
        raise ValueError(
            f"linear_bias must have shape {w.shape[:-1]} (linear_weight.shape[:-1]) for "
            f"linear_weight.shape={w.shape}, got linear_bias.shape={b.shape}"
        )
    dtype = jnp.result_type(*(a for a in (x, w, b) if a is not None))
    acc = compute_dtype(dtype)
    batch_shape = x.shape[:-1]
    item_shape = batch_shape + out
    n, d = math.prod(batch_shape), math.prod(out)
    # Mixed input and weight dtypes compute like ``input @ linear_weight.T``: promoted.
    x = x.astype(dtype).reshape(n, hidden)
    w = jnp.moveaxis(w.astype(dtype).reshape(num_classes, d, hidden), 1, 0)
    b = None if b is None else b.reshape(num_classes, d).T
    cw = class_weight(weight, num_classes, acc)
    mask = checks.as_where(where, item_shape)

    target = jnp.asarray(target)
    logits_shape = batch_shape + (num_classes,) + out
    if jnp.issubdtype(target.dtype, jnp.integer):
        if target.shape != item_shape:
            raise ValueError(
                "integer class indices must have the shape input.shape[:-1] + "
                f"linear_weight.shape[1:-1] = {item_shape}, got target.shape={target.shape} "
                f"(input.shape={jnp.shape(input)}, linear_weight.shape={jnp.shape(linear_weight)})"
            )
        inputs = ClassShape(item_shape, num_classes, mask)
        lab = class_labels(
            inputs, target, -1, ignore_index, name="target", num_classes=shards * num_classes
        )
        return LinearInputs(
            x, w, b, cw, lab.safe.reshape(n, d), None, lab.kept.reshape(n, d),
            lab.out_of_range.reshape(n, d), dtype, batch_shape, item_shape,
        )  # fmt: skip
    if not jnp.issubdtype(target.dtype, jnp.floating):
        raise TypeError(
            "target must be integer class indices or floating class probabilities, got "
            f"dtype {target.dtype} (shape {target.shape})"
        )
    if target.shape != logits_shape:
        hint = " (for class indices, pass an integer dtype)" if target.shape == item_shape else ""
        raise ValueError(
            "a floating target holds class probabilities and must have the logits' shape "
            f"{logits_shape} (input.shape[:-1] + linear_weight.shape[:-1]): got "
            f"target.shape={target.shape}{hint}"
        )
    t = target.astype(acc).reshape(n, num_classes, d)
    kept = jnp.ones((n, d), bool) if mask is None else mask.reshape(n, d)
    return LinearInputs(
        x, w, b, cw, None, jnp.moveaxis(t, 2, 0), kept, None, dtype, batch_shape, item_shape
    )


def _static_or_none(value, dtype):
    """The hyperparameter as a constant array, or None when it is statically 0."""
    v = checks.concrete_scalar(value)
    if v is not None and v == 0:
        return None
    return lax.stop_gradient(jnp.asarray(value, dtype))


# --------------------------------------------------------------------------------------
# linear_cross_entropy


def _item_weights(inp: LinearInputs, acc) -> tuple[jax.Array, jax.Array]:
    """Each item's weight in its loss and in the mean's denominator.

    The loss's: :math:`w_y` for a kept label in range (0 for an out-of-range one, whose
    loss is nan), 1 for kept probabilities, 0 for a dropped item. The denominator's is
    :func:`jaxlosses.cross_entropy`'s (an out-of-range label counts as class 0's weight),
    so the gradients of the other items match its.
    """
    if inp.labels is None:
        kept = inp.kept.astype(acc)
        return kept, kept
    assert inp.out_of_range is not None  # given with the labels
    w_y = 1.0 if inp.class_weight is None else inp.class_weight[inp.labels]
    denominator = jnp.where(inp.kept, w_y, 0.0).astype(acc)
    counted = inp.kept & ~inp.out_of_range
    return jnp.where(counted, denominator, 0.0), denominator


def _positions(inp: LinearInputs):
    """Per-position arrays (scanned over the D positions): weight, bias, labels, targets."""
    labels = None if inp.labels is None else inp.labels.T
    return inp.w, inp.b, labels, inp.targets


def _statistics(inp: LinearInputs, cap, plan, reads) -> SoftmaxStats:
    """The statistics of every item, ``(N, D)``, by recomputation (any cotangent)."""

    def one(w, b, labels, targets):
        terms = SoftmaxTerms(labels, targets)
        head = LinearHead(w, b, cap)
        return chunked.linear_softmax_statistics(
            head, inp.x, terms, plan=plan, weights=inp.class_weight, reads=reads
        )

    if inp.positions == 1:
        stats = one(*(None if a is None else a[0] for a in _positions(inp)))
        return jax.tree.map(lambda a: a[:, None], stats)
    stats = lax.map(lambda args: one(*args), _positions(inp))
    return jax.tree.map(lambda a: a.T, stats)


def _hyper(inp: LinearInputs, label_smoothing, z_loss, logit_softcap):
    acc = compute_dtype(inp.dtype)
    eps = _static_or_none(label_smoothing, acc)
    zl = _static_or_none(z_loss, acc)
    cap = None if logit_softcap is None else lax.stop_gradient(jnp.asarray(logit_softcap, acc))
    return eps, zl, cap


def _row_loss(num_classes):
    """``loss(stats, (target_weight, item_weight), (label_smoothing, z_loss))``: each
    item's cross-entropy (hyperparameters None when statically 0)."""

    def loss(stats, weights, hyper):
        (target_weight, item_weight), (eps, zl) = weights, hyper
        return cross_entropy_from_statistics(
            stats, target_weight=target_weight, num_classes=num_classes,
            label_smoothing=eps, z_loss=zl, item_weight=item_weight,
        )  # fmt: skip

    return loss


def _linear_cross_entropy(
    input, linear_weight, target, *, linear_bias, weight, ignore_index, label_smoothing,
    z_loss, logit_softcap, reduction, chunk_size, where, path=None,
):  # fmt: skip
    """``linear_cross_entropy`` after the declared hyperparameters are validated.

    ``path`` forces ``"forward_gradients"`` or ``"recompute"`` (None picks the first for
    scalar reductions over whole rows of one position).
    """
    token_spec = explicit_spec(jnp.asarray(input))[:-1]
    if any(s is not None for s in token_spec):
        return _over_token_shards(
            token_spec, input, linear_weight, target, linear_bias=linear_bias,
            weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing,
            z_loss=z_loss, logit_softcap=logit_softcap, reduction=reduction,
            chunk_size=chunk_size, where=where,
        )  # fmt: skip
    inp = prepare_linear_inputs(
        input, linear_weight, target, linear_bias=linear_bias, weight=weight,
        ignore_index=ignore_index, where=where,
    )  # fmt: skip
    acc = compute_dtype(inp.dtype)
    eps, zl, cap = _hyper(inp, label_smoothing, z_loss, logit_softcap)
    num_classes, hidden = inp.num_classes, inp.x.shape[1]
    plan = chunked.make_plan(inp.x.shape[0], num_classes, hidden, chunk_size)
    reads = SoftmaxReads(column_sum=eps is not None)
    item_w, denominator = _item_weights(inp, acc)
    target_w = None if inp.labels is None else item_w
    loss_of = _row_loss(num_classes)
    scalar = reduction in ("mean", "sum")
    if path is None:
        path = "forward_gradients" if scalar and plan.whole_rows and inp.positions == 1 else ""
    if path == "forward_gradients":
        if not scalar or inp.positions != 1:
            raise ValueError("the forward-gradient path needs a scalar reduction, one position")
        # Each item's loss carries its weight (w_y for labels): "mean" divides by their sum.
        counted = (item_w != 0).astype(acc)
        scale = counted if reduction == "sum" else safe_divide(counted, jnp.sum(denominator))

        def row_loss(stats, data, hyper):
            *weights, token_scale = data
            return token_scale * loss_of(stats, weights, hyper)

        head = inp.head(0, cap)
        _, _, labels, targets = (None if a is None else a[0] for a in _positions(inp))
        tw = None if target_w is None else target_w[:, 0]
        loss = chunked.linear_softmax_loss(
            row_loss, head, inp.x, SoftmaxTerms(labels, targets),
            (tw, item_w[:, 0], scale[:, 0]), (eps, zl), plan=plan,
            weights=inp.class_weight, reads=reads,
        )  # fmt: skip
        if inp.out_of_range is not None:
            # A kept label outside [0, C) makes the loss nan, like cross_entropy.
            loss = loss + jnp.where(jnp.any(inp.out_of_range), jnp.nan, 0.0).astype(acc)
        return loss.astype(inp.dtype)

    stats = _statistics(inp, cap, plan, reads)
    per = loss_of(stats, (target_w, item_w), (eps, zl))
    per = jnp.where(inp.kept, per, jnp.zeros_like(per))
    if inp.out_of_range is not None:
        per = jnp.where(inp.out_of_range, jnp.full_like(per, jnp.nan), per)
    shape = inp.item_shape
    # probabilities: the mean is over the kept items
    item_denominator = None if inp.labels is None else denominator.reshape(shape)
    unreduced = Unreduced(per.reshape(shape), inp.kept.reshape(shape), item_denominator, inp.dtype)
    return unreduced.reduce(reduction)


def _over_token_shards(token_spec, input, linear_weight, target, *, reduction, where,
                       **options):  # fmt: skip
    """``linear_cross_entropy`` of tokens explicitly sharded over mesh axes.

    A ``lax.scan`` over token chunks cannot split its chunks over devices, so each device
    runs the fused loss on its own tokens (``shard_map`` over the tokens' axes, the
    weights replicated there) and the sums (and the mean's denominator) are added with
    one ``psum``: the input gradient stays local and the weight gradient is one
    all-reduce, as for ``cross_entropy`` of ``input @ linear_weight.T``. ``token_spec``:
    the mesh axes of each batch dimension of ``input``.
    """
    from jax.sharding import PartitionSpec as P

    # Validated on the global shapes (abstract, unsharded: flattening sharded dimensions
    # would need an explicit output sharding), then run on each device's tokens.
    abstract = [
        None if a is None else jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a))
        for a in (input, linear_weight, target, options["linear_bias"], options["weight"])
    ]
    mask_shape = None if where is None else jax.ShapeDtypeStruct(jnp.shape(where), jnp.bool_)
    jax.eval_shape(
        lambda x, w, y, b, cw, m: (
            prepare_linear_inputs(
                x, w, y, linear_bias=b, weight=cw, where=m, ignore_index=options["ignore_index"]
            ).x
        ),
        *abstract,
        mask_shape,
    )
    mesh = jax.typeof(jnp.asarray(input)).sharding.mesh
    axes = tuple(
        a for s in token_spec if s is not None for a in (s if isinstance(s, tuple) else (s,))
    )
    item_shape = jnp.shape(input)[:-1] + jnp.shape(linear_weight)[1:-1]
    items = P(*token_spec, *((None,) * (len(item_shape) - len(token_spec))))
    target = jnp.asarray(target)
    t_spec = P(*token_spec, *((None,) * (target.ndim - len(token_spec))))
    x = jax.sharding.reshard(jnp.asarray(input), P(*token_spec, None))
    y = jax.sharding.reshard(target, t_spec)
    mask = checks.as_where(where, item_shape)
    mask = None if mask is None else jax.sharding.reshard(mask, items)
    b, cw = options.pop("linear_bias"), options.pop("weight")
    b = None if b is None else jax.sharding.reshard(jnp.asarray(b), P())
    cw = None if cw is None else jax.sharding.reshard(jnp.asarray(cw), P())
    w = jax.sharding.reshard(jnp.asarray(linear_weight), P())
    local_reduction = "none" if reduction == "none" else "sum"

    def local(x, w, b, cw, y, mask):
        # The weights typed as varying over the token axes: each device's gradient is
        # its tokens' share, and the cast's transpose (a psum) adds them.
        x, w, b, cw, y, mask = vary_together([x, w, b, cw, y, mask], axes)
        loss = _linear_cross_entropy(
            x, w, y, linear_bias=b, weight=cw, where=mask, reduction=local_reduction,
            **options,
        )  # fmt: skip
        if reduction == "none":
            return loss, None
        inp = prepare_linear_inputs(
            x, w, y, linear_bias=b, weight=cw, where=mask, ignore_index=options["ignore_index"]
        )  # fmt: skip
        denominator = jnp.sum(_item_weights(inp, loss.dtype)[1], dtype=loss.dtype)
        return tuple(jax.lax.psum(jnp.stack([loss, denominator]), axes))

    spec_or_none = lambda a, s: None if a is None else s  # noqa: E731
    loss, denominator = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(*token_spec, None), P(), spec_or_none(b, P()), spec_or_none(cw, P()),
                  t_spec, spec_or_none(mask, items)),
        out_specs=(items, None) if reduction == "none" else (P(), P()),
        axis_names=set(axes),
    )(x, w, b, cw, y, mask)  # fmt: skip
    if reduction == "mean":
        loss = safe_divide(loss, denominator).astype(loss.dtype)
    return loss


@hyperparameters(
    ignore_index=integer(optional=True),
    label_smoothing=real(0.0, 1.0),
    z_loss=real(0.0),
    logit_softcap=real(0.0, low_open=True, optional=True),
    reduction=REDUCTION,
    chunk_size=chunked.CHUNK_SIZE,
)
def linear_cross_entropy(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    logit_softcap: float | None = None,
    reduction: str = "mean",
    chunk_size: int | tuple[int, int] | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Cross-entropy of a linear layer's logits, without materialising the logits.

    PyTorch's ``torch.nn.functional.linear_cross_entropy``: it equals
    ``cross_entropy(input @ linear_weight.T + linear_bias, target, weight=weight, ...)`` in
    value and in its gradients with respect to ``input``, ``linear_weight``,
    ``linear_bias`` and soft targets, but only one ``chunk x C`` block of logits exists at
    a time, so the memory of the ``N x C`` logits and of their gradient (the largest
    buffers of a language model's training step) is never used. With the soft-capped
    logits :math:`s = c \tanh((x W^\top + b) / c)` (identity without ``logit_softcap``),
    :math:`\mathrm{lse} = \log \sum_c e^{s_c}`, class weights :math:`w`, the target
    :math:`t` (one-hot label or probabilities) and :math:`F` the classes whose logit is not
    ``-inf`` (a ``-inf`` bias masks a class), each kept item's loss is

    .. math::
        \ell = (1 - \varepsilon) \sum_c w_c t_c (\mathrm{lse} - s_c)
             + \frac{\varepsilon}{C} \sum_{c \in F} w_c (\mathrm{lse} - s_c)
             + \lambda_z\, \omega\, \mathrm{lse}^2

    (PyTorch's label smoothing, :math:`\varepsilon / C` on every class, plus PaLM's
    z-loss) with :math:`\omega` the item's weight in the mean: :math:`w_y` for class
    indices (``"mean"`` divides by :math:`\sum w_{y_n}`, PyTorch's weighted mean, so the
    z-loss is averaged with the same weights as the cross-entropy), 1 for probabilities
    (``"mean"`` divides by the number of items). :func:`jaxlosses.cross_entropy` and the
    vocabulary-parallel losses
    (:func:`jaxlosses.sharded.vocab_parallel_cross_entropy` and its kin) use the same definition.

    Shapes (PyTorch's, with any batch shape ``B`` instead of ``N``): ``input`` ``(*B, H)``
    (an unbatched ``(H,)`` too); ``linear_weight`` ``(C, H)``, or ``(C, d1, ..., dk, H)``
    for a K-dimensional loss (``torch.nn.LinearCrossEntropyLoss(out_features=...)``:
    logits of shape ``(*B, C, d1, ..., dk)``); ``target`` integer ``(*B, d1, ..., dk)`` or
    floating probabilities of the logits' shape.

    How: the tokens are processed in chunks of ``chunk_size`` (a ``lax.scan``) with a
    float32 log-sum-exp. For ``"mean"`` and ``"sum"`` the gradients are computed in the
    forward pass (the gradient of a scalar is known up to the upstream factor), so a
    training step costs three GEMMs like the naive path; ``"none"``, vocabulary chunks
    and K-dimensional losses keep per-token statistics and recompute each block of logits
    in the backward pass (four GEMMs). No residual is ``N x C``. 16-bit inputs and
    weights multiply in their own dtype with float32 accumulation (the weight is never
    copied to float32; its gradient is accumulated in float32 and returned in the weight's
    dtype). Every term is computed from logits shifted by their max, so the loss is exactly
    invariant to adding a constant to every logit; only ``-inf`` masks a class.

    Reverse mode only (a ``jax.custom_vjp`` that never builds the ``N x C`` logits):
    ``jax.grad``, ``jax.vjp`` and ``jax.jacrev`` work, and so do second derivatives built
    on them (``jax.hessian``, a gradient of a gradient), since the backward pass is plain
    JAX. Forward mode (``jax.jvp``, ``jax.jacfwd``) raises JAX's ``TypeError`` "can't
    apply forward-mode autodiff (jvp) to a custom_vjp function"; use
    ``cross_entropy(input @ linear_weight.T + linear_bias, target, ...)`` there.
    Hyperparameters and class weights are not differentiated. Works under ``jax.jit``
    and ``jax.vmap``.

    Several devices: with the tokens of ``input`` explicitly sharded (a mesh of
    ``AxisType.Explicit`` axes, ``jax.make_mesh``'s default, under ``jax.set_mesh``),
    each device runs the loss on its own tokens and the sums are added: no activation
    is gathered, and the weight's gradient is one all-reduce, as for the naive path. On
    ``AxisType.Auto`` axes the compiler cannot split the chunk loop and gathers the
    tokens on every device (correct, but every device computes every token): use
    explicit axes, or call it inside ``shard_map`` on each device's tokens. With the
    weight split over the vocabulary, use
    :func:`jaxlosses.sharded.vocab_parallel_linear_cross_entropy`.

    Args:
      input: features, ``(*B, H)`` (e.g. ``(B, T, H)``), or ``(H,)``.
      linear_weight: the output layer's weight, ``(C, H)`` (PyTorch's layout; a Flax
        ``Dense`` kernel of shape ``(H, C)`` is ``kernel.T``) or ``(C, d1, ..., dk, H)``.
      target: integer class indices of shape ``(*B, d1, ..., dk)``, or floating class
        probabilities of the logits' shape ``(*B, C, d1, ..., dk)``.
      linear_bias: optional bias, ``linear_weight.shape[:-1]``; a ``-inf`` entry masks
        its class (no label-smoothing mass, zero gradient).
      weight: optional class weights, shape ``(C,)`` (PyTorch's ``weight``).
      ignore_index: label value whose items are skipped (class indices only: loss 0, not
        in the mean); None skips none.
      label_smoothing: :math:`\varepsilon \in [0, 1]`.
      z_loss: :math:`\lambda_z \ge 0`, the weight of :math:`\mathrm{lse}^2`
        (e.g. ``1e-4``).
      logit_softcap: :math:`c > 0` to apply :math:`c \tanh(\cdot / c)` to the logits
        (Gemma 2 uses 30), or None.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      chunk_size: tokens per chunk, or a ``(tokens, classes)`` pair to also split the
        vocabulary (for vocabularies so large that even a few rows of logits do not fit;
        costs a fourth GEMM). Sizes need not divide ``N`` or ``C``. ``None`` picks the
        largest power of two ``T <= N / 8`` with ``T * C <= 2**24`` on CPU (a 64 MiB
        float32 block of logits; ``2**28`` on GPU/TPU), within ``[16, 1024]`` on CPU
        (``[16, 8192]`` elsewhere).
      where: optional boolean mask broadcastable to the unreduced loss's shape
        (optax's convention); False items are skipped like ``ignore_index`` (loss 0, not
        in the mean, no gradient).

    Returns:
      The loss: a scalar, or per-item losses of shape ``(*B, d1, ..., dk)`` for
      ``reduction="none"``, in the promoted dtype of ``input`` and ``linear_weight``. A
      mean over no kept item is 0 with zero gradient (PyTorch: nan); a kept label outside
      ``[0, C)`` gives nan. Each token's log-sum-exp is :func:`linear_logsumexp`.

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
    return _linear_cross_entropy(
        input,
        linear_weight,
        target,
        linear_bias=linear_bias,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        logit_softcap=logit_softcap,
        reduction=reduction,
        chunk_size=chunk_size,
        where=where,
    )


# --------------------------------------------------------------------------------------
# linear_logsumexp


@hyperparameters(
    logit_softcap=real(0.0, low_open=True, optional=True), chunk_size=chunked.CHUNK_SIZE
)
def linear_logsumexp(
    input: ArrayLike,
    linear_weight: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    logit_softcap: float | None = None,
    chunk_size: int | tuple[int, int] | None = None,
) -> jax.Array:
    r"""Each token's log-sum-exp of a linear layer's logits, without materialising them.

    .. math::
        \mathrm{lse}(x) = \log \sum_c e^{s_c}, \qquad
        s = c \tanh((x W^\top + b) / c)

    (identity without ``logit_softcap``): the log-partition function that
    :func:`linear_cross_entropy`'s z-loss squares, e.g. to monitor it. Computed by the
    same chunks (one ``chunk x C`` block of logits at a time); differentiable in reverse
    mode with respect to ``input``, ``linear_weight`` and ``linear_bias`` (its gradient is
    the softmax, recomputed block by block), not in forward mode (a ``jax.custom_vjp``).

    Args:
      input: features, ``(*B, H)`` or ``(H,)``.
      linear_weight: ``(C, H)`` or ``(C, d1, ..., dk, H)``, as for
        :func:`linear_cross_entropy`.
      linear_bias: optional bias, ``linear_weight.shape[:-1]``.
      logit_softcap: :math:`c > 0`, or None.
      chunk_size: tokens per chunk, or a ``(tokens, classes)`` pair, as for
        :func:`linear_cross_entropy`.

    Returns:
      The log-sum-exp of shape ``(*B, d1, ..., dk)`` in the promoted dtype of ``input``
      and ``linear_weight``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxlosses
      >>> x = jax.random.normal(jax.random.key(0), (6, 4))
      >>> w = jax.random.normal(jax.random.key(1), (10, 4))
      >>> lse = jaxlosses.linear_logsumexp(x, w, chunk_size=4)
      >>> bool(jnp.allclose(lse, jax.nn.logsumexp(x @ w.T, axis=-1), rtol=1e-6))
      True

    References:
      Chowdhery et al., "PaLM" (z-loss), https://arxiv.org/abs/2204.02311
    """
    x = checks.as_float_array("input", input)
    w = checks.as_float_array("linear_weight", linear_weight)
    token_spec = explicit_spec(x)[:-1]
    if any(s is not None for s in token_spec):
        return _logsumexp_over_token_shards(
            token_spec, x, w, linear_bias=linear_bias, logit_softcap=logit_softcap,
            chunk_size=chunk_size,
        )  # fmt: skip
    labels = jnp.zeros(x.shape[:-1] + w.shape[1:-1], jnp.int32)
    inp = prepare_linear_inputs(x, w, labels, linear_bias=linear_bias, ignore_index=None)
    _, _, cap = _hyper(inp, 0.0, 0.0, logit_softcap)
    plan = chunked.make_plan(inp.x.shape[0], inp.num_classes, inp.x.shape[1], chunk_size)
    stats = _statistics(inp._replace(labels=None), cap, plan, SoftmaxReads())
    return stats.absolute_lse().reshape(inp.item_shape).astype(inp.dtype)


def _logsumexp_over_token_shards(token_spec, x, w, *, linear_bias, **options):
    """:func:`linear_logsumexp` of tokens explicitly sharded over mesh axes: each device
    computes its own tokens' (see :func:`_over_token_shards`)."""
    from jax.sharding import PartitionSpec as P

    mesh = jax.typeof(x).sharding.mesh
    axes = tuple(
        a for s in token_spec if s is not None for a in (s if isinstance(s, tuple) else (s,))
    )
    out = P(*token_spec, *((None,) * (w.ndim - 2)))
    b = None if linear_bias is None else jax.sharding.reshard(jnp.asarray(linear_bias), P())

    def local(x, w, b):
        x, w, b = vary_together([x, w, b], axes)
        return linear_logsumexp(x, w, linear_bias=b, **options)

    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(*token_spec, None), P(), None if b is None else P()),
        out_specs=out,
        axis_names=set(axes),
    )(jax.sharding.reshard(x, P(*token_spec, None)), jax.sharding.reshard(w, P()), b)
