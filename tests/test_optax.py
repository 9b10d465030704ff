"""optax interoperability: jaxlosses and jaxlosses.optax_compat against optax 0.2.8.

Three parts: the jaxlosses functions with ``reduction="none"`` equal optax's losses on the
same inputs (``axis`` and ``where`` crossed where optax has them); ``optax_compat`` has
optax's signatures and values (and the documented differences where optax has a bug);
optax's own docstring examples pass when run against ``optax_compat``.
"""

import doctest
import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxlosses as jl
from jaxlosses import optax_compat as compat

R = np.random.default_rng(0)
SHAPE = (4, 3, 5)  # items (4, 3) x 5 classes on axis -1; items (4, 5) x 3 classes on axis 1
# Inputs are NumPy arrays: building them with jax.numpy would compile each operation.
LOGITS = (R.standard_normal(SHAPE) * 2).astype(np.float32)
SCORES = R.standard_normal(SHAPE).astype(np.float32)
BINARY = (R.uniform(size=SHAPE) < 0.4).astype(np.float32)
SOFT = R.uniform(size=SHAPE).astype(np.float32)


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


PROBS = softmax(SCORES, -1)


def item_shape(axis):
    return tuple(n for i, n in enumerate(SHAPE) if i != axis % len(SHAPE))


def labels_for(axis):
    return R.integers(0, SHAPE[axis], size=item_shape(axis)).astype(np.int32)


def item_mask(axis):
    mask = R.uniform(size=item_shape(axis)) < 0.7
    mask.flat[0] = False
    return mask


def one_hot(labels, axis):
    return np.moveaxis(np.eye(SHAPE[axis], dtype=np.float32)[labels], -1, axis)


def assert_value_and_grad_close(f, g, x, **tol):
    """f(x) == g(x) and d sum f / dx == d sum g / dx."""
    tol = {"rtol": 1e-5, "atol": 1e-6, **tol}

    @jax.jit  # one compilation instead of one per operation
    def value_and_grads(a):
        return [jax.value_and_grad(lambda b, h=h: jnp.sum(h(b)))(a) + (h(a),) for h in (f, g)]

    (_, grad_f, f_x), (_, grad_g, g_x) = value_and_grads(x)
    chex.assert_trees_all_close(f_x, g_x, **tol)
    chex.assert_trees_all_close(grad_f, grad_g, **tol)


AXES_X_WHERE = [(-1, False), (1, True)]  # (class axis, with a where mask)

# --------------------------------------------------------------------------------------
# Part 1: jaxlosses' own functions, reduction="none", equal optax on the same inputs


@pytest.mark.parametrize("axis,masked", AXES_X_WHERE)
def test_cross_entropy_integer_labels_is_optax(axis, masked):
    labels = labels_for(axis)
    where = item_mask(axis) if masked else None
    assert_value_and_grad_close(
        lambda x: jl.cross_entropy(x, labels, axis=axis, where=where, reduction="none"),
        lambda x: optax.losses.softmax_cross_entropy_with_integer_labels(
            x, labels, axis=axis, where=where
        ),
        LOGITS,
    )


@pytest.mark.parametrize("axis,masked", AXES_X_WHERE)
def test_cross_entropy_probabilities_is_optax(axis, masked):
    targets = softmax(SCORES, axis)
    where = item_mask(axis) if masked else None
    assert_value_and_grad_close(
        lambda x: jl.cross_entropy(x, targets, axis=axis, where=where, reduction="none"),
        lambda x: optax.losses.softmax_cross_entropy(x, targets, axis=axis, where=where),
        LOGITS,
    )


@pytest.mark.parametrize("axis,masked,alpha", [(-1, False, 0.1), (1, True, 0.3)])
def test_cross_entropy_label_smoothing_is_optax_smooth_labels(axis, masked, alpha):
    labels = labels_for(axis)
    where = item_mask(axis) if masked else None
    smoothed = optax.smooth_labels(one_hot(labels, axis), alpha, axis=axis)
    assert_value_and_grad_close(
        lambda x: jl.cross_entropy(
            x, labels, label_smoothing=alpha, axis=axis, where=where, reduction="none"
        ),
        lambda x: optax.losses.softmax_cross_entropy(x, smoothed, axis=axis, where=where),
        LOGITS,
    )


