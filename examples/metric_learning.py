"""Metric learning on handwritten digits: triplet margin and cosine embedding losses.

A small Flax NNX network maps scikit-learn's bundled 8x8 digits (no download) to a
16-dimensional embedding, trained twice from the same initial weights:

* with ``jaxlosses.nnx.TripletMarginLoss`` on random triplets (an anchor, a digit of
  its class, a digit of another class; PyTorch's pairwise distance, the distance swap);
* with ``jaxlosses.nnx.CosineEmbeddingLoss`` on random pairs, half of one class
  (target 1: cosine 1) and half of two classes (target -1: cosine at most the margin).

Nothing in the training sees a class index, only "same" and "different". Each embedding
is scored by the nearest-neighbour accuracy of the held-out digits against the training
digits (Euclidean distance for the triplet embedding, cosine for the cosine one), next to
chance, the untrained network and the raw pixels; a PNG shows both embeddings of the
held-out digits projected on their two principal axes.

Run:  python examples/metric_learning.py            (about half a minute on a laptop CPU)
      python examples/metric_learning.py --quick    (a smoke run of about 10 seconds)
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import jaxlosses as jl

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

# --------------------------------------------------------------------------------------
# data and sampling


def split_digits(seed: int):
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    return train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)


class Sampler:
    """Random triplets and pairs of training digits, by class."""

    def __init__(self, y, rng: np.random.Generator):
        self.y, self.rng = y, rng
        self.by_class = [np.flatnonzero(y == c) for c in range(10)]

    def _same(self, anchors):
        return np.array([self.rng.choice(self.by_class[c]) for c in self.y[anchors]])

    def _other(self, anchors):
        shift = self.rng.integers(1, 10, size=len(anchors))  # another class, uniformly
        return np.array([self.rng.choice(self.by_class[c]) for c in (self.y[anchors] + shift) % 10])

    def triplets(self, n: int):
        anchors = self.rng.integers(0, len(self.y), size=n)
        return anchors, self._same(anchors), self._other(anchors)

    def pairs(self, n: int):
        first = self.rng.integers(0, len(self.y), size=n)
        similar = np.arange(n) < n // 2
        second = np.where(similar, self._same(first), self._other(first))
        return first, second, np.where(similar, 1, -1).astype(np.int32)


# --------------------------------------------------------------------------------------
# model, losses, training


class Embedder(nnx.Module):
    def __init__(self, *, hidden: int, dim: int, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, dim, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.hidden(x)))


class TripletModel(nnx.Module):
    def __init__(self, embed: Embedder, *, margin: float):
        self.embed = embed
        self.loss = jl.nnx.TripletMarginLoss(margin=margin, swap=True)

    def __call__(self, x, anchor, positive, negative):
        e = self.embed(x)
        return self.loss(e[anchor], e[positive], e[negative])


class CosineModel(nnx.Module):
    def __init__(self, embed: Embedder, *, margin: float):
        self.embed = embed
        self.loss = jl.nnx.CosineEmbeddingLoss(margin=margin)

    def __call__(self, x, first, second, target):
        e = self.embed(x)
        return self.loss(e[first], e[second], target)


@nnx.jit
def train_step(model, optimizer, x, *batch):
    loss, grads = nnx.value_and_grad(lambda m: m(x, *batch))(model)
    optimizer.update(model, grads)
    return loss


def train(model, x_train, draw, *, steps: int, lr: float, desc: str):
    optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
    step = nnx.cached_partial(train_step, model, optimizer)
    x = jnp.asarray(x_train)  # every step embeds the whole training set (1257 digits)
    losses = []
    bar = tqdm(range(steps), desc=desc, leave=False, dynamic_ncols=True)
    for i in bar:
        losses.append(step(x, *draw()))
        if i % 50 == 0:
            bar.set_postfix(loss=f"{float(losses[-1]):.3f}")
    bar.close()
    return [float(v) for v in jax.device_get(losses)]


# --------------------------------------------------------------------------------------
# evaluation and report


def nearest_neighbour_accuracy(train_emb, y_train, test_emb, y_test, *, cosine: bool) -> float:
    a, b = np.asarray(test_emb, np.float64), np.asarray(train_emb, np.float64)
    if cosine:
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        nearest = np.argmax(a @ b.T, axis=1)
    else:
        squared = (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None, :]
        nearest = np.argmin(squared, axis=1)
    return float(np.mean(y_train[nearest] == y_test))


def principal_axes(z):
    z = np.asarray(z, np.float64)
    z = z - z.mean(0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    return z @ vt[:2].T


def plot(embeddings, y_test, curves, path: pathlib.Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    cmap = plt.get_cmap("tab10")
    for ax, (name, z) in zip(axes[:2], embeddings.items(), strict=True):
        if name.startswith("cosine"):  # only directions matter: project them on the sphere
            z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        p = principal_axes(z)
        ax.scatter(p[:, 0], p[:, 1], c=cmap(y_test), s=10, alpha=0.8)
        for c in range(10):
            cx, cy = np.median(p[y_test == c], axis=0)
            ax.text(cx, cy, str(c), fontsize=14, weight="bold", ha="center", va="center")
        ax.set(title=f"{name}: held-out digits (16-D)", xticks=[], yticks=[])
        ax.set(xlabel="first principal axis", ylabel="second principal axis")
    for name, curve in curves.items():
        axes[2].plot(np.arange(1, len(curve) + 1), curve, label=name)
    axes[2].set(title="training loss", xlabel="step", yscale="log")
    axes[2].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about 10 s")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("metric_learning_out"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    steps = 200 if args.quick else args.steps

    start = time.perf_counter()
    x_train, x_test, y_train, y_test = split_digits(args.seed)
    print(f"train: {len(y_train)} digits, held-out: {len(y_test)} digits")
    sampler = Sampler(y_train, np.random.default_rng(args.seed))
    embed = Embedder(hidden=128, dim=16, rngs=nnx.Rngs(args.seed))

    @nnx.jit
    def embed_all(model, x):
        return model(x)

    scores = {
        "raw pixels (64-D)": nearest_neighbour_accuracy(
            x_train, y_train, x_test, y_test, cosine=False
        ),
        "untrained network": nearest_neighbour_accuracy(
            embed_all(embed, x_train), y_train, embed_all(embed, x_test), y_test, cosine=False
        ),
    }
    runs = {
        "triplet_margin_loss": (TripletModel, 1.0, lambda: sampler.triplets(args.batch_size)),
        "cosine_embedding_loss": (CosineModel, 0.2, lambda: sampler.pairs(args.batch_size)),
    }
    embeddings, curves = {}, {}
    for name, (model_class, margin, draw) in runs.items():
        model = model_class(nnx.clone(embed), margin=margin)  # the same initial weights
        curves[name] = train(model, x_train, draw, steps=steps, lr=args.lr, desc=name)
        train_emb, test_emb = embed_all(model.embed, x_train), embed_all(model.embed, x_test)
        embeddings[name] = test_emb
        cosine = name.startswith("cosine")
        scores[name] = nearest_neighbour_accuracy(
            train_emb, y_train, test_emb, y_test, cosine=cosine
        )
        print(f"{name:<22} loss {curves[name][0]:.4f} -> {np.mean(curves[name][-20:]):.4f}")

    print(f"\nheld-out nearest-neighbour accuracy (chance {1 / 10:.3f}):")
    for name, score in scores.items():
        print(f"  {name:<22} {score:.4f}")
    path = args.out / "metric_learning.png"
    plot(embeddings, y_test, curves, path)
    print(f"\nwrote {path}  ({steps} steps per loss, {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
