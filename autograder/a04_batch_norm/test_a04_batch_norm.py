"""Hidden graders for a04_batch_norm (batch normalisation: forward pass, parameters, folding).

Each test scores part of one nbgrader grade cell through the engine's
`grade_cell` marker and reaches the submission only through the `student`
fixture. Inputs, shapes, hyperparameters and architectures are drawn from the
`rng` fixture, seeded afresh for every grading run, so nothing printed by the
visible checks can be replayed. Expected values come from Keras itself
(`keras.layers.BatchNormalization`, `count_params()` of models built here) or
from the float64 formula in `reference.py`.

Tolerances. Keras computes in float32, whose unit roundoff is 6e-8; its
batch-normalisation outputs agree with a float64 computation to about 1e-6
of their magnitude on the inputs drawn here (means at most 3 standard
deviations from zero, so the subtraction loses little), and every mistake
the tests are meant to catch changes the values by 1e-4 of their magnitude or
much more, by construction of the draws (see each helper). Comparisons are
therefore relative at 1e-5 (`_close`).
"""

import numpy as np
import pytest

import reference  # from this grader folder: the copy that travelled with the job

RTOL = 1e-5
"""Relative tolerance of every float comparison: float32 rounding is about 1e-6 here, mistakes 1e-4 or more."""


def _describe(value):
    """Short, student-readable rendering of a received value and its type."""
    if isinstance(value, np.ndarray):
        shown = np.round(value, 6).tolist() if value.size <= 12 else f"[{value.size} values]"
        return f"{shown!r} (numpy array, shape {value.shape}, dtype {value.dtype})"
    text = repr(value)
    return f"{text[:200]} ({type(value).__name__})"


def _array(value, label, shape):
    """The received value as a float64 array of the expected shape, or a failed check saying why."""
    assert isinstance(value, (np.ndarray, list, tuple, float, int, np.number)) and not isinstance(value, bool), (
        f"{label}: expected a numpy array of shape {shape}, received {_describe(value)}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{label}: expected an array of numbers of shape {shape}, "
                             f"received {_describe(value)}") from None
    assert array.shape == tuple(shape), f"{label}: expected shape {tuple(shape)}, received shape {array.shape}"
    assert np.all(np.isfinite(array)), f"{label}: expected finite numbers, received {_describe(array)}"
    return array


def _close(received, expected, scale, label, hint=""):
    """Elementwise relative comparison at RTOL: |received - expected| <= RTOL * (|expected| + scale).

    `scale` (broadcast against `expected`) is the magnitude of the terms each
    value was computed from, so that a value that comes out near zero by
    cancellation is not held to a tighter bound than its rounding allows.
    """
    expected = np.asarray(expected, dtype=np.float64)
    received = _array(received, label, expected.shape)
    error = np.abs(received - expected)
    bound = np.maximum(RTOL * (np.abs(expected) + np.asarray(scale, dtype=np.float64)), np.finfo(float).tiny)
    worst = np.unravel_index(np.argmax(error / bound), error.shape)
    assert np.all(error <= bound), (
        f"{label}: expected values within a relative 1e-5 of the right ones (float32 rounding), received a "
        f"difference of {error[worst]:.3g} at index {tuple(int(i) for i in worst)} (expected "
        f"{expected[worst]:.7g}, received {received[worst]:.7g}){hint}")


def _log_uniform(rng, low, high, size=None):
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


# --- 1. The forward pass --------------------------------------------------------------

