"""Hidden graders for a02_mlp_shapes (MLP shapes, output layers, parameter counts, Keras models).

Each test scores part of one nbgrader grade cell through the engine's
`grade_cell` marker, and talks to the submission only through the engine's
`student` fixture. Random inputs, batch sizes and layer sizes come from the
`rng` fixture, fresh for every grading run, so that answers written to match
the visible checks earn nothing here. Expected values come from
`reference.py` or from Keras itself (`count_params()`), and the accuracy
threshold from the assignment's calibration; never from numbers copied out
of a run. Every assertion message is written for the student.
"""

import numpy as np
import pytest

import reference  # from this grader folder: the copy that travelled with the job


def _describe(value):
    """Short, student-readable rendering of a received value and its type."""
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return f"{text[:200]}{'...' if len(text) > 200 else ''} ({type(value).__name__})"


def _is_int(value):
    """True for ints and integer numpy scalars, False for bools and floats."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@pytest.fixture(scope="session", autouse=True)
def keras_imported():
    """Imports Keras while the notebook still runs: the first test waits for the kernel anyway."""
    import keras

    return keras


@pytest.fixture(scope="module")
def fashion_model(student):
    """The student's trained classifier, loaded once for the tests that need it."""
    return student.model("fashion_model")


@pytest.fixture(scope="module")
def wide_deep_model(student):
    """The student's Wide & Deep model, loaded once for the tests that need it."""
    return student.model("wide_deep_model")


# --- 1. Shapes ------------------------------------------------------------------------------

def _as_shape(value):
    """A received shape as a tuple of ints, or None when it is not one (tuples cross as lists)."""
    if isinstance(value, (list, tuple)) and all(_is_int(d) for d in value):
        return tuple(int(d) for d in value)
    return None


@pytest.mark.grade_cell("mlp_shapes", weight=1)
def test_mlp_shapes(student, rng):
    """Are the six shapes of the 10-50-3 MLP right for batch sizes the visible check does not use?"""
    for m in (int(rng.integers(1, 32)), int(rng.integers(33, 5000))):
        received = student.call("mlp_shapes", m)
        expected = reference.mlp_shapes(m)
        assert isinstance(received, dict), f"mlp_shapes({m}): expected a dict, received {_describe(received)}"
        assert sorted(received) == sorted(expected), (
            f"mlp_shapes({m}): expected the keys {list(reference.SHAPE_NAMES)}, received {sorted(received)}")
        for name in reference.SHAPE_NAMES:
            shape = _as_shape(received[name])
            assert shape is not None, (
                f"mlp_shapes({m})[{name!r}]: expected a shape tuple of ints, received {_describe(received[name])}")
            assert shape == expected[name], (
                f"mlp_shapes({m})[{name!r}]: expected {expected[name]}, received {shape} "
                "(10 inputs, 50 hidden ReLU units, 3 outputs; a weight matrix has one row per input "
                "and one column per neuron; biases are vectors)")


# --- 2. Forward pass -----------------------------------------------------------------------

def _network(rng, m, n_inputs, n_hidden, n_outputs):
    """Random X, W_h, b_h, W_o, b_o where both layers' ReLUs matter.

    Redrawn until some weighted sums of each layer are clearly negative and
    some clearly positive, so that a missing or misplaced ReLU always changes
    the output by more than the tolerance, whatever the seed.
    """
    for _ in range(100):
        X = rng.normal(size=(m, n_inputs))
        W_h = rng.normal(size=(n_inputs, n_hidden)) / np.sqrt(n_inputs)
        b_h = rng.normal(scale=0.5, size=n_hidden)
        W_o = rng.normal(size=(n_hidden, n_outputs)) / np.sqrt(n_hidden)
        b_o = rng.normal(scale=0.5, size=n_outputs)
        hidden_pre, output_pre = reference.pre_activations(X, W_h, b_h, W_o, b_o)
        if all(pre.min() < -0.1 and pre.max() > 0.1 for pre in (hidden_pre, output_pre)):
            return X, W_h, b_h, W_o, b_o
    raise RuntimeError("could not draw a network whose ReLUs matter")


