"""Hidden graders for a03_initialization (Glorot, He and LeCun initialisation).

Each test scores part of one nbgrader grade cell through the engine's
`grade_cell` marker, and talks to the submission only through the engine's
`student` fixture. Shapes, variances, seeds and weights are drawn from the
`rng` fixture, fresh for every grading run, so an answer that returns what one
run (or a visible check) showed earns nothing.

Expected initialiser values come from Keras itself: `keras_parameter` reads
the number a `keras.initializers` object hands to its sampler (the uniform
limit, or the normal's standard deviation) off the initialiser's own samples,
since with one seed they are the sampler's unit draw times that number. The
fans and the deep network's forward pass come from `reference.py`.
"""

import math

import numpy as np
import pytest

import reference  # from this grader folder: the copy that travelled with the job

DISTRIBUTIONS = ("uniform", "truncated_normal", "untruncated_normal")
MODES = ("fan_in", "fan_out", "fan_avg")

PARAMETER_RTOL = 1e-5
"""Relative tolerance on variances, limits and standard deviations.

Keras samples in float32, so the parameter read off its samples is exact to
about 2e-7 (measured); a float64 or float32 answer agrees with it to better
than 1e-6. Every flaw the tests are there for is off by at least 10%.
"""

STD_RTOL = 1e-4
"""Relative tolerance on the per-layer activation standard deviations.

The reference computes in float64; a float32 forward pass through 50 sigmoid
layers differs from it by about 1e-7 (measured), since the sigmoid's slope
(at most 1/4) damps rounding errors. The realistic flaws differ by far more
than 1%.
"""

ALPHA = 1e-6
"""Largest chance that one statistical check rejects a correct initialiser."""


def _describe(value):
    """Short, student-readable rendering of a received value and its type."""
    if isinstance(value, np.ndarray):
        text = np.array2string(value.ravel()[:6], precision=5, threshold=6)
        return f"numpy array of shape {value.shape}, dtype {value.dtype}, first values {text}"
    return f"{value!r} ({type(value).__name__})"


def _is_integer(value):
    """True for ints and integer numpy scalars (not bools)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    """True for a real number: int, float or numpy scalar (not a bool)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _number(received, call, expected):
    """Checks that a student returned one finite real number, and returns it as a float."""
    assert _is_real(received), f"{call}: expected a float close to {expected:.6g}, received {_describe(received)}"
    value = float(np.asarray(received))
    assert math.isfinite(value), f"{call}: expected a finite float close to {expected:.6g}, received {value}"
    return value


def _ratio_hint(value, expected):
    """What the ratio of a wrong answer to the right one looks like, for the student."""
    if expected == 0 or value == 0:
        return ""
    return f" (your value is {value / expected:.4g} times the expected one)"


# --- Reading parameters off Keras -------------------------------------------------

def _keras():
    """Keras, on its NumPy backend when this process has not imported it yet.

    The initialisers' arithmetic (fans, modes, the truncation constant) is
    backend-independent Python; the NumPy backend imports in half the time of
    TensorFlow, and `keras_parameter` checks that what it reads is exact.
    """
    import os
    import sys

    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "numpy"
    import keras

    return keras


def _unit_draw(distribution, shape, seed):
    """What Keras' sampler for `distribution` draws with limit or standard deviation 1."""
    keras = _keras()
    if distribution == "uniform":
        draw = keras.random.uniform(shape, minval=-1.0, maxval=1.0, seed=seed)
    elif distribution == "truncated_normal":
        draw = keras.random.truncated_normal(shape, mean=0.0, stddev=1.0, seed=seed)
    else:
        draw = keras.random.normal(shape, mean=0.0, stddev=1.0, seed=seed)
    return keras.ops.convert_to_numpy(draw).astype(np.float64).ravel()


def keras_parameter(make_initializer, distribution, shape):
    """The number a Keras initialiser hands to its sampler for a kernel of `shape`.

    Args:
        make_initializer: seed -> a `keras.initializers` object.
        distribution: its distribution ("uniform", "truncated_normal" or
            "untruncated_normal").
        shape: the kernel shape.

    Returns:
        float: the limit r of U(-r, r), or the standard deviation handed to
        the (truncated) normal sampler, read off the initialiser's samples.
    """
    keras = _keras()
    shape = tuple(int(n) for n in shape)
    for seed in range(1, 50):
        unit = _unit_draw(distribution, shape, seed)
        if unit @ unit >= 1.0:  # enough signal to read the factor to float32 precision
            break
    drawn = keras.ops.convert_to_numpy(make_initializer(seed)(shape)).astype(np.float64).ravel()
    parameter = float(drawn @ unit / (unit @ unit))
    if not np.allclose(drawn, parameter * unit, rtol=1e-5, atol=1e-6 * parameter):
        raise RuntimeError(f"Keras' {distribution} initialiser is no longer its unit draw times a "
                           f"constant on shape {shape}: the grader needs updating")
    return parameter