def _bn_case(rng, shape):
    """Inputs and weights of one BatchNormalization call, drawn so that each mistake shows.

    * Half the features have a standard deviation in [0.02, 0.2], where
      epsilon (1e-3 to 1e-2) changes sqrt(var + eps) by 1% or more, and where
      sqrt(var) + eps differs from it just as much (the two coincide only near
      a standard deviation of 0.5, which no feature has); the others have one
      in [2, 20].
    * The mean of each feature is at most 3 standard deviations from zero, so
      float32 loses little in x - mean.
    * The moving mean sits 0.5 to 2 standard deviations away from the batch
      mean and the moving variance 2 to 4 times above or below the batch
      variance, so that using one for the other, or weighting them the wrong
      way round (momentum in [0.8, 0.95], never near 0.5), changes every value.
    * A feature has at most 32 values in a (batch, features) input and
      4 * 6 * 6 = 144 in a (batch, height, width, channels) one, so dividing by
      m - 1 instead of m changes the standard deviation by 1/288 or more, and
      the moving variance by at least (1 - 0.95) / 31 of the batch variance.
    """
    n = shape[-1]
    small = rng.permutation(np.arange(n) % 2 == 0)
    std = np.where(small, _log_uniform(rng, 0.02, 0.2, n), _log_uniform(rng, 2.0, 20.0, n))
    centre = std * rng.uniform(-3.0, 3.0, n)
    x = (rng.normal(size=shape) * std + centre).astype("float32")
    gamma = rng.uniform(0.5, 2.0, n).astype("float32")
    beta = rng.uniform(-1.0, 1.0, n).astype("float32")
    batch_mean, batch_var = reference.batch_moments(x)
    moving_mean = (batch_mean + rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 2.0, n) * std).astype("float32")
    moving_var = (batch_var * rng.uniform(2.0, 4.0, n) ** rng.choice([-1.0, 1.0], n)).astype("float32")
    momentum = float(rng.uniform(0.8, 0.95))
    epsilon = float(_log_uniform(rng, 1e-3, 1e-2))
    return x, gamma, beta, moving_mean, moving_var, momentum, epsilon


def _dense_shape(rng):
    return (int(rng.integers(8, 33)), int(rng.integers(4, 11)))


def _conv_shape(rng):
    return (int(rng.integers(2, 5)), int(rng.integers(3, 7)), int(rng.integers(3, 7)), int(rng.integers(4, 9)))


def _output_scale(expected, gamma, beta):
    """Per feature: gamma + |beta| + the largest |output|; float32 errs by about 1e-6 of it."""
    largest = np.max(np.abs(expected).reshape(-1, expected.shape[-1]), axis=0)
    return np.abs(gamma) + np.abs(beta) + largest


def _train_call(student, case):
    """The student's batch_norm_train on one case, checked to be a 3-tuple, and Keras' answer."""
    x, gamma, beta, moving_mean, moving_var, momentum, epsilon = case
    label = (f"batch_norm_train(x of shape {x.shape}, momentum={momentum:.4f}, epsilon={epsilon:.3g})")
    received = student.call("batch_norm_train", x, gamma, beta, moving_mean, moving_var, momentum=momentum,
                            epsilon=epsilon)
    assert isinstance(received, (tuple, list)) and len(received) == 3, (
        f"{label}: expected a tuple (y, new_moving_mean, new_moving_var), received {_describe(received)}")
    expected = reference.keras_batch_norm(x, gamma, beta, moving_mean, moving_var, momentum=momentum,
                                          epsilon=epsilon, training=True)
    return label, received, expected


def _check_train_output(student, shape_of, rng, hint):
    for _ in range(3):
        case = _bn_case(rng, shape_of(rng))
        label, received, expected = _train_call(student, case)
        _close(received[0], expected[0], _output_scale(expected[0], case[1], case[2]), f"{label}, y", hint)


@pytest.mark.grade_cell("bn_train", weight=1)
def test_train_output_dense(student, rng):
    """Training-mode outputs on (batch, features) inputs, against Keras."""
    _check_train_output(student, _dense_shape, rng,
                        " (normalise with the batch mean and the biased batch variance, epsilon inside the "
                        "square root, then scale by gamma and add beta)")


@pytest.mark.grade_cell("bn_train", weight=1)
def test_train_output_conv(student, rng):
    """Training-mode outputs on (batch, height, width, channels) inputs: statistics per channel."""
    _check_train_output(student, _conv_shape, rng,
                        " (x has shape (batch, height, width, channels): each channel's statistics are taken "
                        "over the batch and every position, i.e. every axis but the last)")


@pytest.mark.grade_cell("bn_train", weight=1)
def test_train_moving_mean(student, rng):
    """The moving mean after one training step, against Keras' convention."""
    for _ in range(3):
        case = _bn_case(rng, _dense_shape(rng))
        label, received, expected = _train_call(student, case)
        batch_mean, batch_var = reference.batch_moments(case[0])
        scale = np.abs(case[3]) + np.abs(batch_mean) + np.sqrt(batch_var)
        _close(received[1], expected[1], scale, f"{label}, new_moving_mean",
               " (Keras: moving_mean * momentum + batch_mean * (1 - momentum))")