def test_bce_with_logits_is_optax_sigmoid_binary_cross_entropy():
    where = item_mask(-1)[..., None]  # optax has no where: mask its output by hand
    want_mask = np.broadcast_to(where, SHAPE)
    assert_value_and_grad_close(
        lambda x: jl.binary_cross_entropy_with_logits(x, SOFT, where=where, reduction="none"),
        lambda x: jnp.where(want_mask, optax.losses.sigmoid_binary_cross_entropy(x, SOFT), 0.0),
        LOGITS,
    )


@pytest.mark.parametrize(
    "alpha,gamma,targets",
    [(None, 2.0, "binary"), (0.25, 0.5, "soft"), (0.75, 0.0, "binary")],
)
def test_sigmoid_focal_loss_is_optax(alpha, gamma, targets):
    t = BINARY if targets == "binary" else SOFT
    assert_value_and_grad_close(
        lambda x: jl.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="none"),
        lambda x: optax.losses.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma),
        LOGITS,
    )


def test_sigmoid_focal_loss_where_is_optax_masked():
    where = item_mask(-1)[..., None]
    assert_value_and_grad_close(
        lambda x: jl.sigmoid_focal_loss(x, BINARY, alpha=0.25, where=where, reduction="none"),
        lambda x: jnp.where(where, optax.losses.sigmoid_focal_loss(x, BINARY, alpha=0.25), 0.0),
        LOGITS,
    )


@pytest.mark.parametrize("axis,smooth", [(-1, 0.5), (1, 1.0)])
def test_dice_loss_is_optax_over_all_item_axes(axis, smooth):
    labels = labels_for(axis)
    # optax: one example [1, items..., C], every item axis summed; ours: smooth = 2 s
    batch = jnp.moveaxis(LOGITS, axis, -1)[None]
    targets = jax.nn.one_hot(labels, SHAPE[axis])[None]

    def want(x):
        x = jnp.moveaxis(x, axis, -1)[None]
        return optax.losses.dice_loss(x, targets, smooth=smooth, axis=(1, 2))[0]

    assert batch.shape[-1] == SHAPE[axis]
    assert_value_and_grad_close(
        lambda x: jl.dice_loss(x, labels, smooth=2 * smooth, axis=axis), want, LOGITS
    )


def test_dice_loss_where_is_optax_on_the_kept_items():
    labels, where = labels_for(-1), item_mask(-1)
    kept = np.flatnonzero(np.asarray(where).ravel())
    targets = jax.nn.one_hot(labels.reshape(-1)[kept], SHAPE[-1])[None]

    def want(x):
        x = x.reshape(-1, SHAPE[-1])[kept][None]
        return optax.losses.dice_loss(x, targets, smooth=0.5, axis=(1,))[0]

    assert_value_and_grad_close(
        lambda x: jl.dice_loss(x, labels, smooth=1.0, where=where), want, LOGITS
    )


# --------------------------------------------------------------------------------------
# Part 2: optax_compat has optax's names, signatures and values

COMPAT_NAMES = sorted(compat.__all__)


@pytest.mark.parametrize("name", COMPAT_NAMES)
def test_signature_is_optax(name):
    ours = inspect.signature(getattr(compat, name)).parameters
    theirs = inspect.signature(getattr(optax.losses, name)).parameters
    assert list(ours) == list(theirs)
    for key, param in theirs.items():
        assert ours[key].kind == param.kind, key
        assert ours[key].default == param.default, key


def logit_mask(seed=1):
    mask = np.random.default_rng(seed).uniform(size=SHAPE) < 0.8
    mask[0, 0] = False  # an item with no class kept
    return mask


def where_for(kind, axis):
    if kind is None:
        return None
    if kind == "items":
        return item_mask(axis)
    return logit_mask()