def _check_forward(student, arrays):
    X, W_h, b_h, W_o, b_o = arrays
    expected = reference.mlp_forward(*arrays)
    call = (f"mlp_forward(X {X.shape}, W_h {W_h.shape}, b_h {b_h.shape}, W_o {W_o.shape}, "
            f"b_o {b_o.shape}) on random values")
    received = student.call("mlp_forward", *arrays)
    assert isinstance(received, np.ndarray), f"{call}: expected a numpy array, received {_describe(received)}"
    assert received.shape == expected.shape, (
        f"{call}: expected Y of shape {expected.shape}, received shape {received.shape}")
    assert np.issubdtype(received.dtype, np.number), f"{call}: expected numbers, received dtype {received.dtype}"
    # float32 arithmetic on the student's side differs from ours by about 1e-6 relative.
    close = np.isclose(received.astype(float), expected, rtol=1e-4, atol=1e-5)
    if not close.all():
        row, col = np.argwhere(~close)[0]
        raise AssertionError(
            f"{call}: {int((~close).sum())} of {close.size} outputs differ from "
            f"ReLU(ReLU(X @ W_h + b_h) @ W_o + b_o); for instance Y[{row}, {col}]: expected "
            f"{expected[row, col]:.5f}, received {float(received[row, col]):.5f}"
            + (" (a negative output: is the ReLU applied to the output layer?)"
               if received[row, col] < 0 else ""))


@pytest.mark.grade_cell("mlp_forward", weight=2)
def test_mlp_forward_10_50_3(student, rng):
    """Does mlp_forward compute Y of the 10-50-3 MLP for a random batch, weights and biases?"""
    # Batches of at least 5: never the visible check's batch of 4.
    m = int(rng.integers(5, 65))
    _check_forward(student, _network(rng, m, reference.N_INPUTS, reference.N_HIDDEN, reference.N_OUTPUTS))


@pytest.mark.grade_cell("mlp_forward", weight=1)
def test_mlp_forward_other_sizes(student, rng):
    """Does mlp_forward read the layer sizes from its arrays instead of assuming 10-50-3?"""
    sizes = (int(rng.integers(5, 41)), int(rng.integers(2, 21)), int(rng.integers(2, 41)), int(rng.integers(1, 9)))
    _check_forward(student, _network(rng, *sizes))


# --- 3. Output layers --------------------------------------------------------------------------

def _check_head(student, name, args, expected, task):
    call = f"{name}({', '.join(map(str, args))})"
    received = student.call(name, *args)
    assert isinstance(received, dict) and sorted(received) == ["activation", "loss", "units"], (
        f"{call}: expected a dict with the keys activation, units, loss, received {_describe(received)}")
    activation, units, loss = received["activation"], received["units"], received["loss"]
    assert activation is None or isinstance(activation, str), (
        f"{call}['activation']: expected a Keras activation name or None, received {_describe(activation)}")
    assert _is_int(units), f"{call}['units']: expected an int, received {_describe(units)}"
    assert isinstance(loss, str), f"{call}['loss']: expected a Keras loss name, received {_describe(loss)}"
    assert int(units) == expected["units"], (
        f"{call} ({task}): expected {expected['units']} output unit(s), received {units}")
    assert reference.canonical_activation(activation) == reference.canonical_activation(expected["activation"]), (
        f"{call} ({task}): expected the output activation {expected['activation']!r}, received {activation!r}")
    assert reference.canonical_loss(loss) == reference.canonical_loss(expected["loss"]), (
        f"{call} ({task}): expected the loss {expected['loss']!r}, received {loss!r}")


@pytest.mark.grade_cell("output_layers", weight=1)
def test_spam_output(student):
    """Spam or ham: one sigmoid unit and binary cross-entropy?"""
    _check_head(student, "spam_output", (), reference.spam_output(), "binary classification")


