"""Every public function and module follows the API conventions of docs/development.md.

The tables of that page (inputs, options, deliberate differences from PyTorch) are read
here, so the page stays the authority: a new name is added there, with its meaning, or
this test fails and says where.
"""

from __future__ import annotations

import ast
import inspect
import pathlib
import re
import typing

import jax
import pytest
import torch
import torch.nn.functional as F

import jaxlosses

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "development.md").read_text()

# Public functions that are not losses: no reduction, per-example twin or module.
NOT_LOSSES = {
    "check_ctc_inputs": "a CTC length and label check for checkify",
    "check_labels": "a label check for checkify",
    "ctc_beam_search_decode": "a decoder: label sequences from CTC log-probabilities",
    "ctc_greedy_decode": "a decoder: label sequences from CTC log-probabilities",
    "linear_logsumexp": "a statistic of a linear layer's logits (their log-partition function)",
    "log_softmax": "a normaliser, not a loss",
}
# Losses over a whole batch (one value per batch): no per-item values to reduce.
SET_LEVEL = {
    "f1_loss": "macro F1 over the batch's soft counts",
    "dice_loss": "Dice over the batch's soft counts",
}
# Losses without a class or feature axis (elementwise, or the axis is fixed by a matmul).
NO_AXIS = {
    "binary_cross_entropy": "elementwise",
    "binary_cross_entropy_with_logits": "elementwise",
    "ctc_loss": "the class axis is last, as in PyTorch's (T, N, C); batch_first= moves N",
    "gaussian_nll_loss": "elementwise; var's shapes follow PyTorch (one per row: the last axis)",
    "huber_loss": "elementwise",
    "kl_div": "elementwise, as PyTorch's (batchmean sums over all but the first axis)",
    "l1_loss": "elementwise",
    "mse_loss": "elementwise",
    "poisson_nll_loss": "elementwise",
    "sigmoid_focal_loss": "elementwise",
    "smooth_l1_loss": "elementwise",
    "multilabel_soft_margin_loss": "the class axis is last, as in PyTorch's (N, C)",
    "linear_cross_entropy": "input's last axis is contracted with linear_weight, as F.linear",
    "clip_loss": "(N, D) feature rows contracted by the similarity matmul (open_clip's layout)",
    "info_nce": "(N, D) feature rows contracted by the similarity matmul",
    "siglip_loss": "(N, D) feature rows contracted by the similarity matmul (open_clip's layout)",
    "supervised_contrastive_loss": "(N, D) feature rows contracted by the similarity matmul",
    # margin and metric-learning losses
    "hinge_embedding_loss": "elementwise",
    "margin_ranking_loss": "elementwise",
    "soft_margin_loss": "elementwise",
    "triplet_margin_with_distance_loss": "distance_function reduces the feature axis",
}
# Losses whose one example's loss needs the rest of the batch (in-batch negatives): no
# per_example twin.
BATCH_COUPLED = {
    "clip_loss": "every other pair of the batch is a negative",
    "siglip_loss": "every other pair of the batch is a negative",
    "supervised_contrastive_loss": "the positives and negatives are the batch's other items",
}
# torch.nn's class for each torch.nn.functional loss (checked to exist in torch.nn).
TORCH_MODULES = {
    "binary_cross_entropy": "BCELoss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
    "cross_entropy": "CrossEntropyLoss",
    "ctc_loss": "CTCLoss",
    "cosine_embedding_loss": "CosineEmbeddingLoss",
    "gaussian_nll_loss": "GaussianNLLLoss",
    "hinge_embedding_loss": "HingeEmbeddingLoss",
    "huber_loss": "HuberLoss",
    "kl_div": "KLDivLoss",
    "l1_loss": "L1Loss",
    "linear_cross_entropy": "LinearCrossEntropyLoss",
    "margin_ranking_loss": "MarginRankingLoss",
    "mse_loss": "MSELoss",
    "multi_margin_loss": "MultiMarginLoss",
    "multilabel_margin_loss": "MultiLabelMarginLoss",
    "multilabel_soft_margin_loss": "MultiLabelSoftMarginLoss",
    "nll_loss": "NLLLoss",
    "poisson_nll_loss": "PoissonNLLLoss",
    "smooth_l1_loss": "SmoothL1Loss",
    "soft_margin_loss": "SoftMarginLoss",
    "triplet_margin_loss": "TripletMarginLoss",
    "triplet_margin_with_distance_loss": "TripletMarginWithDistanceLoss",
}
TORCH_DEPRECATED = {"size_average", "reduce"}


