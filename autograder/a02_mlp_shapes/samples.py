"""Sample submissions for a02_mlp_shapes, with the scores they must get.

Each sample is the solution notebook (the master with its solutions in place)
with the source of some solution cells replaced, keyed by grade_id. The
expected points, for every autograded grade cell, are reasoned out from the
hidden graders in `test_a02_mlp_shapes.py`; each description says why, for
any seed the graders' `rng` draws. A cell's score is its points times the
weight of its passing tests over the weight of all its tests.

The samples are graded in the smoke profile (`tests/test_assignments.py`);
the accuracy of the Fashion-MNIST classifier is compared with the threshold
calibrated for that profile. The solution itself, the untouched release and
the broken files any assignment can receive are made by `nndl.cli.samples`.
"""

_FULL_MARKS = {
    "mlp_shapes": 2.0,
    "mlp_forward": 3.0,
    "output_layers": 4.0,
    "param_counts": 3.0,
    "fashion_architecture": 2.0,
    "fashion_accuracy": 3.0,
    "wide_deep": 4.0,
}
"""Points of each autograded grade cell of the master, for writing `expected` only."""


def _expected(**changed):
    """Full marks on every autograded cell except those given."""
    unknown = set(changed) - set(_FULL_MARKS)
    if unknown:
        raise KeyError(f"Expected grade ids from {sorted(_FULL_MARKS)}, received {sorted(unknown)}")
    return {**_FULL_MARKS, **{grade_id: float(points) for grade_id, points in changed.items()}}


_SHAPES_TRANSPOSED = '''
def mlp_shapes(m):
    """Weights stored (neurons, inputs), as in many textbooks' W x."""
    return {"X": (m, 10), "W_h": (50, 10), "b_h": (50,), "W_o": (3, 50), "b_o": (3,), "Y": (m, 3)}
'''.strip()

_FORWARD_TRANSPOSED = '''
def relu(z):
    return np.maximum(z, 0)


def mlp_forward(X, W_h, b_h, W_o, b_o):
    """Written for (neurons, inputs) weights, so it transposes them."""
    hidden = relu(X @ W_h.T + b_h)
    return relu(hidden @ W_o.T + b_o)
'''.strip()

_FORWARD_NO_OUTPUT_RELU = '''
def relu(z):
    return np.maximum(z, 0)


def mlp_forward(X, W_h, b_h, W_o, b_o):
    """ReLU on the hidden layer only: the output layer is left linear."""
    hidden = relu(X @ W_h + b_h)
    return hidden @ W_o + b_o
'''.strip()

_OUTPUTS_TEMPLATE = '''
def spam_output():
    return {spam}


def mnist_output():
    return {{"activation": "softmax", "units": 10, "loss": "sparse_categorical_crossentropy"}}


def house_price_output():
    return {{"activation": None, "units": 1, "loss": "mse"}}


def multilabel_output(n_labels):
    return {multilabel}
'''.strip()

_OUTPUTS_MSE_SPAM_SOFTMAX_MULTILABEL = _OUTPUTS_TEMPLATE.format(
    spam='{"activation": "sigmoid", "units": 1, "loss": "mse"}',
    multilabel='{"activation": "softmax", "units": n_labels, "loss": "categorical_crossentropy"}')

_PARAMS_NO_BIAS = '''
def dense_params(n_in, n_out):
    """Weights only: the biases are forgotten."""
    return n_in * n_out


def mlp_params(sizes):
    return sum(dense_params(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:]))
'''.strip()

_PARAMS_SKIPS_OUTPUT_LAYER = '''
def dense_params(n_in, n_out):
    return n_in * n_out + n_out


def mlp_params(sizes):
    """Off by one: range stops one layer early, so the output layer is not counted."""
    return sum(dense_params(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 2))
'''.strip()

_FASHION_MODEL_NO_FLATTEN = '''
# The images are flattened by hand (see the training cell), so the model takes 784 pixels.
fashion_model = keras.Sequential([
    keras.Input(shape=(784,)),
    keras.layers.Dense(300, activation="relu"),
    keras.layers.Dense(100, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
fashion_model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=keras.optimizers.SGD(learning_rate=0.01), metrics=["accuracy"])
'''.strip()

_FASHION_TRAINING_FLATTENED = '''
history = fashion_model.fit(X_train.reshape(-1, 784), y_train, epochs=SIZES["epochs"],
                            validation_data=(X_valid.reshape(-1, 784), y_valid), verbose=0)
fashion_history = history.history
'''.strip()

_FASHION_TRAINING_TOO_LITTLE = '''
# A quick try on a few hundred images, never rerun at full length.
history = fashion_model.fit(X_train[:300], y_train[:300], epochs=1,
                            validation_data=(X_valid, y_valid), verbose=0)
fashion_history = history.history
'''.strip()

