"""Hidden graders for a01_perceptrons_xor (perceptrons, XOR and a first Keras MLP).

Each test scores part of one nbgrader grade cell through the engine's
`grade_cell` marker, and talks to the submission only through the engine's
`student` fixture: functions run in the sandboxed kernel on inputs chosen
here, and what they return crosses back as data. Expected values come from
`reference.py` or from Keras itself, never from numbers copied out of a run.
Every assertion message is written for the student: what was checked, what
was expected, what was received.
"""

import numpy as np
import pytest

import reference  # from this grader folder: the copy that travelled with the job

BINARY_PAIRS = [(0, 0), (0, 1), (1, 0), (1, 1)]
TRAINING_KEYS = ("w", "b", "converged", "epochs", "errors")


def _describe(value):
    """Short, student-readable rendering of a received value and its type."""
    if isinstance(value, np.ndarray):
        return f"{value.tolist()!r} (numpy array, shape {value.shape}, dtype {value.dtype})"
    return f"{value!r} ({type(value).__name__})"


def _is_integer(value):
    """True for ints, bools and integer numpy scalars or 0-d arrays, False for floats."""
    if isinstance(value, (bool, int, np.integer, np.bool_)):
        return True
    return isinstance(value, np.ndarray) and value.ndim == 0 and (
        np.issubdtype(value.dtype, np.integer) or value.dtype == bool)


# --- McCulloch-Pitts neurons -------------------------------------------------

def _check_gate(student, name):
    """Compares one student gate with the reference on its whole truth table."""
    gate, n_inputs = reference.MP_GATES[name]
    cases = [(0,), (1,)] if n_inputs == 1 else BINARY_PAIRS
    for inputs in cases:
        call = f"{name}({', '.join(map(str, inputs))})"
        received = student.call(name, *inputs)
        expected = gate(*inputs)
        assert _is_integer(received), (
            f"{call}: expected the int {expected}, received {_describe(received)}")
        assert int(received) == expected, f"{call}: expected {expected}, received {received!r}"


@pytest.mark.grade_cell("mp_neurons", weight=1)
def test_mp_identity(student):
    """Does mp_identity copy its input?"""
    _check_gate(student, "mp_identity")


@pytest.mark.grade_cell("mp_neurons", weight=1)
def test_mp_and(student):
    """Does mp_and compute a AND b?"""
    _check_gate(student, "mp_and")


@pytest.mark.grade_cell("mp_neurons", weight=1)
def test_mp_or(student):
    """Does mp_or compute a OR b?"""
    _check_gate(student, "mp_or")


@pytest.mark.grade_cell("mp_neurons", weight=1)
def test_mp_and_not(student):
    """Does mp_and_not compute a AND NOT b?"""
    _check_gate(student, "mp_and_not")


@pytest.mark.grade_cell("mp_xor", weight=1)
def test_mp_xor(student):
    """Does mp_xor compute a XOR b on the whole truth table?"""
    for a, b in BINARY_PAIRS:
        received = student.call("mp_xor", a, b)
        expected = reference.mp_xor(a, b)
        assert _is_integer(received), (
            f"mp_xor({a}, {b}): expected the int {expected}, received {_describe(received)}")
        assert int(received) == expected, f"mp_xor({a}, {b}): expected {expected}, received {received!r}"


# --- Step functions -------------------------------------------------------------

STEP_INPUT = np.array([[-3.0, -0.5, -1e-9, 0.0],
                       [1e-9, 0.25, 2.0, 7.5]])
"""Negative, zero and positive values, including ones very close to zero."""
STEP_SCALARS = [-2.5, 0.0, 4.0]


def _check_step(student, name, reference_step):
    """Compares a student step function with the reference, on an array and on scalars."""
    expected = reference_step(STEP_INPUT)
    received = student.call(name, STEP_INPUT)
    call = f"{name}({STEP_INPUT.tolist()})"
    assert isinstance(received, np.ndarray), (
        f"{call}: expected a numpy array, received {_describe(received)}")
    assert received.shape == expected.shape, (
        f"{call}: expected an array of shape {expected.shape} (elementwise), received shape {received.shape}")
    assert np.issubdtype(received.dtype, np.integer), (
        f"{call}: expected an integer array (use .astype(int)), received dtype {received.dtype}")
    assert np.array_equal(received, expected), (
        f"{call}: expected {expected.tolist()}, received {received.tolist()}")
    for z in STEP_SCALARS:
        expected_value = int(reference_step(z))
        received = student.call(name, z)
        assert np.size(received) == 1 and _is_integer(np.asarray(received).reshape(())), (
            f"{name}({z}): expected the integer {expected_value}, received {_describe(received)}")
        assert int(np.asarray(received).reshape(())) == expected_value, (
            f"{name}({z}): expected {expected_value}, received {received!r}")


