"""Flax NNX modules for the losses, with PyTorch's names.

Each module binds a loss function's keyword arguments at construction (validating them
there) and is called with the function's positional inputs, ``loss(input, target,
where=None)`` for most; the result is exactly the function's::

    CrossEntropyLoss(weight=w, label_smoothing=0.1)(logits, labels)
        == jaxlosses.cross_entropy(logits, labels, weight=w, label_smoothing=0.1)

Array hyperparameters (a class ``weight``, ``pos_weight``) are :class:`LossHyperparameter`
variables: module state that ``nnx.state``, ``nnx.split`` and checkpoints carry (and
that can be sharded), but that is not an ``nnx.Param``, so an
``nnx.Optimizer(model, tx, wrt=nnx.Param)`` never updates it, and a new value does not
recompile a jitted step. Pass an ``nnx.Variable`` of your own instead of an array to
choose its type or sharding metadata (an ``nnx.Param`` makes it trainable). Scalar and
string hyperparameters (``reduction``, ``gamma``, ``label_smoothing``, ...) are static
attributes, part of the compiled program.

Example:
  >>> import jax.numpy as jnp
  >>> from flax import nnx
  >>> import jaxlosses
  >>> from jaxlosses import nnx as losses
  >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
  >>> labels = jnp.array([0, 2])
  >>> loss = losses.CrossEntropyLoss(weight=jnp.array([1.0, 2.0, 0.5]), label_smoothing=0.1)
  >>> round(float(loss(logits, labels)), 4)
  0.651
  >>> round(float(jaxlosses.cross_entropy(logits, labels, weight=jnp.array([1.0, 2.0, 0.5]),
  ...                                     label_smoothing=0.1)), 4)
  0.651
  >>> nnx.state(loss, losses.LossHyperparameter)["weight"][...]
  Array([1. , 2. , 0.5], dtype=float32)
  >>> len(nnx.state(loss, nnx.Param))  # nothing to train
  0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx
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
    "LossHyperparameter",
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


class LossHyperparameter(nnx.Variable):
    """A loss's array hyperparameter (class ``weight``, ``pos_weight``): state, not a parameter.

    Select it with ``nnx.state(model, LossHyperparameter)``; filters on ``nnx.Param``
    (optimizers, ``nnx.grad``'s default) leave it out.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxlosses
      >>> loss = jaxlosses.nnx.CrossEntropyLoss(weight=jnp.array([1.0, 3.0]))
      >>> type(loss.weight).__name__
      'LossHyperparameter'
      >>> nnx.state(loss, jaxlosses.nnx.LossHyperparameter)["weight"][...]
      Array([1., 3.], dtype=float32)
      >>> len(nnx.state(loss, nnx.Param))
      0
    """


class Loss(nnx.Module):
    """Base of the loss modules: binds a loss function's hyperparameters and calls it.

    A subclass names its function, ``class MyLoss(Loss, fn=my_loss): ...``; its
    constructor then takes ``my_loss``'s keyword-only arguments (``where`` excepted, and
    any other argument named in ``call_arguments=(...)``, passed at each call instead)
    with the same defaults, and validates them against the ranges the function declares.
    It is called with the function's positional inputs and the call arguments.

    Attributes:
      fn: the loss function (a class attribute).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxlosses
      >>> def squared_hinge(logits, targets, *, margin=1.0, where=None):
      ...     loss = jnp.maximum(0.0, margin - targets * logits) ** 2
      ...     return jnp.mean(loss if where is None else jnp.where(where, loss, 0.0))
      >>> class SquaredHingeLoss(jaxlosses.nnx.Loss, fn=squared_hinge):
      ...     'Squared hinge loss on +-1 targets.'
      >>> loss = SquaredHingeLoss(margin=2.0)
      >>> loss.hyperparameters()
      {'margin': 2.0}
      >>> float(loss(jnp.array([0.5, -1.0]), jnp.array([1.0, -1.0])))
      1.625
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
        super().__init_subclass__(**kwargs)
        if fn is not None:
            cls.fn = staticmethod(fn)
            cls.spec = loss_spec(fn, call_arguments, learned)

    def __init__(self, **hyperparameters: Any):
        if not hasattr(type(self), "spec"):
            raise TypeError(f"{type(self).__name__} names no loss function: subclass Loss(fn=...)")
        hyperparameters, initial = self.spec.split_initial_values(hyperparameters)
        values = self.spec.bind(type(self).__name__, hyperparameters)
        for name, value in values.items():
            if self.spec.is_state(name, value) and not isinstance(value, nnx.Variable):
                value = LossHyperparameter(jnp.asarray(value))
            setattr(self, name, value)
        # Learned inputs (a temperature, a bias) are trainable parameters of the module.
        for name, value in initial.items():
            if not isinstance(value, nnx.Variable):
                value = nnx.Param(jnp.asarray(value, jnp.float32))
            setattr(self, name, value)

    def hyperparameters(self) -> dict[str, Any]:
        """The keyword arguments the function is called with (variables read out)."""
        values = {}
        for name in self.spec.defaults:
            value = getattr(self, name)
            values[name] = value[...] if isinstance(value, nnx.Variable) else value
        return values

    def __call__(self, *inputs: Any, **call_arguments: Any) -> jax.Array:
        """``fn(*inputs, **call_arguments, **hyperparameters)``.

        ``inputs`` are the function's positional inputs (``input, target`` for most);
        ``call_arguments`` are ``where`` and the module's other call arguments.
        """
        # Typed (*Any, **Any), which any override matches: the inputs are the function's,
        # and a subclass may declare its own (LinearCrossEntropyLoss: input, target).
        check_call(self.spec, type(self).__name__, inputs, call_arguments)
        learned = {n: li.value(getattr(self, n)[...]) for n, li in self.spec.learned.items()}
        args = self.spec.arguments(inputs, learned)
        return type(self).fn(*args, **call_arguments, **self.hyperparameters())


