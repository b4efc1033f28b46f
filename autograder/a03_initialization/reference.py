"""Trusted reference implementations for a03_initialization.

The hidden graders take the initialisers' expected values from Keras itself
(`test_a03_initialization.py` reads them off `keras.initializers` samples);
this module holds what Keras does not compute for us: the fans of a kernel
shape (Keras' `compute_fans` rule, written out), the forward pass of the deep
sigmoid network, the weights the graders hand to it, and the answers to the
multiple-choice questions. It is written independently of the master
notebook, so that a mistake in one is caught by the other, and it is never
shipped to students.
"""

import math

import numpy as np

KINDS = ("glorot", "he", "lecun")
"""The three initialisation schemes of the assignment."""

KERAS_NAMES = {
    ("glorot", "uniform"): "GlorotUniform", ("glorot", "truncated_normal"): "GlorotNormal",
    ("he", "uniform"): "HeUniform", ("he", "truncated_normal"): "HeNormal",
    ("lecun", "uniform"): "LecunUniform", ("lecun", "truncated_normal"): "LecunNormal",
}
"""The `keras.initializers` class of each (scheme, distribution) pair."""

def fans(shape):
    """Fan-in and fan-out of a kernel, by Keras' rule (`compute_fans`).

    A Dense kernel has shape (inputs, units). A convolution kernel has shape
    (*spatial, in_channels, out_channels): every output unit sees the whole
    receptive field of every input channel, so both fans are multiplied by the
    product of the spatial dimensions.

    Args:
        shape: kernel shape, 2-D (Dense) or more (convolutions).

    Returns:
        tuple: (fan_in, fan_out), two ints.
    """
    dims = [int(d) for d in shape]
    if len(dims) == 2:
        return dims[0], dims[1]
    field = math.prod(dims[:-2])
    return field * dims[-2], field * dims[-1]


def activation_stds(X, weights):
    """Per-layer standard deviation of the activations of a bias-free sigmoid MLP.

    Args:
        X: input batch, shape (batch, n_inputs).
        weights: list of kernels; kernel l maps layer l's input to its units.

    Returns:
        np.ndarray of float, shape (len(weights),): entry l is the population
        standard deviation (ddof 0) of all the activations of layer l (every
        unit and every example), after the sigmoid.
    """
    outputs = np.array(X, dtype=float)
    stds = np.empty(len(weights))
    for layer, kernel in enumerate(weights):
        pre = outputs @ np.array(kernel, dtype=float)
        # The logistic function written through tanh: no overflow for any input.
        outputs = 0.5 * (1.0 + np.tanh(0.5 * pre))
        stds[layer] = float(np.sqrt(np.mean((outputs - outputs.mean()) ** 2)))
    return stds


def layer_shapes(n_inputs, width, depth):
    """Kernel shapes of a `depth`-layer MLP of constant `width` on `n_inputs` features."""
    return [(n_inputs, width)] + [(width, width)] * (depth - 1)


def standard_normal_weights(rng, shapes):
    """One N(0, 1) kernel per shape (the naive initialisation)."""
    return [rng.standard_normal(size=shape) for shape in shapes]


def glorot_uniform_weights(rng, shapes):
    """One Glorot-uniform kernel per shape: U(-r, r), r = sqrt(6 / (fan_in + fan_out))."""
    kernels = []
    for shape in shapes:
        fan_in, fan_out = fans(shape)
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        kernels.append(rng.uniform(low=-bound, high=bound, size=shape))
    return kernels


ANSWERS = {
    # Equal weights: every unit of a layer computes the same thing and gets the same gradient.
    "ANSWER_SYMMETRY": "c",
    # 1/fan_in == 2/(fan_in + fan_out) exactly when fan_in == fan_out.
    "ANSWER_LECUN_GLOROT": "b",
    # Random weights already break the symmetry; Keras' bias_initializer is "zeros".
    "ANSWER_ZERO_BIASES": "a",
}
"""The correct choice of each multiple-choice question."""

CHOICES = ("a", "b", "c", "d")
"""The letters a choice may take."""
