"""Reference implementation for a02_mlp_shapes (MLP shapes, output layers, parameter counts).

The hidden graders compare the student's answers with these functions. Keras
is imported lazily, inside the functions that build models, so that graders
of the numpy questions start fast. Nothing here is imported by a notebook.
"""

import numpy as np

# --- The 10-50-3 MLP by shapes ------------------------------------------------------

N_INPUTS, N_HIDDEN, N_OUTPUTS = 10, 50, 3
"""The MLP of the assignment: 10 pass-through inputs, 50 hidden ReLU units, 3 ReLU outputs."""

SHAPE_NAMES = ("X", "W_h", "b_h", "W_o", "b_o", "Y")
"""The arrays whose shapes `mlp_shapes` reports, in the order the notebook lists them."""


def mlp_shapes(m):
    """Shapes of the arrays of the 10-50-3 MLP for a batch of `m` instances.

    Weights are stored (inputs, units), as Keras's Dense stores its kernel, so
    that a batch flows through as ``X @ W + b``; biases are vectors.

    Args:
        m: number of instances in the batch.

    Returns:
        dict: name (from `SHAPE_NAMES`) -> shape tuple.
    """
    return {
        "X": (m, N_INPUTS),
        "W_h": (N_INPUTS, N_HIDDEN),
        "b_h": (N_HIDDEN,),
        "W_o": (N_HIDDEN, N_OUTPUTS),
        "b_o": (N_OUTPUTS,),
        "Y": (m, N_OUTPUTS),
    }


def relu(z):
    """max(z, 0), elementwise."""
    return np.maximum(np.asarray(z, dtype=float), 0.0)


def mlp_forward(X, W_h, b_h, W_o, b_o):
    """Y = ReLU(ReLU(X W_h + b_h) W_o + b_o), computed in float64.

    Args:
        X: inputs, shape (m, n_inputs).
        W_h, b_h: hidden weights (n_inputs, n_hidden) and biases (n_hidden,).
        W_o, b_o: output weights (n_hidden, n_outputs) and biases (n_outputs,).

    Returns:
        np.ndarray of shape (m, n_outputs).
    """
    hidden_pre = np.asarray(X, dtype=float) @ np.asarray(W_h, dtype=float) + np.asarray(b_h, dtype=float)
    output_pre = relu(hidden_pre) @ np.asarray(W_o, dtype=float) + np.asarray(b_o, dtype=float)
    return relu(output_pre)


def pre_activations(X, W_h, b_h, W_o, b_o):
    """The two layers' weighted sums before ReLU: (hidden, output)."""
    hidden_pre = X @ W_h + b_h
    return hidden_pre, relu(hidden_pre) @ W_o + b_o


# --- Output layers per task ----------------------------------------------------------

def canonical_activation(name):
    """A comparable form of an activation name: None and "linear" are the same; case and _ ignored."""
    if name is None:
        return "linear"
    return name.strip().lower().replace("_", "")


_LOSS_ALIASES = {"mse": "meansquarederror", "mae": "meanabsoluteerror"}


def canonical_loss(name):
    """A comparable form of a Keras loss name: function and class names and "mse" agree."""
    key = name.strip().lower().replace("_", "").replace("-", "")
    return _LOSS_ALIASES.get(key, key)


def _head(activation, units, loss):
    return {"activation": activation, "units": units, "loss": loss}


def spam_output():
    """Spam or ham: one sigmoid unit (probability of spam), binary cross-entropy."""
    return _head("sigmoid", 1, "binary_crossentropy")


def mnist_output():
    """MNIST digits with integer labels 0-9: 10 softmax units, sparse categorical cross-entropy."""
    return _head("softmax", 10, "sparse_categorical_crossentropy")


def house_price_output():
    """House price regression: one unit, no activation (any real value), mean squared error."""
    return _head(None, 1, "mse")


def multilabel_output(n_labels):
    """Multi-label classification: one independent sigmoid per label, binary cross-entropy."""
    return _head("sigmoid", int(n_labels), "binary_crossentropy")


# --- Parameter counts, from Keras itself ------------------------------------------------

def keras_mlp(sizes):
    """An untrained Keras MLP with these layer sizes (sizes[0] inputs, then one Dense per size).

    Returns:
        keras.Model, built, whose count_params() is the expected count.
    """
    import keras

    stack = [keras.Input(shape=(int(sizes[0]),))]
    stack.extend(keras.layers.Dense(int(units)) for units in sizes[1:])
    return keras.Sequential(stack)


# --- The Fashion-MNIST classifier ------------------------------------------------------

FASHION_LAYERS = (("Flatten", None, None), ("Dense", 300, "relu"),
                  ("Dense", 100, "relu"), ("Dense", 10, "softmax"))
"""The classifier's layers after its Input(28, 28): class, units, activation."""

FASHION_SIZES = {"full": {"train": 55_000, "valid": 5_000, "epochs": 30},
                 "smoke": {"train": 5_000, "valid": 2_000, "epochs": 2}}
"""The notebook's SIZES per profile (its locked cell holds the same)."""


def fashion_classifier():
    """Géron's Fashion-MNIST MLP, untrained, built from `FASHION_LAYERS` (for its parameter counts)."""
    import keras

    stack = [keras.Input(shape=(28, 28))]
    for kind, units, activation in FASHION_LAYERS:
        stack.append(keras.layers.Flatten() if kind == "Flatten"
                     else keras.layers.Dense(units, activation=activation))
    return keras.Sequential(stack)


def fashion_test_data():
    """The 10,000 Fashion-MNIST test images scaled to [0, 1] (float32), and their labels.

    Read in the grader process through `nndl_datasets`, which the sandbox's
    copy cannot reach: its data directory holds the training split only.
    """
    import nndl_datasets

    _, (x_test, y_test) = nndl_datasets.load_data("fashion_mnist")
    if x_test is None:
        raise RuntimeError("the grader's data directory holds no Fashion-MNIST test split")
    return x_test.astype("float32") / 255.0, np.asarray(y_test).astype(int)


def accuracy(model, x, y):
    """Share of `x` whose highest-scoring class is `y`."""
    scores = np.asarray(model.predict(x, batch_size=2000, verbose=0))
    return float(np.mean(scores.reshape(len(x), -1).argmax(axis=1) == y))


# --- Wide & Deep -------------------------------------------------------------------------

WIDE_FEATURES, DEEP_FEATURES, DEEP_UNITS = 5, 6, 30
"""Input widths of the wide and the deep path, and the units of each deep hidden layer."""
