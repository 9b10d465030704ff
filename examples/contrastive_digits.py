"""Contrastive training on 8 simulated devices: matching the two halves of handwritten digits.

Each 8x8 digit bundled with scikit-learn (no download) gives two views: its left half and
its right half (8x4 pixels each). Two small Flax NNX encoders, one per view, learn to embed
the halves of the same digit close together, CLIP-style, with the batch split over 8
simulated CPU devices inside ``jax.shard_map``:

* ``jaxlosses.sharded.clip_loss`` (the features gathered, a learned temperature),
* ``jaxlosses.sharded.siglip_loss`` (the right halves passed around the ring of devices,
  a learned scale and bias).

At the first step the sharded loss and its gradients are checked against the one-device
``jaxlosses.clip_loss`` / ``siglip_loss`` of the whole batch. After training it prints the
top-1 retrieval accuracy on held-out digits (for each left half, is the nearest right half
its own?) per loss, and saves the learned similarity matrices of a few held-out digits as
a PNG.

Run:  python examples/contrastive_digits.py            (about a minute on a laptop CPU)
      python examples/contrastive_digits.py --quick    (a smoke run of about 10 seconds)
"""

from __future__ import annotations

import os

# Eight CPU devices; must be set before jax is imported.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import argparse  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxlosses as jl  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


def halves(seed: int, test_size: int):
    """(left, right, label) of a training and a held-out split of the digits."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    left = images[:, :, :4].reshape(len(images), -1)
    right = images[:, :, 4:].reshape(len(images), -1)
    order = np.random.default_rng(seed).permutation(len(images))
    test, train = order[:test_size], order[test_size:]
    return (left[train], right[train]), (left[test], right[test], digits.target[test])


class Encoder(nnx.Module):
    def __init__(self, features: int, hidden: int, out: int, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(features, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, out, rngs=rngs)

    def __call__(self, x):
        z = self.out(jax.nn.gelu(self.hidden(x)))
        return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


class TwoTowers(nnx.Module):
    """Two encoders and the loss's learned scalars, initialised as CLIP and SigLIP do."""

    def __init__(self, loss: str, hidden: int, dim: int, rngs: nnx.Rngs):
        self.left = Encoder(32, hidden, dim, rngs)
        self.right = Encoder(32, hidden, dim, rngs)
        init_scale = math.log(1 / 0.07) if loss == "clip" else math.log(10.0)
        # float32, not weakly typed: the updated values keep the type (no recompilation)
        self.logit_scale = nnx.Param(jnp.asarray(init_scale, jnp.float32))  # log of the scale
        self.logit_bias = nnx.Param(jnp.asarray(-10.0, jnp.float32))  # used by SigLIP only


def make_loss(loss: str, graphdef, mesh):
    """The global loss of a batch split over the mesh's "data" axis (inside shard_map)."""

    def per_device(state, x_left, x_right):
        model = nnx.merge(graphdef, state)
        a, b = model.left(x_left), model.right(x_right)
        scale, bias = jnp.exp(model.logit_scale[...]), model.logit_bias[...]
        if loss == "clip":
            return jl.sharded.clip_loss(a, b, scale, axis_name="data")
        return jl.sharded.siglip_loss(a, b, scale, bias, axis_name="data")

    return jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=P())


def one_device_loss(loss: str, graphdef):
    def fn(state, x_left, x_right):
        model = nnx.merge(graphdef, state)
        a, b = model.left(x_left), model.right(x_right)
        scale, bias = jnp.exp(model.logit_scale[...]), model.logit_bias[...]
        if loss == "clip":
            return jl.clip_loss(a, b, scale)
        return jl.siglip_loss(a, b, scale, bias)

    return fn