def keras_variance_scaling(scale, mode, distribution, shape):
    """`keras_parameter` of `keras.initializers.VarianceScaling(scale, mode, distribution)`."""
    keras = _keras()
    return keras_parameter(
        lambda seed: keras.initializers.VarianceScaling(scale=scale, mode=mode,
                                                        distribution=distribution, seed=seed),
        distribution, shape)


def keras_named(kind, distribution):
    """The `keras.initializers` class of a scheme and distribution, e.g. HeNormal."""
    return getattr(_keras().initializers, reference.KERAS_NAMES[(kind, distribution)])


def keras_named_parameter(kind, distribution, shape):
    """`keras_parameter` of a named initialiser such as `keras.initializers.HeNormal`."""
    cls = keras_named(kind, distribution)
    return keras_parameter(lambda seed: cls(seed=seed), cls().distribution, shape)


def keras_named_variance(kind, shape):
    """The variance sigma^2 Keras gives the weights of scheme `kind` on a kernel of `shape`.

    Read as the squared standard deviation of the untruncated normal with the
    scale and mode of Keras' own initialiser of that scheme.
    """
    named = keras_named(kind, "truncated_normal")()
    return keras_variance_scaling(named.scale, named.mode, "untruncated_normal", shape) ** 2


# --- Random shapes -------------------------------------------------------------------

