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


class LearnedInput(NamedTuple):
    """A positional input of a loss that its module learns (CLIP's temperature, ...).

    The module holds a trainable parameter named like the input (an ``nnx.Param``, a
    linen ``"params"`` entry), initialised to ``init`` (or to the constructor argument
    ``init_name``), and passes ``transform(parameter)`` as the input (``jnp.exp`` for a
    log-parameterised scale, as open_clip's ``logit_scale.exp()``).
    """

    init: float
    init_name: str
    transform: Callable[[jax.Array], jax.Array] | None = None

    def value(self, parameter: jax.Array) -> jax.Array:
        return parameter if self.transform is None else self.transform(parameter)


class LossSpec(NamedTuple):
    """A loss function's keyword-only hyperparameters.

    Attributes:
      fn: the loss function.
      inputs: the names of its positional inputs, in order.
      defaults: every hyperparameter's name and default, in signature order
        (``inspect.Parameter.empty`` for a required one).
      arrays: the names of the array hyperparameters (annotated ``ArrayLike``).
      call_arguments: the keyword-only arguments passed at each call (``where``, ...).
      learned: the positional inputs the module learns, by name (see :class:`LearnedInput`).
    """

    fn: Callable[..., jax.Array]
    inputs: tuple[str, ...]
    defaults: Mapping[str, Any]
    arrays: tuple[str, ...]
    call_arguments: tuple[str, ...]
    learned: Mapping[str, LearnedInput] = {}

    @property
    def data_inputs(self) -> tuple[str, ...]:
        """The positional inputs passed at each call (those not learned by the module)."""
        return tuple(name for name in self.inputs if name not in self.learned)

    def arguments(self, inputs: tuple, learned_values: Mapping[str, Any]) -> list:
        """The function's positional arguments: call inputs and learned values, in order."""
        it = iter(inputs)  # optional inputs left out at the end are None
        return [learned_values[n] if n in self.learned else next(it, None) for n in self.inputs]

    def split_initial_values(self, hyperparameters: Mapping[str, Any]):
        """``(hyperparameters without the learned inputs' init arguments, {input: init})``."""
        rest = dict(hyperparameters)
        inits = {name: rest.pop(li.init_name, li.init) for name, li in self.learned.items()}
        return rest, inits

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
    fn: Callable[..., jax.Array],
    call_arguments: tuple[str, ...] = CALL_ARGUMENTS,
    learned: Mapping[str, LearnedInput] | None = None,
) -> LossSpec:
    """Reads the keyword-only hyperparameters of a loss function ``fn(*inputs, *, ...)``.

    ``call_arguments``: keyword-only arguments passed at each call, not hyperparameters.
    ``learned``: positional inputs that the module learns instead of receiving them.
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
    learned = dict(learned or {})
    unknown = sorted(set(learned) - set(inputs))
    if unknown:
        raise TypeError(f"{fn.__name__} has no positional inputs {unknown} to learn")
    return LossSpec(fn, tuple(inputs), defaults, tuple(arrays), tuple(calls), learned)


def check_call(spec: LossSpec, owner: str, inputs: tuple, call_arguments: Mapping) -> None:
    """Checks a module call's inputs against its function: their number, and call names.

    Raises:
      TypeError: naming the expected inputs, or the unexpected keyword arguments.
    """
    expected = spec.data_inputs
    params = inspect.signature(spec.fn).parameters
    required = [n for n in expected if params[n].default is inspect.Parameter.empty]
    if not len(required) <= len(inputs) <= len(expected):
        count = (
            f"{len(required)} to {len(expected)}"
            if len(required) < len(expected)
            else len(expected)
        )
        raise TypeError(f"{owner} takes {count} positional input(s) {expected}, got {len(inputs)}")
    unknown = sorted(set(call_arguments) - set(spec.call_arguments))
    if unknown:
        raise TypeError(
            f"{owner} got unexpected call argument(s) {unknown}; it accepts "
            f"{list(spec.call_arguments)} (hyperparameters are set when it is built)"
        )