def _table(header: str) -> dict[str, str]:
    """``{name: meaning}`` of the page's table whose first column is ``header``."""
    rows, inside = {}, False
    for line in PAGE.splitlines():
        if re.match(rf"^\|\s*{header}\s*\|", line):
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set(cells[0]) <= {"-", ":"}:
                continue
            for name in re.findall(r"`([^`]+)`", cells[0]):
                rows[name] = cells[1]
    assert rows, f"no table headed {header!r} in docs/development.md"
    return rows


INPUTS = _table("input")
OPTIONS = _table("option")
DEVIATIONS = {
    (re.sub(r"`", "", row.split("|")[1]).strip(), opt)
    for row in PAGE.splitlines()
    if row.startswith("| `") and len(row.split("|")) == 6
    for opt in re.findall(r"`(\w+)=", row.split("|")[3])
}


def public_functions() -> dict[str, typing.Callable]:
    found = {}
    for name in jaxlosses.__all__:
        obj = getattr(jaxlosses, name)
        if inspect.isfunction(obj) or hasattr(obj, "__wrapped__"):
            found[f"jaxlosses.{name}"] = obj
    for module in (jaxlosses.sharded, jaxlosses.per_example):
        for name in module.__all__:
            found[f"{module.__name__}.{name}"] = getattr(module, name)
    return found


FUNCTIONS = public_functions()
LOSSES = {
    name: fn
    for name, fn in FUNCTIONS.items()
    if name.startswith("jaxlosses.") and name.count(".") == 1 and fn.__name__ not in NOT_LOSSES
}


def _params(fn):
    return list(inspect.signature(fn).parameters.values())


def _inputs(fn):
    return [p for p in _params(fn) if p.kind is not inspect.Parameter.KEYWORD_ONLY]


def _options(fn):
    return [p for p in _params(fn) if p.kind is inspect.Parameter.KEYWORD_ONLY]


@pytest.mark.parametrize("qualname", sorted(FUNCTIONS))
def test_names_are_in_the_tables_and_options_are_keyword_only(qualname):
    fn = FUNCTIONS[qualname]
    for p in _params(fn):
        assert p.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ), f"{qualname}: {p.name} must be positional-or-keyword (an input) or keyword-only"
    for p in _inputs(fn):
        assert p.name in INPUTS, (
            f"{qualname}: input {p.name!r} is not in docs/development.md's input table; use "
            f"a listed name or add the role there ({sorted(INPUTS)})"
        )
        assert p.default is inspect.Parameter.empty or p.default is None, (
            f"{qualname}: input {p.name!r} has a default {p.default!r}; options are keyword-only"
        )
    for p in _options(fn):
        assert p.name in OPTIONS, (
            f"{qualname}: option {p.name!r} is not in docs/development.md's option table; "
            f"use the listed spelling of its concept or add it there ({sorted(OPTIONS)})"
        )


@pytest.mark.parametrize("qualname", sorted(FUNCTIONS))
def test_one_return_type(qualname):
    fn = FUNCTIONS[qualname]
    hints = typing.get_type_hints(inspect.unwrap(fn))
    ret = hints.get("return")
    ok = (
        ret is jax.Array
        or ret is type(None)
        or (isinstance(ret, type) and issubclass(ret, tuple) and hasattr(ret, "_fields"))
    )
    assert ok, f"{qualname} returns {ret!r}: return jax.Array or a documented NamedTuple"


@pytest.mark.parametrize("qualname", sorted(LOSSES))
def test_losses_have_reduction_where_and_axis(qualname):
    fn = LOSSES[qualname]
    name = fn.__name__
    options = {p.name: p for p in _options(fn)}
    assert "where" in options, f"{qualname} has no where="
    if name in SET_LEVEL:
        assert "reduction" not in options
    else:
        assert "reduction" in options, f"{qualname} has no reduction="
    if name not in NO_AXIS:
        assert "axis" in options, f"{qualname} has no axis= (or add it to NO_AXIS with why)"


