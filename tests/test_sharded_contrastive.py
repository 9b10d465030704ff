"""jaxlosses.sharded.clip_loss and siglip_loss on 8 simulated devices equal the one-device
losses of the whole batch: values, and gradients of the features, the scale and the bias.

``tests/conftest.py`` gives the run 8 CPU devices. The batch is split over a 1-D mesh of
8 devices and over both axes of a 4 x 2 mesh (``axis_name=("data", "model")``); all
cases of a mesh are compiled as one program. The compiled collectives show how: CLIP
gathers the features, SigLIP passes them around the ring and gathers nothing.
"""

import re
import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

import jaxlosses as jl

B, D = 32, 6  # 4 items per device
R = np.random.default_rng(0)
IMG = jnp.asarray(R.standard_normal((B, D)), jnp.float32)
TXT = jnp.asarray(R.standard_normal((B, D)) + np.asarray(IMG), jnp.float32)
WHERE = jnp.asarray(R.uniform(size=B) < 0.75).at[:4].set(False)  # a whole device dropped
SCALE, BIAS = 3.0, -2.0

# name -> (one-device loss, sharded loss taking axis_name, reduction): f(img, txt, s, c)
CASES = {
    "clip_mean": (
        lambda i, t, s, c: jl.clip_loss(i, t, s, label_smoothing=0.1, where=WHERE),
        lambda i, t, s, c, w, ax: jl.sharded.clip_loss(
            i, t, s, axis_name=ax, label_smoothing=0.1, where=w, chunk_size=3
        ),
        "mean",
    ),
    "clip_none": (
        lambda i, t, s, c: jl.clip_loss(i, t, s, reduction="none"),
        lambda i, t, s, c, w, ax: jl.sharded.clip_loss(i, t, s, axis_name=ax, reduction="none"),
        "none",
    ),
    "siglip_mean": (
        lambda i, t, s, c: jl.siglip_loss(i, t, s, c, where=WHERE),
        lambda i, t, s, c, w, ax: jl.sharded.siglip_loss(
            i, t, s, c, axis_name=ax, where=w, chunk_size=3
        ),
        "mean",
    ),
    "siglip_sum": (
        lambda i, t, s, c: jl.siglip_loss(i, t, s, c, reduction="sum"),
        lambda i, t, s, c, w, ax: jl.sharded.siglip_loss(i, t, s, c, axis_name=ax, reduction="sum"),
        "sum",
    ),
    "siglip_none": (
        lambda i, t, s, c: jl.siglip_loss(i, t, s, c, where=WHERE, reduction="none"),
        lambda i, t, s, c, w, ax: jl.sharded.siglip_loss(
            i, t, s, c, axis_name=ax, where=w, reduction="none"
        ),
        "none",
    ),
}
# mesh -> (shape, axis names, groups of cases compiled together): on 4 x 2 the batch is
# split over both axes.
MESHES = {
    "8": (
        (8,),
        ("data",),
        (("clip_mean", "clip_none"), ("siglip_mean", "siglip_sum", "siglip_none")),
    ),
    "4x2": ((4, 2), ("data", "model"), (("clip_mean", "siglip_none"),)),
}
# The collectives of each group's compiled values and gradients on the 1-D mesh: CLIP
# gathers the features (their gradients go back by a reduce-scatter, which XLA:CPU may
# write as an all-reduce); SigLIP passes them around the ring and gathers nothing.
COLLECTIVES = {
    "clip_mean": ({"all-gather", "all-reduce"}, {"reduce-scatter"}),
    "siglip_mean": ({"collective-permute", "all-reduce"}, set()),
}


def collectives(hlo: str) -> set[str]:
    pattern = r"\b(all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter)(?:-start)?\("
    return set(re.findall(pattern, hlo))


def _cotangent(name, shape):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return jnp.asarray(rng.uniform(0.5, 1.5, shape), jnp.float32)


def _value_and_vjp(fn, name):
    def run(i, t, s, c):
        out, vjp = jax.vjp(fn, i, t, s, c)
        return out, vjp(_cotangent(name, out.shape))

    return run


def _sharded(mesh, axes, name):
    _, fn, reduction = CASES[name]
    batch = P(axes)
    out = batch if reduction == "none" else P()
    per_device = jax.shard_map(
        lambda i, t, s, c, w: fn(i, t, s, c, w, axes),
        mesh=mesh,
        in_specs=(batch, batch, P(), P(), batch),
        out_specs=out,
    )
    return lambda i, t, s, c: per_device(i, t, s, c, WHERE)


@pytest.mark.parametrize("mesh_name", sorted(MESHES))
def test_sharded_losses_equal_the_one_device_loss_of_the_whole_batch(mesh_name):
    shape, names, groups = MESHES[mesh_name]
    mesh = jax.make_mesh(shape, names, axis_types=(AxisType.Auto,) * len(shape))
    axes = names if len(names) > 1 else names[0]
    args = (IMG, TXT, SCALE, BIAS)
    cases = [name for group in groups for name in group]
    want = jax.jit(lambda *a: {n: _value_and_vjp(CASES[n][0], n)(*a) for n in cases})(*args)
    for group in groups:

        def sharded(*a, group=group):
            return {n: _value_and_vjp(_sharded(mesh, axes, n), n)(*a) for n in group}

        compiled = jax.jit(sharded).lower(*args).compile()
        got = compiled(*args)
        chex.assert_trees_all_close(got, {n: want[n] for n in group}, rtol=2e-5, atol=2e-5)
        if mesh_name == "8":
            required, allowed = COLLECTIVES[group[0]]
            ops = collectives(compiled.as_text())
            assert required <= ops <= required | allowed, (group, ops)


def test_errors_name_the_argument():
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    bad = jax.shard_map(
        lambda i, t: jl.sharded.siglip_loss(i, t[:, :2], 1.0, 0.0, axis_name="data"),
        mesh=mesh,
        in_specs=(P("data"), P("data")),
        out_specs=P(),
    )
    with pytest.raises(ValueError, match=r"text_features.shape=\(4, 2\)"):
        jax.eval_shape(bad, IMG, TXT)
