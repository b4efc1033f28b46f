"""Trusted reference implementations for a01_perceptrons_xor.

The hidden graders compute every expected value from this module, never from
numbers copied out of a run. It is written independently of the master
notebook (plain numpy, no shared code) so that a mistake in one is caught by
the other. It is never shipped to students.
"""

import numpy as np


# --- McCulloch-Pitts neurons -------------------------------------------------

def mp_neuron(inputs, weights, threshold):
    """Fires (returns 1) when the weighted sum of binary inputs reaches a threshold.

    Args:
        inputs: sequence of 0/1 inputs.
        weights: sequence of weights, one per input (+1 excitatory, -1 inhibitory).
        threshold: the number the weighted sum must reach for the neuron to fire.

    Returns:
        int: 1 when `sum(inputs * weights) >= threshold`, else 0.

    Example:
        >>> mp_neuron([1, 1], [1, 1], 2)
        1
    """
    total = sum(int(i) * w for i, w in zip(inputs, weights))
    return 1 if total >= threshold else 0


def mp_identity(a):
    """Copies its single binary input: one excitatory input, threshold 1.

    Args:
        a: 0 or 1.

    Returns:
        int: `a`.
    """
    return mp_neuron([a], [1], 1)


def mp_and(a, b):
    """Logical AND of two binary inputs: two excitatory inputs, threshold 2.

    Args:
        a: 0 or 1.
        b: 0 or 1.

    Returns:
        int: 1 when both inputs are 1, else 0.
    """
    return mp_neuron([a, b], [1, 1], 2)


def mp_or(a, b):
    """Logical OR of two binary inputs: two excitatory inputs, threshold 1.

    Args:
        a: 0 or 1.
        b: 0 or 1.

    Returns:
        int: 1 when at least one input is 1, else 0.
    """
    return mp_neuron([a, b], [1, 1], 1)


def mp_and_not(a, b):
    """A AND NOT B: `a` excites, `b` inhibits, threshold 1.

    Args:
        a: 0 or 1 (excitatory).
        b: 0 or 1 (inhibitory).

    Returns:
        int: 1 only for a=1, b=0.
    """
    return mp_neuron([a, b], [1, -1], 1)


def mp_xor(a, b):
    """Exclusive OR wired from the gates above: (a AND NOT b) OR (b AND NOT a).

    Args:
        a: 0 or 1.
        b: 0 or 1.

    Returns:
        int: 1 when exactly one input is 1, else 0.
    """
    return mp_or(mp_and_not(a, b), mp_and_not(b, a))


MP_GATES = {
    "mp_identity": (mp_identity, 1),
    "mp_and": (mp_and, 2),
    "mp_or": (mp_or, 2),
    "mp_and_not": (mp_and_not, 2),
}
"""Each gate's reference function and number of inputs, by student-facing name."""


# --- Threshold logic unit step functions ---------------------------------------

def heaviside(z):
    """Heaviside step, elementwise: 0 where z < 0, 1 where z >= 0.

    Args:
        z: number or array-like.

    Returns:
        np.ndarray of int with the shape of `z` (0-d for a scalar).
    """
    z = np.asarray(z)
    return np.where(z < 0, 0, 1).astype(int)


def sign_step(z):
    """Sign step, elementwise: -1 where z < 0, 0 where z == 0, +1 where z > 0.

    Args:
        z: number or array-like.

    Returns:
        np.ndarray of int with the shape of `z` (0-d for a scalar).
    """
    z = np.asarray(z)
    return np.where(z < 0, -1, np.where(z > 0, 1, 0)).astype(int)


# --- Perceptron learning ------------------------------------------------------

def perceptron_update(w, x, y, y_hat, eta):
    """One step of the perceptron learning rule, returned as a new matrix.

    Implements w_ij <- w_ij + eta * (y_j - y_hat_j) * x_i for every input i
    and output j.

    Args:
        w: weights, shape (n_inputs, n_outputs).
        x: one input instance, shape (n_inputs,).
        y: its targets, shape (n_outputs,).
        y_hat: the perceptron's outputs for `x`, shape (n_outputs,).
        eta: learning rate.

    Returns:
        np.ndarray of float, shape (n_inputs, n_outputs); `w` is left unchanged.
    """
    w = np.asarray(w, dtype=float)
    error = np.asarray(y, dtype=float) - np.asarray(y_hat, dtype=float)
    return w + eta * np.outer(np.asarray(x, dtype=float), error)


