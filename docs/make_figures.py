"""Draws the documentation's figures into docs/figures/, with jaxlosses computing every curve.

Run:  python docs/make_figures.py [--force]

The docs build runs it (``docs/hooks.py``, ``on_pre_build``), so the PNGs are build
outputs, not committed; it redraws only when a figure is missing or older than this script,
the library's sources or a benchmark result. Benchmark results are JSON files in
``docs/benchmarks/`` as written by ``benchmarks/bench_cross_entropy.py --json FILE``; each
``NAME.json`` there becomes ``figures/bench_NAME.png``. No JSON, no benchmark figure.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
FIGURES = DOCS / "figures"
BENCHMARKS = DOCS / "benchmarks"

# Colours that read in print and for the colour-blind (Okabe-Ito).
BLUE, ORANGE, GREEN, RED, PURPLE, GREY = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#666666",
)


def _setup():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "font.size": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.frameon": False,
        }
    )
    return plt


def _save(fig, name: str) -> pathlib.Path:
    FIGURES.mkdir(exist_ok=True)
    path = FIGURES / name
    # No timestamp in the PNG, so identical figures are identical files.
    fig.savefig(path, bbox_inches="tight", metadata={"Software": None})
    return path


def _two_class_logits(p):
    """Logits of two classes whose softmax gives the true class (0) probability ``p``."""
    import jax.numpy as jnp

    return jnp.stack([jnp.log(p), jnp.log1p(-p)], axis=-1)


# --------------------------------------------------------------------------------------


def focal_vs_cross_entropy(plt):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlosses as jl

    gammas = [0.0, 0.5, 1.0, 2.0, 5.0]

    @jax.jit
    def curves(p):
        labels = jnp.zeros(p.shape, jnp.int32)
        logits = _two_class_logits(p)
        return [jl.focal_loss(logits, labels, gamma=g, reduction="none") for g in gammas]

    p = np.linspace(1e-3, 1.0 - 1e-6, 400, dtype=np.float32)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colours = [BLUE, GREEN, ORANGE, RED, PURPLE]
    for gamma, loss, colour in zip(gammas, curves(p), colours, strict=True):
        label = "cross-entropy (γ = 0)" if gamma == 0 else f"focal, γ = {gamma:g}"
        ax.plot(p, np.asarray(loss), color=colour, lw=2, label=label)
    ax.axvspan(0.6, 1.0, color=GREY, alpha=0.08)
    ax.text(0.8, 2.0, "well-classified\nexamples", ha="center", va="top", color=GREY)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 5),
        xlabel="probability of the true class $p_t$",
        ylabel="loss",
        title="jaxlosses.focal_loss: $-(1 - p_t)^\\gamma \\log p_t$",
    )
    ax.legend(loc="upper right")
    return _save(fig, "focal_vs_cross_entropy.png")


def label_smoothing(plt):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlosses as jl

    num_classes, eps = 10, 0.1

    @jax.jit
    def losses(p):
        # the true class has probability p, the other classes share 1 - p evenly
        rest = jnp.repeat(((1.0 - p) / (num_classes - 1))[:, None], num_classes - 1, 1)
        logits = jnp.log(jnp.concatenate([p[:, None], rest], 1))
        labels = jnp.zeros(p.shape, jnp.int32)
        return (
            jl.cross_entropy(logits, labels, reduction="none"),
            jl.cross_entropy(logits, labels, label_smoothing=eps, reduction="none"),
            jl.label_smoothing_loss(logits, labels, label_smoothing=eps, reduction="none"),
        )

    p = np.linspace(0.05, 1.0 - 1e-6, 500, dtype=np.float32)
    plain, pytorch, others = losses(p)
    curves = [
        ("plain cross-entropy", plain, GREY, "--"),
        (f"cross_entropy(label_smoothing={eps:g})  (PyTorch's)", pytorch, BLUE, "-"),
        (f"label_smoothing_loss(label_smoothing={eps:g})", others, ORANGE, "-"),
    ]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    x = np.asarray(p)
    for label, loss, colour, style in curves:
        loss = np.asarray(loss)
        ax.plot(x, loss, color=colour, ls=style, lw=2, label=label)
        if style == "-":
            i = int(np.argmin(loss))
            ax.plot(x[i], loss[i], "o", color=colour)
            ax.annotate(
                f"minimum at $p_t$ = {x[i]:.2f}",
                (x[i], loss[i]),
                xytext=(-120, 25 if colour == BLUE else 45),
                textcoords="offset points",
                color=colour,
                arrowprops={"arrowstyle": "-", "color": colour},
            )
    # the optimum of PyTorch's smoothing is 1 - eps + eps / C, of label_smoothing_loss 1 - s
    assert abs(x[np.argmin(np.asarray(curves[1][1]))] - (1 - eps + eps / num_classes)) < 5e-3
    assert abs(x[np.argmin(np.asarray(curves[2][1]))] - (1 - eps)) < 5e-3
    ax.set(
        xlim=(0.05, 1),
        ylim=(0, 3.2),
        xlabel="probability of the true class $p_t$ (other 9 classes share the rest)",
        ylabel="loss",
        title=f"Label smoothing, C = {num_classes}: the loss no longer rewards $p_t \\to 1$",
    )
    ax.legend(loc="upper right")
    return _save(fig, "label_smoothing.png")


def bce_clamp(plt):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlosses as jl

    def naive(p, t):  # the textbook formula, no clamp
        return -(t * jnp.log(p) + (1 - t) * jnp.log(1 - p))

    def ours(p, t):
        return jl.binary_cross_entropy(p, t, reduction="sum")

    grad_naive = jax.jit(jax.vmap(jax.grad(naive)))
    grad_ours = jax.jit(jax.vmap(jax.grad(ours)))
    loss_ours = jax.jit(jax.vmap(ours))

    # distance d to the boundary: p = d with target 1 (near p = 0), p = 1 - d with target 0
    d0 = np.geomspace(1e-44, 1.0, 400, dtype=np.float32)
    d1 = np.geomspace(2**-24, 1.0, 200, dtype=np.float32)
    cases = [
        ("near p = 0, target 1", jnp.asarray(d0), jnp.ones(d0.shape), d0, "$p$"),
        ("near p = 1, target 0", jnp.asarray(1 - d1), jnp.zeros(d1.shape), d1, "$1 - p$"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.4), sharex="col")
    for col, (title, p, t, d, xlabel) in enumerate(cases):
        ax_loss, ax_grad = axes[0, col], axes[1, col]
        ax_loss.plot(d, np.asarray(loss_ours(p, t)), color=BLUE, lw=2.5, label="jaxlosses")
        # float64 reference for the unclamped curve, so it is not cut by float32 rounding
        exact = -np.log(d.astype(np.float64))
        ax_loss.plot(d, exact, color=GREY, ls="--", lw=1.5, label="unclamped $-\\log$ (exact)")
        ax_grad.plot(d, np.abs(np.asarray(grad_ours(p, t))), color=BLUE, lw=2.5, label="jaxlosses")
        ax_grad.plot(
            d, np.abs(np.asarray(grad_naive(p, t))), color=GREY, ls="--", lw=1.5, label="naive"
        )
        # exactly on the boundary (p = 0 or p = 1)
        edge_p, edge_t = jnp.asarray([0.0 if col == 0 else 1.0]), t[:1]
        edge = "p = 0" if col == 0 else "p = 1"
        loss_edge = float(loss_ours(edge_p, edge_t)[0])
        grad_edge = abs(float(grad_ours(edge_p, edge_t)[0]))
        naive_edge = float(naive(edge_p, edge_t)[0])
        naive_grad_edge = abs(float(jax.grad(naive)(edge_p[0], edge_t[0])))
        for ax, value, text in [
            (ax_loss, loss_edge, f"at {edge}: jaxlosses {loss_edge:g}, naive {naive_edge:g}"),
            (
                ax_grad,
                grad_edge,
                f"at {edge}: jaxlosses {grad_edge:.0e}, naive {naive_grad_edge:g}",
            ),
        ]:
            ax.plot(d[0], value, "o", color=BLUE, ms=7)
            ax.annotate(text, (d[0], value), xytext=(12, -4), textcoords="offset points", va="top")
        ax_loss.set(xscale="log", title=title, ylabel="loss", ylim=(-5, 112))
        ax_grad.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="|d loss / d p|")
        ax_loss.legend(loc="lower left" if col == 0 else "center right")
        ax_grad.legend(loc="lower left" if col == 0 else "center right")
    fig.suptitle(
        "jaxlosses.binary_cross_entropy: logs clamped at -100, PyTorch's clamped backward",
        y=1.0,
    )
    fig.tight_layout()
    return _save(fig, "bce_clamp.png")


def focal_gradient(plt):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlosses as jl

    def naive_focal(z, gamma):  # logits [z, 0], true class 0, textbook formula
        log_p = jax.nn.log_softmax(jnp.stack([z, jnp.zeros_like(z)]))[0]
        return -((1 - jnp.exp(log_p)) ** gamma) * log_p

    def ours(z, gamma):
        return jl.focal_loss(jnp.stack([z, jnp.zeros_like(z)]), jnp.array(0), gamma=gamma)

    @functools.partial(jax.jit, static_argnums=0)
    def grads(fn, z, gamma):
        return jax.vmap(jax.grad(fn), (0, None))(z, gamma)

    z = jnp.linspace(-2.0, 40.0, 841)
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    nan_from = None
    for gamma, colour in zip([0.25, 0.5, 0.75], [RED, ORANGE, BLUE], strict=True):
        g_ours = np.abs(np.asarray(grads(ours, z, gamma)))
        g_naive = np.abs(np.asarray(grads(naive_focal, z, gamma)))
        assert np.all(np.isfinite(g_ours))
        ax.plot(np.asarray(z), g_ours, color=colour, lw=2.5, label=f"jaxlosses, γ = {gamma:g}")
        ax.plot(np.asarray(z), g_naive, color="black", ls=":", lw=1.2)
        bad = ~np.isfinite(g_naive)
        if bad.any():
            first = float(np.asarray(z)[bad][0])
            nan_from = first if nan_from is None else min(nan_from, first)
    ax.plot([], [], color="black", ls=":", lw=1.2, label="naive autodiff (each γ)")
    # symlog, so that the exact 0 that jaxlosses reaches where p_t rounds to 1 stays visible
    ax.set_yscale("symlog", linthresh=1e-12, linscale=0.5)
    ax.set_ylim(0, 2)
    if nan_from is not None:
        ax.axvspan(nan_from, float(z[-1]), color=RED, alpha=0.08)
        ax.text(
            (nan_from + float(z[-1])) / 2,
            1e-3,
            f"$p_t$ rounds to 1 (z ≥ {nan_from:.1f}):\njaxlosses 0, naive nan",
            ha="center",
            color=RED,
        )
    ax.set(
        xlim=(float(z[0]), float(z[-1])),
        xlabel="true-class logit margin z  (logits [z, 0], $p_t$ = sigmoid(z))",
        ylabel="|d loss / d z|",
        title="Focal loss gradient, γ < 1: finite with jaxlosses, nan with naive autodiff",
    )
    ax.legend(loc="lower left")
    return _save(fig, "focal_gradient.png")


def regression_losses(plt):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlosses as jl

    losses = {
        "l1_loss": (jl.l1_loss, {}),
        "mse_loss": (jl.mse_loss, {}),
        "huber_loss(delta=1)": (jl.huber_loss, {"delta": 1.0}),
        "smooth_l1_loss(beta=2)": (jl.smooth_l1_loss, {"beta": 2.0}),
    }

    @jax.jit
    def curves(d):
        zero = jnp.zeros_like(d)
        out = {}
        for name, (f, kw) in losses.items():
            slope = jax.vmap(jax.grad(lambda a, f=f, kw=kw: f(a, 0.0, **kw)))(d)
            out[name] = (f(d, zero, reduction="none", **kw), slope)
        return out

    d = np.linspace(-4.0, 4.0, 801, dtype=np.float32)
    colours = [BLUE, GREY, ORANGE, GREEN]
    styles = ["-", "--", "-", "-"]
    fig, (ax_l, ax_g) = plt.subplots(1, 2, figsize=(10.0, 3.8), layout="constrained")
    results = curves(d)  # a dict: jax returns it with sorted keys
    for name, colour, style in zip(losses, colours, styles, strict=True):
        loss, slope = results[name]
        ax_l.plot(d, np.asarray(loss), style, color=colour, lw=2, label=name)
        ax_g.plot(d, np.asarray(slope), style, color=colour, lw=2, label=name)
    ax_l.set(xlim=(-4, 4), ylim=(0, 4.5), xlabel="error  input - target", ylabel="loss",
             title="loss")  # fmt: skip
    ax_g.set(xlim=(-4, 4), ylim=(-3, 3), xlabel="error  input - target",
             ylabel="d loss / d input", title="gradient: bounded for all but MSE")  # fmt: skip
    ax_l.legend(loc="upper center")
    fig.suptitle("Regression losses of jaxlosses (PyTorch's), elementwise")
    return _save(fig, "regression_losses.png")


def divergence_losses(plt):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlosses as jl

    @jax.jit
    def curves(q, rate, sigma2):
        # KL(p || q) of two-class distributions, p = (0.3, 0.7), q = (q, 1 - q)
        log_q = jnp.log(jnp.stack([q, 1 - q], -1))
        p = jnp.broadcast_to(jnp.array([0.3, 0.7]), log_q.shape)
        kl = jnp.sum(jl.kl_div(log_q, p, reduction="none"), -1)
        poisson = {
            k: jl.poisson_nll_loss(rate, jnp.full_like(rate, k), log_input=False, full=True,
                                   reduction="none")
            for k in (0, 2, 6)
        }  # fmt: skip
        gaussian = {
            e: jl.gaussian_nll_loss(jnp.full_like(sigma2, e), jnp.zeros_like(sigma2), sigma2,
                                    full=True, reduction="none")
            for e in (0.5, 1.0, 2.0)
        }  # fmt: skip
        return kl, poisson, gaussian

    q = np.linspace(0.01, 0.99, 400, dtype=np.float32)
    rate = np.linspace(0.05, 12.0, 400, dtype=np.float32)
    sigma2 = np.geomspace(0.05, 20.0, 400).astype(np.float32)
    kl, poisson, gaussian = curves(q, rate, sigma2)
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.6), layout="constrained")
    axes[0].plot(q, np.asarray(kl), color=BLUE, lw=2)
    axes[0].axvline(0.3, color=GREY, ls=":")
    axes[0].set(xlabel="q(class 0); target p = (0.3, 0.7)", ylabel="KL(p || q)",
                title="kl_div (summed over classes)", ylim=(0, 2))  # fmt: skip
    for (k, loss), colour in zip(poisson.items(), [GREY, ORANGE, GREEN], strict=True):
        axes[1].plot(rate, np.asarray(loss), color=colour, lw=2, label=f"count {k}")
        axes[1].axvline(max(k, 0.05), color=colour, ls=":")
    axes[1].set(
        xlabel="rate λ (log_input=False); minimum at λ = count",
        ylabel="loss",
        title="poisson_nll_loss(full=True)",
        ylim=(0, 12),
    )
    axes[1].legend()
    for (e, loss), colour in zip(gaussian.items(), [GREY, ORANGE, GREEN], strict=True):
        axes[2].plot(sigma2, np.asarray(loss), color=colour, lw=2, label=f"|error| = {e:g}")
        axes[2].axvline(e * e, color=colour, ls=":")
    axes[2].set(xscale="log", xlabel="predicted variance σ²; minimum at σ² = error²", ylabel="loss",
                title="gaussian_nll_loss(full=True)", ylim=(0, 4))  # fmt: skip
    axes[2].legend()
    fig.suptitle("Divergences and likelihoods of jaxlosses (PyTorch's)")
    return _save(fig, "divergence_losses.png")


def contrastive_losses(plt):
    """CLIP's and SigLIP's per-item loss against the cosine similarity of the positive pair."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlosses as jl

    n = 8  # items; every negative pair is orthogonal (cosine 0)
    eye = jnp.eye(2 * n)
    img = eye[:n]

    @jax.jit
    @jax.vmap
    def losses(c):
        txt = c * eye[:n] + jnp.sqrt(1 - c**2) * eye[n:]
        return (
            jl.clip_loss(img, txt, 1 / 0.07),
            jl.clip_loss(img, txt, 1 / 0.07, label_smoothing=0.1),
            jl.siglip_loss(img, txt, 10.0, -10.0),
            jl.info_nce(img, txt, temperature=0.1),
        )

    c = np.linspace(-0.99, 0.99, 300, dtype=np.float32)
    clip, clip_smooth, siglip, info = (np.asarray(x) for x in losses(c))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(c, clip, color=BLUE, lw=2, label="clip_loss, scale 1/0.07")
    ax.plot(c, clip_smooth, color=BLUE, ls="--", lw=1.5, label="clip_loss, label_smoothing=0.1")
    ax.plot(c, siglip, color=ORANGE, lw=2, label="siglip_loss, scale 10, bias -10")
    ax.plot(c, info, color=GREEN, lw=2, ls=":", label="info_nce, temperature 0.1")
    ax.set(
        xlim=(-1, 1),
        ylim=(0, None),
        xlabel="cosine similarity of each matching pair (the other pairs: 0)",
        ylabel="loss",
        title=f"Contrastive losses of a batch of {n} pairs",
    )
    ax.legend(loc="upper right")
    return _save(fig, "contrastive_losses.png")