@pytest.mark.parametrize(
    "axis,where",
    [(-1, None), (1, "items"), ((1, 2), "logits"), (None, None)],
)
def test_compat_softmax_cross_entropy(axis, where):
    if isinstance(axis, tuple) and where == "items":
        w = R.uniform(size=(4,)) < 0.7
    else:
        w = where_for(where, -1 if axis is None else axis)
    assert_value_and_grad_close(
        lambda x: compat.softmax_cross_entropy(x, PROBS, axis=axis, where=w),
        lambda x: optax.losses.softmax_cross_entropy(x, PROBS, axis=axis, where=w),
        LOGITS,
    )


@pytest.mark.parametrize(
    "axis,where", [(-1, None), (1, "items"), (1, "logits"), ((1, 2), "logits")]
)
def test_compat_softmax_cross_entropy_with_integer_labels(axis, where):
    if isinstance(axis, tuple):
        labels = R.integers(0, 15, size=(4,)).astype(np.int32)
        w = np.array([True, False, True, True]) if where == "items" else None
        if where == "logits":
            w = logit_mask()
            w[np.arange(4), labels // 5, labels % 5] = True
    else:
        labels = labels_for(axis)
        w = where_for(where, axis)
        if where == "logits":  # keep each label's own class
            hot = one_hot(labels, axis) > 0
            w = w | hot
    assert_value_and_grad_close(
        lambda x: compat.softmax_cross_entropy_with_integer_labels(x, labels, axis=axis, where=w),
        lambda x: optax.losses.softmax_cross_entropy_with_integer_labels(
            x, labels, axis=axis, where=w
        ),
        LOGITS,
    )


def test_compat_safe_softmax_cross_entropy_and_minus_inf_logits():
    x, q = LOGITS.copy(), PROBS.copy()
    x[..., 1], q[..., 1] = -np.inf, 0.0
    assert_value_and_grad_close(
        lambda a: compat.safe_softmax_cross_entropy(a, q),
        lambda a: optax.losses.safe_softmax_cross_entropy(a, q),
        x,
    )
    # Documented difference: optax.softmax_cross_entropy gives nan there, ours the safe value.
    theirs, ours, safe = jax.jit(
        lambda a: (
            optax.losses.softmax_cross_entropy(a, q),
            compat.softmax_cross_entropy(a, q),
            optax.losses.safe_softmax_cross_entropy(a, q),
        )
    )(x)
    assert np.all(np.isnan(theirs))
    chex.assert_trees_all_close(ours, safe)


def test_compat_integer_labels_out_of_range_are_nan_where_optax_wraps():
    labels = labels_for(-1)
    labels[0, 0], labels[1, 2] = -1, 5
    wrapped_labels = labels.copy()
    wrapped_labels[0, 0] = 4
    ours, theirs, wrapped = jax.jit(
        lambda x: (
            compat.softmax_cross_entropy_with_integer_labels(x, labels),
            optax.losses.softmax_cross_entropy_with_integer_labels(x, labels),
            optax.losses.softmax_cross_entropy_with_integer_labels(x, wrapped_labels),
        )
    )(LOGITS)
    assert np.isclose(theirs[0, 0], wrapped[0, 0])  # optax: -1 silently reads class C - 1
    assert np.isnan(ours[0, 0]) and np.isnan(ours[1, 2])
    ok = np.ones(item_shape(-1), bool)
    ok[0, 0] = ok[1, 2] = False
    chex.assert_trees_all_close(ours[ok], theirs[ok], rtol=1e-6)


def test_compat_integer_label_on_a_masked_class_is_inf():
    labels = np.zeros(item_shape(-1), np.int32)
    where = np.ones(SHAPE, bool)
    where[0, 0, 0] = False
    got = jax.jit(compat.softmax_cross_entropy_with_integer_labels)(LOGITS, labels, where=where)
    assert got[0, 0] == np.inf
    assert np.all(np.isfinite(got.ravel()[1:]))


def test_compat_sigmoid_binary_cross_entropy():
    t = SOFT[0, 0]  # broadcast against the logits
    assert_value_and_grad_close(
        lambda x: compat.sigmoid_binary_cross_entropy(x, t),
        lambda x: optax.losses.sigmoid_binary_cross_entropy(x, t),
        LOGITS,
    )


@pytest.mark.parametrize("alpha,gamma", [(None, 2.0), (0.25, 0.5)])
def test_compat_sigmoid_focal_loss(alpha, gamma):
    assert_value_and_grad_close(
        lambda x: compat.sigmoid_focal_loss(x, SOFT, alpha=alpha, gamma=gamma),
        lambda x: optax.losses.sigmoid_focal_loss(x, SOFT, alpha=alpha, gamma=gamma),
        LOGITS,
    )


def test_compat_sigmoid_focal_loss_needs_scalar_alpha_and_gamma():
    with pytest.raises(ValueError, match="alpha must be a scalar"):
        compat.sigmoid_focal_loss(LOGITS, BINARY, alpha=np.full(5, 0.25, np.float32))
    with pytest.raises(ValueError, match="gamma must be a scalar"):
        compat.sigmoid_focal_loss(LOGITS, BINARY, gamma=np.full(5, 2.0, np.float32))


@pytest.mark.parametrize("axis,masked", [(-1, False), (1, True), ((1, 2), True), (None, False)])
def test_compat_smooth_labels(axis, masked):
    labels = one_hot(labels_for(-1), -1)
    where = logit_mask() if masked else None
    if masked:
        where[0, 0, 0] = True  # optax divides by zero for an all-masked item
    ours, theirs = jax.jit(
        lambda y: (
            compat.smooth_labels(y, 0.2, axis=axis, where=where),
            optax.smooth_labels(y, 0.2, axis=axis, where=where),
        )
    )(labels)
    chex.assert_trees_all_close(ours, theirs, rtol=1e-6)


def test_compat_smooth_labels_all_masked_item_gets_no_mass():
    labels = one_hot(labels_for(-1), -1)
    where = logit_mask()  # item (0, 0) keeps no class
    ours, theirs = jax.jit(
        lambda y: (
            compat.smooth_labels(y, 0.2, where=where),
            optax.smooth_labels(y, 0.2, where=where),
        )
    )(labels)
    assert np.all(np.isinf(theirs[0, 0]))
    chex.assert_trees_all_close(ours[0, 0], 0.8 * labels[0, 0])


@pytest.mark.parametrize("axis,where,epsilon", [(1, "logits", -1.0), (None, None, 2.0)])
def test_compat_poly_loss_cross_entropy(axis, where, epsilon):
    w = where_for(where, axis)
    assert_value_and_grad_close(
        lambda x: compat.poly_loss_cross_entropy(x, PROBS, epsilon=epsilon, axis=axis, where=w),
        lambda x: optax.losses.poly_loss_cross_entropy(
            x, PROBS, epsilon=epsilon, axis=axis, where=w
        ),
        LOGITS,
    )


DICE_OPTIONS = [
    {},
    {"smooth": 0.0, "alpha": 0.3, "beta": 0.7, "axis": 1},
    {"class_weights": np.array([0.5, 1.0, 2.0, 1.0, 0.1]), "reduction": "none", "smooth": 0.5},
    {"reduction": "sum", "ignore_background": True, "axis": (0, 1)},
]


@pytest.mark.parametrize("options", DICE_OPTIONS, ids=str)
def test_compat_dice_loss(options):
    targets = one_hot(labels_for(-1), -1)
    assert_value_and_grad_close(
        lambda x: compat.dice_loss(x, targets, **options),
        lambda x: optax.losses.dice_loss(x, targets, **options),
        LOGITS,
    )


def test_compat_dice_loss_probabilities_and_binary():
    targets = one_hot(labels_for(-1), -1)
    chex.assert_trees_all_close(
        compat.dice_loss(PROBS, targets, apply_softmax=False),
        optax.losses.dice_loss(PROBS, targets, apply_softmax=False),
        rtol=1e-6,
    )
    # one channel: sigmoid, with or without the channel axis
    for x, t in [(LOGITS[..., :1], BINARY[..., :1]), (LOGITS[..., 0], BINARY[..., 0])]:
        assert_value_and_grad_close(
            lambda a, t=t: compat.dice_loss(a, t),
            lambda a, t=t: optax.losses.dice_loss(a, t),
            x,
        )
    assert_value_and_grad_close(
        lambda a: compat.binary_dice_loss(a, BINARY, smooth=0.5),
        lambda a: optax.losses.binary_dice_loss(a, BINARY, smooth=0.5),
        LOGITS,
    )
    assert_value_and_grad_close(
        lambda a: compat.multiclass_generalized_dice_loss(a, targets),
        lambda a: optax.losses.multiclass_generalized_dice_loss(a, targets),
        LOGITS,
    )


def test_compat_binary_dice_loss_on_probabilities_works_where_optax_raises():
    probs = jax.nn.sigmoid(LOGITS)
    with pytest.raises(ValueError, match="sum to 1"):
        optax.losses.binary_dice_loss(probs, BINARY, apply_sigmoid=False)
    chex.assert_trees_all_close(
        compat.binary_dice_loss(probs, BINARY, apply_sigmoid=False),
        optax.losses.binary_dice_loss(LOGITS, BINARY),
        rtol=1e-6,
    )
    jitted = jax.jit(
        lambda p: compat.dice_loss(p, one_hot(labels_for(-1), -1), apply_softmax=False)
    )
    assert np.all(np.isfinite(jitted(PROBS)))


def test_compat_dice_zero_denominator_is_one_not_nan():
    targets = np.zeros((1, 4, 2), np.float32)
    targets[..., 0] = 1.0
    probs = targets  # class 1 absent from predictions and targets
    theirs = optax.losses.dice_loss(
        probs, targets, smooth=0.0, apply_softmax=False, reduction="none"
    )
    ours = jax.jit(
        lambda p: compat.dice_loss(p, targets, smooth=0.0, apply_softmax=False, reduction="none")
    )(probs)
    assert np.isnan(theirs[0, 1])
    chex.assert_trees_all_close(ours, np.array([[0.0, 1.0]], np.float32))


def test_compat_is_jittable_and_returns_the_input_dtype():
    x16 = LOGITS.astype(jnp.bfloat16)  # a NumPy (ml_dtypes) bfloat16 array
    labels = labels_for(-1)
    out = jax.jit(compat.softmax_cross_entropy_with_integer_labels)(x16, labels)
    chex.assert_type(out, jnp.bfloat16)
    chex.assert_trees_all_close(
        np.asarray(out, np.float32),
        jax.jit(optax.losses.softmax_cross_entropy_with_integer_labels)(
            x16.astype(np.float32), labels
        ),
        rtol=1e-2,
    )


# --------------------------------------------------------------------------------------
# Part 3: optax's own docstring examples, run against optax_compat


def optax_examples():
    finder, found = doctest.DocTestFinder(recurse=False), []
    for name in COMPAT_NAMES:
        for test in finder.find(getattr(optax.losses, name), name):
            if test.examples:
                found.append((name, test))
    return found


def against_compat(test):
    """The same examples with optax replaced by optax_compat."""
    for example in test.examples:
        example.source = example.source.replace(
            "import optax\n", "import jaxlosses.optax_compat as optax\n"
        ).replace("from optax.losses import", "from jaxlosses.optax_compat import")
    return test


@pytest.mark.parametrize("name,test", optax_examples(), ids=lambda v: getattr(v, "name", v))
def test_optax_docstring_examples_pass_against_compat(name, test):
    sources = "".join(e.source for e in test.examples)
    assert "optax" in sources
    printoptions = np.get_printoptions()
    try:
        test = against_compat(test)
        rewritten = "".join(e.source for e in test.examples)
        assert "import optax\n" not in rewritten and "from optax" not in rewritten
        test.globs = {}
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        result = runner.run(test, out=lambda s: None)
    finally:
        np.set_printoptions(**printoptions)
    assert result.attempted > 0
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def test_optax_documents_examples_for_the_main_losses():
    names = {name for name, _ in optax_examples()}
    assert {"softmax_cross_entropy", "softmax_cross_entropy_with_integer_labels"} <= names
    assert "dice_loss" in names