@pytest.mark.grade_cell("output_layers", weight=1)
def test_mnist_output(student):
    """MNIST with integer labels: ten softmax units and sparse categorical cross-entropy?"""
    _check_head(student, "mnist_output", (), reference.mnist_output(),
                "10 classes, labels given as integers 0-9")


@pytest.mark.grade_cell("output_layers", weight=1)
def test_house_price_output(student):
    """House price: one unit, no activation, mean squared error?"""
    _check_head(student, "house_price_output", (), reference.house_price_output(), "regression of one value")


@pytest.mark.grade_cell("output_layers", weight=1)
def test_multilabel_output(student, rng):
    """Multi-label: one independent sigmoid per label and binary cross-entropy, for label counts it chooses?"""
    for n_labels in rng.choice([n for n in range(2, 31) if n != 5], size=2, replace=False):
        _check_head(student, "multilabel_output", (int(n_labels),), reference.multilabel_output(n_labels),
                    f"{int(n_labels)} independent yes/no labels")


# --- 4. Parameter counts --------------------------------------------------------------------------

@pytest.mark.grade_cell("param_counts", weight=1)
def test_dense_params(student, rng):
    """Does dense_params match Keras's count for a Dense layer of random sizes?"""
    # A small, a mid-sized and a wide layer.
    for low, high in ((1, 51), (51, 1001), (1001, 4001)):
        n_in, n_out = (int(n) for n in rng.integers(low, high, size=2))
        expected = reference.keras_mlp([n_in, n_out]).count_params()
        received = student.call("dense_params", n_in, n_out)
        assert _is_int(received), f"dense_params({n_in}, {n_out}): expected an int, received {_describe(received)}"
        assert int(received) == expected, (
            f"dense_params({n_in}, {n_out}): expected {expected} (Keras's count_params() of a Dense({n_out}) "
            f"layer on {n_in} inputs), received {received}")


@pytest.mark.grade_cell("param_counts", weight=1)
def test_mlp_params(student, rng):
    """Does mlp_params match Keras's count for MLPs of random depths and widths?"""
    # One small layer, then deeper MLPs of wider layers.
    for n_layers, high in ((1, 101), (int(rng.integers(2, 4)), 1001), (int(rng.integers(4, 7)), 1001)):
        sizes = [int(n) for n in rng.integers(1, high, size=n_layers + 1)]
        expected = reference.keras_mlp(sizes).count_params()
        received = student.call("mlp_params", sizes)
        assert _is_int(received), f"mlp_params({sizes}): expected an int, received {_describe(received)}"
        assert int(received) == expected, (
            f"mlp_params({sizes}): expected {expected} (Keras's count_params() of Dense layers of "
            f"{sizes[1:]} units on {sizes[0]} inputs), received {received}")


# --- 5. The Fashion-MNIST classifier -----------------------------------------------------------------

def _layers(model):
    """The model's layers other than its InputLayer."""
    import keras

    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _layer_text(layer):
    units = getattr(layer, "units", None)
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    inside = ", ".join(str(x) for x in (units, activation) if x is not None)
    return f"{type(layer).__name__}({inside})"


@pytest.mark.grade_cell("fashion_architecture", weight=1)
def test_fashion_layers(fashion_model):
    """Is fashion_model a Sequential Input(28, 28) -> Flatten -> Dense(300, relu) -> Dense(100, relu) -> Dense(10, softmax)?"""
    import keras

    model = fashion_model
    wanted = [f"{kind}({', '.join(str(x) for x in (units, activation) if x is not None)})"
              for kind, units, activation in reference.FASHION_LAYERS]
    received = [_layer_text(layer) for layer in _layers(model)]
    assert isinstance(model, keras.Sequential), (
        f"fashion_model: expected a model built with keras.Sequential, received a {type(model).__name__}")
    assert tuple(model.input_shape) == (None, 28, 28), (
        f"fashion_model: expected 28x28 images as input (input shape (None, 28, 28)), received {model.input_shape}")
    assert received == wanted, f"fashion_model layers: expected {wanted}, received {received}"