class BCELoss(Loss, fn=_binary.binary_cross_entropy):
    """:func:`jaxlosses.binary_cross_entropy` on probabilities (``torch.nn.BCELoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> targets = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
      >>> loss = losses.BCELoss()
      >>> round(float(loss(jax.nn.sigmoid(logits), targets)), 4)
      0.7685
    """


class BCEWithLogitsLoss(Loss, fn=_binary.binary_cross_entropy_with_logits):
    """:func:`jaxlosses.binary_cross_entropy_with_logits` (``torch.nn.BCEWithLogitsLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> targets = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
      >>> loss = losses.BCEWithLogitsLoss(pos_weight=jnp.array([1.0, 2.0, 1.0]))
      >>> round(float(loss(logits, targets)), 4)
      0.8682
    """


class CrossEntropyLoss(Loss, fn=_multiclass.cross_entropy):
    """:func:`jaxlosses.cross_entropy` (``torch.nn.CrossEntropyLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> labels = jnp.array([0, 2])
      >>> loss = losses.CrossEntropyLoss(weight=jnp.array([1.0, 2.0, 0.5]), label_smoothing=0.1)
      >>> round(float(loss(logits, labels)), 4)
      0.651
    """


class NLLLoss(Loss, fn=_multiclass.nll_loss):
    """:func:`jaxlosses.nll_loss` on log-probabilities (``torch.nn.NLLLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> labels = jnp.array([0, 2])
      >>> loss = losses.NLLLoss(weight=jnp.array([1.0, 2.0, 0.5]))
      >>> round(float(loss(jax.nn.log_softmax(logits), labels)), 4)
      0.4949
    """


class MultiLabelSoftMarginLoss(Loss, fn=_multilabel.multilabel_soft_margin_loss):
    """:func:`jaxlosses.multilabel_soft_margin_loss` (``torch.nn.MultiLabelSoftMarginLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> targets = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
      >>> loss = losses.MultiLabelSoftMarginLoss()
      >>> round(float(loss(logits, targets)), 4)
      0.7685
    """


class FocalLoss(Loss, fn=_multiclass.focal_loss):
    """:func:`jaxlosses.focal_loss`, the softmax focal loss over class indices.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> labels = jnp.array([0, 2])
      >>> loss = losses.FocalLoss(gamma=2.0)
      >>> round(float(loss(logits, labels)), 4)
      0.2062
    """


class SigmoidFocalLoss(Loss, fn=_binary.sigmoid_focal_loss):
    """:func:`jaxlosses.sigmoid_focal_loss` (``torchvision.ops.sigmoid_focal_loss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> targets = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
      >>> loss = losses.SigmoidFocalLoss(alpha=0.25, gamma=2.0)
      >>> round(float(loss(logits, targets)), 4)
      0.1424
    """


