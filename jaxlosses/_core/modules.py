"""What a module front-end (flax NNX, flax linen) needs to know about a loss function.

A loss module is a loss function plus its keyword-only hyperparameters, bound once at
construction. :func:`loss_spec` reads them from the function's signature, so a module
class only names its function: the module and the function cannot disagree on names or
defaults, and a new loss needs no new module code.

Hyperparameters are of two kinds:

* **array** hyperparameters, annotated ``ArrayLike`` (class ``weight``, ``pos_weight``):
  module *state* that is saved with the model and may be sharded, but is never trained;
* **static** ones (``reduction``, ``gamma``, ``label_smoothing``, ``ignore_index``, ...):
  Python values that are part of the compiled program (changing one recompiles).

``where`` is a call argument, not a hyperparameter; so is any argument a module names
as one. Hyperparameters are validated when the module is built, by the ranges the
function declares (``@hyperparameters`` in :mod:`jaxlosses._core.checks`), so a module
with ``label_smoothing=1.5`` fails at construction, not at its first call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxlosses._core import checks

CALL_ARGUMENTS = ("where",)


class LossSpec(NamedTuple):
    """A loss function's keyword-only hyperparameters.

    Attributes:
      fn: the loss function.
      inputs: the names of its positional inputs, in order.
      defaults: every hyperparameter's name and default, in signature order
        (``inspect.Parameter.empty`` for a required one).
      arrays: the names of the array hyperparameters (annotated ``ArrayLike``).
      call_arguments: the keyword-only arguments passed at each call (``where``, ...).
    """

    fn: Callable[..., jax.Array]
    inputs: tuple[str, ...]
    defaults: Mapping[str, Any]
    arrays: tuple[str, ...]
    call_arguments: tuple[str, ...]

    def bind(self, owner: str, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
        """Every hyperparameter's value: ``hyperparameters`` over the defaults.

        Raises:
          TypeError: for a name that is not a hyperparameter of :attr:`fn`.
        """
        unknown = sorted(set(hyperparameters) - set(self.defaults))
        if unknown:
            raise TypeError(
                f"{owner} got unexpected hyperparameter(s) {unknown}; "
                f"{self.fn.__name__} accepts {sorted(self.defaults)}"
            )
        values = {**self.defaults, **hyperparameters}
        missing = [name for name, value in values.items() if value is inspect.Parameter.empty]
        if missing:
            raise TypeError(f"{owner} is missing required hyperparameter(s) {missing}")
        checks.validate_hyperparameters(self.fn, hyperparameters)
        return values

    def is_state(self, name: str, value: Any) -> bool:
        """Whether a hyperparameter's value is module state rather than a static value.

        Array hyperparameters are state unless ``None``; so is any array value given
        for a scalar hyperparameter (then it can change without recompiling).
        """
        if value is None:
            return False
        return name in self.arrays or isinstance(value, jax.Array | np.ndarray)


def loss_spec(
    fn: Callable[..., jax.Array], call_arguments: tuple[str, ...] = CALL_ARGUMENTS
) -> LossSpec:
    """Reads the keyword-only hyperparameters of a loss function ``fn(*inputs, *, ...)``.

    ``call_arguments``: keyword-only arguments passed at each call, not hyperparameters.
    """
    defaults, arrays, inputs, calls = {}, [], [], []
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            inputs.append(name)
            continue
        if name in call_arguments:
            calls.append(name)
            continue
        defaults[name] = param.default
        if "ArrayLike" in str(param.annotation):
            arrays.append(name)
    return LossSpec(fn, tuple(inputs), defaults, tuple(arrays), tuple(calls))


def check_call(spec: LossSpec, owner: str, inputs: tuple, call_arguments: Mapping) -> None:
    """Checks a module call's inputs against its function: their number, and call names.

    Raises:
      TypeError: naming the expected inputs, or the unexpected keyword arguments.
    """
    if len(inputs) != len(spec.inputs):
        raise TypeError(
            f"{owner} takes {len(spec.inputs)} positional input(s) {spec.inputs}, got {len(inputs)}"
        )
    unknown = sorted(set(call_arguments) - set(spec.call_arguments))
    if unknown:
        raise TypeError(
            f"{owner} got unexpected call argument(s) {unknown}; it accepts "
            f"{list(spec.call_arguments)} (hyperparameters are set when it is built)"
        )