@pytest.mark.grade_cell("fashion_architecture", weight=1)
def test_fashion_param_counts(fashion_model):
    """Does each layer with weights in fashion_model hold as many parameters as in Keras's reference classifier?"""
    model = fashion_model
    reference_model = reference.fashion_classifier()
    # Layers without weights (Flatten) count nothing and are the layers test's business.
    expected = [layer.count_params() for layer in _layers(reference_model) if layer.weights]
    received = [layer.count_params() for layer in _layers(model) if layer.weights]
    assert received == expected, (
        f"fashion_model parameters of the layers with weights: expected {expected} "
        f"({reference_model.count_params():,} in all), received {received} ({model.count_params():,} in all)")


@pytest.mark.grade_cell("fashion_accuracy", weight=1)
def test_fashion_trained_with_validation(student, calibration):
    """Was fashion_model trained for SIZES["epochs"] epochs with validation data (fashion_history)?"""
    epochs = reference.FASHION_SIZES[calibration.profile]["epochs"]
    history = student.value("fashion_history")
    assert isinstance(history, dict), (
        f"fashion_history: expected history.history, the dict that fit returns, received {_describe(history)}")
    losses = history.get("loss")
    assert isinstance(losses, list) and len(losses) == epochs, (
        f"fashion_history['loss']: expected one value per epoch, {epochs} in this profile (SIZES['epochs']), "
        f"received {_describe(losses)}")
    assert isinstance(history.get("val_loss"), list) and len(history["val_loss"]) == epochs, (
        f"fashion_history: expected a 'val_loss' for each of the {epochs} epochs "
        f"(fit with validation_data=(X_valid, y_valid)), received the keys {sorted(history)}")


@pytest.mark.grade_cell("fashion_accuracy", weight=2)
def test_fashion_test_accuracy(fashion_model, calibration):
    """Does the trained fashion_model reach the profile's calibrated accuracy on the 10,000 hidden test images?"""
    model = fashion_model
    x_test, y_test = reference.fashion_test_data()
    assert tuple(model.input_shape) == (None, 28, 28) and tuple(model.output_shape) == (None, 10), (
        f"fashion_model: expected 28x28 images in and 10 class scores out to be evaluated, received "
        f"input shape {model.input_shape} and output shape {model.output_shape}")
    calibration.check("fashion_mlp_test_accuracy", reference.accuracy(model, x_test, y_test),
                      "fashion_model's accuracy on the 10,000 Fashion-MNIST test images", data="fashion_mnist")


# --- 6. Wide & Deep ---------------------------------------------------------------------------------

def _producer(tensor):
    """The layer that produced a tensor of a functional model (Keras 3 records it on the tensor)."""
    return tensor._keras_history[0]


def _parents(layer):
    """The layers whose outputs `layer` was (first) called on, in the order of its arguments."""
    try:
        tensors = layer.input
    except (AttributeError, ValueError, RuntimeError) as error:
        raise AssertionError(f"wide_deep_model: layer {layer.name!r} has no input ({error}); "
                             "call each layer on the tensor it should transform") from None
    tensors = tensors if isinstance(tensors, (list, tuple)) else [tensors]
    return [_producer(t) for t in tensors]


def _names(layers):
    return [f"{layer.name} ({_layer_text(layer)})" for layer in layers]