class LabelSmoothingLoss(Loss, fn=_multiclass.label_smoothing_loss):
    """:func:`jaxlosses.label_smoothing_loss`, ``s / (C - 1)`` off the target.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> labels = jnp.array([0, 2])
      >>> loss = losses.LabelSmoothingLoss(label_smoothing=0.1)
      >>> round(float(loss(logits, labels)), 4)
      0.7416
    """


class F1Loss(Loss, fn=_overlap.f1_loss):
    """:func:`jaxlosses.f1_loss`, one minus the soft macro F1 of a batch.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> labels = jnp.array([0, 2])
      >>> loss = losses.F1Loss()
      >>> round(float(loss(logits, labels)), 4)
      0.5749
    """


class DiceLoss(Loss, fn=_overlap.dice_loss):
    """:func:`jaxlosses.dice_loss`, one minus the soft Dice coefficient of a batch.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> labels = jnp.array([0, 2])
      >>> loss = losses.DiceLoss(smooth=1.0)
      >>> round(float(loss(logits, labels)), 4)
      0.2609
    """


def torch_linear_init(key: jax.Array, shape: tuple[int, ...], in_features: int, dtype) -> jax.Array:
    """PyTorch's ``nn.Linear`` initialisation: ``U(-1/sqrt(in_features), 1/sqrt(in_features))``
    for the weight (``kaiming_uniform_(a=sqrt(5))``) and the bias alike."""
    bound = 1.0 / math.sqrt(in_features)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


