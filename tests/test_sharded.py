"""Losses on 2-D meshes (data x model) of 8 simulated CPU devices equal the one-device ones.

``tests/conftest.py`` sets ``--xla_force_host_platform_device_count=8`` before jax is
imported. Two parts:

* every public loss under ``jax.jit`` with ``NamedSharding`` inputs (batch-sharded, and
  class-sharded logits), on meshes with explicit and with automatic axes;
* :func:`jaxlosses.sharded.vocab_parallel_cross_entropy` inside ``shard_map`` against
  :func:`jaxlosses.cross_entropy` (+ the z-loss) on the gathered logits, and its
  compiled collectives.
"""

import functools
import re
import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxlosses as jl

if jax.device_count() < 8:
    raise RuntimeError(
        "tests/test_sharded.py needs 8 devices: run it through pytest from the repository "
        "root (tests/conftest.py sets XLA_FLAGS=--xla_force_host_platform_device_count=8 "
        f"before jax starts); found {jax.devices()}"
    )

RTOL, ATOL = 1e-5, 1e-6
N, C = 16, 8  # items, classes: N divisible by 8 devices, C by 4
EXPLICIT, AUTO = (AxisType.Explicit,) * 2, (AxisType.Auto,) * 2
# (mesh shape, axis types): 4x2 and 2x4, with explicit and with automatic axes.
MESHES = {"4x2-explicit": ((4, 2), EXPLICIT), "2x4-auto": ((2, 4), AUTO)}

R = np.random.default_rng(0)
LOGITS = jnp.asarray(R.standard_normal((N, C)) * 2, jnp.float32)
LABELS = jnp.asarray(R.integers(0, C, size=N))
# Ignored items all in the first data shard: a mean of per-shard means would differ.
LABELS_IGNORE = LABELS.at[:3].set(-100)
TARGETS = jnp.asarray(R.uniform(size=(N, C)) < 0.4, jnp.float32)
WEIGHT = jnp.asarray(R.uniform(0.5, 2.0, size=C), jnp.float32)
WHERE = jnp.arange(N) % 5 != 1
# An output layer (V = 12 classes, H = C features) for linear_cross_entropy, whose
# inputs are the logits array read as features.
W_OUT = jnp.asarray(R.standard_normal((12, C)) * 0.5, jnp.float32)


def make_mesh(name):
    shape, types = MESHES[name]
    return jax.make_mesh(shape, ("data", "model"), axis_types=types)


def collectives(hlo: str) -> list[str]:
    """The collective ops of compiled HLO text, in order (async starts counted once)."""
    return re.findall(
        r"\b(all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter)(?:-start)?\(",
        hlo,
    )


def value_and_vjp(fn, x, *rest, cot):
    out, vjp = jax.vjp(lambda a: fn(a, *rest), x)
    cot = cot.astype(out.dtype)
    spec = jax.typeof(out).sharding.spec
    if any(s is not None for s in spec):
        # Explicit sharding: the cotangent must have the output's sharding type.
        cot = jax.sharding.reshard(cot, spec)
    return out, vjp(cot)[0]


def values_and_grads(fns, cots, *args):
    """``{name: (fns[name](*args), vjp with cots[name] w.r.t. args[0])}``: one program."""
    return {name: value_and_vjp(fn, *args, cot=cots[name]) for name, fn in fns.items()}


def place(mesh, args, specs):
    return [jax.device_put(a, NamedSharding(mesh, s)) for a, s in zip(args, specs, strict=True)]


def cotangents(fns, *args):
    """A fixed random cotangent for each function's output (seeded by its name)."""
    cots = {}
    for name, fn in fns.items():
        out = jax.eval_shape(fn, *args)
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        cots[name] = jnp.asarray(rng.uniform(0.5, 1.5, out.shape), out.dtype)
    return cots


