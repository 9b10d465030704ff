"""Reading strips of handwritten digits with CTC: a Flax NNX model trained with ctc_loss.

Strips of 3 to 6 of scikit-learn's bundled handwritten digits (8x8 images: no download)
are placed side by side with random gaps, shifts and noise. The digits of the training
strips and of the held-out strips come from disjoint sets of images. A small
convolutional Flax NNX model reads a strip column by column (one frame per pixel column,
8 pixels each) and predicts, per column, a digit or the CTC blank; it never sees where
one digit ends and the next begins. It is trained with ``jaxlosses.nnx.CTCLoss``, and
the held-out strips are read with ``jaxlosses.ctc_greedy_decode`` (best path) and
``jaxlosses.ctc_beam_search_decode``: the script prints the sequence accuracy (strips
read exactly) and the character error rate (edit distance over the number of digits) of
both, and saves a PNG of held-out strips with what was read.

Run:  python examples/ctc_digits.py            (a minute or two on a laptop CPU)
      python examples/ctc_digits.py --quick    (a smoke run of about ten seconds)
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import matplotlib
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits
from tqdm import tqdm

import jaxlosses as jl

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

BLANK = 0  # class 0 is the CTC blank; digit d is class d + 1
NUM_CLASSES = 11
MIN_DIGITS, MAX_DIGITS = 3, 6
MAX_GAP = 3
WIDTH = MAX_DIGITS * 8 + (MAX_DIGITS + 1) * MAX_GAP  # frames (pixel columns) per strip


# --------------------------------------------------------------------------------------
# data


def split_images(seed: int, test_fraction: float = 0.25):
    """The digit images (8x8, in [0, 1]) and labels, split into train and test pools."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(images))
    cut = int(len(order) * (1 - test_fraction))
    pick = lambda idx: (images[idx], digits.target[idx].astype(np.int32))  # noqa: E731
    return pick(order[:cut]), pick(order[cut:])


def make_strips(pool, count: int, rng: np.random.Generator):
    """``count`` strips: frames (count, WIDTH, 8), padded targets, input and target lengths."""
    images, labels = pool
    frames = np.zeros((count, WIDTH, 8), np.float32)
    targets = np.zeros((count, MAX_DIGITS), np.int32)
    input_lengths = np.zeros(count, np.int32)
    target_lengths = rng.integers(MIN_DIGITS, MAX_DIGITS + 1, size=count).astype(np.int32)
    for i, n in enumerate(target_lengths):
        picks = rng.integers(0, len(images), size=n)
        column = rng.integers(0, MAX_GAP + 1)
        for j, k in enumerate(picks):
            dy = rng.integers(-1, 2)  # a vertical jitter of one pixel
            frames[i, column : column + 8] = np.roll(images[k], dy, axis=0).T
            targets[i, j] = labels[k] + 1
            column += 8 + rng.integers(0, MAX_GAP + 1)
        input_lengths[i] = column
    frames += rng.normal(0.0, 0.05, frames.shape).astype(np.float32)  # sensor noise
    return frames, targets, input_lengths, target_lengths


# --------------------------------------------------------------------------------------
# model and training