@pytest.mark.grade_cell("bn_train", weight=1)
def test_train_moving_var(student, rng):
    """The moving variance after one training step: Keras averages in the biased batch variance."""
    for _ in range(3):
        case = _bn_case(rng, _dense_shape(rng))
        label, received, expected = _train_call(student, case)
        _, batch_var = reference.batch_moments(case[0])
        _close(received[2], expected[2], np.abs(case[4]) + batch_var, f"{label}, new_moving_var",
               " (Keras: moving_var * momentum + batch_var * (1 - momentum), with the batch variance "
               "that divides by m)")


def _check_inference(student, shape_of, rng):
    for _ in range(3):
        x, gamma, beta, moving_mean, moving_var, _, epsilon = _bn_case(rng, shape_of(rng))
        label = f"batch_norm_inference(x of shape {x.shape}, epsilon={epsilon:.3g})"
        received = student.call("batch_norm_inference", x, gamma, beta, moving_mean, moving_var,
                                epsilon=epsilon)
        expected = reference.keras_batch_norm(x, gamma, beta, moving_mean, moving_var,
                                              momentum=0.99, epsilon=epsilon, training=False)[0]
        _close(received, expected, _output_scale(expected, gamma, beta), label,
               " (inference uses the moving mean and variance, not the batch's, with epsilon inside "
               "the square root)")


@pytest.mark.grade_cell("bn_inference", weight=1)
def test_inference_dense(student, rng):
    """Inference-mode outputs on (batch, features) inputs, against Keras."""
    _check_inference(student, _dense_shape, rng)


@pytest.mark.grade_cell("bn_inference", weight=1)
def test_inference_conv(student, rng):
    """Inference-mode outputs on (batch, height, width, channels) inputs, against Keras."""
    _check_inference(student, _conv_shape, rng)


# --- 2. Parameter counts ------------------------------------------------------------------

def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_counts(received, expected, label, keys):
    assert isinstance(received, dict), f"{label}: expected a dict with keys {list(keys)}, received {_describe(received)}"
    missing = [key for key in keys if key not in received]
    assert not missing, f"{label}: expected the keys {list(keys)}, received {sorted(map(str, received))}"
    for key in keys:
        assert _is_int(received[key]), f"{label}: expected {key} to be an int, received {_describe(received[key])}"
    got = {key: int(received[key]) for key in keys}
    want = {key: expected[key] for key in keys}
    assert got == want, f"{label}: expected {want} (as Keras counts them), received {got}"


def _check_bn_params(student, n_features, center, scale):
    label = f"bn_params({n_features}, center={center}, scale={scale})"
    received = student.call("bn_params", n_features, center=center, scale=scale)
    _check_counts(received, reference.bn_param_split(n_features, center, scale), label,
                  ("trainable", "non_trainable"))


@pytest.mark.grade_cell("bn_params", weight=1)
def test_bn_params_default(student, rng):
    """gamma and beta trainable, moving mean and variance not: 2n and 2n."""
    for n_features in rng.integers(1, 2000, size=3):
        _check_bn_params(student, int(n_features), True, True)


@pytest.mark.grade_cell("bn_params", weight=1)
def test_bn_params_center_scale(student, rng):
    """center=False drops beta, scale=False drops gamma; the moving statistics stay."""
    for center, scale in [(True, False), (False, True), (False, False)]:
        _check_bn_params(student, int(rng.integers(1, 2000)), center, scale)


def _parameterised_layers(model):
    """(class name, configuration that sets the parameter count) of each layer that has weights."""
    rows = []
    for layer in model.layers:
        name = type(layer).__name__
        if name == "Dense":
            rows.append((name, int(layer.units), bool(layer.use_bias)))
        elif name == "Conv2D":
            rows.append((name, int(layer.filters), tuple(layer.kernel_size), tuple(layer.strides),
                         layer.padding, bool(layer.use_bias)))
        elif name == "BatchNormalization":
            rows.append((name, bool(layer.center), bool(layer.scale)))
        elif layer.weights:
            rows.append((name,))
    return rows


