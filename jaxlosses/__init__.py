"""jaxlosses: loss functions for JAX with PyTorch's names and numbers and optax's conventions."""

from jaxlosses import per_example as per_example
from jaxlosses import sharded as sharded
from jaxlosses._binary import binary_cross_entropy as binary_cross_entropy
from jaxlosses._binary import binary_cross_entropy_with_logits as binary_cross_entropy_with_logits
from jaxlosses._binary import sigmoid_focal_loss as sigmoid_focal_loss
from jaxlosses._contrastive import clip_loss as clip_loss
from jaxlosses._contrastive import info_nce as info_nce
from jaxlosses._contrastive import siglip_loss as siglip_loss
from jaxlosses._contrastive import supervised_contrastive_loss as supervised_contrastive_loss
from jaxlosses._core.classes import check_labels as check_labels
from jaxlosses._divergence import gaussian_nll_loss as gaussian_nll_loss
from jaxlosses._divergence import kl_div as kl_div
from jaxlosses._divergence import poisson_nll_loss as poisson_nll_loss
from jaxlosses._fused import linear_cross_entropy as linear_cross_entropy
from jaxlosses._fused import linear_logsumexp as linear_logsumexp
from jaxlosses._margin import hinge_embedding_loss as hinge_embedding_loss
from jaxlosses._margin import margin_ranking_loss as margin_ranking_loss
from jaxlosses._margin import multi_margin_loss as multi_margin_loss
from jaxlosses._margin import multilabel_margin_loss as multilabel_margin_loss
from jaxlosses._margin import soft_margin_loss as soft_margin_loss
from jaxlosses._metric import cosine_embedding_loss as cosine_embedding_loss
from jaxlosses._metric import triplet_margin_loss as triplet_margin_loss
from jaxlosses._metric import (
    triplet_margin_with_distance_loss as triplet_margin_with_distance_loss,
)
from jaxlosses._multiclass import cross_entropy as cross_entropy
from jaxlosses._multiclass import focal_loss as focal_loss
from jaxlosses._multiclass import label_smoothing_loss as label_smoothing_loss
from jaxlosses._multiclass import log_softmax as log_softmax
from jaxlosses._multiclass import nll_loss as nll_loss
from jaxlosses._multilabel import multilabel_soft_margin_loss as multilabel_soft_margin_loss
from jaxlosses._overlap import dice_loss as dice_loss
from jaxlosses._overlap import f1_loss as f1_loss
from jaxlosses._regression import huber_loss as huber_loss
from jaxlosses._regression import l1_loss as l1_loss
from jaxlosses._regression import mse_loss as mse_loss
from jaxlosses._regression import smooth_l1_loss as smooth_l1_loss
from jaxlosses._sequence import CTCDecoding as CTCDecoding
from jaxlosses._sequence import check_ctc_inputs as check_ctc_inputs
from jaxlosses._sequence import ctc_beam_search_decode as ctc_beam_search_decode
from jaxlosses._sequence import ctc_greedy_decode as ctc_greedy_decode
from jaxlosses._sequence import ctc_loss as ctc_loss

__version__ = "0.1.0"

# Submodules that import Flax are loaded on first use: ``jaxlosses.nnx.CrossEntropyLoss``
# works after a plain ``import jaxlosses``, which itself stays light.
_LAZY_SUBMODULES = ("linen", "nnx", "optax_compat")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        module = importlib.import_module(f"jaxlosses.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'jaxlosses' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))


__all__ = [
    "CTCDecoding",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "check_ctc_inputs",
    "check_labels",
    "clip_loss",
    "cosine_embedding_loss",
    "cross_entropy",
    "ctc_beam_search_decode",
    "ctc_greedy_decode",
    "ctc_loss",
    "dice_loss",
    "f1_loss",
    "focal_loss",
    "gaussian_nll_loss",
    "hinge_embedding_loss",
    "huber_loss",
    "info_nce",
    "kl_div",
    "l1_loss",
    "label_smoothing_loss",
    "linear_cross_entropy",
    "linear_logsumexp",
    "linen",
    "log_softmax",
    "margin_ranking_loss",
    "mse_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "nnx",
    "optax_compat",
    "per_example",
    "poisson_nll_loss",
    "sharded",
    "siglip_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
    "supervised_contrastive_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
]