def assert_sharded_matches(fns, args, specs, mesh_name, want=None):
    """Every ``fns`` value and gradient, jitted on the mesh, equals the one-device one.

    All functions are compiled together (one program per mesh keeps the tests fast);
    a mismatch names the function. ``want``: the one-device results, if already known.
    Returns the compiled HLO text.
    """
    cots = cotangents(fns, *args)
    run = functools.partial(values_and_grads, fns, cots)
    if want is None:
        want = jax.jit(run)(*args)
    mesh = make_mesh(mesh_name)
    placed = place(mesh, args, specs)
    with jax.set_mesh(mesh):
        compiled = jax.jit(run).lower(*placed).compile()
        got = compiled(*placed)
    chex.assert_trees_all_close(got, {name: want[name] for name in fns}, rtol=RTOL, atol=ATOL)
    for name, (_, grad) in got.items():
        assert np.all(np.isfinite(grad)), name
    return compiled.as_text()


# --------------------------------------------------------------------------------------
# Every public loss under jit with sharded inputs.

# name -> fn(logits, labels with ignored items, multi-label targets)
CALLS = {
    "cross_entropy": lambda x, y, t: jl.cross_entropy(
        x, y, weight=WEIGHT, label_smoothing=0.1, where=WHERE
    ),
    "cross_entropy_probs": lambda x, y, t: jl.cross_entropy(x, jax.nn.softmax(3 * t)),
    # N // 2 sequences of 2 frames; labels in [1, C); target lengths 0, 1, 2 (some
    # impossible: zero_infinity)
    "ctc_loss": lambda x, y, t: jl.ctc_loss(
        jl.log_softmax(x.reshape(N // 2, 2, C)),
        (jnp.abs(y) % (C - 1) + 1).reshape(N // 2, 2),
        jnp.full((N // 2,), 2),
        jnp.arange(N // 2) % 3,
        batch_first=True,
        zero_infinity=True,
    ),
    "nll_loss": lambda x, y, t: jl.nll_loss(jl.log_softmax(x), y, weight=WEIGHT),
    "focal_loss": lambda x, y, t: jl.focal_loss(x, y, gamma=0.5, weight=WEIGHT),
    "label_smoothing_loss": lambda x, y, t: jl.label_smoothing_loss(
        x, jnp.maximum(y, 0), where=y >= 0
    ),
    "binary_cross_entropy": lambda x, y, t: jl.binary_cross_entropy(
        jax.nn.sigmoid(x), t, weight=WEIGHT, where=WHERE[:, None]
    ),
    "binary_cross_entropy_with_logits": lambda x, y, t: jl.binary_cross_entropy_with_logits(
        x, t, pos_weight=WEIGHT
    ),
    "sigmoid_focal_loss": lambda x, y, t: jl.sigmoid_focal_loss(x, t, gamma=1.5),
    "multilabel_soft_margin_loss": lambda x, y, t: jl.multilabel_soft_margin_loss(
        x, t, weight=WEIGHT, where=WHERE
    ),
    "f1_loss": lambda x, y, t: jl.f1_loss(x, jnp.maximum(y, 0), where=y >= 0),
    "dice_loss": lambda x, y, t: jl.dice_loss(x, jnp.maximum(y, 0)),
    "log_softmax": lambda x, y, t: jl.log_softmax(x),
    "linear_logsumexp": lambda x, y, t: jl.linear_logsumexp(x, W_OUT, chunk_size=4),
    "linear_cross_entropy": lambda x, y, t: jl.linear_cross_entropy(
        x, W_OUT, y, label_smoothing=0.1, where=WHERE, chunk_size=4
    ),
    "gaussian_nll_loss": lambda x, y, t: jl.gaussian_nll_loss(
        x, t, jnp.exp(x[:, :1]), full=True, where=WHERE[:, None]
    ),
    "huber_loss": lambda x, y, t: jl.huber_loss(x, t, delta=0.5, weight=WEIGHT),
    "kl_div": lambda x, y, t: jl.kl_div(
        jl.log_softmax(x), jax.nn.softmax(3 * t), reduction="batchmean", where=WHERE[:, None]
    ),
    "l1_loss": lambda x, y, t: jl.l1_loss(x, t, weight=WEIGHT, where=WHERE[:, None]),
    "mse_loss": lambda x, y, t: jl.mse_loss(x, t, reduction="sum"),
    "poisson_nll_loss": lambda x, y, t: jl.poisson_nll_loss(x, 3 * t, full=True),
    "smooth_l1_loss": lambda x, y, t: jl.smooth_l1_loss(x, t, beta=0.5),
    # Contrastive losses: the logits read as features, the multi-label targets as their
    # positives.
    "clip_loss": lambda x, y, t: jl.clip_loss(x, t, 2.0, label_smoothing=0.1, where=WHERE),
    "siglip_loss": lambda x, y, t: jl.siglip_loss(x, t, 2.0, -1.0, where=WHERE, chunk_size=4),
    "info_nce": lambda x, y, t: jl.info_nce(x, t, where=WHERE),
    "supervised_contrastive_loss": lambda x, y, t: jl.supervised_contrastive_loss(
        x, jnp.maximum(y, 0) % 3, where=WHERE
    ),
    "per_example_cross_entropy": lambda x, y, t: jax.vmap(
        functools.partial(jl.per_example.cross_entropy, weight=WEIGHT)
    )(x.reshape(N // 2, 2, C), y.reshape(N // 2, 2)).reshape(N // 2),
    # margin and metric-learning losses (1/-1 targets from the multi-label targets)
    "margin_ranking_loss": lambda x, y, t: jl.margin_ranking_loss(
        x[:, :4], x[:, 4:], 2 * t[:, :4] - 1, margin=0.5, where=WHERE[:, None]
    ),
    "hinge_embedding_loss": lambda x, y, t: jl.hinge_embedding_loss(jnp.abs(x), 2 * t - 1),
    "soft_margin_loss": lambda x, y, t: jl.soft_margin_loss(x, 2 * t - 1, reduction="sum"),
    "multi_margin_loss": lambda x, y, t: jl.multi_margin_loss(
        x, jnp.maximum(y, 0), p=2, weight=WEIGHT, where=y >= 0
    ),
    "multilabel_margin_loss": lambda x, y, t: jl.multilabel_margin_loss(
        x, jnp.where(t > 0, jnp.arange(C), -1), where=WHERE
    ),
    "cosine_embedding_loss": lambda x, y, t: jl.cosine_embedding_loss(
        x[:, :4], x[:, 4:], 2 * t[:, 0] - 1, margin=0.1, where=WHERE
    ),
    "triplet_margin_loss": lambda x, y, t: jl.triplet_margin_loss(
        x[:, :4], x[:, 4:], x[:, 2:6] + t[:, :4], swap=True
    ),
    "triplet_margin_with_distance_loss": lambda x, y, t: jl.triplet_margin_with_distance_loss(
        x[:, :4], x[:, 4:], t[:, :4], distance_function=lambda a, b: jnp.sum((a - b) ** 2, -1)
    ),
}


@functools.cache
def one_device_results():
    """Values and gradients of every CALLS entry on one device, compiled once."""
    args = (LOGITS, LABELS_IGNORE, TARGETS)
    return jax.jit(functools.partial(values_and_grads, CALLS, cotangents(CALLS, *args)))(*args)


def test_every_public_loss_is_covered():
    # not losses: input checks for checkify, CTC decoders and their result type
    not_losses = {"check_labels", "check_ctc_inputs", "CTCDecoding"}
    not_losses |= {"ctc_greedy_decode", "ctc_beam_search_decode"}
    public = {n for n in jl.__all__ if callable(getattr(jl, n))} - not_losses
    assert public <= set(CALLS), public - set(CALLS)


@pytest.mark.parametrize("mesh_name", sorted(MESHES))
def test_batch_sharded_losses_match_one_device(mesh_name):
    # The batch over "data" (4x2) or over both mesh axes (2x4): values, gradients and
    # the weighted, ignore_index-masked means are global.
    batch = "data" if mesh_name.startswith("4x2") else ("data", "model")
    specs = (P(batch, None), P(batch), P(batch, None))
    args = (LOGITS, LABELS_IGNORE, TARGETS)
    fns = dict(CALLS)
    if mesh_name.endswith("auto"):
        # The fused losses' chunk loop cannot be split by the compiler: on automatic axes
        # their tokens are gathered (documented), so only their values are checked.
        lce = {name: fns.pop(name) for name in ("linear_cross_entropy", "linear_logsumexp")}
        assert_sharded_matches(lce, args, specs, mesh_name, one_device_results())
    # The contrastive losses compare every item with every other: their features are
    # gathered (inside shard_map, jaxlosses.sharded splits the work).
    contrastive = ["clip_loss", "siglip_loss", "info_nce", "supervised_contrastive_loss"]
    gathered = {name: fns.pop(name) for name in contrastive}
    assert_sharded_matches(gathered, args, specs, mesh_name, one_device_results())
    hlo = assert_sharded_matches(fns, args, specs, mesh_name, one_device_results())
    # Sums over the batch are all-reduces of partial sums; no input is gathered (on
    # explicit axes linear_cross_entropy runs per device and adds its sums).
    assert set(collectives(hlo)) == {"all-reduce"}


CLASS_SHARDED = ["cross_entropy", "nll_loss", "focal_loss", "label_smoothing_loss"]
CLASS_SHARDED += ["f1_loss", "dice_loss", "log_softmax", "cross_entropy_probs"]


@pytest.mark.parametrize("mesh_name", sorted(MESHES))
def test_class_sharded_logits_match_one_device_without_gathering(mesh_name):
    specs = (P("data", "model"), P("data"), P("data", "model"))
    fns = {name: CALLS[name] for name in CLASS_SHARDED}
    args = (LOGITS, LABELS_IGNORE, TARGETS)
    hlo = assert_sharded_matches(fns, args, specs, mesh_name, one_device_results())
    # Each device reduces its own slice of the classes; the logits are never gathered
    # (nor moved: the only collectives are all-reduces of partial sums).
    assert set(collectives(hlo)) == {"all-reduce"}


def test_unreduced_loss_keeps_the_batch_sharding():
    mesh = make_mesh("4x2-explicit")
    x = jax.device_put(LOGITS, NamedSharding(mesh, P("data", "model")))
    y = jax.device_put(LABELS_IGNORE, NamedSharding(mesh, P("data")))
    with jax.set_mesh(mesh):
        out = jax.jit(functools.partial(jl.cross_entropy, reduction="none"))(x, y)
    assert out.sharding.spec == P("data")
    chex.assert_trees_all_close(
        out, jl.cross_entropy(LOGITS, LABELS_IGNORE, reduction="none"), rtol=RTOL, atol=ATOL
    )


def test_sequence_batch_sharded_over_data_and_sequence_over_model():
    # (batch, time, classes) with the batch over "data" and the time axis over "model".
    x = LOGITS.reshape(4, 4, C)
    y = LABELS_IGNORE.reshape(4, 4)

    fns = {
        "cross_entropy": functools.partial(jl.cross_entropy, label_smoothing=0.2),
        "focal_loss": functools.partial(jl.focal_loss, reduction="none"),
    }
    specs = (P("data", "model", None), P("data", "model"))
    assert_sharded_matches(fns, (x, y), specs, "4x2-explicit")


# --------------------------------------------------------------------------------------
# vocab_parallel_cross_entropy inside shard_map

VN, VV = 24, 40  # tokens, vocabulary (split 2 or 4 ways); no two dimensions are equal
V_LOGITS = jnp.asarray(R.standard_normal((VN, VV)) * 3, jnp.float32)
# Ignored tokens bunched in the first data shard: a mean of per-shard means would differ.
V_LABELS = jnp.asarray(R.integers(0, VV, size=VN)).at[jnp.array([0, 1, 2, 9])].set(-100)
REDUCTIONS = ("mean", "sum", "none")


def reference(logits, labels, label_smoothing=0.0, z_loss=0.0, *, reduction):
    """cross_entropy on the whole vocabulary plus z * logsumexp**2 per kept token."""
    ce = jl.cross_entropy(logits, labels, label_smoothing=label_smoothing, reduction="none")
    kept = labels != -100
    lse = jax.nn.logsumexp(logits, axis=-1)
    per = ce + z_loss * jnp.where(kept, lse**2, 0.0)
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return jnp.where(kept.any(), per.sum() / jnp.maximum(kept.sum(), 1), 0.0)


def vocab_parallel(mesh, *, sharded_tokens=True, reduction="mean", **kwargs):
    """vocab_parallel_cross_entropy in shard_map: vocabulary over "model", tokens over
    "data" (or replicated); returns the function of (logits, labels) and its in_specs."""
    tokens = "data" if sharded_tokens else None
    fn = functools.partial(
        jl.sharded.vocab_parallel_cross_entropy,
        axis_name="model",
        batch_axis_name=tokens if reduction != "none" else None,
        reduction=reduction,
        **kwargs,
    )
    out = P(tokens) if reduction == "none" else P()
    specs = (P(tokens, "model"), P(tokens))
    return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=out), specs


def traced_hyperparameters(mesh, sharded_tokens, reduction):
    """vocab_parallel(...) with label_smoothing and z_loss as (replicated) arguments."""

    def fn(logits, labels, eps, z):
        inner = functools.partial(
            jl.sharded.vocab_parallel_cross_entropy,
            axis_name="model",
            batch_axis_name=tokens if reduction != "none" else None,
            reduction=reduction,
        )
        sm = jax.shard_map(
            lambda a, b, e, zz: inner(a, b, label_smoothing=e, z_loss=zz),
            mesh=mesh,
            in_specs=(P(tokens, "model"), P(tokens), P(), P()),
            out_specs=P(tokens) if reduction == "none" else P(),
        )
        return sm(logits, labels, eps, z)

    tokens = "data" if sharded_tokens else None
    return fn


V_COTS = {
    r: jnp.asarray(R.uniform(0.5, 1.5, size=(VN,) if r == "none" else ()), jnp.float32)
    for r in REDUCTIONS
}


@functools.cache
def vocab_reference():
    """The reference's values and gradients for every reduction, compiled once."""
    refs = {r: functools.partial(reference, reduction=r) for r in REDUCTIONS}
    return jax.jit(functools.partial(values_and_grads, refs, V_COTS))


# label_smoothing and z_loss, crossed; (0, 0) is static (its terms are skipped at
# trace time), the others go through one compiled program as traced arguments.
TRACED = [(0.1, 0.0), (0.0, 1e-2), (0.2, 1e-3)]


@pytest.mark.parametrize("sharded_tokens", [True, False], ids=["tokens-sharded", "replicated"])
@pytest.mark.parametrize("hyper", ["static", "traced"])
def test_vocab_parallel_matches_cross_entropy_on_gathered_logits(hyper, sharded_tokens):
    # Every reduction at once, ignored tokens included, values and gradients; the vocab
    # split 2 ways (4x2 mesh) or 4 ways (2x4), alternating.
    mesh_name = sorted(MESHES)[(hyper == "traced") ^ sharded_tokens]
    mesh = make_mesh(mesh_name)
    tokens = "data" if sharded_tokens else None
    if hyper == "static":
        fns = {
            r: vocab_parallel(mesh, sharded_tokens=sharded_tokens, reduction=r)[0]
            for r in REDUCTIONS
        }
        settings = [()]
    else:
        fns = {r: traced_hyperparameters(mesh, sharded_tokens, r) for r in REDUCTIONS}
        settings = [tuple(jnp.float32(v) for v in pair) for pair in TRACED]
    specs = (P(tokens, "model"), P(tokens)) + (P(),) * len(settings[0])
    with jax.set_mesh(mesh):
        got_fn = (
            jax.jit(functools.partial(values_and_grads, fns, V_COTS))
            .lower(*place(mesh, (V_LOGITS, V_LABELS) + settings[0], specs))
            .compile()
        )
        for hp in settings:
            got = got_fn(*place(mesh, (V_LOGITS, V_LABELS) + hp, specs))
            want = vocab_reference()(V_LOGITS, V_LABELS, *(hp or (0.0, 0.0)))
            chex.assert_trees_all_close(got, want, rtol=RTOL, atol=1e-5)
    # The logits are never gathered (the collectives are counted below, one program
    # per reduction: here XLA merges the three reductions' identical all-reduces).
    assert "all-gather" not in collectives(got_fn.as_text())


def collective_shapes(hlo: str) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(op, result shapes) of every collective in compiled HLO text."""
    found = []
    pattern = r"=\s*(.*?)\s(all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter)"
    for line in hlo.splitlines():
        m = re.search(pattern + r"(?:-start)?\(", line)
        if m:
            shapes = re.findall(r"\w+\[([\d,]*)\]", m.group(1))
            found.append((m.group(2), [tuple(int(d) for d in sh.split(",") if d) for sh in shapes]))
    return found


@pytest.mark.parametrize("grad", [False, True], ids=["forward", "grad"])
@pytest.mark.parametrize("mesh_name", sorted(MESHES))
def test_vocab_parallel_has_two_all_reduces_and_never_gathers_logits(mesh_name, grad):
    mesh = make_mesh(mesh_name)
    local_vocab = VV // mesh.shape["model"]
    tokens = VN // mesh.shape["data"]
    label_smoothing = 0.1 if mesh_name.startswith("4x2") else 0.0
    fn, specs = vocab_parallel(mesh, reduction="none", label_smoothing=label_smoothing, z_loss=1e-3)
    if grad:
        fn = jax.grad(lambda a, b, f=fn: jnp.sum(f(a, b)))
    with jax.set_mesh(mesh):
        hlo = jax.jit(fn).lower(*place(mesh, (V_LOGITS, V_LABELS), specs)).compile().as_text()
    # One pmax of the per-token max, then ONE psum of the stacked per-token sum-exp and
    # target logit (+ logit sum and count with label smoothing). The backward pass
    # (softmax - one_hot on the local slice) adds no collective: the gradient's program
    # holds the same two.
    rows = 4 if label_smoothing else 2
    shapes = collective_shapes(hlo)
    assert shapes == [("all-reduce", [(tokens,)]), ("all-reduce", [(rows, tokens)])], shapes
    assert re.search(r"all-reduce\(.*op_name=\"[^\"]*/pmax\"", hlo)
    # No collective touches the vocabulary dimension (local or whole).
    for _, result in shapes:
        assert all(local_vocab not in sh and VV not in sh for sh in result)


def test_vocab_parallel_backward_keeps_no_logits_sized_temporary():
    # The custom_vjp keeps the logits as given and O(tokens) vectors; the gradient is
    # written straight into its output. XLA:CPU's temp memory stays far below one slice.
    mesh = make_mesh("2x4-auto")
    n, v = 256, 4096
    fn, specs = vocab_parallel(mesh, label_smoothing=0.1, z_loss=1e-4)
    x = jax.ShapeDtypeStruct((n, v), jnp.float32, sharding=NamedSharding(mesh, specs[0]))
    y = jax.ShapeDtypeStruct((n,), jnp.int32, sharding=NamedSharding(mesh, specs[1]))
    with jax.set_mesh(mesh):
        compiled = jax.jit(jax.value_and_grad(fn)).lower(x, y).compile()
    slice_bytes = n // 2 * v // 4 * 4
    assert compiled.memory_analysis().temp_size_in_bytes < slice_bytes / 8


def run_vocab_parallel(logits, labels, mesh_name="4x2-explicit", reduction="mean", **kwargs):
    """Value and vjp (cotangent ``V_COTS[reduction]``) of vocab_parallel_cross_entropy
    with the tokens over "data", and the reference's, with label smoothing and z-loss."""
    mesh = make_mesh(mesh_name)
    fn, specs = vocab_parallel(mesh, reduction=reduction, **kwargs)
    cot = V_COTS[reduction]
    with jax.set_mesh(mesh):
        got = jax.jit(functools.partial(value_and_vjp, fn, cot=cot))(
            *place(mesh, (logits, labels), specs)
        )
    hyper = (kwargs.get("label_smoothing", 0.0), kwargs.get("z_loss", 0.0))
    want = vocab_reference()(logits.astype(jnp.float32), labels, *hyper)[reduction]
    return jax.device_get(got), want


def test_vocab_parallel_all_ignored_mean_is_zero_with_zero_gradient():
    (value, grad), _ = run_vocab_parallel(
        V_LOGITS, jnp.full(VN, -100), label_smoothing=0.1, z_loss=1e-3
    )
    assert value == 0.0
    assert np.all(grad == 0.0)


def test_vocab_parallel_out_of_range_label_is_nan():
    labels = V_LABELS.at[5].set(VV).at[6].set(-3)
    (per, grad), (want, _) = run_vocab_parallel(V_LOGITS, labels, "2x4-auto", reduction="none")
    assert np.isnan(per[5]) and np.isnan(per[6])
    keep = np.arange(VN) > 6
    np.testing.assert_allclose(per[keep], want[keep], rtol=RTOL)
    assert np.all(np.isfinite(grad))  # the nan is the value's, not a gradient's


def test_vocab_parallel_masked_padding_and_shards_far_apart():
    # -inf columns (vocabulary padding) in the last shard take no smoothing mass, and
    # the first shard's logits are 1000 above the others: the per-shard sums of
    # exponentials are rescaled to the global max exactly.
    logits = V_LOGITS.at[:, -5:].set(-jnp.inf).at[:, :8].add(1000.0)
    labels = jnp.where(V_LABELS >= VV - 5, V_LABELS - 10, V_LABELS)  # no label on padding
    got, want = run_vocab_parallel(
        logits, labels, reduction="sum", label_smoothing=0.2, z_loss=1e-4
    )
    assert np.isfinite(got[0])
    chex.assert_trees_all_close(got, want, rtol=RTOL, atol=1e-4)
    assert np.all(got[1][:, -5:] == 0.0)


def test_vocab_parallel_bfloat16_computes_in_float32():
    x16 = V_LOGITS.astype(jnp.bfloat16)
    (value, grad), (want, want_grad) = run_vocab_parallel(x16, V_LABELS, label_smoothing=0.1)
    assert value.dtype == jnp.bfloat16 and grad.dtype == jnp.bfloat16
    np.testing.assert_allclose(float(value), float(want), rtol=1e-2)
    np.testing.assert_allclose(grad.astype(np.float32), want_grad, atol=2e-3)


def test_vocab_parallel_custom_ignore_index():
    labels = V_LABELS.at[4:8].set(3)  # class 3 is ignored, -100 is now an invalid label
    labels = jnp.where(labels == -100, 5, labels)
    got, _ = run_vocab_parallel(V_LOGITS, labels, ignore_index=3, label_smoothing=0.1)
    want = vocab_reference()(V_LOGITS, jnp.where(labels == 3, -100, labels), 0.1, 0.0)["mean"]
    chex.assert_trees_all_close(got, want, rtol=RTOL, atol=ATOL)


def test_vocab_parallel_where_mask():
    mesh = make_mesh("2x4-auto")
    where = jnp.arange(VN) % 3 != 0
    fn = jax.shard_map(
        lambda a, b, w: jl.sharded.vocab_parallel_cross_entropy(
            a, b, axis_name="model", batch_axis_name="data", where=w
        ),
        mesh=mesh,
        in_specs=(P("data", "model"), P("data"), P("data")),
        out_specs=P(),
    )
    with jax.set_mesh(mesh):
        got = jax.jit(functools.partial(value_and_vjp, fn, cot=V_COTS["mean"]))(
            V_LOGITS, V_LABELS, where
        )
    masked = jnp.where(where, V_LABELS, -100)
    want = vocab_reference()(V_LOGITS, masked, 0.0, 0.0)["mean"]
    chex.assert_trees_all_close(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(reduction="avg"), "reduction"),
        (dict(label_smoothing=1.5), "label_smoothing"),
        (dict(z_loss=-1.0), "z_loss"),
        (dict(labels=V_LABELS[:-1]), "target must have the shape"),
    ],
)
def test_vocab_parallel_rejects_bad_arguments(kwargs, match):
    mesh = make_mesh("2x4-auto")
    labels = kwargs.pop("labels", V_LABELS)
    fn = functools.partial(jl.sharded.vocab_parallel_cross_entropy, axis_name="model", **kwargs)
    sm = jax.shard_map(fn, mesh=mesh, in_specs=(P(None, "model"), P()), out_specs=P())
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(sm, V_LOGITS, labels)