def _check_model(student, name, spec):
    model = student.model(name)
    expected_model = reference.build_model(spec)
    want_shape = (None, *spec["input_shape"])
    assert tuple(model.input_shape) == want_shape, (
        f"{name}: expected inputs of shape {want_shape}, received {model.input_shape}")
    received_layers = _parameterised_layers(model)
    expected_layers = _parameterised_layers(expected_model)
    assert received_layers == expected_layers, (
        f"{name}: expected the layers with weights to be {expected_layers} (Dense: units, use_bias; "
        f"Conv2D: filters, kernel size, strides, padding, use_bias; BatchNormalization: center, scale), "
        f"received {received_layers}")
    received, expected = reference.model_split(model), reference.model_split(expected_model)
    assert received == expected, f"{name}: expected the parameter counts {expected}, received {received}"


@pytest.mark.grade_cell("keras_bn_models", weight=1)
def test_model_bn_after(student):
    """Géron's MLP with BN after the input and after each hidden layer."""
    _check_model(student, "model_bn_after", reference.GERON_BN_AFTER)


@pytest.mark.grade_cell("keras_bn_models", weight=1)
def test_model_bn_before(student):
    """The same MLP with BN before each hidden activation and bias-free Dense layers."""
    _check_model(student, "model_bn_before", reference.GERON_BN_BEFORE)


@pytest.mark.grade_cell("keras_bn_models", weight=1)
def test_codelab_model(student):
    """The MNIST codelab's CNN: bias-free convolutions, BN(scale=False, center=True), ReLU."""
    _check_model(student, "codelab_model", reference.CODELAB)


def _dense_layer(rng, use_bias):
    return {"type": "dense", "units": int(rng.integers(3, 130)), "use_bias": bool(use_bias),
            "activation": str(rng.choice(["relu", "elu", "tanh"]))}


def _bn_layer(center=True, scale=True):
    return {"type": "batch_norm", "center": bool(center), "scale": bool(scale)}


_ZERO_PARAMETER = ({"type": "activation", "activation": "relu"}, {"type": "dropout", "rate": 0.3})


def _dense_spec(rng):
    """A flat or (h, w) input (then Flatten), 2-4 hidden Dense layers each followed by BN(default), an output.

    Always one bias-free hidden Dense layer (the BN-before-activation layout)
    and one with a bias; BN layers have the default center=True, scale=True
    here (`_conv_spec` varies them).
    """
    if rng.integers(2):
        input_shape = [int(rng.integers(4, 30)), int(rng.integers(4, 30))]
        layers = [{"type": "flatten"}]
    else:
        input_shape = [int(rng.integers(10, 800))]
        layers = []
    layers.append(_bn_layer())
    n_dense = int(rng.integers(2, 5))
    biases = [False, True] + [bool(b) for b in rng.integers(0, 2, n_dense - 2)]
    for use_bias in rng.permutation(biases):
        layers.append(_dense_layer(rng, use_bias))
        layers.append(_bn_layer())
        if rng.integers(2):
            layers.append(dict(_ZERO_PARAMETER[int(rng.integers(2))]))
    layers.append({"type": "dense", "units": int(rng.integers(2, 11)), "use_bias": True, "activation": "softmax"})
    return {"input_shape": input_shape, "layers": layers}


