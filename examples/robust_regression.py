"""Robust regression: five losses on scikit-learn's diabetes data with corrupted targets.

The diabetes data (442 patients, 10 features, a measure of disease progression a year
later; bundled with scikit-learn: no download) is split into a training and a held-out
set. A fraction of the *training* targets is corrupted: shifted upwards by 3 to 6
standard deviations, as a faulty sensor or a unit mix-up would. The same small Flax NNX
model, a linear layer with two outputs (a prediction and a variance: robust regression in
its classical setting), is then trained with each loss of ``jaxlosses.nnx``:

* ``MSELoss``: the mean, pulled towards the outliers by their squared errors;
* ``L1Loss``: the median, which a minority of outliers barely moves;
* ``HuberLoss(delta=1)`` and ``SmoothL1Loss(beta=0.25)``: quadratic near the fit, linear
  beyond, so each outlier pulls with a bounded force;
* ``GaussianNLLLoss``: the model also predicts a variance (its second output), and each
  residual is weighed by the variance predicted for it; corruption that the features do
  not predict only inflates the variance, so this is not a robust loss.

It prints the held-out mean absolute error and root mean squared error of each fit (on
clean targets, in the data's units), next to MSE trained on the uncorrupted targets,
averaged over several random splits and corruptions, and saves a PNG of the held-out
predictions and of each loss's curve.

Run:  python examples/robust_regression.py            (5 splits, about 20 s on a laptop CPU)
      python examples/robust_regression.py --quick    (1 split: a smoke run of a few seconds)
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
from sklearn.datasets import load_diabetes
from tqdm import tqdm

import jaxlosses as jl

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

# --------------------------------------------------------------------------------------
# data


def load_data(seed: int, test_size: int, corrupt: float):
    """Standardized features, targets in units of the training targets' spread.

    Returns the training set with corrupted targets, the same with clean targets, the
    held-out set (clean), and the target's location and scale (to report in its units).
    """
    data = load_diabetes()
    x, y = data.data.astype(np.float32), data.target.astype(np.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    test, train = order[:test_size], order[test_size:]
    mean, std = x[train].mean(0), x[train].std(0)
    x = (x - mean) / std
    location, scale = float(np.median(y[train])), float(y[train].std())
    y = (y - location) / scale
    corrupted = y[train].copy()
    bad = rng.uniform(size=len(train)) < corrupt
    corrupted[bad] += rng.uniform(3.0, 6.0, size=bad.sum()).astype(np.float32)
    return (x[train], corrupted), (x[train], y[train]), (x[test], y[test]), (location, scale), bad


# --------------------------------------------------------------------------------------
# model, losses, training


class Regressor(nnx.Module):
    """A linear layer with two outputs: a prediction, and a variance (Gaussian NLL only)."""

    def __init__(self, features: int, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(features, 2, rngs=rngs)

    def __call__(self, x):
        out = self.linear(x)
        return out[:, 0], jax.nn.softplus(out[:, 1])  # mean, variance


LOSSES = {
    "MSE": jl.nnx.MSELoss(),
    "L1": jl.nnx.L1Loss(),
    "Huber delta=1": jl.nnx.HuberLoss(delta=1.0),
    "smooth L1 beta=0.25": jl.nnx.SmoothL1Loss(beta=0.25),
    "Gaussian NLL": jl.nnx.GaussianNLLLoss(),
}


def objective(model: Regressor, loss: jl.nnx.Loss, x, y):
    mean, var = model(x)
    if isinstance(loss, jl.nnx.GaussianNLLLoss):
        return loss(mean, y, var)
    return loss(mean, y)


@nnx.jit
def train_step(model: Regressor, loss: jl.nnx.Loss, optimizer: nnx.Optimizer, x, y):
    value, grads = nnx.value_and_grad(objective)(model, loss, x, y)
    optimizer.update(model, grads)
    return value


@nnx.jit
def predict(model: Regressor, x):
    return model(x)


def held_out_errors(model: Regressor, x, y, scale: float) -> tuple[float, float]:
    """MAE and RMSE in the target's units."""
    error = (np.asarray(predict(model, x)[0]) - y) * scale
    return float(np.mean(np.abs(error))), float(np.sqrt(np.mean(error**2)))


def train(init: Regressor, loss, train_set, test_set, scale, *, steps, lr, desc):
    model = nnx.clone(init)  # every run starts from the same weights
    optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
    curve = []
    for step in tqdm(range(steps), desc=desc, leave=False, dynamic_ncols=True):
        train_step(model, loss, optimizer, *train_set)
        if step % 10 == 9:
            curve.append(held_out_errors(model, *test_set, scale)[0])
    return model, curve