_FASHION_TRAINING_NO_VALIDATION = '''
history = fashion_model.fit(X_train, y_train, epochs=SIZES["epochs"], verbose=0)
fashion_history = history.history
'''.strip()

_WIDE_DEEP_TEMPLATE = '''
input_wide = keras.Input(shape=(5,))
input_deep = keras.Input(shape=(6,))
hidden1 = keras.layers.Dense(30, activation="relu")({deep_path_input})
hidden2 = keras.layers.Dense(30, activation="relu")(hidden1)
concat = keras.layers.Concatenate()([{joined_input}, hidden2])
main_output = keras.layers.Dense(1)(concat)
aux_output = keras.layers.Dense(1)({aux_input})
wide_deep_model = keras.Model(inputs=[input_wide, input_deep], outputs=[main_output, aux_output])
'''.strip()

_WIDE_DEEP_SWAPPED = _WIDE_DEEP_TEMPLATE.format(
    deep_path_input="input_wide", joined_input="input_deep", aux_input="hidden2")

_WIDE_DEEP_AUX_ON_CONCAT = _WIDE_DEEP_TEMPLATE.format(
    deep_path_input="input_deep", joined_input="input_wide", aux_input="concat")

_SPOOF_SHAPES = '''
def mlp_shapes(m):
    """What the visible check printed, for its batch of 32."""
    return {"X": (32, 10), "W_h": (10, 50), "b_h": (50,), "W_o": (50, 3), "b_o": (3,), "Y": (32, 3)}
'''.strip()

_SPOOF_FORWARD = '''
def relu(z):
    return np.maximum(z, 0)


def mlp_forward(X, W_h, b_h, W_o, b_o):
    """The (4, 3) array the visible check printed, whatever the inputs."""
    return np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 9.751], [0.229, 0.0, 15.0], [11.774, 0.0, 18.731]])
'''.strip()

_SPOOF_OUTPUTS = _OUTPUTS_TEMPLATE.format(
    spam='{"activation": "sigmoid", "units": 1, "loss": "binary_crossentropy"}',
    multilabel='{"activation": "sigmoid", "units": 5, "loss": "binary_crossentropy"}')

_SPOOF_PARAMS = '''
def dense_params(n_in, n_out):
    """The number the visible check printed for dense_params(784, 300)."""
    return 235_500


def mlp_params(sizes):
    """The number the visible check printed for the Fashion-MNIST sizes."""
    return 266_610
'''.strip()

