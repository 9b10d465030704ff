"""Flax NNX modules for the losses, with PyTorch's names.

Each module binds a loss function's keyword arguments at construction and is called as
``loss(input, target, where=None)``; the result is exactly the function's::

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
  >>> from jaxlosses import nn
  >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
  >>> labels = jnp.array([0, 2])
  >>> loss = nn.CrossEntropyLoss(weight=jnp.array([1.0, 2.0, 0.5]), label_smoothing=0.1)
  >>> round(float(loss(logits, labels)), 4)
  0.651
  >>> round(float(jaxlosses.cross_entropy(logits, labels, weight=jnp.array([1.0, 2.0, 0.5]),
  ...                                     label_smoothing=0.1)), 4)
  0.651
  >>> nnx.state(loss, nn.LossHyperparameter)["weight"][...]
  Array([1. , 2. , 0.5], dtype=float32)
  >>> len(nnx.state(loss, nnx.Param))  # nothing to train
  0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike

from jaxlosses import _binary, _multiclass, _multilabel, _overlap
from jaxlosses._core.modules import LossSpec, loss_spec

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "F1Loss",
    "FocalLoss",
    "LabelSmoothingLoss",
    "Loss",
    "LossHyperparameter",
    "MultiLabelSoftMarginLoss",
    "NLLLoss",
    "SigmoidFocalLoss",
]


class LossHyperparameter(nnx.Variable):
    """A loss's array hyperparameter (class ``weight``, ``pos_weight``): state, not a parameter.

    Select it with ``nnx.state(model, LossHyperparameter)``; filters on ``nnx.Param``
    (optimizers, ``nnx.grad``'s default) leave it out.
    """


class Loss(nnx.Module):
    """Base of the loss modules: binds a loss function's hyperparameters and calls it.

    A subclass names its function, ``class MyLoss(Loss, fn=my_loss): ...``; its
    constructor then takes ``my_loss``'s keyword-only arguments (``where`` excepted)
    with the same defaults. A loss whose inputs are not ``(input, target)`` overrides
    ``__call__`` and calls ``self.forward(*inputs, where=where)``.

    Attributes:
      fn: the loss function (a class attribute).
    """

    fn: ClassVar[Callable[..., jax.Array]]
    spec: ClassVar[LossSpec]

    def __init_subclass__(cls, *, fn: Callable[..., jax.Array] | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if fn is not None:
            cls.fn = staticmethod(fn)
            cls.spec = loss_spec(fn)

    def __init__(self, **hyperparameters: Any):
        if not hasattr(type(self), "spec"):
            raise TypeError(f"{type(self).__name__} names no loss function: subclass Loss(fn=...)")
        values = self.spec.bind(type(self).__name__, hyperparameters)
        for name, value in values.items():
            if self.spec.is_state(name, value) and not isinstance(value, nnx.Variable):
                value = LossHyperparameter(jnp.asarray(value))
            setattr(self, name, value)

    def hyperparameters(self) -> dict[str, Any]:
        """The keyword arguments the function is called with (variables read out)."""
        values = {}
        for name in self.spec.defaults:
            value = getattr(self, name)
            values[name] = value[...] if isinstance(value, nnx.Variable) else value
        return values

    def forward(self, *inputs: ArrayLike, where: ArrayLike | None = None) -> jax.Array:
        """``fn(*inputs, where=where, **hyperparameters)``."""
        return type(self).fn(*inputs, where=where, **self.hyperparameters())

    def __call__(
        self, input: ArrayLike, target: ArrayLike, where: ArrayLike | None = None
    ) -> jax.Array:
        return self.forward(input, target, where=where)


class BCELoss(Loss, fn=_binary.binary_cross_entropy):
    """:func:`jaxlosses.binary_cross_entropy` on probabilities (``torch.nn.BCELoss``)."""


class BCEWithLogitsLoss(Loss, fn=_binary.binary_cross_entropy_with_logits):
    """:func:`jaxlosses.binary_cross_entropy_with_logits` (``torch.nn.BCEWithLogitsLoss``)."""


class CrossEntropyLoss(Loss, fn=_multiclass.cross_entropy):
    """:func:`jaxlosses.cross_entropy` (``torch.nn.CrossEntropyLoss``)."""


class NLLLoss(Loss, fn=_multiclass.nll_loss):
    """:func:`jaxlosses.nll_loss` on log-probabilities (``torch.nn.NLLLoss``)."""


class MultiLabelSoftMarginLoss(Loss, fn=_multilabel.multilabel_soft_margin_loss):
    """:func:`jaxlosses.multilabel_soft_margin_loss` (``torch.nn.MultiLabelSoftMarginLoss``)."""


class FocalLoss(Loss, fn=_multiclass.focal_loss):
    """:func:`jaxlosses.focal_loss`, the softmax focal loss over class indices."""


class SigmoidFocalLoss(Loss, fn=_binary.sigmoid_focal_loss):
    """:func:`jaxlosses.sigmoid_focal_loss` (``torchvision.ops.sigmoid_focal_loss``)."""


class LabelSmoothingLoss(Loss, fn=_multiclass.label_smoothing_loss):
    """:func:`jaxlosses.label_smoothing_loss`, ``s / (C - 1)`` off the target."""


class F1Loss(Loss, fn=_overlap.f1_loss):
    """:func:`jaxlosses.f1_loss`, one minus the soft macro F1 of a batch."""


class DiceLoss(Loss, fn=_overlap.dice_loss):
    """:func:`jaxlosses.dice_loss`, one minus the soft Dice coefficient of a batch."""
