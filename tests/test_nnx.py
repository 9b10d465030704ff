"""Flax NNX loss modules: equal to the functions, weights are non-trainable state."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from loss_cases import CASES, LEARNED_MODULES, WHERE, R, T, W, X, Y

import jaxlosses as jl
from jaxlosses import nnx as losses


def test_every_module_is_tested():
    modules = {n for n in losses.__all__ if n not in ("Loss", "LossHyperparameter")}
    assert modules == set(CASES) | LEARNED_MODULES


@pytest.mark.parametrize("name", sorted(CASES))
def test_module_equals_function_and_stores_arrays_as_state(name):
    fn, kwargs, inputs, where = CASES[name]
    module = getattr(losses, name)(**kwargs)
    assert type(module).fn is fn
    got = module(*inputs, where=where)
    chex.assert_trees_all_equal(got, fn(*inputs, where=where, **kwargs))
    # The hyperparameters were used: the defaults give another value.
    assert not np.allclose(got, fn(*inputs, where=where))
    # Arrays are LossHyperparameter state, the rest static; nothing is a Param.
    arrays = {k for k, v in kwargs.items() if isinstance(v, jax.Array)}
    assert set(nnx.state(module, losses.LossHyperparameter).keys()) == arrays
    assert len(nnx.state(module, nnx.Param)) == 0
    assert module.hyperparameters().keys() == module.spec.defaults.keys()


def test_defaults_come_from_the_function():
    loss = losses.CrossEntropyLoss()
    assert loss.weight is None and loss.ignore_index == -100 and loss.reduction == "mean"
    assert losses.FocalLoss().gamma == 2.0
    assert len(nnx.state(loss)) == 0


def test_unknown_hyperparameter_is_a_type_error():
    with pytest.raises(TypeError, match=r"unexpected hyperparameter\(s\) \['label_smoothing'\]"):
        losses.FocalLoss(label_smoothing=0.1)
    with pytest.raises(TypeError, match="names no loss function"):
        losses.Loss()


class Net(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(5, 8, rngs=rngs)
        self.out = nnx.Linear(8, 5, rngs=rngs)
        self.loss = losses.CrossEntropyLoss(weight=W, label_smoothing=0.05)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.hidden(x)))


def test_optimizer_trains_params_and_leaves_the_weight_alone():
    chex.clear_trace_counter()
    model = Net(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(5e-2), wrt=nnx.Param)
    opt_paths = [
        jax.tree_util.keystr(p) for p, _ in jax.tree.leaves_with_path(nnx.state(optimizer))
    ]
    assert opt_paths and not [p for p in opt_paths if "loss" in p]  # no state for the weight
    params_before = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))

    @nnx.jit
    @chex.assert_max_traces(n=1)
    def step(model, optimizer, x, y):
        def loss_fn(model):
            return model.loss(model(x), y)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        assert "loss" not in grads  # gradients only for nnx.Param: none for the loss
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer, X, Y)) for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0]
    chex.assert_trees_all_equal(model.loss.weight[...], W)
    moved = jax.tree.map(
        lambda a, b: bool(jnp.any(a != b)), params_before, nnx.state(model, nnx.Param)
    )
    assert all(jax.tree.leaves(moved))

    # A new weight value is new state, not a new program: no retrace, a new loss.
    model.loss.weight[...] = jnp.ones(5)
    step(model, optimizer, X, Y)
    with pytest.raises(AssertionError, match="traced > 1 times"):
        step(model, optimizer, X[:3], Y[:3])  # a new shape does retrace: the counter counts


def test_jitted_module_traces_once_and_matches_eager():
    chex.clear_trace_counter()
    loss = losses.FocalLoss(gamma=jnp.asarray(1.5), weight=W)  # an array gamma is state too
    assert set(nnx.state(loss).keys()) == {"gamma", "weight"}

    @nnx.jit
    @chex.assert_max_traces(n=1)
    def value(loss, x):
        return loss(x, Y)

    for k in range(3):
        got = value(loss, X + k)
    loss.gamma[...] = jnp.asarray(0.5)
    got = value(loss, X + 2)
    chex.assert_trees_all_close(got, jl.focal_loss(X + 2, Y, gamma=0.5, weight=W), rtol=1e-6)


def test_split_merge_and_state_round_trip():
    loss = losses.BCEWithLogitsLoss(pos_weight=W, reduction="sum")
    graphdef, state = nnx.split(loss)
    merged = nnx.merge(graphdef, state)
    chex.assert_trees_all_equal(merged.pos_weight[...], W)
    assert merged.reduction == "sum" and isinstance(merged.pos_weight, losses.LossHyperparameter)
    chex.assert_trees_all_equal(merged(X, T), loss(X, T))
    # a checkpoint-like round trip: host arrays back into a module built with another weight
    saved = jax.tree.map(np.asarray, nnx.state(loss))
    fresh = losses.BCEWithLogitsLoss(pos_weight=jnp.ones(5), reduction="sum")
    nnx.update(fresh, saved)
    chex.assert_trees_all_equal(fresh(X, T), loss(X, T))


def test_weight_carries_sharding_metadata():
    mesh = jax.make_mesh((1,), ("model",), axis_types=(jax.sharding.AxisType.Auto,))
    with jax.set_mesh(mesh):
        weight = losses.LossHyperparameter(jnp.asarray(np.asarray(W)), out_sharding=("model",))
        loss = losses.CrossEntropyLoss(weight=weight)
        assert loss.weight is weight
        spec = nnx.get_partition_spec(nnx.state(loss))
        assert spec["weight"].get_value() == jax.sharding.PartitionSpec("model")
        assert loss.weight[...].sharding.spec == jax.sharding.PartitionSpec("model")
        chex.assert_trees_all_close(loss(X, Y), jl.cross_entropy(X, Y, weight=W), rtol=1e-6)


def linear_cross_entropy(hidden, kernel, labels, *, reduction="mean", where=None):
    return jl.cross_entropy(hidden @ kernel, labels, reduction=reduction, where=where)


class LinearCrossEntropyLoss(losses.Loss, fn=linear_cross_entropy):
    """A loss with three inputs needs no code of its own."""


def test_a_loss_with_other_inputs_is_a_few_lines():
    kernel = jnp.asarray(R.standard_normal((5, 5)), jnp.float32)
    loss = LinearCrossEntropyLoss(reduction="sum")
    chex.assert_trees_all_equal(
        loss(X, kernel, Y, where=WHERE),
        jl.cross_entropy(X @ kernel, Y, reduction="sum", where=WHERE),
    )


def test_linear_cross_entropy_module_trains_its_head_like_the_naive_path():
    """The module owns the head (PyTorch's LinearCrossEntropyLoss): the fused loss's value
    and gradients (head and body) equal CrossEntropyLoss of the head's logits."""

    class LM(nnx.Module):
        def __init__(self, rngs):
            self.body = nnx.Linear(5, 8, rngs=rngs)
            self.loss = losses.LinearCrossEntropyLoss(
                8, 7, bias=True, label_smoothing=0.1, chunk_size=4, rngs=rngs
            )

    model = LM(nnx.Rngs(0))
    naive = losses.CrossEntropyLoss(label_smoothing=0.1)
    assert model.loss.linear_weight.shape == (7, 8) and model.loss.linear_bias.shape == (7,)
    assert set(model.loss.hyperparameters()).isdisjoint({"linear_bias", "where"})

    def fused_loss(m):
        return m.loss(jax.nn.relu(m.body(X)), Y, where=WHERE)

    def naive_loss(m):
        h = jax.nn.relu(m.body(X))
        logits = h @ m.loss.linear_weight[...].T + m.loss.linear_bias[...]
        return naive(logits, Y, where=WHERE)

    got = nnx.jit(nnx.value_and_grad(fused_loss))(model)
    want = nnx.value_and_grad(naive_loss)(model)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(got[1]["loss"]["linear_bias"][...]).sum()) > 0
    assert float(jnp.abs(got[1]["body"]["kernel"][...]).sum()) > 0
