"""jaxlosses in two minutes: worked numbers of PyTorch tutorials, then a jitted training step.

Run:  python examples/quickstart.py
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

import jaxlosses as jl


def tutorial_numbers() -> dict[str, float]:
    """The worked numbers of PyTorch tutorials, computed with jaxlosses."""
    ones, x = jnp.ones(10), jnp.full(10, 1.3)
    score = jnp.array(
        [0.8982, 0.805, 0.6393, 0.9983, 0.5731, 0.0469, 0.556, 0.1476, 0.8404, 0.5544]
    )
    ml_logits = jnp.array([[0.5, -1.0, 3.0], [1.5, -2.0, 0.0]])
    ml_labels = jnp.array([[1, 0, 1], [0, 1, 0]])
    return {
        "BCELoss(sigmoid(1.3), 1)              [0.2410]": jl.binary_cross_entropy(
            jax.nn.sigmoid(x), ones
        ),
        "BCEWithLogitsLoss(1.3, 1)             [0.2410]": jl.binary_cross_entropy_with_logits(
            x, ones
        ),
        "CrossEntropyLoss(score, 1)            [2.1438]": jl.cross_entropy(score, jnp.array(1)),
        "NLLLoss(LogSoftmax(score), 1)         [2.1438]": jl.nll_loss(
            jl.log_softmax(score[None]), jnp.array([1])
        ),
        "MultiLabelSoftMarginLoss(weighted)    [1.1801]": jl.multilabel_soft_margin_loss(
            ml_logits, ml_labels, weight=jnp.array([0.5, 2.0, 1.5])
        ),
        "FocalLoss(p=0.2, gamma=2) / ln 10     [0.4473]": jl.focal_loss(
            jnp.log(jnp.array([[0.2, 0.8]])), jnp.array([0])
        )
        / jnp.log(10.0),
    }


def make_data(key, n=512, dim=16, classes=5):
    """A synthetic, imbalanced classification problem: Gaussian blobs."""
    k1, k2, k3 = jax.random.split(key, 3)
    centers = jax.random.normal(k1, (classes, dim)) * 2.0
    probs = jnp.array([0.5, 0.2, 0.15, 0.1, 0.05])[:classes]
    labels = jax.random.choice(k2, classes, (n,), p=probs / probs.sum())
    x = centers[labels] + jax.random.normal(k3, (n, dim))
    return x, labels


def train(steps: int, seed: int = 0) -> dict[str, float]:
    key = jax.random.PRNGKey(seed)
    x, y = make_data(key)
    classes = 5
    counts = jnp.bincount(y, length=classes)
    class_weight = counts.sum() / (classes * jnp.maximum(counts, 1))
    params = {"w": jnp.zeros((x.shape[1], classes)), "b": jnp.zeros(classes)}
    opt = optax.adam(5e-2)
    opt_state = opt.init(params)

    def loss_fn(p, xb, yb):
        logits = xb @ p["w"] + p["b"]
        return jl.cross_entropy(logits, yb, weight=class_weight, label_smoothing=0.05)

    @jax.jit
    def step(p, s, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    first = None
    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state, x, y)
        first = float(loss) if first is None else first
    accuracy = float(jnp.mean(jnp.argmax(x @ params["w"] + params["b"], -1) == y))
    return {"first loss": first, "final loss": float(loss), "train accuracy": accuracy}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)

    print("Worked numbers of PyTorch tutorials [expected]:")
    for name, value in tutorial_numbers().items():
        print(f"  {name}  {float(value):.4f}")

    print(f"\nWeighted, label-smoothed cross-entropy, jitted Adam step x {args.steps}:")
    for name, value in train(args.steps).items():
        print(f"  {name:15s} {value:.4f}")


if __name__ == "__main__":
    main()