def train(loss: str, data, args, mesh):
    (left, right), _ = data
    model = TwoTowers(loss, args.hidden, args.dim, nnx.Rngs(args.seed))
    graphdef, state = nnx.split(model)
    tx = optax.adam(args.lr)
    opt_state = tx.init(state)
    sharded = make_loss(loss, graphdef, mesh)

    @jax.jit
    def step(state, opt_state, x_left, x_right):
        value, grads = jax.value_and_grad(sharded)(state, x_left, x_right)
        updates, opt_state = tx.update(grads, opt_state, state)
        return optax.apply_updates(state, updates), opt_state, value

    rng = np.random.default_rng(args.seed)
    batch = args.batch_size
    # The sharded loss is the one-device loss of the whole batch, gradients included.
    x_l, x_r = jnp.asarray(left[:batch]), jnp.asarray(right[:batch])
    one_device = one_device_loss(loss, graphdef)

    @jax.jit
    def gap(state, x_l, x_r):
        got = jax.value_and_grad(sharded)(state, x_l, x_r)
        want = jax.value_and_grad(one_device)(state, x_l, x_r)
        leaves = zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True)
        return jnp.max(jnp.stack([jnp.max(jnp.abs(g - w)) for g, w in leaves]))

    gap = float(gap(state, x_l, x_r))
    print(f"{loss}: sharded vs one-device loss and gradients, max |diff| = {gap:.1e}")

    history = []
    for _ in tqdm(range(args.steps), desc=loss, leave=False, dynamic_ncols=True):
        idx = rng.choice(len(left), size=batch, replace=False)
        state, opt_state, value = step(state, opt_state, left[idx], right[idx])
        history.append(float(value))
    return nnx.merge(graphdef, state), history


def similarities(model, data):
    _, (left, right, _) = data
    a, b = model.left(jnp.asarray(left)), model.right(jnp.asarray(right))
    return np.asarray(a @ b.T)


def retrieval_accuracy(sim: np.ndarray) -> float:
    """Fraction of left halves whose most similar right half is their own."""
    return float(np.mean(np.argmax(sim, axis=1) == np.arange(len(sim))))


def plot(results, data, path: pathlib.Path, shown: int = 40):
    _, (_, _, labels) = data
    order = np.argsort(labels[:shown], kind="stable")  # a few held-out digits, by class
    fig, axes = plt.subplots(1, len(results) + 1, figsize=(4.2 * (len(results) + 1), 3.8))
    for ax, (loss, (sim, _)) in zip(axes, results.items(), strict=False):
        image = ax.imshow(sim[:shown][order][:, order], cmap="viridis", vmin=-1, vmax=1)
        ax.set(title=f"{loss}: cosine similarity", xlabel="right half", ylabel="left half")
        ticks = np.arange(shown)
        ax.set_xticks(ticks, labels[:shown][order], fontsize=5)
        ax.set_yticks(ticks, labels[:shown][order], fontsize=5)
        fig.colorbar(image, ax=ax, shrink=0.8)
    ax = axes[-1]
    for loss, (_, history) in results.items():
        ax.plot(np.asarray(history) / history[0], label=loss)
    ax.set(xlabel="step", ylabel="loss / first loss", title="training", yscale="log")
    ax.legend()
    fig.suptitle("Held-out digits: left halves against right halves (sorted by digit)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about 10 seconds")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("contrastive_out"))
    parser.add_argument("--batch-size", type=int, default=256, help="global, over 8 devices")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--test-size", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps = 120

    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    data = halves(args.seed, args.test_size)
    results = {}
    for loss in ("clip", "siglip"):
        model, history = train(loss, data, args, mesh)
        results[loss] = (similarities(model, data), history)

    chance = 1 / args.test_size
    print(f"\ntop-1 retrieval of the right half among {args.test_size} held-out digits "
          f"(chance {chance:.4f})")  # fmt: skip
    print(f"{'loss':8s} {'first loss':>10s} {'last loss':>10s} {'top-1':>7s}")
    for loss, (sim, history) in results.items():
        print(f"{loss:8s} {history[0]:10.4f} {history[-1]:10.4f} {retrieval_accuracy(sim):7.4f}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "contrastive_digits.png"
    plot(results, data, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