@pytest.mark.grade_cell("step_functions", weight=1)
def test_heaviside(student):
    """Is heaviside 0 below zero and 1 from zero on, elementwise, as integers?"""
    _check_step(student, "heaviside", reference.heaviside)


@pytest.mark.grade_cell("step_functions", weight=1)
def test_sign_step(student):
    """Is sign_step -1, 0, +1 below, at and above zero, elementwise, as integers?"""
    _check_step(student, "sign_step", reference.sign_step)


# --- Perceptron learning rule ----------------------------------------------------

def _update_cases(shapes, seed):
    """Random (w, x, y, y_hat, eta) cases, each with at least one wrong output."""
    rng = np.random.default_rng(seed)
    for n_inputs, n_outputs in shapes:
        w = rng.normal(size=(n_inputs, n_outputs))
        x = rng.normal(size=n_inputs)
        y = rng.integers(0, 2, size=n_outputs)
        y_hat = rng.integers(0, 2, size=n_outputs)
        # A case where every output is right leaves w unchanged and would not
        # tell a correct update from a wrong one.
        y_hat[0] = 1 - y[0]
        eta = float(rng.uniform(0.05, 1.0))
        yield w, x, y, y_hat, eta


def _check_update(student, w, x, y, y_hat, eta, hint=""):
    """Compares the student's perceptron_update with the reference on one case."""
    expected = reference.perceptron_update(w, x, y, y_hat, eta)
    received = student.call("perceptron_update", w, x, y, y_hat, eta)
    call = (f"perceptron_update(w={np.round(w, 3).tolist()}, x={np.round(x, 3).tolist()}, "
            f"y={y.tolist()}, y_hat={y_hat.tolist()}, eta={eta:.3f})")
    assert isinstance(received, np.ndarray), (
        f"{call}: expected a numpy array of shape {expected.shape}, received {_describe(received)}")
    assert received.shape == expected.shape, (
        f"{call}: expected shape {expected.shape} (n_inputs, n_outputs), received shape {received.shape}")
    assert np.allclose(received, expected), (
        f"{call}: expected w + eta * outer(x, y - y_hat) = {np.round(expected, 4).tolist()}, "
        f"received {np.round(np.asarray(received, dtype=float), 4).tolist()}{hint}")


@pytest.mark.grade_cell("perceptron_update", weight=1)
def test_perceptron_update_single_output(student):
    """Does the rule update a one-output perceptron correctly, for several input sizes?"""
    for case in _update_cases([(2, 1), (3, 1), (5, 1)], seed=1001):
        _check_update(student, *case)


@pytest.mark.grade_cell("perceptron_update", weight=1)
def test_perceptron_update_multi_output(student):
    """Does the rule update every column of a multi-output perceptron correctly?"""
    for case in _update_cases([(2, 3), (4, 2), (3, 5)], seed=1002):
        _check_update(student, *case)


@pytest.mark.grade_cell("perceptron_update", weight=1)
def test_perceptron_update_returns_new_array_for_integer_w(student):
    """Does the rule return a new float array when w holds integers and eta is fractional?

    Arguments cross into the kernel as copies, so an in-place change of w
    cannot be seen from here. It shows through integer weights instead:
    `w += ...` raises a casting error and `w[...] = ...` truncates the update,
    while `w + eta * np.outer(...)` returns the right float array.
    """
    w = np.array([[1, -2], [0, 3], [-1, 1]])
    x = np.array([1, 3, -1])
    y = np.array([1, 0])
    y_hat = np.array([0, 1])
    _check_update(student, w, x, y, y_hat, 0.5,
                  hint=" (integer w and eta=0.5: return a new float array instead of updating w in place)")


# --- Training a perceptron --------------------------------------------------------

