"""The worked numbers of the seed documents (../shared/seeds), reproduced."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F

import jaxlosses as jl

SCORE = jnp.array([0.8982, 0.805, 0.6393, 0.9983, 0.5731, 0.0469, 0.556, 0.1476, 0.8404, 0.5544])


def test_bce_and_bce_with_logits_give_0_2410():
    targets = jnp.ones(10)
    inputs = jnp.full(10, 1.3)
    np.testing.assert_allclose(
        jl.binary_cross_entropy(jax.nn.sigmoid(inputs), targets), 0.2410, atol=5e-5
    )
    np.testing.assert_allclose(
        jl.binary_cross_entropy_with_logits(inputs, targets), 0.2410, atol=5e-5
    )


def test_cross_entropy_of_one_image_is_2_1438():
    # unbatched (C,) logits with a scalar label, as torch.nn.CrossEntropyLoss accepts
    np.testing.assert_allclose(jl.cross_entropy(SCORE, jnp.array(1)), 2.1438, atol=5e-5)
    # the same as a batch of one, and as LogSoftmax + NLLLoss
    np.testing.assert_allclose(jl.cross_entropy(SCORE[None], jnp.array([1])), 2.1438, atol=5e-5)
    np.testing.assert_allclose(
        jl.nll_loss(jl.log_softmax(SCORE[None]), jnp.array([1])), 2.1438, atol=5e-5
    )
    # the seed's hand computation: log(sum(exp(score))) - score[target]
    np.testing.assert_allclose(jnp.log(jnp.sum(jnp.exp(SCORE))), 2.9488, atol=5e-5)


def test_cross_entropy_seed_batch_of_three():
    inputs = jnp.array(
        [
            [0.0893, 0.6787, 1.0965, -0.8594, 1.0114],
            [-1.6852, -0.4836, 0.8726, 0.5809, -1.7477],
            [-2.4419, 1.0551, -1.0063, 0.2250, 0.1060],
        ]
    )
    labels = jnp.array([0, 1, 4])
    np.testing.assert_allclose(jl.cross_entropy(inputs, labels), 1.9633, atol=1e-4)
    # the seed's mistake, applying a sigmoid first, gives its other number
    np.testing.assert_allclose(jl.cross_entropy(jax.nn.sigmoid(inputs), labels), 1.6332, atol=1e-4)


def test_batch_mean_is_the_average_of_per_image_losses():
    r = np.random.default_rng(0)
    score = r.standard_normal((64, 10)).astype(np.float32)
    target = r.integers(0, 9, size=64)
    acc = sum(float(jnp.log(jnp.sum(jnp.exp(score[i]))) - score[i, target[i]]) for i in range(64))
    np.testing.assert_allclose(jl.cross_entropy(score, target), acc / 64, rtol=1e-5)


def test_multilabel_soft_margin_with_class_weights():
    logits = jnp.array([[0.5, -1.0, 3.0], [1.5, -2.0, 0.0]])
    labels = jnp.array([[1, 0, 1], [0, 1, 0]], jnp.float32)
    weights = jnp.array([0.5, 2.0, 1.5])
    want = F.multilabel_soft_margin_loss(
        torch.tensor(np.asarray(logits)),
        torch.tensor(np.asarray(labels)),
        weight=torch.tensor(np.asarray(weights)),
    ).item()
    np.testing.assert_allclose(
        jl.multilabel_soft_margin_loss(logits, labels, weight=weights), want, rtol=1e-6
    )
    # the seed's formula: -(1/C) sum_i w_i [y log s(x) + (1 - y) log(1 - s(x))], batch mean
    s = jax.nn.sigmoid(logits)
    manual = jnp.mean(
        -jnp.mean(weights * (labels * jnp.log(s) + (1 - labels) * jnp.log(1 - s)), -1)
    )
    np.testing.assert_allclose(
        jl.multilabel_soft_margin_loss(logits, labels, weight=weights), manual, rtol=1e-5
    )


def test_focal_loss_easy_and_hard_examples():
    # The seed's easy (p = 0.98) and hard (p = 0.2) examples with gamma = 2. Its printed
    # numbers, 0.00003508 and 0.44734, use log base 10 (0.64 * log10(5) = 0.44734); the
    # loss itself uses the natural log, like its FocalLoss code: divide by ln(10) to compare.
    logits = jnp.log(jnp.array([[0.98, 0.02], [0.2, 0.8]]))
    loss = jl.focal_loss(logits, jnp.array([0, 0]), gamma=2.0, reduction="none")
    chex.assert_trees_all_close(
        loss, jnp.array([(0.02**2) * -math.log(0.98), 0.8**2 * -math.log(0.2)]), rtol=1e-5
    )
    np.testing.assert_allclose(loss[1] / math.log(10), 0.44734, atol=1e-5)


def test_label_smoothing_loss_spreads_smoothing_over_other_classes():
    # classes=3, smoothing=0.3: target 0.7, others 0.15 each
    logits = jnp.array([[2.0, 0.5, -1.0]])
    lp = jax.nn.log_softmax(logits)
    want = -(0.7 * lp[0, 0] + 0.15 * lp[0, 1] + 0.15 * lp[0, 2])
    np.testing.assert_allclose(
        jl.label_smoothing_loss(logits, jnp.array([0]), label_smoothing=0.3), want, rtol=1e-6
    )