def contrastive_benchmark(plt, path: pathlib.Path, data: dict):
    """Time and XLA temp memory of a ``bench_contrastive.py --json`` result."""
    import numpy as np

    results = data["contrastive"]
    impls = [
        ("jaxlosses", BLUE),
        ("naive", ORANGE),
        ("2 x linear_cross_entropy", GREEN),
        ("torch", "#8c564b"),
    ]
    labels = [r["loss"] for r in results]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10.0, 3.8), layout="constrained")
    x = np.arange(len(results))
    for ax, field, ylabel, title in (
        (ax_t, "time_ms", "seconds (median)", "forward + backward time"),
        (ax_m, "temp_mib", "MiB", "XLA temporary memory"),
    ):
        series = []
        for name, colour in impls:
            values = [(r["rows"].get(name) or {}).get(field) for r in results]
            values = np.asarray([np.nan if v is None else v for v in values], float)
            if not np.all(np.isnan(values)):
                series.append((name, colour, values))
        width = 0.8 / len(series)
        for i, (name, colour, values) in enumerate(series):
            values = values / (1e3 if field == "time_ms" else 1.0)
            ax.bar(x + i * width, values, width, label=name, color=colour)
        ax.set_xticks(x + 0.4 - width / 2, labels)
        ax.grid(axis="x", visible=False)
        ax.set(ylabel=ylabel, title=title, yscale="log" if field == "temp_mib" else "linear")
    ax_t.legend(fontsize=8)
    meta, (b, d) = data["meta"], results[0]["size"]
    fig.suptitle(
        f"Contrastive losses, B = {b}, D = {d}, {meta['dtype']}, {meta['device']}, "
        f"{meta['cpus']} CPUs"
    )
    return _save(fig, f"bench_{path.stem}.png")


