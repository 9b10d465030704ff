"""Single-example losses, for ``jax.vmap``: per-example gradients and DP-SGD.

Each function takes one example without a batch axis and returns a scalar, and has the
signature of the batch loss of the same name without ``reduction``. For an example with
one item (``(C,)`` logits and a scalar label, or one element for the elementwise
losses) it is exactly the batch loss's unreduced output, so::

    jax.vmap(per_example.cross_entropy)(logits, labels)
        == jaxlosses.cross_entropy(logits, labels, reduction="none")

For an example with several items (the tokens of a sequence, the pixels of an image,
the elements of a multi-label target) it is the mean of those unreduced losses over the
example's kept items (not ``ignore_index``, ``where`` True), 0 if none is kept.

Per-example gradients are then one line::

    grads = jax.vmap(jax.grad(per_example.cross_entropy))(logits, labels)

:func:`kl_div` is the exception: an example's loss is the sum of its elementwise terms
(its divergence), so the mean over a batch of examples is ``reduction="batchmean"``.

The set-level :func:`jaxlosses.f1_loss` and :func:`jaxlosses.dice_loss` have no
per-example version, nor have the contrastive losses whose negatives are the rest of the
batch (:func:`jaxlosses.clip_loss`, :func:`jaxlosses.siglip_loss`,
:func:`jaxlosses.supervised_contrastive_loss`): one example's loss needs every other
example. :func:`info_nce` has one for explicit negatives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax.typing import ArrayLike

import jaxlosses
from jaxlosses._core.checks import PER_EXAMPLE

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cosine_embedding_loss",
    "cross_entropy",
    "ctc_loss",
    "focal_loss",
    "gaussian_nll_loss",
    "hinge_embedding_loss",
    "huber_loss",
    "info_nce",
    "kl_div",
    "l1_loss",
    "label_smoothing_loss",
    "linear_cross_entropy",
    "margin_ranking_loss",
    "mse_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "poisson_nll_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
]


def _one_example(loss: Callable[..., jax.Array], arguments: dict[str, Any]) -> jax.Array:
    """``loss(**arguments)`` reduced to one example's loss (its kept items' mean)."""
    return loss(**arguments, reduction=PER_EXAMPLE)


def binary_cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.binary_cross_entropy`: the mean over its elements.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> probs = jnp.array([[0.9, 0.2], [0.6, 0.6]])  # 2 examples of 2 elements
      >>> targets = jnp.array([[1.0, 0.0], [1.0, 1.0]])
      >>> jax.vmap(per_example.binary_cross_entropy)(probs, targets).round(4)
      Array([0.1643, 0.5108], dtype=float32)
    """
    return _one_example(jaxlosses.binary_cross_entropy, locals())


def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.binary_cross_entropy_with_logits` (mean over elements).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> logits = jnp.array([[2.0, -1.0], [0.5, 0.5]])
      >>> targets = jnp.array([[1.0, 0.0], [1.0, 1.0]])
      >>> jax.vmap(per_example.binary_cross_entropy_with_logits)(logits, targets).round(4)
      Array([0.2201, 0.4741], dtype=float32)
    """
    return _one_example(jaxlosses.binary_cross_entropy_with_logits, locals())


def sigmoid_focal_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.sigmoid_focal_loss`: the mean over its elements.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> logits = jnp.array([[2.0, -1.0], [0.5, 0.5]])
      >>> targets = jnp.array([[1.0, 0.0], [1.0, 1.0]])
      >>> jax.vmap(per_example.sigmoid_focal_loss)(logits, targets).round(4)
      Array([0.0087, 0.0169], dtype=float32)
    """
    return _one_example(jaxlosses.sigmoid_focal_loss, locals())


def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.nll_loss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxlosses
      >>> from jaxlosses import per_example
      >>> log_probs = jaxlosses.log_softmax(jnp.array([[3.0, 0.0, -1.0], [0.0, 0.0, 0.0]]))
      >>> jax.vmap(per_example.nll_loss)(log_probs, jnp.array([0, 2])).round(4)
      Array([0.0659, 1.0986], dtype=float32)
    """
    return _one_example(jaxlosses.nll_loss, locals())


