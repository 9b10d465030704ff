"""Inputs and hyperparameters for every loss module (shared by the NNX and linen tests)."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxlosses as jl

R = np.random.default_rng(0)
X = jnp.asarray(R.standard_normal((6, 5)), jnp.float32)
Y = jnp.asarray(R.integers(0, 5, size=6)).at[2].set(-100)
YK = jnp.asarray(R.integers(0, 5, size=6))  # no ignore_index, for F1/Dice/label smoothing
T = jnp.asarray(R.uniform(size=(6, 5)) < 0.5, jnp.float32)
W = jnp.asarray(R.uniform(0.5, 2.0, size=5), jnp.float32)
WHERE = jnp.asarray([True, True, False, True, True, False])
SIGN = jnp.where(T > 0, 1, -1)  # 1/-1 targets of the margin and embedding losses
PAIR = jnp.asarray([1, -1, 1, -1, -1, 1])  # 1/-1 per pair

# module -> (function, hyperparameters, inputs, where)
CASES = {
    "BCELoss": (
        jl.binary_cross_entropy,
        {"weight": W, "reduction": "sum"},
        (jax.nn.sigmoid(X), T),
        WHERE[:, None],
    ),
    "BCEWithLogitsLoss": (
        jl.binary_cross_entropy_with_logits,
        {"weight": W[::-1], "pos_weight": W},
        (X, T),
        WHERE[:, None],
    ),
    "CTCLoss": (
        jl.ctc_loss,
        {"reduction": "sum", "zero_infinity": True},
        # (T, N, C) = (3, 2, 5); lengths as Python lists; "3 3" cannot fit 2 frames (inf)
        (jl.log_softmax(X.reshape(3, 2, 5)), jnp.array([[1, 2], [3, 3]]), [3, 2], [2, 2]),
        WHERE[:2],
    ),
    "CrossEntropyLoss": (
        jl.cross_entropy,
        {"weight": W, "label_smoothing": 0.1},
        (X, Y),
        WHERE,
    ),
    "NLLLoss": (jl.nll_loss, {"weight": W, "reduction": "none"}, (jl.log_softmax(X), Y), WHERE),
    "MultiLabelSoftMarginLoss": (jl.multilabel_soft_margin_loss, {"weight": W}, (X, T), WHERE),
    "FocalLoss": (jl.focal_loss, {"gamma": 0.5, "weight": W}, (X, Y), WHERE),
    "SigmoidFocalLoss": (jl.sigmoid_focal_loss, {"alpha": 0.4, "gamma": 1.5}, (X, T), None),
    "LabelSmoothingLoss": (jl.label_smoothing_loss, {"label_smoothing": 0.3}, (X, YK), WHERE),
    "F1Loss": (jl.f1_loss, {"eps": 0.01}, (X, YK), WHERE),
    "DiceLoss": (jl.dice_loss, {"smooth": 0.25}, (X, YK), None),
    "InfoNceLoss": (jl.info_nce, {"temperature": 0.3}, (X, X[::-1] + T), WHERE),
    "SupervisedContrastiveLoss": (
        jl.supervised_contrastive_loss,
        {"temperature": 0.3},
        (X, YK),
        WHERE,
    ),
    # regression and divergences
    "L1Loss": (jl.l1_loss, {"weight": W}, (X, T), WHERE[:, None]),
    "MSELoss": (jl.mse_loss, {"weight": W, "reduction": "sum"}, (X, T), WHERE[:, None]),
    "HuberLoss": (jl.huber_loss, {"delta": 0.5, "weight": W}, (X, T), WHERE[:, None]),
    "SmoothL1Loss": (jl.smooth_l1_loss, {"beta": 0.5}, (X, T), WHERE[:, None]),
    "KLDivLoss": (
        jl.kl_div,
        {"reduction": "batchmean", "log_target": True},
        (jl.log_softmax(X), jl.log_softmax(2 * T)),
        WHERE[:, None],
    ),
    "PoissonNLLLoss": (
        jl.poisson_nll_loss,
        {"log_input": False, "full": True, "eps": 1e-3},
        (jnp.exp(X), 3 * T),
        WHERE[:, None],
    ),
    "GaussianNLLLoss": (
        jl.gaussian_nll_loss,
        {"full": True, "eps": 0.5},
        (X, T, jnp.exp(X[:, :1])),  # one variance per row
        WHERE[:, None],
    ),
    # margin and metric-learning losses
    "MarginRankingLoss": (
        jl.margin_ranking_loss,
        {"margin": 0.5},
        (X[:, 0], X[:, 1], PAIR),
        WHERE,
    ),
    "HingeEmbeddingLoss": (jl.hinge_embedding_loss, {"margin": 2.0}, (X, SIGN), WHERE[:, None]),
    "SoftMarginLoss": (jl.soft_margin_loss, {"reduction": "sum"}, (X, SIGN), WHERE[:, None]),
    "MultiMarginLoss": (jl.multi_margin_loss, {"p": 2, "margin": 0.5, "weight": W}, (X, YK), WHERE),
    "MultiLabelMarginLoss": (
        jl.multilabel_margin_loss,
        {"reduction": "sum"},
        (X, jnp.asarray([[0, 3, -1, 2, 1]] * 6)),
        WHERE,
    ),
    "CosineEmbeddingLoss": (
        jl.cosine_embedding_loss,
        {"margin": -0.5},
        (X, X[::-1], PAIR),
        WHERE,
    ),
    "TripletMarginLoss": (
        jl.triplet_margin_loss,
        {"margin": 2.0, "p": 1.0, "swap": True},
        (X, X[::-1], X[:, ::-1]),
        WHERE,
    ),
    "TripletMarginWithDistanceLoss": (
        jl.triplet_margin_with_distance_loss,
        {"distance_function": lambda x, y: jnp.sum(jnp.abs(x - y), axis=-1), "margin": 2.0},
        (X, X[::-1], X[:, ::-1]),
        WHERE,
    ),
}
# Modules whose function's positional inputs include learned ones (a temperature, a bias,
# held as trainable parameters): tested in tests/test_contrastive.py.
LEARNED_MODULES = {"ClipLoss", "SiglipLoss", "LinearCrossEntropyLoss"}