# --------------------------------------------------------------------------------------
# margin and metric-learning losses


def margin_losses(plt):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlosses as jl

    s = np.linspace(-2.5, 2.5, 501, dtype=np.float32)  # the signed score y (x1 - x2), y x
    d = np.linspace(0.0, 5.0, 501, dtype=np.float32)  # a distance

    @jax.jit
    def curves(s, d):
        one, zero = jnp.ones_like(s), jnp.zeros_like(s)
        none = dict(reduction="none")
        two_class = jnp.stack([s, zero], axis=-1)  # scores of the target class 0 and another
        label = jnp.zeros(s.shape, jnp.int32)
        scores = [
            jl.margin_ranking_loss(s, zero, one, **none),
            jl.margin_ranking_loss(s, zero, one, margin=1.0, **none),
            jl.soft_margin_loss(s, one, **none),
            2 * jl.multi_margin_loss(two_class, label, p=2, **none),
        ]
        distances = [
            jl.hinge_embedding_loss(d, one, **none),
            jl.hinge_embedding_loss(d, -one, **none),
            jl.hinge_embedding_loss(d, -one, margin=2.0, **none),
        ]
        return scores, distances

    scores, distances = curves(s, d)
    fig, (ax, ax_h) = plt.subplots(1, 2, figsize=(10.5, 3.9))
    labels = [
        ("margin_ranking_loss, margin 0", GREY, "--"),
        ("margin_ranking_loss, margin 1 (hinge)", BLUE, "-"),
        ("soft_margin_loss", GREEN, "-"),
        ("multi_margin_loss, p = 2, 2 classes (x C)", ORANGE, "-"),
    ]
    for loss, (label, colour, style) in zip(scores, labels, strict=True):
        ax.plot(s, np.asarray(loss), color=colour, ls=style, lw=2, label=label)
    ax.set(
        xlim=(-2.5, 2.5),
        ylim=(0, 3.5),
        xlabel=r"signed score  $y\,(x_1 - x_2)$,  $y\,x$,  $x_y - x_c$",
        ylabel="loss",
        title="Margin losses of a score and a target of 1 or -1",
    )
    ax.legend(loc="upper right", fontsize=8)
    labels = [
        ("y = 1: $x$", BLUE, "-"),
        ("y = -1, margin 1: max(0, 1 - x)", ORANGE, "-"),
        ("y = -1, margin 2", RED, "--"),
    ]
    for loss, (label, colour, style) in zip(distances, labels, strict=True):
        ax_h.plot(d, np.asarray(loss), color=colour, ls=style, lw=2, label=label)
    ax_h.set(
        xlim=(0, 5),
        ylim=(0, 3.5),
        xlabel="distance $x$ between two embeddings",
        title="hinge_embedding_loss: pull similar, push dissimilar",
    )
    ax_h.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    return _save(fig, "margin_losses.png")