def perceptron_predict(X, w, b):
    """Outputs of a single-output perceptron with a Heaviside activation.

    Args:
        X: inputs, shape (m, n).
        w: weights, shape (n,).
        b: bias.

    Returns:
        np.ndarray of int, shape (m,): heaviside(X @ w + b).
    """
    return heaviside(np.asarray(X, dtype=float) @ np.asarray(w, dtype=float).reshape(-1) + float(b))


def train_perceptron(X, y, eta=1.0, max_epochs=100):
    """Trains a single-output perceptron with online updates, in sample order.

    Weights and bias start at zero. Each epoch visits every instance once,
    counts it as an error when the prediction differs from the label, and
    applies the perceptron rule to the weights and to the bias (the bias is a
    weight on a constant input 1). Training stops after the first epoch with
    no error, or after `max_epochs` epochs.

    Args:
        X: inputs, shape (m, n).
        y: 0/1 labels, shape (m,).
        eta: learning rate.
        max_epochs: most epochs to run.

    Returns:
        dict: "w" (np.ndarray, shape (n,)), "b" (float), "converged" (bool),
        "epochs" (int, epochs run, the error-free one included) and
        "errors" (list of int, misclassifications per epoch; its length is
        "epochs").
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(int)
    w = np.zeros(X.shape[1])
    b = 0.0
    errors = []
    converged = False
    for _ in range(max_epochs):
        n_errors = 0
        for x_i, y_i in zip(X, y):
            error = y_i - int(heaviside(x_i @ w + b))
            if error != 0:
                n_errors += 1
                w = w + eta * error * x_i
                b = b + eta * error
        errors.append(n_errors)
        if n_errors == 0:
            converged = True
            break
    return {"w": w, "b": float(b), "converged": converged,
            "epochs": len(errors), "errors": errors}


# --- A two-layer network for XOR ----------------------------------------------

def mlp_forward(X, W1, b1, W2, b2):
    """Output of a 2-layer network of threshold units: heaviside(heaviside(X W1 + b1) W2 + b2).

    Args:
        X: inputs, shape (m, 2).
        W1: hidden weights, shape (2, 2).
        b1: hidden biases, shape (2,).
        W2: output weights, shape (2, 1) or (2,).
        b2: output bias, shape (1,) or a scalar.

    Returns:
        np.ndarray of int, shape (m,).
    """
    hidden = heaviside(np.asarray(X, dtype=float) @ np.asarray(W1, dtype=float) + np.asarray(b1, dtype=float))
    out = hidden @ np.asarray(W2, dtype=float).reshape(-1) + np.asarray(b2, dtype=float).reshape(-1)
    return heaviside(out).reshape(-1)


XOR_W1 = np.array([[1.0, 1.0], [1.0, 1.0]])
"""Hidden layer weights: unit 0 computes OR (bias -0.5), unit 1 computes AND (bias -1.5)."""
XOR_b1 = np.array([-0.5, -1.5])
"""Hidden layer biases."""
XOR_W2 = np.array([[1.0], [-1.0]])
"""Output weights: OR AND NOT AND."""
XOR_b2 = np.array([-0.5])
"""Output bias."""


def build_xor_model(hidden_units=2):
    """The 2-2-1 Keras network the assignment asks for (untrained).

    Imports Keras lazily, so that graders for the first questions stay fast.

    Args:
        hidden_units: size of the hidden Dense layer (2 in the assignment).

    Returns:
        keras.Model: Input(2) -> Dense(hidden_units, tanh) -> Dense(1, sigmoid).
    """
    import keras

    return keras.Sequential([
        keras.Input(shape=(2,)),
        keras.layers.Dense(hidden_units, activation="tanh"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])


# --- Data ---------------------------------------------------------------------

_BINARY_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])


def and_data():
    """The four AND examples.

    Returns:
        tuple: X, shape (4, 2) float, and y, shape (4,) int.
    """
    X = _BINARY_INPUTS.astype(float)
    return X, np.array([mp_and(a, b) for a, b in _BINARY_INPUTS])


def xor_data():
    """The four XOR examples.

    Returns:
        tuple: X, shape (4, 2) float, and y, shape (4,) int.
    """
    X = _BINARY_INPUTS.astype(float)
    return X, np.array([mp_xor(a, b) for a, b in _BINARY_INPUTS])


def iris_setosa_data():
    """Iris setosa versus the rest, on petal length and width (cm).

    Bundled with scikit-learn, so it needs no network.

    Returns:
        tuple: X, shape (150, 2) float (petal length, petal width), and y,
        shape (150,) int, 1 for Iris setosa and 0 otherwise.
    """
    from sklearn.datasets import load_iris

    iris = load_iris()
    X = iris.data[:, 2:4].astype(float)
    y = (iris.target == 0).astype(int)
    return X, y