def _train(student, X, y, **kwargs):
    """Calls the student's train_perceptron and checks the shape of its result."""
    result = student.call("train_perceptron", X, y, **kwargs)
    n_features = X.shape[1]
    label = f"train_perceptron on {X.shape[0]} examples with {n_features} features"
    assert isinstance(result, dict), (
        f"{label}: expected a dict with keys {list(TRAINING_KEYS)}, received {_describe(result)}")
    missing = [key for key in TRAINING_KEYS if key not in result]
    assert not missing, (
        f"{label}: expected the keys {list(TRAINING_KEYS)}, received {sorted(result)} (missing {missing})")
    assert np.shape(result["w"]) == (n_features,), (
        f"{label}: expected 'w' of shape ({n_features},), received {_describe(result['w'])}")
    assert isinstance(result["b"], (int, float, np.number)) and not isinstance(result["b"], bool), (
        f"{label}: expected 'b' to be a float, received {_describe(result['b'])}")
    assert isinstance(result["converged"], (bool, np.bool_)), (
        f"{label}: expected 'converged' to be True or False, received {_describe(result['converged'])}")
    assert _is_integer(result["epochs"]) and not isinstance(result["epochs"], bool), (
        f"{label}: expected 'epochs' to be an int, received {_describe(result['epochs'])}")
    errors = result["errors"]
    assert isinstance(errors, (list, np.ndarray)) and all(_is_integer(e) for e in errors), (
        f"{label}: expected 'errors' to be a list of ints, one per epoch, received {_describe(errors)}")
    assert len(errors) == result["epochs"], (
        f"{label}: expected one error count per epoch, len(errors) == epochs == {result['epochs']}, "
        f"received {len(errors)} error counts")
    return result, label


def _check_converges(student, X, y, max_epochs):
    """Requires training to converge and the returned w, b to classify every example."""
    result, label = _train(student, X, y, eta=1.0, max_epochs=max_epochs)
    assert result["converged"], (
        f"{label}: these classes are linearly separable, so expected converged=True within "
        f"{max_epochs} epochs, received converged={result['converged']!r} after {result['epochs']} "
        f"epochs, errors per epoch {list(result['errors'])[:10]}")
    assert 1 <= result["epochs"] <= max_epochs and list(result["errors"])[-1] == 0, (
        f"{label}: expected the last of at most {max_epochs} epochs to have 0 errors, received "
        f"epochs={result['epochs']}, errors={list(result['errors'])}")
    predicted = reference.perceptron_predict(X, result["w"], result["b"])
    wrong = np.flatnonzero(predicted != y)
    assert wrong.size == 0, (
        f"{label}: expected heaviside(X @ w + b) to match all {len(y)} labels, received "
        f"{wrong.size} misclassified (rows {wrong[:10].tolist()}) with w={np.asarray(result['w']).tolist()}, "
        f"b={result['b']}")


@pytest.mark.grade_cell("perceptron_converges", weight=1)
def test_train_perceptron_and(student):
    """Does training converge on AND, to weights that compute AND?"""
    X, y = reference.and_data()
    _check_converges(student, X, y, max_epochs=100)


@pytest.mark.grade_cell("perceptron_converges", weight=1)
def test_train_perceptron_iris(student):
    """Does training converge on Iris setosa versus the rest, in a shuffled order?"""
    X, y = reference.iris_setosa_data()
    # A fixed shuffle, so that the order differs from the notebook's demo.
    order = np.random.default_rng(1003).permutation(len(y))
    _check_converges(student, X[order], y[order], max_epochs=100)


@pytest.mark.grade_cell("perceptron_xor", weight=1)
def test_train_perceptron_xor(student):
    """Does training on XOR run max_epochs epochs and report that it did not converge?"""
    X, y = reference.xor_data()
    max_epochs = 25
    result, label = _train(student, X, y, eta=1.0, max_epochs=max_epochs)
    assert not result["converged"], (
        f"{label} (XOR, not linearly separable): expected converged=False, "
        f"received converged={result['converged']!r}")
    assert result["epochs"] == max_epochs, (
        f"{label} (XOR): expected to stop after max_epochs={max_epochs} epochs, "
        f"received epochs={result['epochs']}")
    assert all(int(e) >= 1 for e in result["errors"]), (
        f"{label} (XOR): expected at least one error in every epoch, received errors={list(result['errors'])}")
    predicted = reference.perceptron_predict(X, result["w"], result["b"])
    assert np.any(predicted != y), (
        f"{label} (XOR): expected the final w, b to misclassify at least one point, received "
        f"w={np.asarray(result['w']).tolist()}, b={result['b']} with predictions {predicted.tolist()} "
        f"for targets {y.tolist()}")


# --- The XOR network by hand ------------------------------------------------------

XOR_SHAPES = {"XOR_W1": [(2, 2)], "XOR_b1": [(2,)], "XOR_W2": [(2, 1), (2,)], "XOR_b2": [(1,), ()]}


