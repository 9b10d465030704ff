"""Data- and tensor-parallel training with jaxlosses on 8 simulated CPU devices.

A small next-token model (embedding -> MLP -> output layer over a vocabulary) on a 4 x 2
mesh: the batch is split over "data", the MLP and the output layer over "model" (the
output layer by vocabulary, Megatron-style). The same train step is written three ways,
and their losses agree at every step:

* ``shard_map``: each device computes the logits of its quarter of the batch and its half
  of the vocabulary, and :func:`jaxlosses.sharded.vocab_parallel_cross_entropy` computes
  the exact loss from those slices without ever gathering the logits;
* ``jit``: the same model in plain ``jax.numpy`` on sharded arrays; the compiler splits it
  and :func:`jaxlosses.cross_entropy` runs on batch- and vocabulary-sharded logits;
* one device: the reference.

Run:  python examples/sharded_training.py [--quick]
"""

from __future__ import annotations

import os

# Eight CPU devices; must be set before jax is imported.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import argparse  # noqa: E402
import functools  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import jaxlosses as jl  # noqa: E402

IGNORE = -100
LABEL_SMOOTHING = 0.1
Z_LOSS = 1e-4

# Where each parameter lives: the MLP is column- then row-parallel over "model"
# (Megatron's layout), the output layer is split over the vocabulary.
PARAM_SPECS = {
    "embed": P(None, None),  # (V, H), replicated
    "w_in": P(None, "model"),  # (H, F), F split
    "w_out": P("model", None),  # (F, H), F split: a psum over "model" after it
    "unembed": P(None, "model"),  # (H, V), the vocabulary split
}


def init_params(key, vocab, hidden, ffn):
    k = jax.random.split(key, 4)
    scale = lambda n: 1 / np.sqrt(n)  # noqa: E731
    return {
        "embed": jax.random.normal(k[0], (vocab, hidden)),
        "w_in": jax.random.normal(k[1], (hidden, ffn)) * scale(hidden),
        "w_out": jax.random.normal(k[2], (ffn, hidden)) * scale(ffn),
        "unembed": jax.random.normal(k[3], (hidden, vocab)) * scale(hidden),
    }