@pytest.mark.parametrize("qualname", sorted(LOSSES))
def test_scalar_options_are_declared_and_defaults_pass(qualname):
    fn = LOSSES[qualname]
    specs = getattr(fn, "hyperparameter_specs", None)
    assert specs is not None, f"{qualname} declares no @hyperparameters(...)"
    for p in _options(fn):
        annotation = str(p.annotation)
        if p.name in ("where", "axis") or "ArrayLike" in annotation or "Callable" in annotation:
            continue
        assert p.name in specs, f"{qualname}: option {p.name!r} has no declared range"
        specs[p.name](p.name, p.default)  # the default is valid


@pytest.mark.parametrize("qualname", sorted(q for q in LOSSES if hasattr(F, LOSSES[q].__name__)))
def test_pytorch_losses_take_pytorchs_signature(qualname):
    fn = LOSSES[qualname]
    name = fn.__name__
    torch_params = list(inspect.signature(getattr(F, name)).parameters.values())
    torch_inputs = [p.name for p in torch_params if p.default is inspect.Parameter.empty]
    assert [p.name for p in _inputs(fn)] == torch_inputs, (
        f"{qualname}: positional inputs must be PyTorch's {torch_inputs}"
    )
    ours = {p.name: p for p in _options(fn)}
    for p in torch_params:
        if p.default is inspect.Parameter.empty or p.name in TORCH_DEPRECATED:
            continue
        if (name, p.name) in DEVIATIONS:
            continue
        assert p.name in ours, f"{qualname}: PyTorch's option {p.name!r} is missing"
        assert ours[p.name].default == p.default, (
            f"{qualname}: {p.name} defaults to {ours[p.name].default!r}, PyTorch's to "
            f"{p.default!r} (or list the difference in docs/development.md)"
        )


@pytest.mark.parametrize(
    "qualname",
    sorted(q for q in LOSSES if LOSSES[q].__name__ not in {*SET_LEVEL, *BATCH_COUPLED}),
)
def test_per_example_twin_has_the_signature_minus_reduction(qualname):
    fn = LOSSES[qualname]
    twin = getattr(jaxlosses.per_example, fn.__name__, None)
    assert twin is not None, f"jaxlosses.per_example.{fn.__name__} is missing"
    want = [p for p in _params(fn) if p.name != "reduction"]
    got = _params(twin)
    assert [(p.name, p.kind, p.default) for p in got] == [(p.name, p.kind, p.default) for p in want]
    assert [str(p.annotation) for p in got] == [str(p.annotation) for p in want]


@pytest.mark.parametrize("qualname", sorted(LOSSES))
def test_every_loss_has_nnx_and_linen_modules_with_pytorchs_names(qualname):
    fn = LOSSES[qualname]
    for front in (jaxlosses.nnx, jaxlosses.linen):
        modules = [
            getattr(front, n)
            for n in front.__all__
            if inspect.isclass(getattr(front, n)) and getattr(getattr(front, n), "fn", None) is fn
        ]
        assert modules, f"{front.__name__} has no module for {qualname}"
        name = fn.__name__
        if hasattr(F, name):
            want = TORCH_MODULES.get(name)
            assert want is not None, f"add torch.nn's class for {name} to TORCH_MODULES"
            assert hasattr(torch.nn, want), want
        else:
            want = "".join(w.capitalize() for w in name.split("_"))
            want = want if want.endswith("Loss") else want + "Loss"
        assert want in [m.__name__ for m in modules], (
            f"{front.__name__}: the module for {name} must be called {want}"
        )


def test_no_module_reaches_into_another_modules_underscore_names():
    offenders = []
    for path in sorted((ROOT / "jaxlosses").rglob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {}  # local name -> jaxlosses module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxlosses"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        if not (node.module == "jaxlosses" or node.module.endswith("._core")):
                            offenders.append(f"{path.name}: from {node.module} import {alias.name}")
                    imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("jaxlosses"):
                        imported[alias.asname or alias.name.split(".")[0]] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offenders.append(f"{path.relative_to(ROOT)}: {node.value.id}.{node.attr}")
    assert not offenders, "private names used across modules:\n" + "\n".join(offenders)


def test_the_tables_name_no_concept_twice():
    aliases = {"smoothing", "epsilon", "bias", "dim", "mask", "labels_smoothing", "targets_mask"}
    assert not aliases & set(OPTIONS), aliases & set(OPTIONS)
