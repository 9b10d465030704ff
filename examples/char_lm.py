"""A character-level language model trained with ``jaxlosses.linear_cross_entropy``.

A small causal transformer in Flax NNX reads windows of Python source code (the standard
library that ships with this interpreter) and predicts the next character. Its output
layer and loss are one call, ``jaxlosses.linear_cross_entropy(features, head, targets)``,
so the ``(batch, time, vocabulary)`` logits are never materialised during training; the
same call adds label smoothing and PaLM's z-loss.

Run:  python examples/char_lm.py [--steps 800] [--out char_lm_loss.png]
      python examples/char_lm.py --quick      # a few seconds: a smoke run
Prints the loss before and after training, saves the loss curve, and prints a few lines
of generated "Python".
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pathlib
import string
import sysconfig

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

import jaxlosses as jl

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ALPHABET = sorted(set(string.printable) - set("\t\r\x0b\x0c"))


def load_text(max_chars: int) -> str:
    """Source files of the standard library, in sorted order, up to ``max_chars``."""
    chunks, total = [], 0
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        chunks.append(text)
        total += len(text)
        if total >= max_chars:
            break
    if not chunks:  # an interpreter shipped without sources: the Zen of Python
        import codecs

        with contextlib.redirect_stdout(io.StringIO()):
            import this
        chunks = [codecs.decode(this.s, "rot13")] * 50
    text = "".join(chunks)[:max_chars].replace("\t", "    ")
    return "".join(c if c in ALPHABET else "?" for c in text)


class Block(nnx.Module):
    """Pre-norm causal self-attention and MLP."""

    def __init__(self, dim: int, heads: int, *, rngs: nnx.Rngs):
        self.ln1 = nnx.LayerNorm(dim, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(heads, dim, decode=False, rngs=rngs)
        self.ln2 = nnx.LayerNorm(dim, rngs=rngs)
        self.up = nnx.Linear(dim, 4 * dim, rngs=rngs)
        self.down = nnx.Linear(4 * dim, dim, rngs=rngs)

    def __call__(self, h, mask):
        h = h + self.attn(self.ln1(h), mask=mask)
        return h + self.down(jax.nn.gelu(self.up(self.ln2(h))))


class CharLM(nnx.Module):
    def __init__(self, vocab: int, context: int, dim: int, heads: int, layers: int, rngs):
        self.embed = nnx.Embed(vocab, dim, rngs=rngs)
        self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (context, dim)))
        self.blocks = nnx.List([Block(dim, heads, rngs=rngs) for _ in range(layers)])
        self.ln_f = nnx.LayerNorm(dim, rngs=rngs)
        # The output layer in PyTorch's (V, H) layout, fed to linear_cross_entropy.
        self.head = nnx.Param(0.02 * jax.random.normal(rngs.params(), (vocab, dim)))
        self.head_bias = nnx.Param(jnp.zeros((vocab,)))

    def features(self, tokens):
        """``(batch, time)`` character ids -> ``(batch, time, dim)`` features."""
        h = self.embed(tokens) + self.pos[: tokens.shape[-1]]
        mask = nnx.make_causal_mask(tokens)
        for block in self.blocks:
            h = block(h, mask)
        return self.ln_f(h)

    def loss(self, tokens, targets):
        return jl.linear_cross_entropy(
            self.features(tokens),
            self.head[...],
            targets,
            linear_bias=self.head_bias[...],
            label_smoothing=0.05,
            z_loss=1e-4,
        )

    def next_logits(self, tokens):
        """Logits of the character after the last position (materialised: one row)."""
        return self.features(tokens)[:, -1] @ self.head[...].T + self.head_bias[...]


@nnx.jit
def train_step(model, optimizer, tokens, targets):
    loss, grads = nnx.value_and_grad(lambda m: m.loss(tokens, targets))(model)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def eval_loss(model, tokens, targets):
    return model.loss(tokens, targets)


def batches(data, batch, context, rng):
    while True:
        starts = rng.integers(0, len(data) - context - 1, size=batch)
        windows = np.stack([data[s : s + context + 1] for s in starts])
        yield jnp.asarray(windows[:, :-1]), jnp.asarray(windows[:, 1:])


def generate(model, prompt, length, context, key, temperature=0.8):
    ids = [ALPHABET.index(c) for c in prompt]
    pad = ALPHABET.index("\n")
    step = nnx.jit(lambda m, t: m.next_logits(t))
    for _ in range(length):
        window = ([pad] * context + ids)[-context:]
        logits = step(model, jnp.asarray([window]))[0]
        key, sub = jax.random.split(key)
        ids.append(int(jax.random.categorical(sub, logits / temperature)))
    return "".join(ALPHABET[i] for i in ids)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--chars", type=int, default=1_000_000, help="characters of text")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="char_lm_loss.png", help="loss-curve PNG")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.batch, args.context, args.dim, args.layers = 60, 16, 32, 32, 1
        args.chars = 100_000

    text = load_text(args.chars)
    data = np.asarray([ALPHABET.index(c) for c in text], np.int32)
    split = int(0.9 * len(data))
    train, held_out = data[:split], data[split:]
    print(f"text: {len(text):,} characters of stdlib source, vocabulary {len(ALPHABET)}")

    model = CharLM(len(ALPHABET), args.context, args.dim, 4, args.layers, nnx.Rngs(args.seed))
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, args.steps // 10, args.steps)
    optimizer = nnx.Optimizer(model, optax.adamw(schedule, weight_decay=0.01), wrt=nnx.Param)

    rng = np.random.default_rng(args.seed)
    eval_batch = next(batches(held_out, 4 * args.batch, args.context, rng))
    first_eval = float(eval_loss(model, *eval_batch))
    losses = []
    stream = batches(train, args.batch, args.context, rng)
    with tqdm(range(args.steps), desc="training", unit="step") as bar:
        for step in bar:
            losses.append(float(train_step(model, optimizer, *next(stream))))
            if step % 10 == 0:
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
    final_eval = float(eval_loss(model, *eval_batch))

    print(f"first loss  {losses[0]:.4f}")
    print(f"final loss  {np.mean(losses[-max(1, args.steps // 20) :]):.4f}")
    print(f"held-out loss {first_eval:.4f} -> {final_eval:.4f}")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(losses, lw=0.8, alpha=0.5, label="train (per step)")
    k = max(1, args.steps // 50)
    smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
    ax.plot(np.arange(k - 1, len(losses)), smooth, lw=1.5, label=f"train ({k}-step mean)")
    ax.set(xlabel="step", ylabel="loss (nats / char)", title="char LM, linear_cross_entropy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"loss curve  {args.out}")

    sample = generate(model, "def ", 240, args.context, jax.random.key(args.seed))
    print("generated:")
    for line in sample.splitlines()[:6]:
        print(f"  | {line}")


if __name__ == "__main__":
    main()