class Reader(nnx.Module):
    """Convolutions over the columns, then per-column class scores (digits and blank).

    Three convolutions see 11 columns around each one (a digit is 8 wide); the layer
    norm shortens CTC's early plateau, where every column is read as a blank.
    """

    def __init__(self, *, features: int, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(8, features, kernel_size=(5,), rngs=rngs)
        self.norm = nnx.LayerNorm(features, rngs=rngs)
        self.conv2 = nnx.Conv(features, features, kernel_size=(5,), rngs=rngs)
        self.conv3 = nnx.Conv(features, features, kernel_size=(3,), rngs=rngs)
        self.out = nnx.Linear(features, NUM_CLASSES, rngs=rngs)
        self.loss = jl.nnx.CTCLoss(blank=BLANK, batch_first=True, zero_infinity=True)

    def __call__(self, frames):  # (N, T, 8) -> (N, T, C) log-probabilities
        h = jax.nn.relu(self.norm(self.conv1(frames)))
        h = jax.nn.relu(self.conv2(h))
        h = jax.nn.relu(self.conv3(h))
        return jl.log_softmax(self.out(h))


@nnx.jit
def train_step(model: Reader, optimizer: nnx.Optimizer, frames, targets, in_len, tgt_len):
    def loss_fn(model):
        return model.loss(model(frames), targets, in_len, tgt_len)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def read(model: Reader, frames, in_len):
    log_probs = model(frames)
    greedy = jl.ctc_greedy_decode(log_probs, in_len, blank=BLANK, batch_first=True)
    beam = jl.ctc_beam_search_decode(log_probs, in_len, beam_width=8, blank=BLANK, batch_first=True)
    return greedy, beam


def edit_distance(a, b) -> int:
    """Levenshtein distance between two label sequences."""
    row = np.arange(len(b) + 1)
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return int(row[-1])


def score(decoded, targets, target_lengths) -> dict[str, float]:
    labels, lengths = np.asarray(decoded.labels), np.asarray(decoded.lengths)
    exact, errors = 0, 0
    for n in range(len(targets)):
        got, want = labels[n, : lengths[n]], targets[n, : target_lengths[n]]
        exact += np.array_equal(got, want)
        errors += edit_distance(got, want)
    return {"sequence accuracy": exact / len(targets), "CER": errors / target_lengths.sum()}


def as_text(labels) -> str:
    return "".join(str(int(c) - 1) for c in labels)


def plot_strips(test_set, decoded, path: pathlib.Path, rows: int = 8) -> None:
    frames, targets, _, target_lengths = test_set
    labels, lengths = np.asarray(decoded.labels), np.asarray(decoded.lengths)
    fig, axes = plt.subplots(rows, 1, figsize=(8, 0.9 * rows))
    for i, ax in enumerate(axes):
        ax.imshow(frames[i].T, cmap="gray_r", aspect="equal", vmin=0, vmax=1)
        got = as_text(labels[i, : lengths[i]])
        want = as_text(targets[i, : target_lengths[i]])
        ok = got == want
        ax.set_title(
            f"read {got!r}" + ("" if ok else f"  (true {want!r})"),
            fontsize=9,
            loc="left",
            color="black" if ok else "crimson",
        )
        ax.set_axis_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, help="training steps (1500; 150 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of about ten seconds")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("ctc_digits_out"))
    parser.add_argument("--batch-size", type=int, help="strips per step (64; 32 with --quick)")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    steps = args.steps or (150 if args.quick else 1500)
    batch_size = args.batch_size or (32 if args.quick else 64)

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    train_pool, test_pool = split_images(args.seed)
    test_set = make_strips(test_pool, 128 if args.quick else 1000, rng)
    print(
        f"strips of {MIN_DIGITS}-{MAX_DIGITS} digits, {WIDTH} columns; training images "
        f"{len(train_pool[1])}, held-out images {len(test_pool[1])} "
        f"({len(test_set[1])} held-out strips)"
    )

    model = Reader(features=args.features, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(args.lr), wrt=nnx.Param)
    step = nnx.cached_partial(train_step, model, optimizer)
    bar = tqdm(range(steps), desc="training", leave=False, dynamic_ncols=True)
    for i in bar:
        loss = step(*make_strips(train_pool, batch_size, rng))
        if i % 50 == 0:
            bar.set_postfix(loss=f"{float(loss):.3f}")
    bar.close()
    print(f"trained {steps} steps of {batch_size} strips, final CTC loss {float(loss):.4f}")

    greedy, beam = read(model, test_set[0], test_set[2])
    print(f"\n{'decoder':<12} {'sequence accuracy':>17} {'CER':>7}")
    for name, decoded in (("greedy", greedy), ("beam (K=8)", beam)):
        metrics = score(decoded, test_set[1], test_set[3])
        print(f"{name:<12} {metrics['sequence accuracy']:>17.4f} {metrics['CER']:>7.4f}")
    print("chance: sequence accuracy about 0, CER about 0.9 or more")
    path = args.out / "ctc_digits.png"
    plot_strips(test_set, beam, path)
    print(f"\nwrote {path}  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
