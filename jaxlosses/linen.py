"""``flax.linen`` modules for the losses, with PyTorch's names, for linen codebases.

The same modules as ``jaxlosses.nnx``, each one's linen twin. A module's dataclass
fields are its loss function's keyword arguments, with the same names and defaults, and
``loss.apply(variables, input, target, where=None)`` is exactly the function's value.

Array hyperparameters (a class ``weight``, ``pos_weight``) are **variables in the**
``"loss_hyperparameters"`` **collection** (``linen.HYPERPARAMETERS``), not ``"params"``:
``init`` stores the field's value there, the variables dict (and so a checkpoint)
carries it, an optimizer over ``variables["params"]`` never sees it, and a new value
needs no recompilation. ``apply`` reads the collection when it is given and falls back
to the field's value when it is not (``loss.apply({}, ...)`` works). Scalar and string
hyperparameters (``reduction``, ``gamma``, ...) are plain fields, static.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxlosses import linen
  >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
  >>> labels = jnp.array([0, 2])
  >>> loss = linen.CrossEntropyLoss(weight=jnp.array([1.0, 2.0, 0.5]), label_smoothing=0.1)
  >>> variables = loss.init(jax.random.key(0), logits, labels)
  >>> jax.tree.map(jnp.shape, variables)
  {'loss_hyperparameters': {'weight': (3,)}}
  >>> round(float(loss.apply(variables, logits, labels)), 4)
  0.651
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses import (
    _binary,
    _contrastive,
    _divergence,
    _fused,
    _margin,
    _metric,
    _multiclass,
    _multilabel,
    _overlap,
    _regression,
    _sequence,
)
from jaxlosses._core import checks
from jaxlosses._core.modules import CALL_ARGUMENTS, LearnedInput, LossSpec, check_call, loss_spec

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CTCLoss",
    "ClipLoss",
    "CosineEmbeddingLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "F1Loss",
    "FocalLoss",
    "GaussianNLLLoss",
    "HingeEmbeddingLoss",
    "HuberLoss",
    "InfoNceLoss",
    "KLDivLoss",
    "L1Loss",
    "LabelSmoothingLoss",
    "LinearCrossEntropyLoss",
    "Loss",
    "MSELoss",
    "MarginRankingLoss",
    "MultiLabelMarginLoss",
    "MultiLabelSoftMarginLoss",
    "MultiMarginLoss",
    "NLLLoss",
    "PoissonNLLLoss",
    "SiglipLoss",
    "SigmoidFocalLoss",
    "SmoothL1Loss",
    "SoftMarginLoss",
    "SupervisedContrastiveLoss",
    "TripletMarginLoss",
    "TripletMarginWithDistanceLoss",
]

HYPERPARAMETERS = "loss_hyperparameters"
"""The variable collection that holds the array hyperparameters."""


class Loss(nn.Module):
    """Base of the linen loss modules: one dataclass field per hyperparameter of ``fn``.

    A subclass names its function, ``class MyLoss(Loss, fn=my_loss): ...``; the fields
    are read from ``my_loss``'s keyword-only arguments (``where`` excepted, and any
    other argument named in ``call_arguments=(...)``, passed at each call), validated
    against the ranges the function declares when the module is built. It is called with
    the function's positional inputs and the call arguments.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> def weighted_l1(preds, targets, *, weight=None, where=None):
      ...     loss = jnp.abs(preds - targets) * (1.0 if weight is None else weight)
      ...     return jnp.mean(loss if where is None else jnp.where(where, loss, 0.0))
      >>> class WeightedL1Loss(linen.Loss, fn=weighted_l1):
      ...     'Weighted L1 loss.'
      >>> loss = WeightedL1Loss(weight=jnp.array([1.0, 3.0]))
      >>> preds, targets = jnp.array([0.5, 2.0]), jnp.array([1.0, 1.0])
      >>> variables = loss.init(jax.random.key(0), preds, targets)
      >>> variables["loss_hyperparameters"]["weight"]
      Array([1., 3.], dtype=float32)
      >>> float(loss.apply(variables, preds, targets))
      1.75
    """

    fn: ClassVar[Callable[..., jax.Array]]
    spec: ClassVar[LossSpec]

    def __init_subclass__(
        cls,
        *,
        fn: Callable[..., jax.Array] | None = None,
        call_arguments: tuple[str, ...] = CALL_ARGUMENTS,
        learned: Mapping[str, LearnedInput] | None = None,
        **kwargs,
    ):
        if fn is not None:
            cls.fn = staticmethod(fn)
            cls.spec = loss_spec(fn, call_arguments, learned)
            # The fields, declared before linen turns the class into a dataclass
            # (required ones first, as dataclasses want); a learned input's initial
            # value is a field too.
            required = [k for k, v in cls.spec.defaults.items() if v is inspect.Parameter.empty]
            optional = {k: v for k, v in cls.spec.defaults.items() if k not in required}
            optional.update({li.init_name: li.init for li in cls.spec.learned.values()})
            # Fields the class body declares (a layer's sizes) come first, in their order.
            own = dict(cls.__dict__.get("__annotations__", {}))
            own_required = {k: a for k, a in own.items() if k not in cls.__dict__}
            own_optional = {k: a for k, a in own.items() if k in cls.__dict__}
            cls.__annotations__ = {
                **own_required,
                **dict.fromkeys(required, Any),
                **own_optional,
                **dict.fromkeys(optional, Any),
            }
            for name, default in optional.items():
                setattr(cls, name, default)
        super().__init_subclass__(**kwargs)

    def hyperparameters(self) -> dict[str, Any]:
        """The keyword arguments ``fn`` is called with; array ones read as variables."""
        values = {}
        for name in self.spec.defaults:
            value = getattr(self, name)
            if self.spec.is_state(name, value) and (
                self.has_variable(HYPERPARAMETERS, name)
                or self.is_mutable_collection(HYPERPARAMETERS)
            ):
                value = self.variable(HYPERPARAMETERS, name, jnp.asarray, value).value
            values[name] = value
        return values

    def __post_init__(self):
        if hasattr(type(self), "spec"):
            given = {name: getattr(self, name) for name in self.spec.defaults}
            checks.validate_hyperparameters(self.fn, given)
        super().__post_init__()

    @nn.compact
    def __call__(self, *inputs: Any, **call_arguments: Any) -> jax.Array:
        """``fn(*inputs, **call_arguments, **hyperparameters)``.

        ``inputs`` are the function's positional inputs (``input, target`` for most);
        ``call_arguments`` are ``where`` and the module's other call arguments.
        """
        # Typed (*Any, **Any), which any override matches: the inputs are the function's,
        # and a subclass may declare its own (LinearCrossEntropyLoss: input, target).
        check_call(self.spec, type(self).__name__, inputs, call_arguments)
        learned = {}
        for name, li in self.spec.learned.items():
            init = jnp.asarray(getattr(self, li.init_name), jnp.float32)
            learned[name] = li.value(self.param(name, lambda key, v=init: v))
        args = self.spec.arguments(inputs, learned)
        return type(self).fn(*args, **call_arguments, **self.hyperparameters())


class BCELoss(Loss, fn=_binary.binary_cross_entropy):
    """:func:`jaxlosses.binary_cross_entropy` on probabilities (``torch.nn.BCELoss``).

    The linen twin of :class:`jaxlosses.nnx.BCELoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> targets = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
      >>> loss = linen.BCELoss()
      >>> variables = loss.init(jax.random.key(0), jax.nn.sigmoid(logits), targets)
      >>> round(float(loss.apply(variables, jax.nn.sigmoid(logits), targets)), 4)
      0.7685
    """


class BCEWithLogitsLoss(Loss, fn=_binary.binary_cross_entropy_with_logits):
    """:func:`jaxlosses.binary_cross_entropy_with_logits` (``torch.nn.BCEWithLogitsLoss``).

    The linen twin of :class:`jaxlosses.nnx.BCEWithLogitsLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> targets = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
      >>> loss = linen.BCEWithLogitsLoss(pos_weight=jnp.array([1.0, 2.0, 1.0]))
      >>> variables = loss.init(jax.random.key(0), logits, targets)
      >>> round(float(loss.apply(variables, logits, targets)), 4)
      0.8682
    """


class CrossEntropyLoss(Loss, fn=_multiclass.cross_entropy):
    """:func:`jaxlosses.cross_entropy` (``torch.nn.CrossEntropyLoss``).

    The linen twin of :class:`jaxlosses.nnx.CrossEntropyLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> labels = jnp.array([0, 2])
      >>> loss = linen.CrossEntropyLoss(weight=jnp.array([1.0, 2.0, 0.5]), label_smoothing=0.1)
      >>> variables = loss.init(jax.random.key(0), logits, labels)
      >>> round(float(loss.apply(variables, logits, labels)), 4)
      0.651
    """


class NLLLoss(Loss, fn=_multiclass.nll_loss):
    """:func:`jaxlosses.nll_loss` on log-probabilities (``torch.nn.NLLLoss``).

    The linen twin of :class:`jaxlosses.nnx.NLLLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> labels = jnp.array([0, 2])
      >>> loss = linen.NLLLoss(weight=jnp.array([1.0, 2.0, 0.5]))
      >>> variables = loss.init(jax.random.key(0), jax.nn.log_softmax(logits), labels)
      >>> round(float(loss.apply(variables, jax.nn.log_softmax(logits), labels)), 4)
      0.4949
    """


class MultiLabelSoftMarginLoss(Loss, fn=_multilabel.multilabel_soft_margin_loss):
    """:func:`jaxlosses.multilabel_soft_margin_loss` (``torch.nn.MultiLabelSoftMarginLoss``).

    The linen twin of :class:`jaxlosses.nnx.MultiLabelSoftMarginLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> targets = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
      >>> loss = linen.MultiLabelSoftMarginLoss()
      >>> variables = loss.init(jax.random.key(0), logits, targets)
      >>> round(float(loss.apply(variables, logits, targets)), 4)
      0.7685
    """


class FocalLoss(Loss, fn=_multiclass.focal_loss):
    """:func:`jaxlosses.focal_loss`, the softmax focal loss over class indices.

    The linen twin of :class:`jaxlosses.nnx.FocalLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> labels = jnp.array([0, 2])
      >>> loss = linen.FocalLoss(gamma=2.0)
      >>> variables = loss.init(jax.random.key(0), logits, labels)
      >>> round(float(loss.apply(variables, logits, labels)), 4)
      0.2062
    """


class SigmoidFocalLoss(Loss, fn=_binary.sigmoid_focal_loss):
    """:func:`jaxlosses.sigmoid_focal_loss` (``torchvision.ops.sigmoid_focal_loss``).

    The linen twin of :class:`jaxlosses.nnx.SigmoidFocalLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> targets = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
      >>> loss = linen.SigmoidFocalLoss(alpha=0.25, gamma=2.0)
      >>> variables = loss.init(jax.random.key(0), logits, targets)
      >>> round(float(loss.apply(variables, logits, targets)), 4)
      0.1424
    """


class LabelSmoothingLoss(Loss, fn=_multiclass.label_smoothing_loss):
    """:func:`jaxlosses.label_smoothing_loss`, ``s / (C - 1)`` off the target.

    The linen twin of :class:`jaxlosses.nnx.LabelSmoothingLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> labels = jnp.array([0, 2])
      >>> loss = linen.LabelSmoothingLoss(label_smoothing=0.1)
      >>> variables = loss.init(jax.random.key(0), logits, labels)
      >>> round(float(loss.apply(variables, logits, labels)), 4)
      0.7416
    """


class F1Loss(Loss, fn=_overlap.f1_loss):
    """:func:`jaxlosses.f1_loss`, one minus the soft macro F1 of a batch.

    The linen twin of :class:`jaxlosses.nnx.F1Loss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> labels = jnp.array([0, 2])
      >>> loss = linen.F1Loss()
      >>> variables = loss.init(jax.random.key(0), logits, labels)
      >>> round(float(loss.apply(variables, logits, labels)), 4)
      0.5749
    """


class DiceLoss(Loss, fn=_overlap.dice_loss):
    """:func:`jaxlosses.dice_loss`, one minus the soft Dice coefficient of a batch.

    The linen twin of :class:`jaxlosses.nnx.DiceLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> labels = jnp.array([0, 2])
      >>> loss = linen.DiceLoss(smooth=1.0)
      >>> variables = loss.init(jax.random.key(0), logits, labels)
      >>> round(float(loss.apply(variables, logits, labels)), 4)
      0.2609
    """


class LinearCrossEntropyLoss(
    Loss, fn=_fused.linear_cross_entropy, call_arguments=("where", "linear_bias")
):
    """:func:`jaxlosses.linear_cross_entropy` and its layer (``torch.nn.LinearCrossEntropyLoss``).

    The linen twin of :class:`jaxlosses.nnx.LinearCrossEntropyLoss`: it owns the linear
    layer, ``"params"`` ``linear_weight`` of shape ``(num_classes, *out_features,
    in_features)`` and, with ``bias=True``, ``linear_bias`` of shape
    ``(num_classes, *out_features)``, initialised as PyTorch's ``nn.Linear``
    (``U(-1/sqrt(in_features), 1/sqrt(in_features))``), and is applied as
    ``loss.apply(variables, input, target, where=None)``. The other fields are
    :func:`jaxlosses.linear_cross_entropy`'s hyperparameters. A head tied to an embedding
    is not a separate layer: call :func:`jaxlosses.linear_cross_entropy` instead.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> loss = linen.LinearCrossEntropyLoss(4, 10, bias=True, z_loss=1e-4)
      >>> x = jax.random.normal(jax.random.key(0), (2, 3, 4))  # (batch, time, hidden)
      >>> y = jnp.array([[1, 2, 3], [4, -100, 9]])
      >>> variables = loss.init(jax.random.key(1), x, y)
      >>> jax.tree.map(jnp.shape, variables["params"])
      {'linear_bias': (10,), 'linear_weight': (10, 4)}
      >>> p = variables["params"]
      >>> fused = loss.apply(variables, x, y)
      >>> logits = x @ p["linear_weight"].T + p["linear_bias"]
      >>> naive = linen.CrossEntropyLoss(z_loss=1e-4).apply({}, logits, y)
      >>> bool(jnp.allclose(fused, naive, rtol=1e-5))
      True
    """

    in_features: int
    num_classes: int
    out_features: tuple[int, ...] = ()
    bias: bool = False
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, input: ArrayLike, target: ArrayLike, *, where=None) -> jax.Array:
        """``linear_cross_entropy(input, linear_weight, target, linear_bias=..., ...)``."""
        shape = (self.num_classes, *self.out_features, self.in_features)

        def init(key, shape, dtype):
            bound = 1.0 / math.sqrt(self.in_features)
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        w = self.param("linear_weight", init, shape, self.param_dtype)
        b = self.param("linear_bias", init, shape[:-1], self.param_dtype) if self.bias else None
        return type(self).fn(input, w, target, linear_bias=b, where=where, **self.hyperparameters())


# --------------------------------------------------------------------------------------
# regression and divergences


class L1Loss(Loss, fn=_regression.l1_loss):
    """:func:`jaxlosses.l1_loss`, the mean absolute error (``torch.nn.L1Loss``).

    The linen twin of :class:`jaxlosses.nnx.L1Loss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> preds, targets = jnp.array([[1.0, 2.0], [0.0, 4.0]]), jnp.ones((2, 2))
      >>> loss = linen.L1Loss(weight=jnp.array([1.0, 3.0]))
      >>> variables = loss.init(jax.random.key(0), preds, targets)
      >>> round(float(loss.apply(variables, preds, targets)), 4)
      1.625
    """


class MSELoss(Loss, fn=_regression.mse_loss):
    """:func:`jaxlosses.mse_loss`, the mean squared error (``torch.nn.MSELoss``).

    The linen twin of :class:`jaxlosses.nnx.MSELoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> preds, targets = jnp.array([[1.0, 2.0], [0.0, 4.0]]), jnp.ones((2, 2))
      >>> loss = linen.MSELoss(reduction="sum")
      >>> variables = loss.init(jax.random.key(0), preds, targets)
      >>> round(float(loss.apply(variables, preds, targets)), 4)
      11.0
    """


class HuberLoss(Loss, fn=_regression.huber_loss):
    """:func:`jaxlosses.huber_loss` (``torch.nn.HuberLoss``).

    The linen twin of :class:`jaxlosses.nnx.HuberLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> preds, targets = jnp.array([[1.0, 2.0], [0.0, 4.0]]), jnp.ones((2, 2))
      >>> loss = linen.HuberLoss(delta=0.5)
      >>> variables = loss.init(jax.random.key(0), preds, targets)
      >>> round(float(loss.apply(variables, preds, targets)), 4)
      0.5312
    """


class SmoothL1Loss(Loss, fn=_regression.smooth_l1_loss):
    """:func:`jaxlosses.smooth_l1_loss` (``torch.nn.SmoothL1Loss``).

    The linen twin of :class:`jaxlosses.nnx.SmoothL1Loss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> preds, targets = jnp.array([[1.0, 2.0], [0.0, 4.0]]), jnp.ones((2, 2))
      >>> loss = linen.SmoothL1Loss(beta=0.5)
      >>> variables = loss.init(jax.random.key(0), preds, targets)
      >>> round(float(loss.apply(variables, preds, targets)), 4)
      1.0625
    """


class KLDivLoss(Loss, fn=_divergence.kl_div):
    """:func:`jaxlosses.kl_div` on log-probabilities (``torch.nn.KLDivLoss``).

    The linen twin of :class:`jaxlosses.nnx.KLDivLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> log_q = jax.nn.log_softmax(jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]))
      >>> log_p = jax.nn.log_softmax(jnp.zeros((2, 3)))
      >>> loss = linen.KLDivLoss(reduction="batchmean", log_target=True)
      >>> variables = loss.init(jax.random.key(0), log_q, log_p)
      >>> round(float(loss.apply(variables, log_q, log_p)), 4)
      0.323
    """


class PoissonNLLLoss(Loss, fn=_divergence.poisson_nll_loss):
    """:func:`jaxlosses.poisson_nll_loss` (``torch.nn.PoissonNLLLoss``).

    The linen twin of :class:`jaxlosses.nnx.PoissonNLLLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> log_rates, counts = jnp.array([[0.0, 1.0], [2.0, 2.0]]), jnp.array([[1, 0], [5, 9]])
      >>> loss = linen.PoissonNLLLoss(full=True)
      >>> variables = loss.init(jax.random.key(0), log_rates, counts)
      >>> round(float(loss.apply(variables, log_rates, counts)), 4)
      2.015
    """


class GaussianNLLLoss(Loss, fn=_divergence.gaussian_nll_loss):
    """:func:`jaxlosses.gaussian_nll_loss` (``torch.nn.GaussianNLLLoss``).

    The linen twin of :class:`jaxlosses.nnx.GaussianNLLLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> means, targets = jnp.array([[0.0, 1.0], [2.0, 2.0]]), jnp.ones((2, 2))
      >>> variances = jnp.array([[1.0], [0.5]])  # one per row
      >>> loss = linen.GaussianNLLLoss(full=True)
      >>> variables = loss.init(jax.random.key(0), means, targets, variances)
      >>> round(float(loss.apply(variables, means, targets, variances)), 4)
      1.3707
    """


# --------------------------------------------------------------------------------------
# Contrastive losses


class ClipLoss(Loss, fn=_contrastive.clip_loss, learned=_contrastive.CLIP_LEARNED):
    """:func:`jaxlosses.clip_loss` with its temperature learned (open_clip's ``ClipLoss``).

    The linen twin of :class:`jaxlosses.nnx.ClipLoss`: ``logit_scale`` (the log of the
    scale, initialised to the field ``init_logit_scale = log(1 / 0.07)``) is in
    ``"params"``; called ``loss.apply(variables, image_features, text_features)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> img = jax.random.normal(jax.random.key(0), (4, 8))
      >>> txt = jax.random.normal(jax.random.key(1), (4, 8))
      >>> loss = linen.ClipLoss()
      >>> variables = loss.init(jax.random.key(0), img, txt)
      >>> jax.tree.map(jnp.shape, variables)
      {'params': {'logit_scale': ()}}
      >>> bool(jnp.isfinite(loss.apply(variables, img, txt)))
      True
    """


class SiglipLoss(Loss, fn=_contrastive.siglip_loss, learned=_contrastive.SIGLIP_LEARNED):
    """:func:`jaxlosses.siglip_loss` with its scale and bias learned.

    The linen twin of :class:`jaxlosses.nnx.SiglipLoss`: ``logit_scale`` (log 10) and
    ``logit_bias`` (-10) are in ``"params"``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> img = jax.random.normal(jax.random.key(0), (4, 8))
      >>> variables = linen.SiglipLoss().init(jax.random.key(0), img, img)
      >>> sorted(variables["params"])
      ['logit_bias', 'logit_scale']
    """


class InfoNceLoss(Loss, fn=_contrastive.info_nce):
    """:func:`jaxlosses.info_nce` (info-nce-pytorch's ``InfoNCE``).

    The linen twin of :class:`jaxlosses.nnx.InfoNceLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> q = jnp.array([[1.0, 0.0], [0.0, 2.0]])
      >>> k = jnp.array([[0.9, 0.1], [0.1, 0.9]])
      >>> linen.InfoNceLoss(temperature=0.5).apply({}, q, k).round(4)
      Array(0.1577, dtype=float32)
    """


class SupervisedContrastiveLoss(Loss, fn=_contrastive.supervised_contrastive_loss):
    """:func:`jaxlosses.supervised_contrastive_loss` (SupContrast's ``SupConLoss``).

    The linen twin of :class:`jaxlosses.nnx.SupervisedContrastiveLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> f = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
      >>> loss = linen.SupervisedContrastiveLoss(temperature=0.5)
      >>> round(float(loss.apply({}, f, jnp.array([0, 0, 1, 1]))), 4)
      0.3438
    """


# --------------------------------------------------------------------------------------
# sequences


class CTCLoss(Loss, fn=_sequence.ctc_loss):
    """:func:`jaxlosses.ctc_loss`, connectionist temporal classification (``torch.nn.CTCLoss``).

    The linen twin of :class:`jaxlosses.nnx.CTCLoss`; the lengths may be arrays or
    Python sequences of ints.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxlosses
      >>> from jaxlosses import linen
      >>> log_probs = jaxlosses.log_softmax(jnp.zeros((4, 2, 3)))  # (T, N, C)
      >>> inputs = (log_probs, jnp.array([[1, 2], [1, 1]]), [4, 4], [2, 2])
      >>> loss = linen.CTCLoss(reduction="sum")
      >>> variables = loss.init(jax.random.key(0), *inputs)
      >>> round(float(loss.apply(variables, *inputs)), 4)
      4.4714
    """


# --------------------------------------------------------------------------------------
# margin and metric-learning losses


class MarginRankingLoss(Loss, fn=_margin.margin_ranking_loss):
    """:func:`jaxlosses.margin_ranking_loss` (``torch.nn.MarginRankingLoss``).

    The linen twin of :class:`jaxlosses.nnx.MarginRankingLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> x1, x2 = jnp.array([0.9, 0.2, 0.4]), jnp.array([0.1, 0.5, 0.4])
      >>> y = jnp.array([1, 1, -1])
      >>> loss = linen.MarginRankingLoss(margin=0.5)
      >>> variables = loss.init(jax.random.key(0), x1, x2, y)
      >>> round(float(loss.apply(variables, x1, x2, y)), 4)
      0.4333
    """


class HingeEmbeddingLoss(Loss, fn=_margin.hinge_embedding_loss):
    """:func:`jaxlosses.hinge_embedding_loss` (``torch.nn.HingeEmbeddingLoss``).

    The linen twin of :class:`jaxlosses.nnx.HingeEmbeddingLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> distance = jnp.array([0.3, 0.3, 1.5])
      >>> y = jnp.array([1, -1, -1])
      >>> loss = linen.HingeEmbeddingLoss(margin=2.0)
      >>> variables = loss.init(jax.random.key(0), distance, y)
      >>> round(float(loss.apply(variables, distance, y)), 4)
      0.8333
    """


class SoftMarginLoss(Loss, fn=_margin.soft_margin_loss):
    """:func:`jaxlosses.soft_margin_loss` (``torch.nn.SoftMarginLoss``).

    The linen twin of :class:`jaxlosses.nnx.SoftMarginLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> x, y = jnp.array([2.0, -1.0]), jnp.array([1, 1])
      >>> loss = linen.SoftMarginLoss()
      >>> variables = loss.init(jax.random.key(0), x, y)
      >>> round(float(loss.apply(variables, x, y)), 4)
      0.7201
    """


class MultiMarginLoss(Loss, fn=_margin.multi_margin_loss):
    """:func:`jaxlosses.multi_margin_loss` (``torch.nn.MultiMarginLoss``, Weston-Watkins).

    The linen twin of :class:`jaxlosses.nnx.MultiMarginLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8], [0.9, 0.2, 0.4, 0.1]])
      >>> y = jnp.array([3, 0])
      >>> loss = linen.MultiMarginLoss(p=2, weight=jnp.array([1.0, 1.0, 1.0, 2.0]))
      >>> variables = loss.init(jax.random.key(0), x, y)
      >>> round(float(loss.apply(variables, x, y)), 4)
      0.2
    """


class MultiLabelMarginLoss(Loss, fn=_margin.multilabel_margin_loss):
    """:func:`jaxlosses.multilabel_margin_loss` (``torch.nn.MultiLabelMarginLoss``).

    The linen twin of :class:`jaxlosses.nnx.MultiLabelMarginLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8]])
      >>> y = jnp.array([[3, 0, -1, 1]])
      >>> loss = linen.MultiLabelMarginLoss()
      >>> variables = loss.init(jax.random.key(0), x, y)
      >>> round(float(loss.apply(variables, x, y)), 4)
      0.85
    """


class CosineEmbeddingLoss(Loss, fn=_metric.cosine_embedding_loss):
    """:func:`jaxlosses.cosine_embedding_loss` (``torch.nn.CosineEmbeddingLoss``).

    The linen twin of :class:`jaxlosses.nnx.CosineEmbeddingLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> a = jnp.array([[1.0, 0.0], [1.0, 0.0]])
      >>> b = jnp.array([[1.0, 1.0], [0.6, 0.8]])
      >>> loss = linen.CosineEmbeddingLoss(margin=0.5)
      >>> variables = loss.init(jax.random.key(0), a, b, jnp.array([1, -1]))
      >>> round(float(loss.apply(variables, a, b, jnp.array([1, -1]))), 4)
      0.1964
    """


class TripletMarginLoss(Loss, fn=_metric.triplet_margin_loss):
    """:func:`jaxlosses.triplet_margin_loss` (``torch.nn.TripletMarginLoss``).

    The linen twin of :class:`jaxlosses.nnx.TripletMarginLoss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> anchor = jnp.zeros((2, 2))
      >>> positive = jnp.array([[0.3, 0.4], [0.0, 2.0]])
      >>> negative = jnp.array([[3.0, 4.0], [1.5, 0.0]])
      >>> loss = linen.TripletMarginLoss(margin=2.0, swap=True)
      >>> variables = loss.init(jax.random.key(0), anchor, positive, negative)
      >>> round(float(loss.apply(variables, anchor, positive, negative)), 4)
      1.25
    """


class TripletMarginWithDistanceLoss(Loss, fn=_metric.triplet_margin_with_distance_loss):
    """:func:`jaxlosses.triplet_margin_with_distance_loss` (``nn.TripletMarginWithDistanceLoss``).

    The linen twin of :class:`jaxlosses.nnx.TripletMarginWithDistanceLoss`;
    ``distance_function`` is a static field (a new function recompiles).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import linen
      >>> def l1(x, y):
      ...     return jnp.sum(jnp.abs(x - y), axis=-1)
      >>> anchor, positive = jnp.zeros((2, 2)), jnp.array([[0.5, 0.5], [0.0, 0.0]])
      >>> negative = jnp.array([[1.0, 0.5], [3.0, 0.0]])
      >>> loss = linen.TripletMarginWithDistanceLoss(distance_function=l1, margin=2.0)
      >>> variables = loss.init(jax.random.key(0), anchor, positive, negative)
      >>> round(float(loss.apply(variables, anchor, positive, negative)), 4)
      0.75
    """