def metric_losses(plt):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlosses as jl

    gap = np.linspace(-1.0, 2.5, 351, dtype=np.float32)  # d(a, n) - d(a, p)
    cos = np.linspace(-1.0, 1.0, 401, dtype=np.float32)

    @jax.jit
    def curves(gap, cos):
        zero = jnp.zeros_like(gap)
        anchor = jnp.stack([zero, zero], -1)
        positive = jnp.stack([zero + 1.0, zero], -1)  # at distance 1
        negative = jnp.stack([zero, 1.0 + gap], -1)  # at distance 1 + gap (with eps = 0)
        triplet = [
            jl.triplet_margin_loss(anchor, positive, negative, margin=m, eps=0.0, reduction="none")
            for m in (1.0, 0.5)
        ]
        a = jnp.stack([jnp.ones_like(cos), jnp.zeros_like(cos)], -1)
        b = jnp.stack([cos, jnp.sqrt(jnp.maximum(1 - cos**2, 0.0))], -1)  # cos(a, b) = cos
        one = jnp.ones(cos.shape, jnp.int32)
        cosine = [
            jl.cosine_embedding_loss(a, b, one, reduction="none"),
            jl.cosine_embedding_loss(a, b, -one, reduction="none"),
            jl.cosine_embedding_loss(a, b, -one, margin=0.5, reduction="none"),
        ]
        return triplet, cosine

    triplet, cosine = curves(gap, cos)
    fig, (ax_t, ax_c) = plt.subplots(1, 2, figsize=(10.5, 3.9))
    for loss, (label, colour) in zip(
        triplet, [("margin 1", BLUE), ("margin 0.5", ORANGE)], strict=True
    ):
        ax_t.plot(gap, np.asarray(loss), color=colour, lw=2, label=label)
    ax_t.axvline(0, color=GREY, lw=1, ls=":")
    ax_t.set(
        xlim=(-1, 2.5),
        ylim=(0, 2.2),
        xlabel="$d(a, n) - d(a, p)$: how much nearer the positive is",
        ylabel="loss",
        title="triplet_margin_loss: max(0, margin + d(a, p) - d(a, n))",
    )
    ax_t.legend(loc="upper right")
    labels = [
        ("y = 1: 1 - cos", BLUE, "-"),
        ("y = -1, margin 0: max(0, cos)", ORANGE, "-"),
        ("y = -1, margin 0.5", RED, "--"),
    ]
    for loss, (label, colour, style) in zip(cosine, labels, strict=True):
        ax_c.plot(cos, np.asarray(loss), color=colour, ls=style, lw=2, label=label)
    ax_c.set(
        xlim=(-1, 1),
        ylim=(0, 2.05),
        xlabel="cosine similarity of the pair",
        title="cosine_embedding_loss",
    )
    ax_c.legend(loc="upper center")
    fig.tight_layout()
    return _save(fig, "metric_losses.png")


