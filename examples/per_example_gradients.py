"""Per-example gradients and DP-SGD-style clipping + noise, with ``jaxlosses.per_example``.

``jaxlosses.per_example.cross_entropy`` takes one example (``(C,)`` logits and a scalar
label) and returns its loss, so per-example gradients are one ``jax.vmap(jax.grad(...))``.
Each example's gradient is clipped to norm ``--clip``, the clipped gradients are summed,
Gaussian noise of standard deviation ``--noise * --clip`` is added, and the result is
averaged over the batch: the DP-SGD update of Abadi et al., https://arxiv.org/abs/1607.00133
(``optax.contrib.dpsgd`` packages the same recipe as an optax transformation).

The model is a small Flax NNX MLP on scikit-learn's bundled digits (no download).

Run:  python examples/per_example_gradients.py [--quick]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.flatten_util import ravel_pytree
from sklearn.datasets import load_digits

import jaxlosses as jl
from jaxlosses import per_example


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, hidden: int = 32):
        self.hidden = nnx.Linear(64, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.hidden(x)))


def global_norms(grads) -> jax.Array:
    """The L2 norm of each example's gradient (leading axis), over every parameter."""
    squares = [jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in jax.tree.leaves(grads)]
    return jnp.sqrt(sum(squares))


def make_step(graphdef, tx, *, clip: float, noise: float):
    def example_loss(params, x, y):
        # One example: (64,) pixels and a scalar label -> a scalar loss.
        return per_example.cross_entropy(nnx.merge(graphdef, params)(x), y)

    per_example_grads = jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0))

    @jax.jit
    def step(params, opt_state, x, y, key, step_number):
        key = jax.random.fold_in(key, step_number)  # fresh noise every step
        grads = per_example_grads(params, x, y)  # every leaf gets a leading batch axis
        norms = global_norms(grads)
        scale = jnp.minimum(1.0, clip / jnp.maximum(norms, 1e-12))
        clipped = jax.tree.map(lambda g: g * scale.reshape((-1,) + (1,) * (g.ndim - 1)), grads)
        summed, unravel = ravel_pytree(jax.tree.map(lambda g: jnp.sum(g, axis=0), clipped))
        noisy = (summed + noise * clip * jax.random.normal(key, summed.shape)) / x.shape[0]
        updates, opt_state = tx.update(unravel(noisy), opt_state, params)
        return optax.apply_updates(params, updates), opt_state, norms, global_norms(clipped)

    return step, per_example_grads


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--clip", type=float, default=1.0, help="per-example gradient norm bound")
    parser.add_argument("--noise", type=float, default=1.0, help="noise multiplier")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = 3 if args.quick else args.epochs

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(args.seed).permutation(len(y))
    test, train = order[:400], order[400:]

    model = MLP(nnx.Rngs(args.seed))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adam(args.lr)
    opt_state = jax.jit(tx.init)(params)
    step, per_example_grads = make_step(graphdef, tx, clip=args.clip, noise=args.noise)

    @jax.jit
    def accuracy(params):
        logits = nnx.merge(graphdef, params)(x[test])
        return jnp.mean(jnp.argmax(logits, -1) == y[test])

    @jax.jit
    def gradient_gap(params, xb, yb):
        """max |mean of the per-example gradients - the batch gradient|."""
        mean_of_examples = jax.tree.map(lambda g: g.mean(0), per_example_grads(params, xb, yb))
        batch = jax.grad(lambda p: jl.cross_entropy(nnx.merge(graphdef, p)(xb), yb))(params)
        gaps = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), mean_of_examples, batch)
        return jnp.max(jnp.stack(jax.tree.leaves(gaps)))

    gap = gradient_gap(params, x[train[:8]], y[train[:8]])
    print(f"mean of per-example gradients vs batch gradient: max |diff| = {gap:.2e}")

    first_accuracy = float(accuracy(params))
    print(f"test accuracy before training: {first_accuracy:.4f}")
    print(f"\nclip = {args.clip}, noise multiplier = {args.noise}, batch = {args.batch_size}")
    header = ("epoch", "norm before clip (median / max)", "after clip (max)", "test acc")
    print("{:>5} {:>32} {:>17} {:>9}".format(*header))
    key = jax.random.key(args.seed)
    rng, step_number = np.random.default_rng(args.seed), 0
    steps_per_epoch = len(train) // args.batch_size
    for epoch in range(1, epochs + 1):
        perm = rng.permutation(train)[: steps_per_epoch * args.batch_size]
        before, after = [], []
        for idx in perm.reshape(steps_per_epoch, args.batch_size):
            params, opt_state, norms, clipped = step(
                params, opt_state, x[idx], y[idx], key, step_number
            )
            step_number += 1
            before.append(norms)
            after.append(clipped)
        before, after = np.concatenate(before), np.concatenate(after)
        print(
            f"{epoch:>5} {np.median(before):>20.4f} / {before.max():>9.4f} "
            f"{after.max():>17.4f} {accuracy(params):>9.4f}"
        )
    print(f"\ntest accuracy after training: {accuracy(params):.4f} (before: {first_accuracy:.4f})")


if __name__ == "__main__":
    main()
