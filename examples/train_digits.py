"""Four losses, two data sets: a Flax NNX MLP on scikit-learn's handwritten digits.

The digits (8x8 images, 10 classes, bundled with scikit-learn: no download) are split
into a balanced held-out test set and a training set. Each loss trains the same MLP
twice: on the full training set, and on an imbalanced one where digits 5-9 keep only
10% of their examples. The losses are the flax modules of ``jaxlosses.nnx``:

* cross-entropy,
* cross-entropy with label smoothing 0.1,
* focal loss (gamma = 2),
* cross-entropy with class weights (inverse class frequency, a non-trainable
  ``LossHyperparameter`` that the optimizer never touches).

It prints accuracy, macro-F1 and the recall of the rare digits on the test set, and
saves the training curves as a PNG.

Run:  python examples/train_digits.py            (about a minute on a laptop CPU)
      python examples/train_digits.py --quick    (a smoke run of a few seconds)
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
from sklearn.metrics import accuracy_score, f1_score, recall_score
from tqdm import tqdm

import jaxlosses as jl

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

NUM_CLASSES = 10
RARE = np.arange(5, 10)  # the digits subsampled in the imbalanced setting


# --------------------------------------------------------------------------------------
# data


def split_digits(seed: int, test_per_class: int, rare_fraction: float):
    """A balanced test split, a full training split and an imbalanced one."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    rng = np.random.default_rng(seed)
    test, train, imbalanced = [], [], []
    for c in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[:test_per_class])
        rest = idx[test_per_class:]
        train.append(rest)
        keep = max(1, round(rare_fraction * len(rest))) if c in RARE else len(rest)
        imbalanced.append(rest[:keep])
    pick = lambda parts: (x[np.concatenate(parts)], y[np.concatenate(parts)])  # noqa: E731
    return {"balanced": pick(train), "imbalanced": pick(imbalanced)}, pick(test)


def batches(x, y, batch_size: int, rng: np.random.Generator):
    """Shuffled batches of one fixed shape; the last is padded and masked with ``where``."""
    order = rng.permutation(len(x))
    pad = -len(order) % batch_size
    order = np.concatenate([order, order[:pad]])
    where = np.arange(len(order)) < len(x)
    for start in range(0, len(order), batch_size):
        sl = slice(start, start + batch_size)
        yield x[order[sl]], y[order[sl]], where[sl]


# --------------------------------------------------------------------------------------
# model, losses, training


class MLP(nnx.Module):
    def __init__(self, *, hidden: int, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, NUM_CLASSES, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.hidden(x)))


class Classifier(nnx.Module):
    """An MLP that carries its loss module (and so the loss's class weight, if any)."""

    def __init__(self, mlp: MLP, loss: jl.nnx.Loss):
        self.mlp = mlp
        self.loss = loss


def make_losses(train_labels) -> dict[str, jl.nnx.Loss]:
    counts = np.bincount(train_labels, minlength=NUM_CLASSES)
    inverse_frequency = len(train_labels) / (NUM_CLASSES * np.maximum(counts, 1))
    return {
        "cross-entropy": jl.nnx.CrossEntropyLoss(),
        "label smoothing 0.1": jl.nnx.CrossEntropyLoss(label_smoothing=0.1),
        "focal gamma=2": jl.nnx.FocalLoss(gamma=2.0),
        "class weights": jl.nnx.CrossEntropyLoss(
            weight=jnp.asarray(inverse_frequency, jnp.float32)
        ),
    }


@nnx.jit
def train_step(model: Classifier, optimizer: nnx.Optimizer, x, y, where):
    def loss_fn(model):
        return model.loss(model.mlp(x), y, where=where)

    loss, grads = nnx.value_and_grad(loss_fn)(model)  # gradients of the nnx.Params only
    optimizer.update(model, grads)
    return loss


@nnx.jit
def predict(mlp: MLP, x):
    return jnp.argmax(mlp(x), axis=-1)