def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    logit_softcap: float | None = None,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.cross_entropy` (class indices or probabilities).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> logits, labels = jnp.array([[3.0, 0.0, -1.0], [0.0, 0.0, 0.0]]), jnp.array([0, 2])
      >>> jax.vmap(per_example.cross_entropy)(logits, labels).round(4)
      Array([0.0659, 1.0986], dtype=float32)
      >>> # per-example gradients, one row per example
      >>> jax.vmap(jax.grad(per_example.cross_entropy))(logits, labels).shape
      (2, 3)
      >>> # sequences: the mean over each example's kept tokens (-100 is ignored)
      >>> tokens = jnp.array([[0, 1, -100], [2, -100, -100]])
      >>> jax.vmap(per_example.cross_entropy)(jnp.zeros((2, 3, 4)), tokens).round(4)
      Array([1.3863, 1.3863], dtype=float32)
    """
    return _one_example(jaxlosses.cross_entropy, locals())


def focal_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    gamma: float = 2.0,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.focal_loss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> logits, labels = jnp.array([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]]), jnp.array([0, 2])
      >>> jax.vmap(per_example.focal_loss)(logits, labels).round(4)
      Array([0.0457, 0.4883], dtype=float32)
    """
    return _one_example(jaxlosses.focal_loss, locals())


def label_smoothing_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    label_smoothing: float = 0.1,
    ignore_index: int | None = -100,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.label_smoothing_loss`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> logits, labels = jnp.array([[3.0, 0.0, -1.0], [0.0, 0.0, 0.0]]), jnp.array([0, 2])
      >>> jax.vmap(per_example.label_smoothing_loss)(logits, labels).round(4)
      Array([0.4159, 1.0986], dtype=float32)
    """
    return _one_example(jaxlosses.label_smoothing_loss, locals())


def linear_cross_entropy(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    logit_softcap: float | None = None,
    chunk_size: int | tuple[int, int] | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.linear_cross_entropy`: one sequence's (or token's) loss.

    For ``jax.vmap`` over examples, the output layer shared (``in_axes=(0, None, 0)``):
    an example of ``(T, H)`` features and ``(T,)`` labels gives the mean over its kept
    tokens, a ``(H,)`` token with a scalar label its unreduced loss.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxlosses
      >>> from jaxlosses import per_example
      >>> x = jax.random.normal(jax.random.key(0), (2, 3, 4))  # 2 sequences of 3 tokens
      >>> w = jax.random.normal(jax.random.key(1), (5, 4))
      >>> y = jnp.array([[1, 2, -100], [0, 4, 3]])
      >>> per_seq = jax.vmap(per_example.linear_cross_entropy, in_axes=(0, None, 0))(x, w, y)
      >>> naive = jax.vmap(per_example.cross_entropy)(x @ w.T, y)
      >>> bool(jnp.allclose(per_seq, naive, rtol=1e-5))
      True
    """
    return _one_example(jaxlosses.linear_cross_entropy, locals())


def multilabel_soft_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.multilabel_soft_margin_loss` for ``(C,)`` logits.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> logits = jnp.array([[0.5, -1.0, 3.0], [1.5, -2.0, 0.0]])
      >>> targets = jnp.array([[1, 0, 1], [0, 1, 0]])
      >>> jax.vmap(per_example.multilabel_soft_margin_loss)(logits, targets).round(4)
      Array([0.2786, 1.5072], dtype=float32)
    """
    return _one_example(jaxlosses.multilabel_soft_margin_loss, locals())


# --------------------------------------------------------------------------------------
# regression and divergences


def l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.l1_loss`: the mean absolute error of its elements.

    With a ``weight``, the mean over the example's elements of the weighted errors (the
    batch loss's ``"mean"`` divides by the sum of the weights instead).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> preds, targets = jnp.array([[1.0, 2.0], [0.0, 4.0]]), jnp.array([[1.5, 2.0], [1.0, 1.0]])
      >>> jax.vmap(per_example.l1_loss)(preds, targets)
      Array([0.25, 2.  ], dtype=float32)
    """
    return _one_example(jaxlosses.l1_loss, locals())


def mse_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.mse_loss`: the mean squared error of its elements.

    With a ``weight``, the mean over the example's elements of the weighted errors (the
    batch loss's ``"mean"`` divides by the sum of the weights instead).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> preds, targets = jnp.array([[1.0, 2.0], [0.0, 4.0]]), jnp.array([[1.5, 2.0], [1.0, 1.0]])
      >>> jax.vmap(per_example.mse_loss)(preds, targets)
      Array([0.125, 5.   ], dtype=float32)
    """
    return _one_example(jaxlosses.mse_loss, locals())


