"""vocab_parallel_linear_cross_entropy on 2-D meshes of 8 simulated CPU devices.

Inside ``shard_map`` (data x model, 4x2 and 2x4), with the weight's rows split over
"model", its value and its gradients with respect to the inputs, the weight and the bias
equal :func:`jaxlosses.linear_cross_entropy` with the whole weight on one device; the
compiled program never gathers the weight or the logits, and holds a fixed, small number
of all-reduces. ``tests/conftest.py`` provides the 8 devices.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from test_sharded import collective_shapes, collectives, make_mesh

import jaxlosses as jl

vplce = jl.sharded.vocab_parallel_linear_cross_entropy

# Tokens, hidden size, vocabulary: 44 tokens are 11 or 22 per data shard and the
# vocabulary 18 or 36 per model shard; neither divides the chunks (8 tokens, 16 classes).
N, H, V = 44, 16, 72
R = np.random.default_rng(0)
X = jnp.asarray(R.standard_normal((N, H)), jnp.float32)
W = jnp.asarray(R.standard_normal((V, H)) * 0.7, jnp.float32)
B = jnp.asarray(R.standard_normal(V), jnp.float32)
LABELS = jnp.asarray(R.integers(0, V, size=N))
# Ignored tokens bunched in the first data shard: a mean of per-shard means would differ.
IGNORED = np.array([0, 1, 2, 3, 5, 30])
WHERE = jnp.arange(N) % 7 != 2
REDUCTIONS = ("mean", "sum", "none")
# One cotangent per output: every output's gradient is checked with a random one.
COTS = {
    name: jnp.asarray(R.uniform(0.5, 1.5, size=(N,) if name == "none" else ()), jnp.float32)
    for name in REDUCTIONS
}
# (label_smoothing, z_loss, logit_softcap) run through one compiled program as arguments;
# "static" leaves them out (their terms are skipped at trace time).
TRACED = [(0.1, 1e-3, 2.5), (0.25, 1e-2, 30.0)]
STATIC = [(0.0, 0.0, None)]


def place(mesh, args, specs):
    """``args`` (a tree) put on ``mesh`` with the matching tree of ``specs``."""
    put = lambda s, a: jax.device_put(a, NamedSharding(mesh, s))  # noqa: E731
    return jax.tree.map(put, specs, args, is_leaf=lambda s: isinstance(s, P))


def labels_for(ignore_index):
    return LABELS.at[IGNORED].set(ignore_index)


def losses(mesh, *, tokens, hyper, chunk_size, ignore_index, bias=True, where=False):
    """``{reduction: f(params, labels, mask, *hyper)}``: the sharded loss, ``params``
    ``(inputs, weight[, bias])``; with ``where``, the mean takes the mask."""
    tok = "data" if tokens == "sharded" else None
    param_specs = (P(tok, None), P("model", None)) + ((P("model"),) if bias else ())
    hyper_specs = (P(),) * (3 if hyper == "traced" else 0)

    def make(reduction, masked):
        def inner(params, labels, mask, *hp):
            eps, z, cap = hp if hp else STATIC[0]
            return vplce(
                params[0],
                params[1],
                labels,
                axis_name="model",
                linear_bias=params[2] if bias else None,
                ignore_index=ignore_index,
                label_smoothing=eps,
                z_loss=z,
                logit_softcap=cap,
                reduction=reduction,
                batch_axis_name=tok if reduction != "none" else None,
                chunk_size=chunk_size,
                where=mask if masked else None,
            )

        return jax.shard_map(
            inner,
            mesh=mesh,
            in_specs=(param_specs, P(tok), P(tok)) + hyper_specs,
            out_specs=P(tok) if reduction == "none" else P(),
        )

    fns = {r: make(r, where and r == "mean") for r in REDUCTIONS}
    specs = (param_specs, P(tok), P(tok)) + hyper_specs
    return fns, specs


def reference(reduction, params, labels, mask, *hp, ignore_index, where):
    """linear_cross_entropy on one device with the whole weight (where: masked labels)."""
    eps, z, cap = hp if hp else STATIC[0]
    if where and reduction == "mean":
        labels = jnp.where(mask, labels, ignore_index)
    return jl.linear_cross_entropy(
        params[0],
        params[1],
        labels,
        linear_bias=params[2] if len(params) > 2 else None,
        ignore_index=ignore_index,
        label_smoothing=eps,
        z_loss=z,
        logit_softcap=cap,
        reduction=reduction,
    )


def values_and_grads(fns, params, *rest):
    """``{name: (fns[name](params, *rest), its vjp w.r.t. params with COTS[name])}``."""
    result = {}
    for name, fn in fns.items():
        out, vjp = jax.vjp(lambda p, fn=fn: fn(p, *rest), params)
        cot = COTS[name].astype(out.dtype)
        spec = jax.typeof(out).sharding.spec
        if any(s is not None for s in spec):  # explicit sharding: the cotangent's type
            cot = jax.sharding.reshard(cot, spec)
        result[name] = (out, vjp(cot)[0])
    return result


@functools.cache
def reference_program(hyper, ignore_index, where):
    refs = {
        r: functools.partial(reference, r, ignore_index=ignore_index, where=where)
        for r in REDUCTIONS
    }
    return jax.jit(functools.partial(values_and_grads, refs))


# (mesh, options, tokens, chunk_size, bias, ignore_index, where): each mesh meets static
# and traced options, sharded and replicated tokens, token and vocabulary chunks.
CASES = [
    ("4x2-explicit", "static", "sharded", 8, True, -100, False),
    ("4x2-explicit", "traced", "replicated", (8, 16), True, -100, True),
    ("2x4-auto", "static", "replicated", None, False, 0, False),  # a real class ignored
    ("2x4-auto", "traced", "sharded", (8, 16), True, -100, True),
]


@pytest.mark.parametrize("mesh_name,hyper,tokens,chunk_size,bias,ignore_index,where", CASES)
def test_matches_linear_cross_entropy_with_the_whole_weight(
    mesh_name, hyper, tokens, chunk_size, bias, ignore_index, where
):
    mesh = make_mesh(mesh_name)
    fns, specs = losses(
        mesh, tokens=tokens, hyper=hyper, chunk_size=chunk_size, ignore_index=ignore_index,
        bias=bias, where=where,
    )  # fmt: skip
    params = (X, W, B) if bias else (X, W)
    labels = labels_for(ignore_index)
    settings = TRACED if hyper == "traced" else [()]
    want_fn = reference_program(hyper, ignore_index, where)

    def args(labels, hp):
        return (params, labels, WHERE) + tuple(jnp.float32(v) for v in hp)

    with jax.set_mesh(mesh):
        placed = place(mesh, args(labels, settings[0]), specs)
        got_fn = jax.jit(functools.partial(values_and_grads, fns)).lower(*placed).compile()
        for hp in settings:
            got = got_fn(*place(mesh, args(labels, hp), specs))
            chex.assert_trees_all_close(got, want_fn(*args(labels, hp)), rtol=1e-5, atol=2e-6)
        # Every token ignored or masked: means and sums are 0 with zero gradients.
        got = got_fn(*place(mesh, args(jnp.full(N, ignore_index), settings[-1]), specs))
        for name in ("mean", "sum"):
            assert got[name][0] == 0.0, name
            assert all(np.all(g == 0.0) for g in got[name][1]), name
        # A label outside [0, V) makes its token's loss nan, like linear_cross_entropy;
        # the gradients stay finite (the nan is the value's).
        bad = labels.at[jnp.array([8, 40])].set(jnp.array([V, -7]))
        got = got_fn(*place(mesh, args(bad, settings[-1]), specs))
        want = want_fn(*args(bad, settings[-1]))
    per, want_per = np.asarray(got["none"][0]), np.asarray(want["none"][0])
    assert np.isnan(per[[8, 40]]).all() and np.isnan(got["mean"][0])
    keep = np.ones(N, bool)
    keep[[8, 40]] = False
    np.testing.assert_allclose(per[keep], want_per[keep], rtol=1e-5, atol=2e-6)
    chex.assert_trees_all_close(got["none"][1], want["none"][1], rtol=1e-5, atol=2e-6)


# --------------------------------------------------------------------------------------
# The compiled program: collectives and memory


def gradient_program(mesh, tokens, n=N, h=H, v=V, loss=vplce, **kwargs):
    """Compiled value_and_grad (inputs, weight, bias) of a mean with label smoothing."""
    tok = "data" if tokens == "sharded" else None
    kw = dict(axis_name="model", batch_axis_name=tok, label_smoothing=0.1, z_loss=1e-4)
    specs = (P(tok, None), P("model", None), P("model"), P(tok))
    sm = jax.shard_map(
        lambda x, w, b, y: loss(x, w, y, linear_bias=b, **kw, **kwargs),
        mesh=mesh,
        in_specs=specs,
        out_specs=P(),
    )
    shapes = [((n, h), jnp.float32), ((v, h), jnp.float32), ((v,), jnp.float32), ((n,), jnp.int32)]
    args = [
        jax.ShapeDtypeStruct(shape, dtype, sharding=NamedSharding(mesh, spec))
        for (shape, dtype), spec in zip(shapes, specs, strict=True)
    ]
    with jax.set_mesh(mesh):
        return jax.jit(jax.value_and_grad(sm, argnums=(0, 1, 2))).lower(*args).compile()


@pytest.mark.parametrize(
    "mesh_name,tokens", [("4x2-explicit", "sharded"), ("2x4-auto", "replicated")]
)
def test_collectives_of_forward_and_backward(mesh_name, tokens):
    mesh = make_mesh(mesh_name)
    hlo = gradient_program(mesh, tokens, chunk_size=8).as_text()
    data, model = mesh.shape["data"], mesh.shape["model"]
    n_local = N // data if tokens == "sharded" else N
    v_local = V // model
    # Forward: ONE pmax and ONE stacked psum (sum-exp, target, logit sum and count) over
    # "model" for all chunks at once. Backward: one psum over "model" of the input
    # gradient (each device's share of a sum over the vocabulary). With the tokens over
    # "data": the mean's psum of (sum, count) and the data-parallel psum of the weight
    # and bias gradients (one all-reduce of both).
    expected = [("all-reduce", [(n_local,)]), ("all-reduce", [(4, n_local)])]
    if tokens == "sharded":
        expected += [("all-reduce", [(2,)]), ("all-reduce", [(v_local, H), (v_local,)])]
    expected += [("all-reduce", [(n_local, H)])]
    assert collective_shapes(hlo) == expected
    # No all-gather of the weight, and nothing (N, V)-shaped crosses a device.
    assert set(collectives(hlo)) == {"all-reduce"}


def test_temp_memory_far_below_materialised_logits():
    # Per device 512 tokens x 4096 classes: the naive path (the local logits, then
    # vocab_parallel_cross_entropy) keeps the logits and their gradient.
    n, h, v = 1024, 64, 16384
    mesh = make_mesh("2x4-auto")

    def naive(x, w, y, *, linear_bias, **kw):
        return jl.sharded.vocab_parallel_cross_entropy(x @ w.T + linear_bias, y, **kw)

    def temp(loss):
        compiled = gradient_program(mesh, "sharded", n, h, v, loss=loss)
        return compiled.memory_analysis().temp_size_in_bytes

    fused, materialised = temp(vplce), temp(naive)
    logits_bytes = n // 2 * v // 4 * 4
    assert materialised >= 2 * logits_bytes
    assert fused < materialised / 8, (fused, materialised)


# --------------------------------------------------------------------------------------
# Dtypes, transformations, arguments


def test_bfloat16_close_to_float32_and_keeps_dtypes():
    mesh = make_mesh("2x4-auto")
    fns, specs = losses(mesh, tokens="sharded", hyper="static", chunk_size=8, ignore_index=-100)
    fns = {"mean": fns["mean"]}
    labels = labels_for(-100)

    @jax.jit
    def run(params):
        fn = fns["mean"]
        return jax.value_and_grad(lambda p: fn(p, labels, WHERE))(params)

    params16 = tuple(a.astype(jnp.bfloat16) for a in (X, W, B))
    with jax.set_mesh(mesh):
        value16, grads16 = run(place(mesh, params16, specs[0]))
        value, grads = run(place(mesh, tuple(a.astype(jnp.float32) for a in params16), specs[0]))
    chex.assert_type([value16, *grads16], jnp.bfloat16)
    # The same bf16-rounded inputs in float32: only the arithmetic differs.
    assert abs(float(value16) - float(value)) <= 1e-2 * abs(float(value))
    for g16, g in zip(grads16, grads, strict=True):
        rel = jnp.linalg.norm(g16.astype(jnp.float32) - g) / jnp.linalg.norm(g)
        assert rel < 1e-2, rel


def plain(fn=vplce, **kwargs):
    """The loss in shard_map over a 2x4 mesh, tokens replicated, no bias."""
    mesh = make_mesh("2x4-auto")
    return jax.shard_map(
        lambda x, w, y: fn(x, w, y, axis_name="model", **kwargs),
        mesh=mesh,
        in_specs=(P(), P("model"), P()),
        out_specs=P(),
    )


def test_forward_mode_raises_a_clear_error_second_order_works():
    x, w, y = X[:6, :4], W[:8, :4], LABELS[:6] % 8
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jvp(lambda x: jax.jit(plain())(x, W, LABELS), (X,), (X,))
    # The backward pass is plain JAX, so forward-over-reverse (jax.hessian) works.
    kw = dict(label_smoothing=0.1, z_loss=1e-2, logit_softcap=3.0)
    chex.assert_trees_all_close(
        jax.jit(jax.hessian(lambda x: plain(**kw)(x, w, y)))(x),
        jax.jit(jax.hessian(lambda x: jl.linear_cross_entropy(x, w, y, **kw)))(x),
        rtol=1e-4, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(x=X[:, :-1]), ValueError, r"input.shape\[-1\] must equal linear_weight"),
        (dict(y=LABELS[:-1]), ValueError, "integer class indices must have the shape"),
        (dict(linear_bias=jnp.zeros(V)), ValueError, r"linear_bias must have shape \(18,\)"),
        (dict(reduction="avg"), ValueError, "reduction must be one of"),
        (dict(label_smoothing=1.5), ValueError, "label_smoothing must be in"),
        (dict(chunk_size=(4, 0)), ValueError, r"chunk_size\[1\] must be a positive int"),
        (dict(where=jnp.ones(3, bool)), ValueError, "where"),
    ],
)
def test_bad_arguments_raise_at_trace_time(kwargs, error, match):
    x, y = kwargs.pop("x", X), kwargs.pop("y", LABELS)
    with pytest.raises(error, match=match):
        jax.eval_shape(plain(**kwargs), x, W, y)


# --------------------------------------------------------------------------------------
# jaxlosses.linear_cross_entropy itself with explicitly sharded tokens (under jit).


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_linear_cross_entropy_with_explicitly_sharded_tokens(reduction):
    """Tokens split over both axes of an explicit 4x2 mesh, (4, 10) of them in a 2-D batch:
    each device runs the fused loss on its tokens; the values, the per-token lse and the
    gradients of inputs, weight and bias equal one device's, and only all-reduces (of the
    sums and of the weight's and bias' gradients) cross devices."""
    mesh = make_mesh("4x2-explicit")
    labels = labels_for(-100)[:40].reshape(4, 10)
    mask = WHERE[:40].reshape(4, 10)
    cot = COTS[reduction][:40].reshape(4, 10) if reduction == "none" else COTS[reduction]

    def f(x, w, b, labels, mask):
        loss = jl.linear_cross_entropy(
            x, w, labels, linear_bias=b, where=mask, label_smoothing=0.1, z_loss=1e-3,
            reduction=reduction, chunk_size=4,
        )  # fmt: skip
        return jnp.sum(loss * cot)

    run = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))
    args = (X[:40].reshape(4, 10, H), W, B, labels, mask)
    want = run(*args)
    specs = (P("data", "model", None), P(), P(), P("data", "model"), P("data", "model"))
    placed = place(mesh, args, specs)
    with jax.set_mesh(mesh):
        compiled = run.lower(*placed).compile()
        got = compiled(*placed)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
    assert jax.typeof(got[1][0]).sharding.spec == P("data", "model", None)
    assert set(collectives(compiled.as_text())) == {"all-reduce"}