def _xor_weights(student):
    """Fetches the four arrays and checks that they are numbers of the right shapes."""
    weights = {}
    for name, shapes in XOR_SHAPES.items():
        value = student.value(name)
        readable = " or ".join(str(shape) for shape in shapes)
        assert isinstance(value, (np.ndarray, int, float, list)) and not isinstance(value, bool), (
            f"{name}: expected a numpy array of shape {readable}, received {_describe(value)}")
        array = np.asarray(value)
        assert array.shape in shapes, f"{name}: expected shape {readable}, received shape {array.shape}"
        assert np.issubdtype(array.dtype, np.number) and np.all(np.isfinite(array)), (
            f"{name}: expected finite numbers, received {_describe(value)}")
        weights[name] = array
    return weights


@pytest.mark.grade_cell("xor_mlp_hand", weight=1)
def test_xor_mlp_hand_shapes(student):
    """Are XOR_W1, XOR_b1, XOR_W2 and XOR_b2 numeric arrays of the shapes asked for?"""
    _xor_weights(student)


@pytest.mark.grade_cell("xor_mlp_hand", weight=3)
def test_xor_mlp_hand_computes_xor(student):
    """Does the 2-2-1 threshold network with the student's weights compute XOR?"""
    weights = _xor_weights(student)
    X, y = reference.xor_data()
    received = reference.mlp_forward(X, weights["XOR_W1"], weights["XOR_b1"],
                                      weights["XOR_W2"], weights["XOR_b2"])
    assert np.array_equal(received, y), (
        f"heaviside(heaviside(X @ XOR_W1 + XOR_b1) @ XOR_W2 + XOR_b2) on X={X.astype(int).tolist()}: "
        f"expected {y.tolist()}, received {received.tolist()}")


# --- The Keras network --------------------------------------------------------------

@pytest.fixture(scope="module")
def reference_param_count():
    """Trainable parameters of the 2-2-1 network, as Keras counts them."""
    return reference.build_xor_model().count_params()


def _dense_layers(model):
    """The model's layers other than its InputLayer."""
    import keras

    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


@pytest.mark.grade_cell("xor_keras_model", weight=1)
def test_xor_keras_layer_shapes(student):
    """Is xor_model exactly Input(2) -> Dense(2) -> Dense(1)?"""
    import keras

    model = student.model("xor_model")
    layers = _dense_layers(model)
    received = [f"{type(layer).__name__}({getattr(layer, 'units', '')})" for layer in layers]
    assert len(layers) == 2 and all(isinstance(layer, keras.layers.Dense) for layer in layers), (
        f"xor_model layers: expected [Dense(2), Dense(1)], received {received}")
    assert [layer.units for layer in layers] == [2, 1], (
        f"xor_model layers: expected [Dense(2), Dense(1)], received {received}")
    input_dim = layers[0].kernel.shape[0]
    assert input_dim == 2, f"xor_model input: expected 2 features, received {input_dim}"


@pytest.mark.grade_cell("xor_keras_model", weight=1)
def test_xor_keras_param_count(student, reference_param_count):
    """Does the model have the 2-2-1 parameter count, and does xor_param_count report it?"""
    model = student.model("xor_model")
    assert model.count_params() == reference_param_count, (
        f"xor_model.count_params(): expected {reference_param_count} for a 2-2-1 network "
        f"(2*2+2 + 2*1+1), received {model.count_params()}")
    received = student.value("xor_param_count")
    assert _is_integer(received) and not isinstance(received, bool), (
        f"xor_param_count: expected the int {reference_param_count}, received {_describe(received)}")
    assert int(received) == model.count_params(), (
        f"xor_param_count: expected xor_model.count_params() = {model.count_params()}, received {received}")


@pytest.mark.grade_cell("xor_keras_model", weight=1)
def test_xor_keras_accuracy(student):
    """Does the trained model classify all four XOR points (output > 0.5 means 1)?"""
    model = student.model("xor_model")
    X, y = reference.xor_data()
    proba = np.asarray(model.predict(X.astype("float32"), verbose=0))
    assert proba.size == len(y), (
        f"xor_model.predict on the 4 XOR points: expected 4 outputs, received shape {proba.shape}")
    predicted = (proba.reshape(-1) > 0.5).astype(int)
    correct = int(np.sum(predicted == y))
    assert correct == len(y), (
        f"xor_model accuracy on XOR: expected 4/4, received {correct}/4 (outputs "
        f"{np.round(proba.reshape(-1), 3).tolist()} for targets {y.tolist()}); train longer or "
        f"try another seed")