def benchmark(plt, path: pathlib.Path):
    """Time and memory of a ``bench_cross_entropy.py``, ``bench_fused.py`` or
    ``bench_contrastive.py`` ``--json`` result."""
    import numpy as np

    data = json.loads(path.read_text())
    if "results" in data:
        return fused_benchmark(plt, path, data)
    if "contrastive" in data:
        return contrastive_benchmark(plt, path, data)
    sweep, meta = data["sweep"], data["meta"]
    cs = np.asarray([entry["c"] for entry in sweep])
    names = [r["name"] for r in sweep[0]["rows"]]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10.0, 3.8), layout="constrained")
    for name in names:
        rows = [next(r for r in entry["rows"] if r["name"] == name) for entry in sweep]
        colour = GREY if "copy" in name else BLUE if "jaxlosses" in name else ORANGE
        if "torch" in name:
            colour = "#8c564b"
        style = "--" if "smoothing" in name or "copy" in name else "-"
        ax_t.plot(cs, [r["ms"] for r in rows], style, marker="o", color=colour, label=name)
        temps = [r["temp_mib"] for r in rows]
        if all(t is not None for t in temps):
            ax_m.plot(cs, np.maximum(temps, 1e-2), style, marker="o", color=colour, label=name)
    ax_m.plot(cs, 4 * meta["n"] * cs / 2**20, ":", color="black", label="one N x C float32 array")
    ax_t.set(xscale="log", yscale="log", xlabel="classes C", ylabel="milliseconds (median)",
             title="forward + backward time")  # fmt: skip
    ax_m.set(xscale="log", yscale="log", xlabel="classes C", ylabel="MiB",
             title="XLA temporary memory (0 drawn at 0.01)")  # fmt: skip
    ax_t.legend(fontsize=7)
    ax_m.legend(fontsize=7)
    fig.suptitle(f"Cross-entropy, float32, N = {meta['n']}, {meta['device']}, {meta['cpus']} CPUs")
    return _save(fig, f"bench_{path.stem}.png")