# --------------------------------------------------------------------------------------
# report


def print_table(results) -> None:
    print(f"\n{'loss':<26} {'test MAE':>8} {'test RMSE':>9}")
    for name, (mae, rmse) in results.items():
        print(f"{name:<26} {mae:>8.2f} {rmse:>9.2f}")


def plot(models, curves, test_set, scale, location, path: pathlib.Path) -> None:
    x, y = test_set
    names = list(LOSSES)
    fig = plt.figure(figsize=(15, 7.4), layout="constrained")
    top = fig.subfigures(2, 1, height_ratios=[1, 1.05])
    axes = top[0].subplots(1, len(names), sharex=True, sharey=True)
    truth = y * scale + location
    for ax, name in zip(axes, names, strict=True):
        pred = np.asarray(predict(models[name], x)[0]) * scale + location
        ax.plot(truth, pred, "o", ms=3, alpha=0.7)
        lo, hi = truth.min(), truth.max()
        ax.plot([lo, hi], [lo, hi], color="black", lw=1)
        mae = np.mean(np.abs(pred - truth))
        ax.set(title=f"{name}\nheld-out MAE {mae:.1f}", xlabel="true progression")
    axes[0].set_ylabel("predicted")
    top[0].suptitle("held-out predictions of the first split (the black line is perfect)")

    ax_loss, ax_curve = top[1].subplots(1, 2)
    d = jnp.linspace(-4.0, 4.0, 401)
    zero = jnp.zeros_like(d)
    for name, loss in LOSSES.items():
        if isinstance(loss, jl.nnx.GaussianNLLLoss):
            var = float(np.median(np.asarray(predict(models[name], x)[1])))
            values = jl.gaussian_nll_loss(d, zero, jnp.full_like(d, var), reduction="none")
            name = f"{name} (its median variance {var:.2f})"
        else:
            values = type(loss).fn(d, zero, **{**loss.hyperparameters(), "reduction": "none"})
        ax_loss.plot(d, values, lw=2, label=name)
    ax_loss.set(xlabel="error (standardized units)", ylabel="loss", ylim=(-1.5, 6),
                title="each loss against the error")  # fmt: skip
    ax_loss.legend(fontsize=8)
    for name, curve in curves.items():
        ax_curve.plot(10 * np.arange(1, len(curve) + 1), curve, label=name)
    ax_curve.set(xlabel="training step", ylabel="held-out MAE", title="training")
    ax_curve.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(seed: int, args, steps: int):
    corrupted, clean, test_set, (location, scale), bad = load_data(
        seed, test_size=100, corrupt=args.corrupt
    )
    init = Regressor(corrupted[0].shape[1], rngs=nnx.Rngs(seed))
    results, models, curves = {}, {}, {}
    for name, loss in LOSSES.items():
        models[name], curves[name] = train(
            init, loss, corrupted, test_set, scale, steps=steps, lr=args.lr, desc=name
        )
        results[name] = held_out_errors(models[name], *test_set, scale)
    reference, _ = train(
        init, LOSSES["MSE"], clean, test_set, scale, steps=steps, lr=args.lr, desc="clean"
    )
    results["MSE on clean targets"] = held_out_errors(reference, *test_set, scale)
    return results, (models, curves, test_set, scale, location), (len(bad), int(bad.sum()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=5, help="random splits and corruptions")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--corrupt", type=float, default=0.2, help="fraction of corrupted targets")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("robust_regression_out"))
    parser.add_argument("--lr", type=float, default=1e-2)
    args = parser.parse_args(argv)
    steps, seeds = (200, 1) if args.quick else (args.steps, args.seeds)

    start = time.perf_counter()
    runs = []
    for seed in range(seeds):
        results, first, (n, corrupted) = run(seed, args, steps)
        runs.append(results)
        if seed == 0:
            plotted = first
    print(
        f"train: {n} patients, {corrupted} targets corrupted ({args.corrupt:.0%}); "
        f"held out: 100 patients, clean; {seeds} random split(s), {steps} steps per run"
    )
    mean = {name: tuple(np.mean([r[name] for r in runs], axis=0)) for name in runs[0]}
    print_table(mean)
    path = args.out / "robust_regression.png"
    plot(*plotted, path)
    print(f"\nwrote {path}  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
