"""Sample submissions for a01_perceptrons_xor, with the scores they must get.

Each sample is the solution notebook (the master with its solutions in place)
with the source of some solution cells replaced, keyed by grade_id. The
expected points, for every autograded grade cell, are reasoned out from the
hidden graders in `test_a01_perceptrons_xor.py`; each description says why.
A cell's score is its points times the weight of its passing tests over the
weight of all its tests. The written question `sigmoid_question` is graded by
hand and is not listed.

The demo and the kit's tests grade these samples end to end and compare the
recorded scores with `expected`. The solution itself and the untouched
release are not listed: `nndl.cli.samples` makes those two for every
assignment.
"""

_FULL_MARKS = {
    "mp_neurons": 4.0,
    "mp_xor": 2.0,
    "step_functions": 2.0,
    "perceptron_update": 3.0,
    "perceptron_converges": 3.0,
    "perceptron_xor": 2.0,
    "xor_mlp_hand": 2.0,
    "xor_keras_model": 3.0,
}
"""Points of each autograded grade cell of the master, for writing `expected` only."""


def _expected(**changed):
    """Full marks on every autograded cell except those given."""
    unknown = set(changed) - set(_FULL_MARKS)
    if unknown:
        raise KeyError(f"Expected grade ids from {sorted(_FULL_MARKS)}, received {sorted(unknown)}")
    return {**_FULL_MARKS, **{grade_id: float(points) for grade_id, points in changed.items()}}


_GATES_OR_AS_AND = '''
def mp_identity(a):
    """Output = a."""
    return mp_neuron([a], [1], 1)


def mp_and(a, b):
    """Output = a AND b."""
    return mp_neuron([a, b], [1, 1], 2)


def mp_or(a, b):
    """Output = a OR b."""
    return mp_neuron([a, b], [1, 1], 2)


def mp_and_not(a, b):
    """Output = a AND NOT b."""
    return mp_neuron([a, b], [1, -1], 1)
'''.strip()

_GATES_AND_NOT_REVERSED = '''
def mp_identity(a):
    """Output = a."""
    return mp_neuron([a], [1], 1)


def mp_and(a, b):
    """Output = a AND b."""
    return mp_neuron([a, b], [1, 1], 2)


def mp_or(a, b):
    """Output = a OR b."""
    return mp_neuron([a, b], [1, 1], 1)


def mp_and_not(a, b):
    """Output = a AND NOT b (but a is the inhibitory input here)."""
    return mp_neuron([a, b], [-1, 1], 1)
'''.strip()

_STEPS_SIGN_ZERO_IS_ONE = '''
def heaviside(z):
    """0 where z < 0, 1 where z >= 0 (elementwise, integer array)."""
    return np.where(np.asarray(z) < 0, 0, 1).astype(int)


def sign_step(z):
    """Wrong at zero: returns +1 there."""
    return np.where(np.asarray(z) < 0, -1, 1).astype(int)
'''.strip()

_UPDATE_SIGN_FLIPPED = '''
def perceptron_update(w, x, y, y_hat, eta):
    """Moves the weights away from the target: y_hat - y instead of y - y_hat."""
    error = np.asarray(y_hat, dtype=float) - np.asarray(y, dtype=float)
    return np.asarray(w, dtype=float) + eta * np.outer(x, error)
'''.strip()

_UPDATE_IN_PLACE = '''
def perceptron_update(w, x, y, y_hat, eta):
    """Right values, but writes them into w."""
    w += eta * np.outer(x, np.asarray(y) - np.asarray(y_hat))
    return w
'''.strip()

_XOR_WEIGHTS_COMPUTE_OR = '''
# Both hidden units compute OR, and the output copies the first one: a OR b.
XOR_W1 = np.array([[1.0, 1.0],
                   [1.0, 1.0]])
XOR_b1 = np.array([-0.5, -0.5])
XOR_W2 = np.array([[1.0],
                   [0.0]])
XOR_b2 = np.array([-0.5])
'''.strip()


def _keras_xor_source(layers, seeds=20):
    """The solution's seed-retrying training loop around the given layer lines."""
    return f'''
_X = X_xor.astype("float32")
_y = y_xor.astype("float32")
_X_repeated = np.tile(_X, (100, 1))
_y_repeated = np.tile(_y, 100)
for seed in range({seeds}):
    keras.utils.set_random_seed(seed)
    xor_model = keras.Sequential([
        keras.Input(shape=(2,)),
{layers}
    ])
    xor_model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1),
                      loss="binary_crossentropy")
    xor_model.fit(_X_repeated, _y_repeated, epochs=3, batch_size=4, shuffle=False, verbose=0)
    _proba = xor_model.predict(_X, verbose=0).ravel()
    if np.all(np.abs(_proba - _y) < 0.4):
        break
xor_param_count = xor_model.count_params()
'''.strip()


_KERAS_THREE_HIDDEN = _keras_xor_source(
    '        keras.layers.Dense(3, activation="tanh"),\n'
    '        keras.layers.Dense(1, activation="sigmoid"),')

# No seed can succeed here, so 3 tries instead of 20 keep the sample fast.
_KERAS_NO_HIDDEN = _keras_xor_source(
    '        keras.layers.Dense(1, activation="sigmoid"),', seeds=3)

