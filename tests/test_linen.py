"""flax.linen loss modules: equal to the functions; weights live outside "params"."""

import chex
import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from loss_cases import CASES, LEARNED_MODULES, WHERE, W, X, Y

import jaxlosses as jl
from jaxlosses import linen


def test_every_module_is_tested():
    modules = {n for n in linen.__all__ if n not in ("Loss", "HYPERPARAMETERS")}
    assert modules == set(CASES) | LEARNED_MODULES


@pytest.mark.parametrize("name", sorted(CASES))
def test_module_equals_function_and_keeps_arrays_in_their_collection(name):
    fn, kwargs, inputs, where = CASES[name]
    module = getattr(linen, name)(**kwargs)
    variables = module.init(jax.random.key(0), *inputs, where=where)
    got = module.apply(variables, *inputs, where=where)
    chex.assert_trees_all_equal(got, fn(*inputs, where=where, **kwargs))
    assert not np.allclose(got, fn(*inputs, where=where))
    arrays = {k for k, v in kwargs.items() if isinstance(v, jax.Array)}
    assert set(variables) == ({linen.HYPERPARAMETERS} if arrays else set())
    assert set(variables.get(linen.HYPERPARAMETERS, {})) == arrays


def test_fields_and_defaults_come_from_the_function():
    loss = linen.CrossEntropyLoss()
    assert loss.weight is None and loss.ignore_index == -100 and loss.label_smoothing == 0.0
    assert linen.FocalLoss().gamma == 2.0
    with pytest.raises(TypeError, match="unexpected keyword argument 'label_smoothing'"):
        linen.FocalLoss(label_smoothing=0.1)


def test_the_collection_wins_and_the_field_is_the_fallback():
    loss = linen.CrossEntropyLoss(weight=W)
    variables = loss.init(jax.random.key(0), X, Y)
    chex.assert_trees_all_equal(loss.apply({}, X, Y), jl.cross_entropy(X, Y, weight=W))
    restored = {linen.HYPERPARAMETERS: {"weight": jnp.ones(5)}}  # e.g. from a checkpoint
    chex.assert_trees_all_equal(loss.apply(restored, X, Y), jl.cross_entropy(X, Y))
    assert jax.tree.map(jnp.shape, variables) == {linen.HYPERPARAMETERS: {"weight": (5,)}}


class Net(fnn.Module):
    @fnn.compact
    def __call__(self, x, y, where=None):
        logits = fnn.Dense(5)(jax.nn.relu(fnn.Dense(8)(x)))
        return linen.FocalLoss(gamma=1.0, weight=W)(logits, y, where=where)


def test_training_updates_params_only_and_compiles_once():
    chex.clear_trace_counter()
    net = Net()
    variables = net.init(jax.random.key(0), X, Y)
    params, constants = (
        variables["params"],
        {linen.HYPERPARAMETERS: variables[linen.HYPERPARAMETERS]},
    )
    assert jax.tree.map(jnp.shape, constants) == {
        linen.HYPERPARAMETERS: {"FocalLoss_0": {"weight": (5,)}}
    }
    tx = optax.adam(5e-2)
    opt_state = tx.init(params)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(params, opt_state, constants, x, y):
        loss, grads = jax.value_and_grad(
            lambda p: net.apply({"params": p, **constants}, x, y, WHERE)
        )(params)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for _ in range(20):
        params, opt_state, loss = step(params, opt_state, constants, X, Y)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    # a new weight is new data, not a new program
    step(params, opt_state, {linen.HYPERPARAMETERS: {"FocalLoss_0": {"weight": jnp.ones(5)}}}, X, Y)


def test_linear_cross_entropy_module_owns_its_head():
    """linen.LinearCrossEntropyLoss holds the head's parameters like PyTorch's module; its
    value and gradients equal cross_entropy of the soft-capped logits of that head."""
    loss = linen.LinearCrossEntropyLoss(5, 7, bias=True, reduction="sum", logit_softcap=3.0)
    params = loss.init(jax.random.key(0), X, Y)["params"]
    assert jax.tree.map(jnp.shape, params) == {"linear_weight": (7, 5), "linear_bias": (7,)}

    def fused(params):
        return loss.apply({"params": params}, X, Y, where=WHERE)

    def naive(params):
        logits = X @ params["linear_weight"].T + params["linear_bias"]
        logits = 3.0 * jnp.tanh(logits / 3.0)
        return jl.cross_entropy(logits, Y, reduction="sum", where=WHERE)

    chex.assert_trees_all_close(
        jax.jit(jax.value_and_grad(fused))(params),
        jax.value_and_grad(naive)(params),
        rtol=1e-5,
        atol=1e-6,
    )
