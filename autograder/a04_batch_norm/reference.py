"""Reference implementation for a04_batch_norm, used only by the hidden graders.

What the graders compare a student's answers with comes from here: from
Keras itself where Keras defines the answer (the layer's outputs and moving
statistics, parameter counts of models built from a spec), and from float64
numpy where a formula does (folding batch normalisation into a Dense layer).
Keras is imported lazily inside the functions that need it.
"""

import numpy as np


# --- The forward pass, as Keras computes it --------------------------------------

def keras_batch_norm(x, gamma, beta, moving_mean, moving_var, *, momentum, epsilon, training):
    """One call of `keras.layers.BatchNormalization` with the given weights.

    Args:
        x: inputs, float32, shape (..., n_features); the layer normalises the last axis.
        gamma, beta, moving_mean, moving_var: the layer's four weights, shape (n_features,).
        momentum, epsilon: the layer's hyperparameters.
        training: True for training mode (batch statistics, moving averages
            updated), False for inference (moving statistics, nothing updated).

    Returns:
        tuple of np.ndarray: the outputs (shape of `x`), then the moving mean
        and the moving variance as the layer holds them after the call.
    """
    import keras

    x = np.asarray(x, dtype="float32")
    layer = keras.layers.BatchNormalization(momentum=float(momentum), epsilon=float(epsilon))
    layer.build(x.shape)
    layer.set_weights([np.asarray(w, dtype="float32") for w in (gamma, beta, moving_mean, moving_var)])
    outputs = keras.ops.convert_to_numpy(layer(x, training=bool(training)))
    return (np.asarray(outputs),
            np.asarray(keras.ops.convert_to_numpy(layer.moving_mean)),
            np.asarray(keras.ops.convert_to_numpy(layer.moving_variance)))


def batch_moments(x):
    """Per-feature mean and biased variance over every axis but the last, in float64.

    Keras 3's `ops.moments` (used by `BatchNormalization` in training mode)
    divides by the number of values, not by that number minus one; the graders
    use it to describe what a student got wrong, the values come from Keras.
    """
    values = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
    centre = values.mean(axis=0)
    return centre, ((values - centre) ** 2).mean(axis=0)


# --- Parameter counts ------------------------------------------------------------

def bn_param_split(n_features, center=True, scale=True):
    """Trainable and non-trainable parameters of one BatchNormalization layer, as Keras counts them.

    Returns:
        dict: "trainable", "non_trainable" (ints).
    """
    import keras

    layer = keras.layers.BatchNormalization(center=bool(center), scale=bool(scale))
    layer.build((None, int(n_features)))
    return {"trainable": sum(int(np.prod(w.shape)) for w in layer.trainable_weights),
            "non_trainable": sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights)}


def model_split(model):
    """Total, trainable and non-trainable parameter counts of a built Keras model.

    Returns:
        dict: "total", "trainable", "non_trainable" (ints).
    """
    trainable = sum(int(np.prod(variable.shape)) for variable in model.trainable_weights)
    frozen = sum(int(np.prod(variable.shape)) for variable in model.non_trainable_weights)
    return {"total": int(model.count_params()), "trainable": trainable, "non_trainable": frozen}


def build_model(spec):
    """The Keras Sequential model an architecture spec describes (see the notebook for the format).

    Args:
        spec: dict with "input_shape" (list of ints, batch axis left out) and
            "layers" (list of dicts, each with a "type" among dense, conv2d,
            batch_norm, flatten, activation, dropout, and that type's keys).

    Returns:
        keras.Sequential: built on that input shape.
    """
    import keras

    layers = [keras.Input(shape=tuple(spec["input_shape"]))]
    for layer in spec["layers"]:
        kind = layer["type"]
        if kind == "dense":
            layers.append(keras.layers.Dense(layer["units"], activation=layer.get("activation"),
                                             use_bias=layer["use_bias"]))
        elif kind == "conv2d":
            layers.append(keras.layers.Conv2D(layer["filters"], layer["kernel_size"],
                                              strides=layer["strides"], padding=layer["padding"],
                                              activation=layer.get("activation"),
                                              use_bias=layer["use_bias"]))
        elif kind == "batch_norm":
            layers.append(keras.layers.BatchNormalization(center=layer["center"], scale=layer["scale"]))
        elif kind == "flatten":
            layers.append(keras.layers.Flatten())
        elif kind == "activation":
            layers.append(keras.layers.Activation(layer["activation"]))
        elif kind == "dropout":
            layers.append(keras.layers.Dropout(layer["rate"]))
        else:
            raise ValueError(f"unknown layer type {kind!r} in spec")
    return keras.Sequential(layers)


def _dense(units, use_bias=True, activation=None):
    return {"type": "dense", "units": units, "use_bias": use_bias, "activation": activation}


def _bn(center=True, scale=True):
    return {"type": "batch_norm", "center": center, "scale": scale}


def _conv(filters, kernel_size, strides):
    return dict(type="conv2d", filters=filters, kernel_size=kernel_size, strides=strides,
                padding="same", use_bias=False, activation=None)


GERON_BN_AFTER = {
    "input_shape": [28, 28],
    "layers": [{"type": "flatten"}, _bn(),
               _dense(300, activation="relu"), _bn(),
               _dense(100, activation="relu"), _bn(),
               _dense(10, activation="softmax")],
}
"""Géron's Fashion-MNIST MLP with BN after each hidden layer: the layout of `model_bn_after`."""

GERON_BN_BEFORE = {
    "input_shape": [28, 28],
    "layers": [{"type": "flatten"}, _bn(),
               _dense(300, use_bias=False), _bn(), {"type": "activation", "activation": "relu"},
               _dense(100, use_bias=False), _bn(), {"type": "activation", "activation": "relu"},
               _dense(10, activation="softmax")],
}
"""The same MLP with BN before each hidden activation and no Dense bias: `model_bn_before`."""

_RELU = {"type": "activation", "activation": "relu"}
CODELAB = {
    "input_shape": [28, 28, 1],
    "layers": [_conv(12, 3, 1), _bn(scale=False), _RELU,
               _conv(24, 6, 2), _bn(scale=False), _RELU,
               _conv(32, 6, 2), _bn(scale=False), _RELU,
               {"type": "flatten"},
               _dense(200, use_bias=False), _bn(scale=False), _RELU,
               dict(type="dropout", rate=0.4),
               _dense(10, activation="softmax")],
}
"""The MNIST codelab's convolutional network (BN with scale=False, center=True): `codelab_model`."""


# --- Folding BN into the Dense layer before it -------------------------------------

def fold_bn(W, b, gamma, beta, moving_mean, moving_var, epsilon):
    """Weights of the one Dense layer that computes Dense(W, b) followed by BN in inference mode.

    BN(z) = gamma * (z - mean) / sqrt(var + epsilon) + beta with z = x W + b,
    so the scale gamma / sqrt(var + epsilon) multiplies each output column of
    W and of (b - mean), and beta is added to the bias. Float64 throughout.

    Returns:
        tuple: W' of the shape of W, b' of shape (n_outputs,).
    """
    scale = np.asarray(gamma, dtype=np.float64) / np.sqrt(
        np.asarray(moving_var, dtype=np.float64) + float(epsilon))
    kernel = np.asarray(W, dtype=np.float64) * scale[np.newaxis, :]
    shift = (np.asarray(b, dtype=np.float64) - np.asarray(moving_mean, dtype=np.float64)) * scale
    return kernel, shift + np.asarray(beta, dtype=np.float64)