def _unequal_pair(rng, low, high):
    """Two sizes in [low, high] that differ by a factor of at least 2, in random order."""
    small = int(rng.integers(low, high // 2 + 1))
    large = int(rng.integers(2 * small, high + 1))
    return (small, large) if rng.random() < 0.5 else (large, small)


def dense_shape(rng, low=4, high=600):
    """A Dense kernel shape (inputs, units) whose fans differ by a factor of 2 or more."""
    return _unequal_pair(rng, low, high)


def conv2d_shape(rng, channels=(1, 128), window=(2, 5)):
    """A Conv2D kernel shape (height, width, in_channels, out_channels).

    The window is at least 2x2 (so that the receptive field counts), and the
    channel counts differ by a factor of 2 or more (so that fan_in != fan_out).
    """
    height, width = (int(n) for n in rng.integers(window[0], window[1] + 1, size=2))
    c_in, c_out = _unequal_pair(rng, *channels)
    return (height, width, c_in, c_out)


# --- 1. Fans ----------------------------------------------------------------------

def _check_fans(student, shape):
    received = student.call("fans", shape)
    expected = reference.fans(shape)
    call = f"fans({shape})"
    assert isinstance(received, (list, tuple)) and len(received) == 2, (
        f"{call}: expected a tuple (fan_in, fan_out), received {_describe(received)}")
    assert all(_is_integer(n) for n in received), (
        f"{call}: expected two ints, received {_describe(received)}")
    assert tuple(int(n) for n in received) == expected, (
        f"{call}: expected (fan_in, fan_out) = {expected}, received {tuple(int(n) for n in received)}")


@pytest.mark.grade_cell("fans", weight=1)
def test_fans_dense(student, rng):
    """Dense kernels (inputs, units): fan_in is the first axis, fan_out the second."""
    for _ in range(5):
        _check_fans(student, dense_shape(rng))


@pytest.mark.grade_cell("fans", weight=1)
def test_fans_conv2d(student, rng):
    """Conv2D kernels (h, w, c_in, c_out): both fans include the receptive field h * w."""
    for _ in range(5):
        _check_fans(student, conv2d_shape(rng))


# --- 2. Variances ------------------------------------------------------------------

def _check_variance(student, rng, kind):
    for _ in range(4):
        fan_in, fan_out = dense_shape(rng, 4, 600)
        expected = keras_named_variance(kind, (fan_in, fan_out))
        call = f"variance({kind!r}, fan_in={fan_in}, fan_out={fan_out})"
        value = _number(student.call("variance", kind, fan_in, fan_out), call, expected)
        assert math.isclose(value, expected, rel_tol=PARAMETER_RTOL), (
            f"{call}: expected sigma^2 = {expected:.6g}, the variance of "
            f"keras.initializers.{reference.KERAS_NAMES[(kind, 'truncated_normal')]}, received "
            f"{value:.6g}{_ratio_hint(value, expected)}")


@pytest.mark.grade_cell("variance", weight=1)
def test_variance_glorot(student, rng):
    """Glorot: sigma^2 = 1 / fan_avg, as keras.initializers.GlorotNormal/GlorotUniform."""
    _check_variance(student, rng, "glorot")


@pytest.mark.grade_cell("variance", weight=1)
def test_variance_he(student, rng):
    """He: sigma^2 = 2 / fan_in, as keras.initializers.HeNormal/HeUniform."""
    _check_variance(student, rng, "he")


@pytest.mark.grade_cell("variance", weight=1)
def test_variance_lecun(student, rng):
    """LeCun: sigma^2 = 1 / fan_in, as keras.initializers.LecunNormal/LecunUniform."""
    _check_variance(student, rng, "lecun")


# --- 3. What Keras samples -----------------------------------------------------------

def _check_sampling_parameter(student, rng, distribution):
    """sampling_parameter(distribution, var) against VarianceScaling with sigma^2 = var."""
    for _ in range(3):
        var = float(rng.uniform(1e-4, 0.5))
        # VarianceScaling(scale = 64 var, mode="fan_in") on a 64 x 64 kernel has sigma^2 = var
        # (64 is a power of 2: the scaling is exact in floating point).
        expected = keras_variance_scaling(64.0 * var, "fan_in", distribution, (64, 64))
        call = f"sampling_parameter({distribution!r}, var={var!r})"
        value = _number(student.call("sampling_parameter", distribution, var), call, expected)
        assert math.isclose(value, expected, rel_tol=PARAMETER_RTOL), (
            f"{call}: expected {expected:.6g}, what keras.initializers.VarianceScaling hands to its "
            f"{distribution} sampler for sigma^2 = {var:.6g}, received {value:.6g}"
            f"{_ratio_hint(value, expected)}")


def _check_variance_scaling(student, shape, scale, mode, distribution, name="VarianceScaling"):
    expected = keras_variance_scaling(scale, mode, distribution, shape)
    call = (f"variance_scaling_parameter({shape}, scale={scale!r}, mode={mode!r}, "
            f"distribution={distribution!r})")
    received = student.call("variance_scaling_parameter", shape, scale, mode, distribution)
    value = _number(received, call, expected)
    assert math.isclose(value, expected, rel_tol=PARAMETER_RTOL), (
        f"{call}: expected {expected:.6g}, what keras.initializers.{name} hands to its sampler "
        f"for this kernel, received {value:.6g}{_ratio_hint(value, expected)}")


def _check_distribution(student, rng, distribution):
    """Every mode on a Dense and a Conv2D kernel, then Keras' named initialisers of this distribution."""
    _check_sampling_parameter(student, rng, distribution)
    for shape in (dense_shape(rng), conv2d_shape(rng)):
        for mode in MODES:
            scale = float(np.round(rng.uniform(0.1, 3.0), 3))
            _check_variance_scaling(student, shape, scale, mode, distribution)
    named_kinds = reference.KINDS if distribution != "untruncated_normal" else ()  # no such Keras class
    for kind in named_kinds:
        named = keras_named(kind, distribution)()
        shape = conv2d_shape(rng) if rng.random() < 0.5 else dense_shape(rng)
        _check_variance_scaling(student, shape, named.scale, named.mode, named.distribution,
                                name=type(named).__name__)


@pytest.mark.grade_cell("variance_scaling", weight=1)
def test_variance_scaling_uniform(student, rng):
    """Uniform: the limit r = sqrt(3 sigma^2), every mode; GlorotUniform, HeUniform, LecunUniform."""
    _check_distribution(student, rng, "uniform")


@pytest.mark.grade_cell("variance_scaling", weight=2)
def test_variance_scaling_truncated_normal(student, rng):
    """Truncated normal: stddev sigma / 0.8796..., every mode; GlorotNormal, HeNormal, LecunNormal."""
    _check_distribution(student, rng, "truncated_normal")


@pytest.mark.grade_cell("variance_scaling", weight=1)
def test_variance_scaling_untruncated_normal(student, rng):
    """Untruncated normal: stddev sigma, every mode."""
    _check_distribution(student, rng, "untruncated_normal")


# --- 4. The student's own initialiser -------------------------------------------------

def _large_shapes(rng):
    """A Dense and a Conv2D kernel of 65,536 to about 128,000 weights each."""
    size = int(rng.integers(128, 161))
    factor = int(rng.integers(4, 6))
    dense = (size, size * factor) if rng.random() < 0.5 else (size * factor, size)
    channels = int(rng.integers(50, 69))
    conv = (3, 3, channels, 3 * channels) if rng.random() < 0.5 else (3, 3, 3 * channels, channels)
    return [dense, conv]


def _hoeffding_tolerance(value_range, n):
    """Half-width t with P(|mean - E| >= t) <= ALPHA for n independent values in an interval of that length.

    Hoeffding's inequality: P(|mean - E| >= t) <= 2 exp(-2 n t^2 / range^2).
    """
    return value_range * math.sqrt(math.log(2.0 / ALPHA) / (2.0 * n))


def _own_sample(student, kind, distribution, shape, seed):
    call = f"my_initializer({kind!r}, {distribution!r}, {shape}, seed={seed})"
    received = student.call("my_initializer", kind, distribution, shape, seed)
    assert isinstance(received, np.ndarray), f"{call}: expected a numpy array, received {_describe(received)}"
    assert received.shape == tuple(shape), f"{call}: expected shape {tuple(shape)}, received {received.shape}"
    assert np.issubdtype(received.dtype, np.floating), (
        f"{call}: expected a float array, received dtype {received.dtype}")
    assert np.all(np.isfinite(received)), f"{call}: expected finite values, received NaN or inf"
    return call, received.astype(np.float64).ravel()


def _check_own_distribution(student, rng, distribution):
    """Support, mean and variance of the student's samples, for every scheme on two large kernels.

    A correct initialiser fails each of the 2 Hoeffding checks of a kernel with
    probability at most ALPHA, whatever the seed: 12 checks per test.
    """
    for shape in _large_shapes(rng):
        for kind in reference.KINDS:
            seed = int(rng.integers(2**31))
            call, w = _own_sample(student, kind, distribution, shape, seed)
            parameter = keras_named_parameter(kind, distribution, shape)
            var = keras_named_variance(kind, shape)
            if distribution == "uniform":
                bound, what = parameter, f"the limit r = sqrt(3 sigma^2) = {parameter:.5g}"
            else:
                bound, what = 2.0 * parameter, (f"2 s = {2.0 * parameter:.5g}, twice the truncated "
                                                 f"normal's stddev s = {parameter:.5g}")
            # Slack for the rounding of a float32 or float64 limit, far below any flaw.
            bound *= 1.0 + PARAMETER_RTOL
            largest = float(np.max(np.abs(w)))
            assert largest <= bound, (
                f"{call}: expected every weight within +-{what} ({reference.KERAS_NAMES[(kind, distribution)]}), "
                f"received a weight of absolute value {largest:.5g}")
            n = w.size
            mean = float(np.mean(w))
            mean_tolerance = _hoeffding_tolerance(2.0 * bound, n)
            assert abs(mean) <= mean_tolerance, (
                f"{call}: expected weights of mean 0 (the mean of {n} weights may differ from 0 by at "
                f"most {mean_tolerance:.3g} by chance), received mean {mean:.5g}")
            mean_square = float(np.mean(w * w))
            var_tolerance = _hoeffding_tolerance(bound * bound, n)
            assert abs(mean_square - var) <= var_tolerance, (
                f"{call}: expected the weights' variance (mean of w^2) to be sigma^2 = {var:.5g} "
                f"(up to {var_tolerance:.3g} by chance, for {n} weights), received {mean_square:.5g}"
                f"{_ratio_hint(mean_square, var)}")


@pytest.mark.grade_cell("own_initializer", weight=1)
def test_own_initializer_follows_its_seed(student, rng):
    """A float array of the requested shape, the same for the same seed, different for another seed."""
    for distribution in ("uniform", "truncated_normal"):
        for shape in (dense_shape(rng, 4, 60), conv2d_shape(rng, channels=(2, 16))):
            kind = reference.KINDS[int(rng.integers(len(reference.KINDS)))]
            seed = int(rng.integers(2**31))
            call, first = _own_sample(student, kind, distribution, shape, seed)
            _, again = _own_sample(student, kind, distribution, shape, seed)
            assert np.array_equal(first, again), (
                f"{call}, called twice: expected the same weights for the same seed "
                f"(draw them from np.random.default_rng(seed)), received different weights")
            _, other = _own_sample(student, kind, distribution, shape, seed + 1)
            assert not np.array_equal(first, other), (
                f"{call} and seed={seed + 1}: expected different weights for different seeds, "
                f"received the same weights")
            assert np.unique(first).size > first.size // 2, (
                f"{call}: expected random weights, received {np.unique(first).size} distinct values "
                f"among {first.size}")


@pytest.mark.grade_cell("own_initializer", weight=1)
def test_own_initializer_uniform(student, rng):
    """U(-r, r) with r = sqrt(3 sigma^2): support, mean and variance, every scheme."""
    _check_own_distribution(student, rng, "uniform")


@pytest.mark.grade_cell("own_initializer", weight=1)
def test_own_initializer_truncated_normal(student, rng):
    """Keras' truncated normal: support +-2s, mean and variance sigma^2, every scheme."""
    _check_own_distribution(student, rng, "truncated_normal")


# --- 5. Activations of a deep sigmoid network ----------------------------------------

def _network(rng):
    """A random bias-free MLP's kernel shapes and an input batch for it."""
    depth = int(rng.integers(20, 51))
    width = int(rng.integers(40, 101))
    n_inputs = int(rng.integers(10, 31))
    batch = int(rng.integers(64, 161))
    X = rng.standard_normal(size=(batch, n_inputs))
    return X, reference.layer_shapes(n_inputs, width, depth)


def _check_activation_stds(student, X, weights, label):
    expected = reference.activation_stds(X, weights)
    call = (f"activation_stds(X of shape {X.shape}, {len(weights)} {label} kernels of shapes "
            f"{weights[0].shape}, {weights[1].shape}, ...)")
    received = student.call("activation_stds", X, weights)
    assert isinstance(received, (np.ndarray, list)), (
        f"{call}: expected a numpy array of shape ({len(weights)},), received {_describe(received)}")
    received = np.asarray(received)
    assert received.shape == expected.shape, (
        f"{call}: expected one standard deviation per layer, shape {expected.shape}, received "
        f"shape {received.shape}")
    assert np.issubdtype(received.dtype, np.number) and np.all(np.isfinite(received)), (
        f"{call}: expected finite numbers, received {_describe(received)}")
    wrong = np.flatnonzero(~np.isclose(received, expected, rtol=STD_RTOL, atol=0.0))
    assert wrong.size == 0, (
        f"{call}: {wrong.size} of {len(weights)} layers differ; at layer {wrong[0] + 1} expected "
        f"{expected[wrong[0]]:.6f}, received {float(received[wrong[0]]):.6f} (layers 1-3: expected "
        f"{np.round(expected[:3], 6).tolist()}, received {np.round(received[:3].astype(float), 6).tolist()})")


@pytest.mark.grade_cell("activation_stds", weight=1)
def test_activation_stds_standard_normal(student, rng):
    """The per-layer activation std of a deep sigmoid MLP with N(0, 1) weights."""
    X, shapes = _network(rng)
    _check_activation_stds(student, X, reference.standard_normal_weights(rng, shapes), "N(0, 1)")


@pytest.mark.grade_cell("activation_stds", weight=1)
def test_activation_stds_glorot(student, rng):
    """The per-layer activation std of a deep sigmoid MLP with Glorot-uniform weights."""
    X, shapes = _network(rng)
    _check_activation_stds(student, X, reference.glorot_uniform_weights(rng, shapes), "Glorot-uniform")


# --- 6. Short questions ----------------------------------------------------------------

def _check_choice(student, name):
    received = student.value(name)
    assert isinstance(received, str) and received.strip().lower() in reference.CHOICES, (
        f"{name}: expected one letter among {list(reference.CHOICES)}, received {_describe(received)}")
    assert received.strip().lower() == reference.ANSWERS[name], (
        f"{name}: {received!r} is not the right choice; reread the question's options")


@pytest.mark.grade_cell("short_questions", weight=1)
def test_answer_symmetry(student):
    """Do equal initial weights stay equal under gradient descent?"""
    _check_choice(student, "ANSWER_SYMMETRY")


@pytest.mark.grade_cell("short_questions", weight=1)
def test_answer_lecun_glorot(student):
    """When does LeCun's variance equal Glorot's?"""
    _check_choice(student, "ANSWER_LECUN_GLOROT")


@pytest.mark.grade_cell("short_questions", weight=1)
def test_answer_zero_biases(student):
    """May biases start at zero?"""
    _check_choice(student, "ANSWER_ZERO_BIASES")