def fused_benchmark(plt, path: pathlib.Path, data: dict):
    """Time and XLA temp memory per size of a ``bench_fused.py --json`` result."""
    import numpy as np

    impls = [
        ("jaxlosses", "jaxlosses.linear_cross_entropy", BLUE),
        ("naive", "naive x @ W.T + optax", ORANGE),
        ("gemms", "3 GEMMs (floor)", GREY),
        ("torch_chunked", "torch chunked", "#8c564b"),
        ("torch_reference", "torch reference", "#e377c2"),
    ]
    results = data["results"]
    labels = ["N={}, H={}, V={}".format(*r["size"]) for r in results]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10.0, 3.8), layout="constrained")
    x = np.arange(len(results))
    for ax, field, ylabel, title in (
        (ax_t, "time_ms", "seconds (median)", "forward + backward time"),
        (ax_m, "temp_mib", "MiB", "XLA temporary memory"),
    ):
        series = [
            (name, colour, [r["rows"].get(key, {}).get(field, np.nan) for r in results])
            for key, name, colour in impls
        ]
        series = [s for s in series if not np.all(np.isnan(s[2]))]
        width = 0.8 / len(series)
        for i, (name, colour, values) in enumerate(series):
            values = np.asarray(values) / (1e3 if field == "time_ms" else 1.0)
            ax.bar(x + i * width, values, width, label=name, color=colour)
        ax.set_xticks(x + 0.4 - width / 2, labels)
        ax.grid(axis="x", visible=False)
        ax.set(ylabel=ylabel, title=title, yscale="log")
    ax_t.legend(fontsize=8)
    meta = data["meta"]
    fig.suptitle(
        f"Fused linear + cross-entropy, {meta['dtype']}, {meta['device']}, {meta['cpus']} CPUs"
    )
    return _save(fig, f"bench_{path.stem}.png")