def evaluate(model: Classifier, x, y) -> dict[str, float]:
    pred = np.asarray(predict(model.mlp, x))
    return {
        "accuracy": accuracy_score(y, pred),
        "macro-F1": f1_score(y, pred, average="macro"),
        "rare recall": recall_score(y, pred, labels=RARE, average="macro", zero_division=0),
    }


def train(mlp, loss, train_set, test_set, *, tx, epochs, batch_size, seed, desc):
    model = Classifier(nnx.clone(mlp), loss)  # every run starts from the same weights
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)  # the class weight is not a Param
    rng = np.random.default_rng(seed)
    curve = {"loss": [], "macro-F1": []}
    bar = tqdm(range(epochs), desc=desc, leave=False, dynamic_ncols=True)
    step = nnx.cached_partial(train_step, model, optimizer)  # nnx.jit, less Python per call
    for _ in bar:
        losses = [step(*batch) for batch in batches(*train_set, batch_size, rng)]
        metrics = evaluate(model, *test_set)
        curve["loss"].append(float(np.mean(jax.device_get(losses))))
        curve["macro-F1"].append(metrics["macro-F1"])
        bar.set_postfix(loss=f"{curve['loss'][-1]:.3f}", f1=f"{metrics['macro-F1']:.3f}")
    bar.close()
    return evaluate(model, *test_set), curve


# --------------------------------------------------------------------------------------
# report


def print_table(results) -> None:
    print(f"\n{'setting':<11} {'loss':<20} {'accuracy':>8} {'macro-F1':>8} {'rare recall':>11}")
    for (setting, name), metrics in results.items():
        print(
            f"{setting:<11} {name:<20} {metrics['accuracy']:>8.4f} {metrics['macro-F1']:>8.4f} "
            f"{metrics['rare recall']:>11.4f}"
        )


def plot_curves(curves, path: pathlib.Path) -> None:
    settings = sorted({s for s, _ in curves})
    fig, axes = plt.subplots(len(settings), 2, figsize=(10, 3.6 * len(settings)), squeeze=False)
    for row, setting in enumerate(settings):
        for (s, name), curve in curves.items():
            if s != setting:
                continue
            epochs = np.arange(1, len(curve["loss"]) + 1)
            axes[row, 0].plot(epochs, curve["loss"], label=name)
            axes[row, 1].plot(epochs, curve["macro-F1"], label=name)
        axes[row, 0].set(title=f"{setting}: training loss", xlabel="epoch", yscale="log")
        axes[row, 1].set(title=f"{setting}: test macro-F1", xlabel="epoch", ylim=(0, 1))
        axes[row, 1].legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("train_digits_out"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--rare-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = 3 if args.quick else args.epochs

    start = time.perf_counter()
    train_sets, test_set = split_digits(
        args.seed, test_per_class=40, rare_fraction=args.rare_fraction
    )
    for setting, (_, y) in train_sets.items():
        print(f"{setting:<11} train: {len(y):4d} examples, per digit {np.bincount(y).tolist()}")
    print(f"{'test':<11}        {len(test_set[1]):4d} examples, balanced")

    # One optax transformation for every run: it is part of the compiled step's static
    # structure, so runs of the same loss reuse one compilation.
    tx = optax.adam(1e-2 if args.quick else args.lr)
    mlp = MLP(hidden=args.hidden, rngs=nnx.Rngs(args.seed))
    results, curves = {}, {}
    for setting, train_set in train_sets.items():
        for name, loss in make_losses(train_set[1]).items():
            key = (setting, name)
            results[key], curves[key] = train(
                mlp,
                loss,
                train_set,
                test_set,
                tx=tx,
                epochs=epochs,
                batch_size=args.batch_size,
                seed=args.seed,
                desc=f"{setting}/{name}",
            )
    print_table(results)
    path = args.out / "train_digits.png"
    plot_curves(curves, path)
    print(f"\nwrote {path}  ({epochs} epochs per run, {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
