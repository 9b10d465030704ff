"""Compile once: static hyperparameters do not retrace; jit, vmap and grad compose."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlosses as jl

R = np.random.default_rng(0)
LOGITS = jnp.asarray(R.standard_normal((6, 5)), jnp.float32)
LABELS = jnp.asarray(R.integers(0, 5, size=6))
TARGETS = jnp.asarray(R.uniform(size=(6, 5)) < 0.5, jnp.float32)
WEIGHT = jnp.asarray(R.uniform(0.5, 2, size=5), jnp.float32)


@pytest.fixture(autouse=True)
def _fresh_trace_counter():
    chex.clear_trace_counter()
    yield
    chex.clear_trace_counter()


CALLS = {
    "cross_entropy": lambda x: jl.cross_entropy(x, LABELS, weight=WEIGHT, label_smoothing=0.1),
    "cross_entropy_probs": lambda x: jl.cross_entropy(x, jax.nn.softmax(TARGETS)),
    "nll_loss": lambda x: jl.nll_loss(jl.log_softmax(x), LABELS, weight=WEIGHT),
    "focal_loss": lambda x: jl.focal_loss(x, LABELS, gamma=0.5),
    "label_smoothing_loss": lambda x: jl.label_smoothing_loss(x, LABELS, label_smoothing=0.2),
    "bce": lambda x: jl.binary_cross_entropy(jax.nn.sigmoid(x), TARGETS),
    "bce_logits": lambda x: jl.binary_cross_entropy_with_logits(x, TARGETS, pos_weight=WEIGHT),
    "sigmoid_focal": lambda x: jl.sigmoid_focal_loss(x, TARGETS, gamma=0.5),
    "multilabel": lambda x: jl.multilabel_soft_margin_loss(x, TARGETS, weight=WEIGHT),
    "f1": lambda x: jl.f1_loss(x, LABELS),
    "dice": lambda x: jl.dice_loss(x, LABELS),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_jitted_value_and_grad_trace_once_and_match_eager(name):
    fn = CALLS[name]

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(x):
        return jax.value_and_grad(fn)(x)

    for k in range(3):
        value, grad = step(LOGITS + k)
        assert np.isfinite(value) and np.all(np.isfinite(grad))
    eager_value, eager_grad = jax.value_and_grad(fn)(LOGITS + 2)
    chex.assert_trees_all_close((value, grad), (eager_value, eager_grad), rtol=1e-5, atol=1e-6)


def test_static_hyperparameters_compile_once():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(x, y):
        return jl.cross_entropy(x, y, label_smoothing=0.1, reduction="sum")

    for k in range(4):
        loss(LOGITS * k, LABELS)
    with pytest.raises(AssertionError, match="traced > 1 times"):
        loss(LOGITS[:3], LABELS[:3])  # a new shape is a new trace: the counter does count


def test_vmap_over_a_batch_of_batches():
    x = jnp.stack([LOGITS, LOGITS * 2, -LOGITS])
    y = jnp.stack([LABELS, LABELS, LABELS])
    got = jax.vmap(lambda a, b: jl.cross_entropy(a, b, weight=WEIGHT))(x, y)
    want = jnp.stack([jl.cross_entropy(a, LABELS, weight=WEIGHT) for a in x])
    chex.assert_trees_all_close(got, want, rtol=1e-6)


@pytest.mark.parametrize(
    "loss",
    [
        lambda x, y: jl.cross_entropy(x, y),
        lambda x, y: jl.cross_entropy(x, y, label_smoothing=0.1, weight=jnp.ones(x.shape[-1])),
        lambda x, y: jl.label_smoothing_loss(x, y),
    ],
)
def test_cross_entropy_step_needs_no_logit_sized_temporaries(loss):
    # The jitted value-and-grad keeps no N x C buffer beyond the gradient it returns:
    # the target distribution is never built and exp(x - max) is computed once.
    x = jnp.zeros((512, 4096), jnp.float32)
    y = jnp.zeros((512,), jnp.int32)
    step = jax.jit(jax.value_and_grad(loss)).lower(x, y).compile()
    temp = step.memory_analysis().temp_size_in_bytes
    assert temp < x.nbytes // 8, f"{temp} bytes of temporaries for {x.nbytes}-byte logits"