def huber_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    delta: float = 1.0,
    weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.huber_loss`: the mean over its elements.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> preds, targets = jnp.array([[1.0, 2.0], [0.0, 4.0]]), jnp.array([[1.5, 2.0], [1.0, 1.0]])
      >>> jax.vmap(per_example.huber_loss)(preds, targets)
      Array([0.0625, 1.5   ], dtype=float32)
    """
    return _one_example(jaxlosses.huber_loss, locals())


def smooth_l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    beta: float = 1.0,
    weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.smooth_l1_loss`: the mean over its elements.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> preds, targets = jnp.array([[1.0, 2.0], [0.0, 4.0]]), jnp.array([[1.5, 2.0], [1.0, 1.0]])
      >>> jax.vmap(per_example.smooth_l1_loss)(preds, targets)
      Array([0.0625, 1.5   ], dtype=float32)
    """
    return _one_example(jaxlosses.smooth_l1_loss, locals())


def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    *,
    log_target: bool = False,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.kl_div`: the example's divergence, the sum of its terms.

    ``jnp.mean(jax.vmap(per_example.kl_div)(input, target))`` is
    ``kl_div(input, target, reduction="batchmean")``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxlosses
      >>> from jaxlosses import per_example
      >>> log_q = jax.nn.log_softmax(jnp.array([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]]))
      >>> p = jnp.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
      >>> jax.vmap(per_example.kl_div)(log_q, p).round(4)
      Array([0.2145, 1.0986], dtype=float32)
      >>> jaxlosses.kl_div(log_q, p, reduction="batchmean").round(4)
      Array(0.6565, dtype=float32)
    """
    return _one_example(jaxlosses.kl_div, locals())


def poisson_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.poisson_nll_loss`: the mean over its elements.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> log_rates, counts = jnp.array([[0.0, 1.0], [2.0, 2.0]]), jnp.array([[1, 0], [5, 9]])
      >>> jax.vmap(per_example.poisson_nll_loss)(log_rates, counts).round(4)
      Array([ 1.8591, -6.6109], dtype=float32)
    """
    return _one_example(jaxlosses.poisson_nll_loss, locals())


def gaussian_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    var: ArrayLike | float,
    *,
    full: bool = False,
    eps: float = 1e-6,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.gaussian_nll_loss`: the mean over its elements.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> means, targets = jnp.array([[0.0, 1.0], [2.0, 2.0]]), jnp.ones((2, 2))
      >>> variances = jnp.array([1.0, 0.5])  # one per example
      >>> jax.vmap(per_example.gaussian_nll_loss)(means, targets, variances).round(4)
      Array([0.25  , 0.6534], dtype=float32)
    """
    return _one_example(jaxlosses.gaussian_nll_loss, locals())


# --------------------------------------------------------------------------------------
# Contrastive losses


def info_nce(
    query: ArrayLike,
    positive_key: ArrayLike,
    negative_keys: ArrayLike | None = None,
    *,
    temperature: float = 0.1,
    chunk_size: int | None = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.info_nce`: a ``(D,)`` query against its ``(M, D)`` negatives.

    In-batch negatives need the batch, so ``negative_keys`` is required here (None raises
    a ``ValueError``); under ``jax.vmap`` each example brings its own negatives
    (``(N, M, D)`` over the batch).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxlosses
      >>> from jaxlosses import per_example
      >>> q = jnp.array([[1.0, 0.0], [0.0, 2.0]])
      >>> k = jnp.array([[0.9, 0.1], [0.1, 0.9]])
      >>> negs = jnp.array([[[0.0, 1.0], [-1.0, 0.0]], [[1.0, 0.0], [1.0, 1.0]]])
      >>> jax.vmap(per_example.info_nce)(q, k, negs).round(4)
      Array([0.    , 0.0553], dtype=float32)
    """
    return _one_example(jaxlosses.info_nce, locals())


# --------------------------------------------------------------------------------------
# sequences