class LinearCrossEntropyLoss(
    Loss, fn=_fused.linear_cross_entropy, call_arguments=("where", "linear_bias")
):
    """:func:`jaxlosses.linear_cross_entropy` and its layer (``torch.nn.LinearCrossEntropyLoss``).

    Like PyTorch's module, it owns the linear layer: ``linear_weight`` of shape
    ``(num_classes, *out_features, in_features)`` and, with ``bias=True``, ``linear_bias``
    of shape ``(num_classes, *out_features)``, both ``nnx.Param`` (trained by an
    ``nnx.Optimizer(model, tx, wrt=nnx.Param)``) initialised as PyTorch's ``nn.Linear``
    (``U(-1/sqrt(in_features), 1/sqrt(in_features))``). It is called
    ``loss(input, target, where=None)`` and never builds the ``N x C`` logits. The other
    arguments are :func:`jaxlosses.linear_cross_entropy`'s hyperparameters (class
    ``weight``, ``ignore_index``, ``label_smoothing``, ``z_loss``, ``logit_softcap``,
    ``reduction``, ``chunk_size``). A head tied to an embedding is not a separate layer:
    call :func:`jaxlosses.linear_cross_entropy` with the embedding instead.

    Args:
      in_features: ``H``, the size of each input's last axis.
      num_classes: ``C``.
      out_features: ``(d1, ..., dk)`` for a K-dimensional loss (logits of shape
        ``(*B, C, d1, ..., dk)``), as PyTorch's.
      bias: whether the layer has a bias.
      param_dtype: the parameters' dtype.
      rngs: the ``nnx.Rngs`` whose ``params`` stream initialises the layer.
      **hyperparameters: keyword arguments of :func:`jaxlosses.linear_cross_entropy`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxlosses import nnx as losses
      >>> loss = losses.LinearCrossEntropyLoss(4, 10, bias=True, label_smoothing=0.1,
      ...                                      rngs=nnx.Rngs(0))
      >>> loss.linear_weight.shape, loss.linear_bias.shape
      ((10, 4), (10,))
      >>> x = jax.random.normal(jax.random.key(0), (2, 3, 4))  # (batch, time, hidden)
      >>> y = jnp.array([[1, 2, 3], [4, -100, 9]])
      >>> fused = loss(x, y)
      >>> logits = x @ loss.linear_weight[...].T + loss.linear_bias[...]
      >>> naive = losses.CrossEntropyLoss(label_smoothing=0.1)(logits, y)
      >>> bool(jnp.allclose(fused, naive, rtol=1e-5))
      True
      >>> grads = nnx.grad(lambda m: m(x, y))(loss)  # the layer's gradients
      >>> grads["linear_weight"][...].shape
      (10, 4)
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        out_features: tuple[int, ...] = (),
        bias: bool = False,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
        **hyperparameters: Any,
    ):
        super().__init__(**hyperparameters)
        self.in_features, self.num_classes = in_features, num_classes
        self.out_features = tuple(out_features)
        shape = (num_classes, *self.out_features, in_features)
        init = torch_linear_init
        self.linear_weight = nnx.Param(init(rngs.params(), shape, in_features, param_dtype))
        self.linear_bias = (
            nnx.Param(init(rngs.params(), shape[:-1], in_features, param_dtype)) if bias else None
        )

    def __call__(self, input: ArrayLike, target: ArrayLike, *, where=None) -> jax.Array:
        """``linear_cross_entropy(input, linear_weight, target, linear_bias=..., ...)``."""
        bias = None if self.linear_bias is None else self.linear_bias[...]
        return type(self).fn(
            input,
            self.linear_weight[...],
            target,
            linear_bias=bias,
            where=where,
            **self.hyperparameters(),
        )


# --------------------------------------------------------------------------------------
# regression and divergences


class L1Loss(Loss, fn=_regression.l1_loss):
    """:func:`jaxlosses.l1_loss`, the mean absolute error (``torch.nn.L1Loss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> preds, targets = jnp.array([[1.0, 2.0], [0.0, 4.0]]), jnp.ones((2, 2))
      >>> loss = losses.L1Loss(weight=jnp.array([1.0, 3.0]))
      >>> round(float(loss(preds, targets)), 4)
      1.625
    """


class MSELoss(Loss, fn=_regression.mse_loss):
    """:func:`jaxlosses.mse_loss`, the mean squared error (``torch.nn.MSELoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> preds, targets = jnp.array([[1.0, 2.0], [0.0, 4.0]]), jnp.ones((2, 2))
      >>> loss = losses.MSELoss(reduction="sum")
      >>> round(float(loss(preds, targets)), 4)
      11.0
    """


class HuberLoss(Loss, fn=_regression.huber_loss):
    """:func:`jaxlosses.huber_loss` (``torch.nn.HuberLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> preds, targets = jnp.array([[1.0, 2.0], [0.0, 4.0]]), jnp.ones((2, 2))
      >>> loss = losses.HuberLoss(delta=0.5)
      >>> round(float(loss(preds, targets)), 4)
      0.5312
    """


class SmoothL1Loss(Loss, fn=_regression.smooth_l1_loss):
    """:func:`jaxlosses.smooth_l1_loss` (``torch.nn.SmoothL1Loss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> preds, targets = jnp.array([[1.0, 2.0], [0.0, 4.0]]), jnp.ones((2, 2))
      >>> loss = losses.SmoothL1Loss(beta=0.5)
      >>> round(float(loss(preds, targets)), 4)
      1.0625
    """


class KLDivLoss(Loss, fn=_divergence.kl_div):
    """:func:`jaxlosses.kl_div` on log-probabilities (``torch.nn.KLDivLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> log_q = jax.nn.log_softmax(jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]))
      >>> log_p = jax.nn.log_softmax(jnp.zeros((2, 3)))
      >>> loss = losses.KLDivLoss(reduction="batchmean", log_target=True)
      >>> round(float(loss(log_q, log_p)), 4)
      0.323
    """


class PoissonNLLLoss(Loss, fn=_divergence.poisson_nll_loss):
    """:func:`jaxlosses.poisson_nll_loss` (``torch.nn.PoissonNLLLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> log_rates, counts = jnp.array([[0.0, 1.0], [2.0, 2.0]]), jnp.array([[1, 0], [5, 9]])
      >>> loss = losses.PoissonNLLLoss(full=True)
      >>> round(float(loss(log_rates, counts)), 4)
      2.015
    """


class GaussianNLLLoss(Loss, fn=_divergence.gaussian_nll_loss):
    """:func:`jaxlosses.gaussian_nll_loss` (``torch.nn.GaussianNLLLoss``).

    Called with three inputs, ``loss(input, target, var, where=None)``, as
    ``torch.nn.GaussianNLLLoss``; a network that predicts its own variance passes
    it at each call.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> means, targets = jnp.array([[0.0, 1.0], [2.0, 2.0]]), jnp.ones((2, 2))
      >>> variances = jnp.array([[1.0], [0.5]])  # one per row
      >>> loss = losses.GaussianNLLLoss(full=True)
      >>> round(float(loss(means, targets, variances)), 4)
      1.3707
    """


# --------------------------------------------------------------------------------------
# Contrastive losses


class ClipLoss(Loss, fn=_contrastive.clip_loss, learned=_contrastive.CLIP_LEARNED):
    """:func:`jaxlosses.clip_loss` with its temperature learned (open_clip's ``ClipLoss``).

    The module owns ``logit_scale``, an ``nnx.Param`` holding the *log* of the scale,
    initialised to ``init_logit_scale = log(1 / 0.07)`` as in CLIP and open_clip; the loss
    gets ``exp(logit_scale)``. Called ``loss(image_features, text_features, where=None)``.
    CLIP clips the scale at 100: clamp the parameter at ``log(100)`` after each step if
    you want the same.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxlosses import nnx as losses
      >>> loss = losses.ClipLoss(label_smoothing=0.1)
      >>> img = jax.random.normal(jax.random.key(0), (4, 8))
      >>> txt = jax.random.normal(jax.random.key(1), (4, 8))
      >>> float(jnp.exp(loss.logit_scale[...])).__round__(3)  # 1 / 0.07
      14.286
      >>> len(nnx.state(loss, nnx.Param))
      1
      >>> bool(jnp.isfinite(loss(img, txt)))
      True
    """


class SiglipLoss(Loss, fn=_contrastive.siglip_loss, learned=_contrastive.SIGLIP_LEARNED):
    """:func:`jaxlosses.siglip_loss` with its scale and bias learned (SigLIP's ``t'``, ``b``).

    The module owns two ``nnx.Param``: ``logit_scale`` (the log of the scale, SigLIP's
    :math:`t'`, initialised to ``init_logit_scale = log 10``) and ``logit_bias``
    (initialised to ``init_logit_bias = -10``), as in the paper and open_clip. Called
    ``loss(image_features, text_features, where=None)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxlosses import nnx as losses
      >>> loss = losses.SiglipLoss()
      >>> float(loss.logit_bias[...]), round(float(jnp.exp(loss.logit_scale[...])), 3)
      (-10.0, 10.0)
      >>> img = jax.random.normal(jax.random.key(0), (4, 8))
      >>> grads = nnx.grad(lambda m: m(img, img))(loss)
      >>> sorted(grads.keys())
      ['logit_bias', 'logit_scale']
    """


class InfoNceLoss(Loss, fn=_contrastive.info_nce):
    """:func:`jaxlosses.info_nce` (info-nce-pytorch's ``InfoNCE``).

    Called ``loss(query, positive_key, negative_keys=None, where=None)``; the temperature
    is a fixed hyperparameter.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> q = jnp.array([[1.0, 0.0], [0.0, 2.0]])
      >>> k = jnp.array([[0.9, 0.1], [0.1, 0.9]])
      >>> losses.InfoNceLoss(temperature=0.5)(q, k).round(4)
      Array(0.1577, dtype=float32)
    """


class SupervisedContrastiveLoss(Loss, fn=_contrastive.supervised_contrastive_loss):
    """:func:`jaxlosses.supervised_contrastive_loss` (SupContrast's ``SupConLoss``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> f = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
      >>> loss = losses.SupervisedContrastiveLoss(temperature=0.5)
      >>> round(float(loss(f, jnp.array([0, 0, 1, 1]))), 4)
      0.3438
    """


# --------------------------------------------------------------------------------------
# sequences


class CTCLoss(Loss, fn=_sequence.ctc_loss):
    """:func:`jaxlosses.ctc_loss`, connectionist temporal classification (``torch.nn.CTCLoss``).

    Called as ``loss(log_probs, targets, input_lengths, target_lengths, where=None)``;
    the lengths may be arrays or Python sequences of ints.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxlosses
      >>> from jaxlosses import nnx as losses
      >>> log_probs = jaxlosses.log_softmax(jnp.zeros((4, 2, 3)))  # (T, N, C)
      >>> loss = losses.CTCLoss(reduction="sum")
      >>> round(float(loss(log_probs, jnp.array([[1, 2], [1, 1]]), [4, 4], [2, 2])), 4)
      4.4714
    """


# --------------------------------------------------------------------------------------
# margin and metric-learning losses


class MarginRankingLoss(Loss, fn=_margin.margin_ranking_loss):
    """:func:`jaxlosses.margin_ranking_loss` (``torch.nn.MarginRankingLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> x1, x2 = jnp.array([0.9, 0.2, 0.4]), jnp.array([0.1, 0.5, 0.4])
      >>> y = jnp.array([1, 1, -1])
      >>> loss = losses.MarginRankingLoss(margin=0.5)
      >>> round(float(loss(x1, x2, y)), 4)
      0.4333
    """


class HingeEmbeddingLoss(Loss, fn=_margin.hinge_embedding_loss):
    """:func:`jaxlosses.hinge_embedding_loss` (``torch.nn.HingeEmbeddingLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> distance = jnp.array([0.3, 0.3, 1.5])
      >>> y = jnp.array([1, -1, -1])
      >>> loss = losses.HingeEmbeddingLoss(margin=2.0)
      >>> round(float(loss(distance, y)), 4)
      0.8333
    """


class SoftMarginLoss(Loss, fn=_margin.soft_margin_loss):
    """:func:`jaxlosses.soft_margin_loss` (``torch.nn.SoftMarginLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> x, y = jnp.array([2.0, -1.0]), jnp.array([1, 1])
      >>> loss = losses.SoftMarginLoss()
      >>> round(float(loss(x, y)), 4)
      0.7201
    """


class MultiMarginLoss(Loss, fn=_margin.multi_margin_loss):
    """:func:`jaxlosses.multi_margin_loss` (``torch.nn.MultiMarginLoss``, Weston-Watkins).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8], [0.9, 0.2, 0.4, 0.1]])
      >>> y = jnp.array([3, 0])
      >>> loss = losses.MultiMarginLoss(p=2, weight=jnp.array([1.0, 1.0, 1.0, 2.0]))
      >>> round(float(loss(x, y)), 4)
      0.2
    """


class MultiLabelMarginLoss(Loss, fn=_margin.multilabel_margin_loss):
    """:func:`jaxlosses.multilabel_margin_loss` (``torch.nn.MultiLabelMarginLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8]])
      >>> y = jnp.array([[3, 0, -1, 1]])
      >>> loss = losses.MultiLabelMarginLoss()
      >>> round(float(loss(x, y)), 4)
      0.85
    """


class CosineEmbeddingLoss(Loss, fn=_metric.cosine_embedding_loss):
    """:func:`jaxlosses.cosine_embedding_loss` (``torch.nn.CosineEmbeddingLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> a = jnp.array([[1.0, 0.0], [1.0, 0.0]])
      >>> b = jnp.array([[1.0, 1.0], [0.6, 0.8]])
      >>> loss = losses.CosineEmbeddingLoss(margin=0.5)
      >>> round(float(loss(a, b, jnp.array([1, -1]))), 4)
      0.1964
    """


class TripletMarginLoss(Loss, fn=_metric.triplet_margin_loss):
    """:func:`jaxlosses.triplet_margin_loss` (``torch.nn.TripletMarginLoss``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> anchor = jnp.zeros((2, 2))
      >>> positive = jnp.array([[0.3, 0.4], [0.0, 2.0]])
      >>> negative = jnp.array([[3.0, 4.0], [1.5, 0.0]])
      >>> loss = losses.TripletMarginLoss(margin=2.0, swap=True)
      >>> round(float(loss(anchor, positive, negative)), 4)
      1.25
    """


class TripletMarginWithDistanceLoss(Loss, fn=_metric.triplet_margin_with_distance_loss):
    """:func:`jaxlosses.triplet_margin_with_distance_loss` (``nn.TripletMarginWithDistanceLoss``).

    ``distance_function`` is a static attribute: any JAX function (a plain function, a
    ``functools.partial``, a lambda) is hashed by identity, so a jitted step compiles
    once per function; None is PyTorch's pairwise distance.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import nnx as losses
      >>> def l1(x, y):
      ...     return jnp.sum(jnp.abs(x - y), axis=-1)
      >>> anchor, positive = jnp.zeros((2, 2)), jnp.array([[0.5, 0.5], [0.0, 0.0]])
      >>> negative = jnp.array([[1.0, 0.5], [3.0, 0.0]])
      >>> loss = losses.TripletMarginWithDistanceLoss(distance_function=l1, margin=2.0)
      >>> round(float(loss(anchor, positive, negative)), 4)
      0.75
    """