def _wide_deep(model):
    """The model's layers found by role: (model, wide input, deep input, concatenation)."""
    import keras

    inputs = [_producer(t) for t in model.inputs]
    by_width = {t.shape[-1]: layer for t, layer in zip(model.inputs, inputs)}
    wide, deep = by_width.get(reference.WIDE_FEATURES), by_width.get(reference.DEEP_FEATURES)
    assert len(inputs) == 2 and wide is not None and deep is not None, (
        f"wide_deep_model: expected a wide input of {reference.WIDE_FEATURES} and a deep input of "
        f"{reference.DEEP_FEATURES} features, received inputs of shapes {[tuple(t.shape) for t in model.inputs]}")
    concats = [layer for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
    assert len(concats) == 1, (
        f"wide_deep_model: expected one Concatenate layer, received {len(concats)}: {_names(concats)}")
    return model, wide, deep, concats[0]


def _is_dense(layer, units, activation=None):
    import keras

    return (isinstance(layer, keras.layers.Dense) and layer.units == units
            and (activation is None or layer.activation.__name__ == activation))


@pytest.mark.grade_cell("wide_deep", weight=1)
def test_wide_deep_inputs_and_outputs(wide_deep_model):
    """Does wide_deep_model take [wide (5 features), deep (6 features)] and return [main, auxiliary] of one value each?"""
    model = wide_deep_model
    inputs = [tuple(t.shape) for t in model.inputs]
    outputs = [tuple(t.shape) for t in model.outputs]
    expected_inputs = [(None, reference.WIDE_FEATURES), (None, reference.DEEP_FEATURES)]
    assert inputs == expected_inputs, (
        f"wide_deep_model inputs: expected [wide, deep] of shapes {expected_inputs}, received {inputs}")
    assert outputs == [(None, 1), (None, 1)], (
        f"wide_deep_model outputs: expected [main, auxiliary] of shapes [(None, 1), (None, 1)], received {outputs}")


@pytest.mark.grade_cell("wide_deep", weight=2)
def test_wide_deep_main_path(wide_deep_model):
    """Main output = Dense(1) on Concatenate(wide input, Dense(30, relu) on Dense(30, relu) on the deep input)?"""
    model, wide, deep, concat = _wide_deep(wide_deep_model)
    main = _producer(model.outputs[0])
    assert _is_dense(main, 1), f"wide_deep_model: expected the main output to be a Dense(1), received {_names([main])}"
    assert _parents(main) == [concat], (
        f"wide_deep_model: expected the main output to be fed by the Concatenate layer, received "
        f"{_names(_parents(main))}")
    joined = _parents(concat)
    hidden = [layer for layer in joined if layer is not wide]
    assert len(joined) == 2 and len(hidden) == 1, (
        f"wide_deep_model: expected the Concatenate layer to join the wide input ({wide.name}) with the top of "
        f"the deep path, received {_names(joined)}")
    top = hidden[0]
    below = _parents(top)
    assert _is_dense(top, reference.DEEP_UNITS, "relu") and len(below) == 1, (
        f"wide_deep_model: expected the wide input to be concatenated with a Dense({reference.DEEP_UNITS}, relu) "
        f"hidden layer, received {_names([top])}")
    first = below[0]
    assert _is_dense(first, reference.DEEP_UNITS, "relu") and _parents(first) == [deep], (
        f"wide_deep_model: expected the deep path to be Dense({reference.DEEP_UNITS}, relu) on "
        f"Dense({reference.DEEP_UNITS}, relu) on the deep input ({deep.name}), received {_names([top])} on "
        f"{_names([first])} on {_names(_parents(first))}")


@pytest.mark.grade_cell("wide_deep", weight=1)
def test_wide_deep_aux_output(wide_deep_model):
    """Auxiliary output = Dense(1) on the top hidden layer of the deep path (the one the concatenation joins)?"""
    import keras

    model, _, _, concat = _wide_deep(wide_deep_model)
    aux = _producer(model.outputs[1])
    assert _is_dense(aux, 1), (
        f"wide_deep_model: expected the auxiliary output to be a Dense(1), received {_names([aux])}")
    tops = [layer for layer in _parents(concat) if isinstance(layer, keras.layers.Dense)]
    assert len(tops) == 1, (
        f"wide_deep_model: expected the Concatenate layer to join one input with one Dense layer (the top of "
        f"the deep path), received {_names(_parents(concat))}")
    assert _parents(aux) == tops, (
        f"wide_deep_model: expected the auxiliary output to be fed by the top of the deep path, {_names(tops)}, "
        f"received {_names(_parents(aux))}")