SAMPLES = [
    {
        "name": "or_as_and",
        "description": (
            "mp_or uses threshold 2, so it computes AND. mp_neurons: the OR test fails, the "
            "identity, AND and AND NOT tests pass, 3 of 4 equal weights: 4 * 3/4 = 3. mp_xor "
            "ORs (a AND NOT b) with (b AND NOT a); those two are never 1 together, so their "
            "AND is always 0 and mp_xor(0, 1) returns 0 instead of 1: mp_xor 0. Nothing else "
            "uses the gates."),
        "replace": {"mp_neurons_answer": _GATES_OR_AS_AND},
        "expected": _expected(mp_neurons=3, mp_xor=0),
    },
    {
        "name": "and_not_reversed",
        "description": (
            "mp_and_not makes a inhibitory instead of b, so it computes b AND NOT a. "
            "mp_neurons: only the AND NOT test fails, 4 * 3/4 = 3. mp_xor(a, b) = "
            "mp_or(mp_and_not(a, b), mp_and_not(b, a)) is symmetric in its two terms, so "
            "swapping them leaves XOR intact: mp_xor keeps its 2 points."),
        "replace": {"mp_neurons_answer": _GATES_AND_NOT_REVERSED},
        "expected": _expected(mp_neurons=3),
    },
    {
        "name": "sign_step_zero_is_one",
        "description": (
            "sign_step returns +1 at z == 0 (the array test has a 0.0 entry). step_functions: "
            "heaviside passes, sign_step fails, 2 * 1/2 = 1. The perceptron code only uses "
            "heaviside, so every other cell keeps full marks."),
        "replace": {"step_functions_answer": _STEPS_SIGN_ZERO_IS_ONE},
        "expected": _expected(step_functions=1),
    },
    {
        "name": "update_sign_flipped",
        "description": (
            "perceptron_update uses y_hat - y, so every update has the wrong sign. All three "
            "perceptron_update tests compare values with at least one wrong output per case: "
            "0 of 3. train_perceptron calls it: weights start at zero and heaviside(0) = 1, so "
            "every point is first predicted 1; each error on a 0-label point then adds +x (and "
            "+1 to the bias), and with nonnegative AND and iris features the score stays >= 0, "
            "so the perceptron predicts 1 for ever and never converges on AND or iris: "
            "perceptron_converges 0. The XOR test only asks for converged=False after "
            "max_epochs epochs, errors in every epoch and a misclassified point, all true of a "
            "trainer that never converges: perceptron_xor keeps its 2 points."),
        "replace": {"perceptron_update_answer": _UPDATE_SIGN_FLIPPED},
        "expected": _expected(perceptron_update=0, perceptron_converges=0),
    },
    {
        "name": "update_in_place",
        "description": (
            "perceptron_update computes the right values but with w += ..., modifying w. The "
            "single-output and multi-output tests pass float weights and get the right "
            "values; the integer-weight test (eta = 0.5) makes += raise a casting error: "
            "3 * 2/3 = 2. train_perceptron only passes its own float W and keeps the returned "
            "array, so training is unaffected: full marks elsewhere."),
        "replace": {"perceptron_update_answer": _UPDATE_IN_PLACE},
        "expected": _expected(perceptron_update=2),
    },
    {
        "name": "xor_mlp_computes_or",
        "description": (
            "The hand-set network computes a OR b (both hidden units are OR, the output copies "
            "the first). The shapes test (weight 1) passes; the truth-table test (weight 3) "
            "fails at (1, 1): 2 * 1/4 = 0.5."),
        "replace": {"xor_mlp_hand_answer": _XOR_WEIGHTS_COMPUTE_OR},
        "expected": _expected(xor_mlp_hand=0.5),
    },
    {
        "name": "keras_three_hidden_units",
        "description": (
            "xor_model has Dense(3) instead of Dense(2) as hidden layer, trained with the "
            "solution's seed loop, so it still reaches 4/4. Layer test fails (units [3, 1]), "
            "parameter test fails (13 = 3*2+3 + 3+1 instead of 9), accuracy passes: "
            "3 * 1/3 = 1."),
        "replace": {"xor_keras_answer": _KERAS_THREE_HIDDEN},
        "expected": _expected(xor_keras_model=1),
    },
    {
        "name": "keras_no_hidden_layer",
        "description": (
            "xor_model is a single Dense(1, sigmoid) unit: layer test fails, parameter test "
            "fails (3 instead of 9), and accuracy fails because one sigmoid unit thresholded "
            "at 0.5 is a linear classifier and XOR is not linearly separable (at most 3/4): "
            "xor_keras_model 0."),
        "replace": {"xor_keras_answer": _KERAS_NO_HIDDEN},
        "expected": _expected(xor_keras_model=0),
    },
    {
        "name": "kernel_dies_in_keras_answer",
        "description": (
            "The Keras answer cell ends the kernel (os._exit). The cell is skipped and the "
            "notebook re-run without it: xor_model is never defined, so all three Keras tests "
            "fail (0), while every answer before it keeps its points."),
        "replace": {"xor_keras_answer": "import os\nos._exit(1)\n"},
        "expected": _expected(xor_keras_model=0),
        "message": "made the kernel die",
    },
]
"""Flawed submissions: name, description (why these scores), replace, expected."""