# --------------------------------------------------------------------------------------
# CTC


def ctc_posteriors(plt):
    """A model's per-frame probabilities and CTC's posteriors, the gradient of the loss."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlosses as jl

    labels = ["blank", "a", "b", "c"]
    target = jnp.array([[1, 2, 2, 3]])  # "abbc": the two b's need a blank between them
    t_len = 24
    r = np.random.default_rng(0)
    path = np.zeros(t_len, int)  # a rough guess at an alignment, and noise
    path[3:6], path[9:11], path[13:15], path[18:21] = 1, 2, 2, 3
    logits = jnp.asarray(2.5 * np.eye(4)[path] + r.normal(0, 0.8, (t_len, 4)), jnp.float32)
    log_probs = jl.log_softmax(logits)[:, None, :]
    grad = jax.grad(lambda lp: jl.ctc_loss(lp, target, [t_len], [4], reduction="sum"))(log_probs)
    panels = [
        (np.exp(log_probs[:, 0]).T, "the model's probabilities $p_t(c)$"),
        (-grad[:, 0].T, "posteriors $\\gamma_t(c) = -\\partial \\ell / \\partial \\log p_t(c)$"),
    ]
    fig, axes = plt.subplots(2, 1, figsize=(7.0, 3.6), sharex=True)
    for ax, (values, title) in zip(axes, panels, strict=True):
        ax.imshow(values, aspect="auto", cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        ax.set(yticks=range(4), yticklabels=labels, title=title)
        ax.grid(False)
    axes[1].set_xlabel("frame t")
    fig.suptitle('jaxlosses.ctc_loss: target "abbc", 24 frames', y=1.02)
    fig.tight_layout()
    return _save(fig, "ctc_posteriors.png")


FIGURES_BY_NAME = {
    "focal_vs_cross_entropy.png": focal_vs_cross_entropy,
    "label_smoothing.png": label_smoothing,
    "bce_clamp.png": bce_clamp,
    "focal_gradient.png": focal_gradient,
    "regression_losses.png": regression_losses,
    "divergence_losses.png": divergence_losses,
    "contrastive_losses.png": contrastive_losses,
    "ctc_posteriors.png": ctc_posteriors,
    "margin_losses.png": margin_losses,
    "metric_losses.png": metric_losses,
}


def _inputs() -> list[pathlib.Path]:
    return [pathlib.Path(__file__).resolve(), *sorted((ROOT / "jaxlosses").rglob("*.py"))]


def _stale(target: pathlib.Path, inputs: list[pathlib.Path]) -> bool:
    if not target.exists():
        return True
    mtime = target.stat().st_mtime
    return any(p.stat().st_mtime > mtime for p in inputs)


def draw(force: bool = False) -> list[pathlib.Path]:
    """Draws the missing or stale figures (every figure with ``force``); returns their paths."""
    inputs = _inputs()
    todo = [(FIGURES / name, fn, ()) for name, fn in FIGURES_BY_NAME.items()]
    for path in sorted(BENCHMARKS.glob("*.json")) if BENCHMARKS.is_dir() else []:
        todo.append((FIGURES / f"bench_{path.stem}.png", benchmark, (path,)))
    todo = [(t, fn, extra) for t, fn, extra in todo if force or _stale(t, [*inputs, *extra])]
    if not todo:
        return []
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # this checkout's jaxlosses, not an installed one
    plt = _setup()
    written = []
    for _, fn, extra in todo:
        written.append(fn(plt, *extra))
        plt.close("all")
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="redraw every figure")
    args = parser.parse_args(argv)
    for path in draw(force=args.force):
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