def _conv_spec(rng):
    """An (h, w, c) input with c >= 2, 2-3 Conv2D blocks, Flatten, Dense(use_bias=False), BN, Dense.

    The first convolution has stride 2 and "valid" padding and the others
    draw theirs, so the flattened size depends on both; the first BN after a
    convolution has the codelab's flags (center=True, scale=False), the second
    one of the other three combinations, the rest the codelab's again. Half
    the specs also normalise the input image (one feature per channel).
    """
    input_shape = [int(rng.integers(10, 33)), int(rng.integers(10, 33)), int(rng.integers(2, 5))]
    sides = input_shape[:2]
    layers = [_bn_layer()] if rng.integers(2) else []
    n_conv = int(rng.integers(2, 4))
    flags = [(True, False), [(True, True), (False, True), (False, False)][int(rng.integers(3))]]
    flags += [(True, False)] * (n_conv - 2)
    for index in range(n_conv):
        kernel_size = int(rng.integers(1, 6))
        strides = 2 if index == 0 else int(rng.integers(1, 3))
        padding = "valid" if index == 0 else ["same", "valid"][int(rng.integers(2))]
        if padding == "valid" and min(sides) < kernel_size:
            padding = "same"
        if padding == "same":
            sides = [-(-n // strides) for n in sides]
        else:
            sides = [(n - kernel_size) // strides + 1 for n in sides]
        layers.append({"type": "conv2d", "filters": int(rng.integers(2, 33)), "kernel_size": kernel_size,
                       "strides": strides, "padding": padding, "use_bias": bool(rng.integers(2)),
                       "activation": None})
        layers.append(_bn_layer(*flags[index]))
        layers.append({"type": "activation", "activation": "relu"})
    layers.append({"type": "flatten"})
    layers.append(_dense_layer(rng, use_bias=False))
    layers.append(_bn_layer(center=True, scale=False))
    layers.append({"type": "dropout", "rate": 0.25})
    layers.append({"type": "dense", "units": int(rng.integers(2, 11)), "use_bias": True, "activation": "softmax"})
    return {"input_shape": input_shape, "layers": layers}


def _spec_text(spec):
    parts = []
    for layer in spec["layers"]:
        keys = {k: v for k, v in layer.items() if k not in ("type", "activation", "rate")}
        parts.append(layer["type"] + (str(keys).replace("'", "") if keys else ""))
    return f"input_shape={spec['input_shape']}, layers: " + ", ".join(parts)


def _check_split(student, spec, keys):
    received = student.call("model_param_split", spec)
    expected = reference.model_split(reference.build_model(spec))
    _check_counts(received, expected, f"model_param_split({_spec_text(spec)})", keys)


@pytest.mark.grade_cell("model_param_split", weight=1)
def test_param_split_dense_total(student, rng):
    """Total parameters of random MLPs with BN (Dense layers with and without bias)."""
    for _ in range(3):
        _check_split(student, _dense_spec(rng), ("total",))


@pytest.mark.grade_cell("model_param_split", weight=1)
def test_param_split_dense_trainable(student, rng):
    """Trainable and non-trainable parameters of random MLPs with BN."""
    for _ in range(3):
        _check_split(student, _dense_spec(rng), ("total", "trainable", "non_trainable"))


@pytest.mark.grade_cell("model_param_split", weight=1)
def test_param_split_conv(student, rng):
    """All three counts of random CNNs: Conv2D kernels, strides, padding, BN center/scale flags."""
    for _ in range(3):
        _check_split(student, _conv_spec(rng), ("total", "trainable", "non_trainable"))


# --- 3. Folding --------------------------------------------------------------------------

def _fold_case(rng, with_bias):
    """Weights of a Dense(n_units) + BN pair, drawn so that each mistake shows.

    The moving variance lies in [0.5, 2] and epsilon in [1e-3, 1e-2], so
    leaving epsilon out changes each sigma by at least eps / (2 var) >= 2.5e-4
    relative, and putting it outside the square root (sigma >= 0.7, far from
    the 0.5 where the two agree) by at least 1.4e-4. Beta is at least 0.5 in
    magnitude; b and the moving mean are of order 1. n_units differs from
    n_inputs, so scaling the rows of W instead of its columns cannot go unseen.
    """
    n_inputs = int(rng.integers(8, 33))
    n_units = int(rng.integers(3, 8))
    W = rng.normal(0.0, 1.0 / np.sqrt(n_inputs), (n_inputs, n_units)).astype("float32")
    b = rng.uniform(-1.0, 1.0, n_units).astype("float32") if with_bias else np.zeros(n_units, "float32")
    gamma = rng.uniform(0.5, 2.0, n_units).astype("float32")
    beta = (rng.choice([-1.0, 1.0], n_units) * rng.uniform(0.5, 1.5, n_units)).astype("float32")
    moving_mean = rng.uniform(-1.0, 1.0, n_units).astype("float32")
    moving_var = rng.uniform(0.5, 2.0, n_units).astype("float32")
    epsilon = float(_log_uniform(rng, 1e-3, 1e-2))
    return W, b, gamma, beta, moving_mean, moving_var, epsilon


_FOLD_HINT = (" (W' = W * gamma / sigma column by column and b' = gamma * (b - moving_mean) / sigma + beta, "
              "with sigma = sqrt(moving_var + epsilon))")


def _fold_call(student, case):
    W, b, gamma, beta, moving_mean, moving_var, epsilon = case
    label = f"fold_bn(W of shape {W.shape}, epsilon={epsilon:.3g})"
    received = student.call("fold_bn", W, b, gamma, beta, moving_mean, moving_var, epsilon=epsilon)
    assert isinstance(received, (tuple, list)) and len(received) == 2, (
        f"{label}: expected a tuple (W_folded, b_folded), received {_describe(received)}")
    return label, received


def _fold_scales(W_expected, b, gamma, beta, moving_mean, moving_var, epsilon):
    """Magnitudes for `_close`: each column's largest |W'|, and the terms that make up b'."""
    factor = np.abs(np.asarray(gamma, np.float64)) / np.sqrt(np.asarray(moving_var, np.float64) + epsilon)
    column = np.max(np.abs(W_expected), axis=0, keepdims=True)
    return column, factor * (np.abs(b) + np.abs(moving_mean)) + np.abs(beta)


def _check_fold_formula(student, rng, with_bias):
    for _ in range(3):
        case = _fold_case(rng, with_bias)
        label, received = _fold_call(student, case)
        W_expected, b_expected = reference.fold_bn(*case)
        W_scale, b_scale = _fold_scales(W_expected, *case[1:])
        _close(received[0], W_expected, W_scale, f"{label}, W_folded", _FOLD_HINT)
        _close(received[1], b_expected, b_scale, f"{label}, b_folded", _FOLD_HINT)


@pytest.mark.grade_cell("fold_bn", weight=1)
def test_fold_bn_without_bias(student, rng):
    """Folding BN into a bias-free Dense layer (b = 0), against the float64 formula."""
    _check_fold_formula(student, rng, with_bias=False)


@pytest.mark.grade_cell("fold_bn", weight=1)
def test_fold_bn_with_bias(student, rng):
    """Folding BN into a Dense layer with a bias, against the float64 formula."""
    _check_fold_formula(student, rng, with_bias=True)


@pytest.mark.grade_cell("fold_bn", weight=1)
def test_fold_bn_keras_equivalence(student, rng):
    """A Keras Dense layer with the folded weights computes what Dense + BN computes in inference mode.

    Both run in float32. Each output is a sum of n_inputs + 2 terms; the
    bound is 1e-5 of the sum of their magnitudes (|x| @ |W'|, plus
    |gamma / sigma| * (|b| + |mean|) + |beta|, the terms the unfused layer
    adds and subtracts), well above n * 6e-8 for n <= 34, and at least 10
    times below what the mistakes above change.
    """
    import keras

    for _ in range(3):
        case = _fold_case(rng, with_bias=True)
        W, b, gamma, beta, moving_mean, moving_var, epsilon = case
        label, received = _fold_call(student, case)
        W_folded = _array(received[0], f"{label}, W_folded", W.shape)
        b_folded = _array(received[1], f"{label}, b_folded", b.shape)
        n_inputs, n_units = W.shape
        dense = keras.layers.Dense(n_units)
        norm = keras.layers.BatchNormalization(epsilon=epsilon)
        dense.build((None, n_inputs))
        norm.build((None, n_units))
        dense.set_weights([W, b])
        norm.set_weights([gamma, beta, moving_mean, moving_var])
        fused = keras.layers.Dense(n_units)
        fused.build((None, n_inputs))
        fused.set_weights([W_folded.astype("float32"), b_folded.astype("float32")])
        x = rng.normal(size=(32, n_inputs)).astype("float32")
        unfused_out = keras.ops.convert_to_numpy(norm(dense(x), training=False)).astype(np.float64)
        fused_out = keras.ops.convert_to_numpy(fused(x)).astype(np.float64)
        factor = np.abs(gamma.astype(np.float64)) / np.sqrt(moving_var.astype(np.float64) + epsilon)
        magnitude = (np.abs(x) @ np.abs(W_folded) + factor * (np.abs(b) + np.abs(moving_mean))
                     + np.abs(beta))
        error = np.abs(fused_out - unfused_out)
        worst = np.unravel_index(np.argmax(error / magnitude), error.shape)
        assert np.all(error <= RTOL * magnitude), (
            f"{label}: expected Dense(W_folded, b_folded) to match Dense(W, b) + BatchNormalization in "
            f"inference mode within 1e-5 of the magnitude of the terms summed, received outputs "
            f"{fused_out[worst]:.7g} instead of {unfused_out[worst]:.7g} at {tuple(int(i) for i in worst)}"
            f"{_FOLD_HINT}")


def _layers_of(model):
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


@pytest.fixture(scope="module")
def folded_pair(student):
    """bn_dense_model and folded_model, fetched once for both folded_model tests."""
    return student.model("bn_dense_model"), student.model("folded_model")


def _check_folded_layers(folded_pair):
    """The two models' layer lists, checked: no BN left, Dense(64) with a bias, Dense(10)."""
    bn_model, folded = folded_pair
    bn_layers = _layers_of(bn_model)
    kinds = [type(layer).__name__ for layer in bn_layers]
    assert kinds[:2] == ["Dense", "BatchNormalization"] and kinds.count("Dense") == 2, (
        f"bn_dense_model: expected the given Dense -> BatchNormalization -> Activation -> Dense, received {kinds}")
    folded_layers = _layers_of(folded)
    folded_kinds = [type(layer).__name__ for layer in folded_layers]
    assert "BatchNormalization" not in folded_kinds, (
        f"folded_model: expected no BatchNormalization layer (it is folded into the Dense layer), "
        f"received {folded_kinds}")
    dense = [layer for layer in folded_layers if type(layer).__name__ == "Dense"]
    assert len(dense) == 2 and [layer.units for layer in dense] == [64, 10], (
        f"folded_model: expected two Dense layers of 64 and 10 units, received {folded_kinds} with units "
        f"{[getattr(layer, 'units', None) for layer in dense]}")
    assert dense[0].use_bias, "folded_model: expected the first Dense layer to have a bias (it holds b_folded)"
    assert tuple(folded.input_shape) == (None, 784), (
        f"folded_model: expected inputs of shape (None, 784), received {folded.input_shape}")
    return bn_layers, dense


@pytest.mark.grade_cell("folded_model", weight=1)
def test_folded_model_layers(folded_pair):
    """folded_model: no BN layer, Dense(64) with a bias, Dense(10)."""
    _check_folded_layers(folded_pair)


@pytest.mark.grade_cell("folded_model", weight=1)
def test_folded_model_matches(folded_pair, rng):
    """folded_model holds the folded weights and predicts what bn_dense_model predicts.

    The first Dense layer's weights must equal the float64 fold of
    bn_dense_model's own Dense and BN weights (relative 1e-5: they were
    stored in float32, rounding 6e-8); the output layer's a copy. Then both
    models run in inference mode on inputs drawn here: probabilities agree
    within 1e-5 (float32 rounding through 784 + 64 inputs changes them by
    about 4e-7; leaving epsilon out of sigma changes them by about 5e-4).
    """
    import keras

    bn_model, folded = folded_pair
    bn_layers, dense = _check_folded_layers(folded_pair)
    norm = bn_layers[1]
    gamma, beta, moving_mean, moving_var = norm.get_weights()
    assert np.any(moving_mean != 0) and np.any(beta != 0), (
        "bn_dense_model: expected a trained model (moving mean and beta moved away from 0), received an "
        "untrained one; run the training cell")
    kernel = bn_layers[0].get_weights()[0]
    bias = bn_layers[0].get_weights()[1] if bn_layers[0].use_bias else np.zeros(kernel.shape[1])
    W_expected, b_expected = reference.fold_bn(kernel, bias, gamma, beta, moving_mean, moving_var,
                                               norm.epsilon)
    W_scale, b_scale = _fold_scales(W_expected, bias, gamma, beta, moving_mean, moving_var, norm.epsilon)
    W_received, b_received = dense[0].get_weights()
    _close(W_received, W_expected, W_scale, "folded_model's first Dense kernel", _FOLD_HINT)
    _close(b_received, b_expected, b_scale, "folded_model's first Dense bias", _FOLD_HINT)
    received_out, expected_out = dense[1].get_weights(), bn_layers[-1].get_weights()
    assert len(received_out) == len(expected_out), (
        f"folded_model's output layer: expected {len(expected_out)} weight arrays (kernel, bias), "
        f"received {len(received_out)}")
    for got, want in zip(received_out, expected_out):
        _close(got, want, np.max(np.abs(want)), "folded_model's output layer",
               " (copy bn_dense_model's output layer's weights)")
    x = rng.uniform(0.0, 1.0, size=(256, 784)).astype("float32")
    expected = keras.ops.convert_to_numpy(bn_model(x, training=False)).astype(np.float64)
    received = keras.ops.convert_to_numpy(folded(x, training=False)).astype(np.float64)
    error = float(np.max(np.abs(received - expected)))
    assert error <= 1e-5, (
        f"folded_model vs bn_dense_model in inference mode on 256 random images: expected the same "
        f"probabilities within 1e-5, received a largest difference of {error:.3g}")
