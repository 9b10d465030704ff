"""``flax.linen`` modules for the losses, with PyTorch's names, for linen codebases.

The same modules as :mod:`jaxlosses.nn`, each one's linen twin. A module's dataclass
fields are its loss function's keyword arguments, with the same names and defaults, and
``loss.apply(variables, input, target, where=None)`` is exactly the function's value.

Array hyperparameters (a class ``weight``, ``pos_weight``) are **variables in the**
``"loss_hyperparameters"`` **collection** (:data:`HYPERPARAMETERS`), not ``"params"``:
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
import types
from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlosses import nn as nnx_losses
from jaxlosses._core.modules import LossSpec, loss_spec

__all__ = [
    "HYPERPARAMETERS",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "F1Loss",
    "FocalLoss",
    "LabelSmoothingLoss",
    "Loss",
    "MultiLabelSoftMarginLoss",
    "NLLLoss",
    "SigmoidFocalLoss",
]

HYPERPARAMETERS = "loss_hyperparameters"
"""The variable collection that holds the array hyperparameters."""


class Loss(nn.Module):
    """Base of the linen loss modules: one dataclass field per hyperparameter of ``fn``.

    A subclass names its function, ``class MyLoss(Loss, fn=my_loss): ...``; the fields
    are read from ``my_loss``'s keyword-only arguments (``where`` excepted). A loss whose
    inputs are not ``(input, target)`` overrides ``__call__`` (``@nn.compact``) and calls
    ``self.forward(*inputs, where=where)``.
    """

    fn: ClassVar[Callable[..., jax.Array]]
    spec: ClassVar[LossSpec]

    def __init_subclass__(cls, *, fn: Callable[..., jax.Array] | None = None, **kwargs):
        if fn is not None:
            cls.fn = staticmethod(fn)
            cls.spec = loss_spec(fn)
            # The fields, declared before linen turns the class into a dataclass
            # (required ones first, as dataclasses want).
            required = [k for k, v in cls.spec.defaults.items() if v is inspect.Parameter.empty]
            optional = {k: v for k, v in cls.spec.defaults.items() if k not in required}
            cls.__annotations__ = dict.fromkeys([*required, *optional], Any)
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

    def forward(self, *inputs: ArrayLike, where: ArrayLike | None = None) -> jax.Array:
        """``fn(*inputs, where=where, **hyperparameters)``."""
        return type(self).fn(*inputs, where=where, **self.hyperparameters())

    @nn.compact
    def __call__(
        self, input: ArrayLike, target: ArrayLike, where: ArrayLike | None = None
    ) -> jax.Array:
        return self.forward(input, target, where=where)


def _twin(module: type[nnx_losses.Loss]) -> type[Loss]:
    """The linen twin of a :mod:`jaxlosses.nn` module: same name, function and docstring.

    The twin has the base's ``__call__(input, target, where=None)``; a loss with other
    inputs subclasses :class:`Loss` here too, with its own ``__call__``.
    """

    def body(namespace):
        namespace.update(__doc__=module.__doc__, __module__=__name__, __qualname__=module.__name__)

    return types.new_class(module.__name__, (Loss,), {"fn": module.fn}, body)


BCELoss = _twin(nnx_losses.BCELoss)
BCEWithLogitsLoss = _twin(nnx_losses.BCEWithLogitsLoss)
CrossEntropyLoss = _twin(nnx_losses.CrossEntropyLoss)
NLLLoss = _twin(nnx_losses.NLLLoss)
MultiLabelSoftMarginLoss = _twin(nnx_losses.MultiLabelSoftMarginLoss)
FocalLoss = _twin(nnx_losses.FocalLoss)
SigmoidFocalLoss = _twin(nnx_losses.SigmoidFocalLoss)
LabelSmoothingLoss = _twin(nnx_losses.LabelSmoothingLoss)
F1Loss = _twin(nnx_losses.F1Loss)
DiceLoss = _twin(nnx_losses.DiceLoss)