def make_batch(rng, batch, length, vocab):
    """Sequences that follow a fixed rule (learnable), padded with ignored labels."""
    start = rng.integers(0, vocab, size=(batch, 1))
    steps = rng.integers(1, 4, size=(batch, 1))
    seq = (start + steps * np.arange(length + 1)) % vocab
    tokens, labels = seq[:, :-1], seq[:, 1:].copy()
    lengths = rng.integers(length // 2, length + 1, size=batch)
    labels[np.arange(length) >= lengths[:, None]] = IGNORE  # padding
    return jnp.asarray(tokens, jnp.int32), jnp.asarray(labels, jnp.int32)


def z_term(logits, labels):
    """PaLM's z-loss: Z_LOSS * mean over kept tokens of logsumexp(logits)**2."""
    kept = labels != IGNORE
    lse = jax.nn.logsumexp(logits, axis=-1)
    return Z_LOSS * jnp.sum(jnp.where(kept, lse**2, 0.0)) / jnp.maximum(kept.sum(), 1)


# --------------------------------------------------------------------------------------
# One device (the reference) and jit over sharded arrays: the same plain-jnp model.


def forward(params, tokens, batch_spec=None):
    """Logits ``(B, T, V)``. ``batch_spec`` tells explicit sharding where results live."""
    h = params["embed"].at[tokens].get(out_sharding=batch_spec)
    a = jax.nn.gelu(h @ params["w_in"])
    h = h + jnp.einsum("btf,fh->bth", a, params["w_out"], out_sharding=batch_spec)
    return h @ params["unembed"]


def loss_dense(params, tokens, labels, batch_spec=None):
    logits = forward(params, tokens, batch_spec)
    ce = jl.cross_entropy(logits, labels, ignore_index=IGNORE, label_smoothing=LABEL_SMOOTHING)
    return ce + z_term(logits, labels)


# --------------------------------------------------------------------------------------
# shard_map: explicit per-device code with the vocabulary-parallel loss.


def loss_per_device(params, tokens, labels):
    """One device's view: its tokens, its slices of F and of the vocabulary."""
    h = params["embed"][tokens]
    a = jax.nn.gelu(h @ params["w_in"])  # (b, T, F / 2)
    h = h + jax.lax.psum(a @ params["w_out"], "model")  # row-parallel: sum the halves
    logits = h @ params["unembed"]  # (b, T, V / 2): this device's vocabulary slice
    return jl.sharded.vocab_parallel_cross_entropy(
        logits,
        labels,
        axis_name="model",
        batch_axis_name="data",  # the mean over all kept tokens of the global batch
        ignore_index=IGNORE,
        label_smoothing=LABEL_SMOOTHING,
        z_loss=Z_LOSS,
    )


def make_steps(mesh, optimizer):
    loss_shard_map = jax.shard_map(
        loss_per_device,
        mesh=mesh,
        in_specs=(PARAM_SPECS, P("data"), P("data")),
        out_specs=P(),
    )

    def step(loss_fn, params, opt_state, tokens, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, tokens, labels)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return loss, optax.apply_updates(params, updates), opt_state

    loss_jit = functools.partial(loss_dense, batch_spec=P("data", None, None))
    return {
        "shard_map": jax.jit(functools.partial(step, loss_shard_map)),
        "jit": jax.jit(functools.partial(step, loss_jit)),
        "single": jax.jit(functools.partial(step, loss_dense)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small model, a few steps")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)
    vocab, hidden, ffn, batch, length = (
        (64, 32, 64, 16, 8) if args.quick else (512, 64, 256, 32, 32)
    )
    steps = args.steps or (6 if args.quick else 30)

    mesh = jax.make_mesh((4, 2), ("data", "model"))  # explicit axes (make_mesh's default)
    print(f"devices: {jax.device_count()} x {jax.devices()[0].platform}")
    print(f"mesh: {dict(mesh.shape)}  axis types: {[t.name for t in mesh.axis_types]}")
    print(f"  device ids (data x model): {mesh.device_ids.tolist()}")
    print(f"model: vocabulary {vocab}, hidden {hidden}, ffn {ffn}; batch {batch} x {length}")

    params = init_params(jax.random.key(0), vocab, hidden, ffn)
    optimizer = optax.adam(3e-2)
    steps_fns = make_steps(mesh, optimizer)
    rng = np.random.default_rng(0)

    with jax.set_mesh(mesh):
        sharded = jax.device_put(
            params, {k: NamedSharding(mesh, s) for k, s in PARAM_SPECS.items()}
        )
        print("shardings (both sharded steps):")
        for name, value in sharded.items():
            spec = value.sharding.spec
            local = value.addressable_shards[0].data.shape
            print(f"  {name:8s} {str(value.shape):12s} {str(spec):24s} per device {local}")
        tokens, labels = make_batch(rng, batch, length, vocab)
        batch_sharding = NamedSharding(mesh, P("data", None))
        t = jax.device_put(tokens, batch_sharding)
        logits = jax.eval_shape(
            functools.partial(forward, batch_spec=P("data", None, None)), sharded, t
        )
        print(f"  tokens, labels {str(tokens.shape):12s} {str(batch_sharding.spec)}")
        print(f"  jit logits     {str(logits.shape):12s} {str(logits.sharding.spec)}")
        per_device = (batch // mesh.shape["data"], length, vocab // mesh.shape["model"])
        print(f"  shard_map: each device's logits {per_device}, never gathered")
        state = {
            "shard_map": (sharded, optimizer.init(sharded)),
            "jit": (sharded, optimizer.init(sharded)),
            "single": (params, optimizer.init(params)),
        }
        print(f"{'step':>4s} {'shard_map':>12s} {'jit':>12s} {'single':>12s} {'max |diff|':>11s}")
        worst = 0.0
        for step in range(steps):
            if step:
                tokens, labels = make_batch(rng, batch, length, vocab)
            placed = jax.device_put((tokens, labels), batch_sharding)
            losses = {}
            for name, fn in steps_fns.items():
                p, s = state[name]
                t, y = placed if name != "single" else (tokens, labels)
                loss, p, s = fn(p, s, t, y)
                state[name] = (p, s)
                losses[name] = float(loss)
            diff = max(abs(losses[k] - losses["single"]) for k in ("shard_map", "jit"))
            worst = max(worst, diff)
            print(
                f"{step:4d} {losses['shard_map']:12.6f} {losses['jit']:12.6f} "
                f"{losses['single']:12.6f} {diff:11.2e}"
            )
        final = {k: jax.device_get(v[0]) for k, v in state.items()}
        param_diff = max(
            float(np.max(np.abs(final[k][n] - final["single"][n])))
            for k in ("shard_map", "jit")
            for n in PARAM_SPECS
        )
        print(f"max |loss difference| over {steps} steps: {worst:.2e}")
        print(f"max |parameter difference| after {steps} steps: {param_diff:.2e}")
        print(f"final shardings: unembed {state['shard_map'][0]['unembed'].sharding.spec}")


if __name__ == "__main__":
    main()