SAMPLES = [
    {
        "name": "weights_transposed",
        "description": (
            "Weights stored (neurons, inputs): mlp_shapes says W_h (50, 10) and W_o (3, 50), so the "
            "one shapes test fails for every m: mlp_shapes 0. mlp_forward computes X @ W_h.T, which "
            "raises a shape error on the grader's (n_inputs, n_hidden) weights whenever n_inputs != "
            "n_hidden (always in the 10-50-3 test), and otherwise multiplies by the transpose of a "
            "random square matrix, which changes the outputs: both forward tests fail, mlp_forward 0."),
        "replace": {"mlp_shapes_answer": _SHAPES_TRANSPOSED, "mlp_forward_answer": _FORWARD_TRANSPOSED},
        "expected": _expected(mlp_shapes=0, mlp_forward=0),
    },
    {
        "name": "relu_missing_on_output",
        "description": (
            "mlp_forward leaves the output layer linear. The graders draw networks in which some "
            "output weighted sums are below -0.1, which ReLU would set to 0, far outside the "
            "tolerance: both forward tests fail, mlp_forward 0. Nothing else uses it."),
        "replace": {"mlp_forward_answer": _FORWARD_NO_OUTPUT_RELU},
        "expected": _expected(mlp_forward=0),
    },
    {
        "name": "mse_for_spam_softmax_for_multilabel",
        "description": (
            "Two output layers chosen wrongly (one sample, to keep the batch short): spam_output pairs "
            "its sigmoid unit with the mean squared error instead of binary cross-entropy, and "
            "multilabel_output uses a softmax (labels competing for one probability) with "
            "categorical cross-entropy instead of independent sigmoids with binary cross-entropy. "
            "The spam test fails, the multi-label test fails for every label count, the MNIST and "
            "house-price tests pass: output_layers 4 * 2/4 = 2."),
        "replace": {"output_layers_answer": _OUTPUTS_MSE_SPAM_SOFTMAX_MULTILABEL},
        "expected": _expected(output_layers=2),
    },
    {
        "name": "bias_forgotten_in_count",
        "description": (
            "dense_params counts n_in * n_out weights and no bias, n_out fewer than Keras for every "
            "layer (n_out >= 1), and mlp_params sums it: both tests fail, param_counts 0. The Keras "
            "classifier itself is built by Keras, so its cells keep full marks."),
        "replace": {"param_counts_answer": _PARAMS_NO_BIAS},
        "expected": _expected(param_counts=0),
    },
    {
        "name": "mlp_params_skips_output_layer",
        "description": (
            "dense_params is right, but mlp_params's range(len(sizes) - 2) leaves out the last dense "
            "layer, whose count is at least 2: the dense_params test passes, the mlp_params test "
            "fails (its first MLP has one layer and gets 0): param_counts 3 * 1/2 = 1.5."),
        "replace": {"param_counts_answer": _PARAMS_SKIPS_OUTPUT_LAYER},
        "expected": _expected(param_counts=1.5),
    },
    {
        "name": "flatten_forgotten",
        "description": (
            "The images are reshaped to 784 pixels by hand and the model starts at Input(784) with "
            "no Flatten layer: the layers test fails (input shape (None, 784)), while its three Dense "
            "layers hold the right 235,500, 30,100 and 1,010 parameters, so the count test passes: "
            "fashion_architecture 2 * 1/2 = 1. It trains for SIZES['epochs'] epochs with validation "
            "data, so the history test (weight 1) passes, but it cannot be evaluated on 28x28 test "
            "images: the accuracy test (weight 2) fails on the input shape, fashion_accuracy "
            "3 * 1/3 = 1."),
        "replace": {"fashion_model_answer": _FASHION_MODEL_NO_FLATTEN,
                    "fashion_training_answer": _FASHION_TRAINING_FLATTENED},
        "expected": _expected(fashion_architecture=1, fashion_accuracy=1),
    },
    {
        "name": "trained_on_too_little",
        "description": (
            "The classifier is trained on 300 images for 1 epoch (10 SGD steps): the history test "
            "fails (1 epoch, not SIZES['epochs']), and the test accuracy, about 20%, is far below the "
            "smoke profile's calibrated threshold: fashion_accuracy 0. The architecture is right."),
        "replace": {"fashion_training_answer": _FASHION_TRAINING_TOO_LITTLE},
        "expected": _expected(fashion_accuracy=0),
    },
    {
        "name": "no_validation_data",
        "description": (
            "fit is called without validation_data. Validation does not change training, so the "
            "model is the solution's and passes the accuracy test (weight 2), but the history has "
            "no 'val_loss': fashion_accuracy 3 * 2/3 = 2."),
        "replace": {"fashion_training_answer": _FASHION_TRAINING_NO_VALIDATION},
        "expected": _expected(fashion_accuracy=2),
    },
    {
        "name": "wide_deep_inputs_swapped",
        "description": (
            "The deep path is built on the wide input and the concatenation joins the deep input "
            "with it. Inputs and outputs keep their shapes (weight 1 passes); the main-path test "
            "(weight 2) fails because the Concatenate layer does not take the wide input; the "
            "auxiliary output is still on the layer the concatenation joins (weight 1 passes): "
            "wide_deep 4 * 2/4 = 2."),
        "replace": {"wide_deep_answer": _WIDE_DEEP_SWAPPED},
        "expected": _expected(wide_deep=2),
    },
    {
        "name": "aux_output_on_concat",
        "description": (
            "The auxiliary output is a Dense(1) on the concatenation instead of on the top of the "
            "deep path: shapes (weight 1) and main path (weight 2) pass, the auxiliary test fails: "
            "wide_deep 4 * 3/4 = 3."),
        "replace": {"wide_deep_answer": _WIDE_DEEP_AUX_ON_CONCAT},
        "expected": _expected(wide_deep=3),
    },
    {
        "name": "spoof_visible_checks",
        "description": (
            "Returns what the visible checks print instead of computing: mlp_shapes always gives the "
            "shapes for m = 32, and the graders ask for m != 32: mlp_shapes 0. mlp_forward returns the "
            "printed (4, 3) array, and the graders' batches have at least 5 rows: mlp_forward 0. "
            "multilabel_output always says 5 units, and the grader asks for label counts other than "
            "5: output_layers 4 * 3/4 = 3 (the three tasks without an argument have one right answer, "
            "so their constants are right). dense_params and mlp_params return the printed 235,500 "
            "and 266,610 whatever the random sizes; the first layer of the dense_params test has at "
            "most 50 x 50 + 50 parameters and the first MLP of the mlp_params test at most "
            "100 x 100 + 100, so both tests fail: param_counts 0."),
        "replace": {"mlp_shapes_answer": _SPOOF_SHAPES, "mlp_forward_answer": _SPOOF_FORWARD,
                    "output_layers_answer": _SPOOF_OUTPUTS, "param_counts_answer": _SPOOF_PARAMS},
        "expected": _expected(mlp_shapes=0, mlp_forward=0, output_layers=3, param_counts=0),
    },
]
"""Flawed submissions: name, description (why these scores), replace, expected."""