def ctc_loss(
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: ArrayLike,
    target_lengths: ArrayLike,
    *,
    blank: int = 0,
    zero_infinity: bool = False,
    batch_first: bool = False,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.ctc_loss`: one sequence's loss (not divided by its length).

    One example is unbatched: ``(T, C)`` log-probabilities, ``(S,)`` targets and scalar
    lengths, so ``jax.vmap`` over PyTorch's batch axis 1 of ``(T, N, C)`` equals
    ``ctc_loss(..., reduction="none")``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxlosses
      >>> from jaxlosses import per_example
      >>> log_probs = jaxlosses.log_softmax(jnp.zeros((4, 2, 3)))  # (T, N, C)
      >>> targets, lengths = jnp.array([[1, 2], [1, 1]]), jnp.array([2, 2])
      >>> per_seq = jax.vmap(per_example.ctc_loss, in_axes=(1, 0, None, 0))
      >>> np.asarray(per_seq(log_probs, targets, 4, lengths)).round(4)  # 15 and 5 of 81 paths
      array([1.6864, 2.785 ], dtype=float32)
      >>> unreduced = jaxlosses.ctc_loss(log_probs, targets, [4, 4], lengths, reduction="none")
      >>> np.asarray(unreduced).round(4)
      array([1.6864, 2.785 ], dtype=float32)
    """
    return _one_example(jaxlosses.ctc_loss, locals())


# --------------------------------------------------------------------------------------
# margin and metric-learning losses


def margin_ranking_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 0.0,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.margin_ranking_loss`: the mean over its elements.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> x1, x2 = jnp.array([[1.0, 0.25], [0.5, 0.0]]), jnp.array([[0.0, 0.5], [0.5, 0.5]])
      >>> y = jnp.array([[1, 1], [-1, 1]])
      >>> jax.vmap(per_example.margin_ranking_loss)(x1, x2, y)
      Array([0.125, 0.25 ], dtype=float32)
    """
    return _one_example(jaxlosses.margin_ranking_loss, locals())


def hinge_embedding_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 1.0,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.hinge_embedding_loss`: the mean over its elements.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> distance = jnp.array([[0.3, 0.3], [1.5, 0.5]])
      >>> y = jnp.array([[1, -1], [-1, 1]])
      >>> jax.vmap(per_example.hinge_embedding_loss)(distance, y).round(4)
      Array([0.5 , 0.25], dtype=float32)
    """
    return _one_example(jaxlosses.hinge_embedding_loss, locals())


def soft_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.soft_margin_loss`: the mean over its elements.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> x, y = jnp.array([[2.0, -1.0], [0.0, 0.0]]), jnp.array([[1, 1], [1, -1]])
      >>> jax.vmap(per_example.soft_margin_loss)(x, y).round(4)
      Array([0.7201, 0.6931], dtype=float32)
    """
    return _one_example(jaxlosses.soft_margin_loss, locals())


def multi_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    p: int = 1,
    margin: float = 1.0,
    weight: ArrayLike | None = None,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.multi_margin_loss` for ``(C,)`` scores.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8], [2.0, 0.0, 0.0, 0.0]])
      >>> jax.vmap(per_example.multi_margin_loss)(x, jnp.array([3, 0])).round(4)
      Array([0.325, 0.   ], dtype=float32)
    """
    return _one_example(jaxlosses.multi_margin_loss, locals())


def multilabel_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.multilabel_margin_loss` for ``(C,)`` scores.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8], [2.0, 0.0, 0.0, 0.0]])
      >>> y = jnp.array([[3, 0, -1, 1], [0, -1, -1, -1]])
      >>> [round(v, 4) for v in jax.vmap(per_example.multilabel_margin_loss)(x, y).tolist()]
      [0.85, 0.0]
    """
    return _one_example(jaxlosses.multilabel_margin_loss, locals())


def cosine_embedding_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 0.0,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.cosine_embedding_loss` for a ``(D,)`` pair.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> a, b = jnp.array([[1.0, 0.0], [1.0, 0.0]]), jnp.array([[1.0, 1.0], [2.0, 0.0]])
      >>> jax.vmap(per_example.cosine_embedding_loss)(a, b, jnp.array([1, -1])).round(4)
      Array([0.2929, 1.    ], dtype=float32)
    """
    return _one_example(jaxlosses.cosine_embedding_loss, locals())


def triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.triplet_margin_loss` for a ``(D,)`` triplet.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> anchor = jnp.zeros((2, 2))
      >>> positive, negative = jnp.array([[0.3, 0.4], [0.0, 2.0]]), jnp.array([[3.0, 4.0],
      ...                                                                     [1.5, 0.0]])
      >>> jax.vmap(per_example.triplet_margin_loss)(anchor, positive, negative)
      Array([0. , 1.5], dtype=float32)
    """
    return _one_example(jaxlosses.triplet_margin_loss, locals())


def triplet_margin_with_distance_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    distance_function: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    margin: float = 1.0,
    swap: bool = False,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example :func:`jaxlosses.triplet_margin_with_distance_loss` for one triplet.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxlosses import per_example
      >>> def l1(x, y):
      ...     return jnp.sum(jnp.abs(x - y), axis=-1)
      >>> anchor, positive = jnp.zeros((2, 2)), jnp.array([[0.5, 0.5], [0.0, 0.0]])
      >>> negative = jnp.array([[1.0, 0.5], [3.0, 0.0]])
      >>> jax.vmap(lambda a, p, n: per_example.triplet_margin_with_distance_loss(
      ...     a, p, n, distance_function=l1))(anchor, positive, negative)
      Array([0.5, 0. ], dtype=float32)
    """
    return _one_example(jaxlosses.triplet_margin_with_distance_loss, locals())
