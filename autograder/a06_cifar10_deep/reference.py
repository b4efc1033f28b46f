"""Reference rules for a06_cifar10_deep (a deep network on CIFAR-10: ELU, BN, SELU, MC dropout).

The hidden graders check the student's models against the rules written
here: the exercise's architectures (Géron, chapter 11, exercise 8), their
parameter counts derived from the layer sizes, the data the graders measure
on (read in the grader process, which has the test split the sandbox does
not), and the accuracy-credit steps. Every architecture check is a function
of a loaded Keras model, whatever way the model arrived (exported from the
kernel, or a submitted ``.keras`` file): `check_plain_architecture`,
`check_bn_architecture`, `check_selu_architecture` and
`check_alpha_architecture` run all the checks of one model, and the graders
score the parts separately. A check raises AssertionError with a message
written for the student. Keras is imported inside the functions.
"""

import functools

import numpy as np

# --- The exercise ---------------------------------------------------------------------

SIZES = {"full": dict(train=45_000, valid=5_000, epochs=100, patience=10, batch_size=32),
         "smoke": dict(train=4_000, valid=1_000, epochs=2, patience=1, batch_size=32)}
"""The notebook's SIZES per profile (its locked `profile` cell holds the same)."""

TRAIN_END = 45_000
"""The first 45,000 training images are for training, the last 5,000 for validation."""

IMAGE_SHAPE = (32, 32, 3)
N_INPUTS = 32 * 32 * 3
N_HIDDEN, UNITS, N_CLASSES = 20, 100, 10

HE = dict(scale=2.0, mode="fan_in")
"""He initialisation: weights of variance 2 / fan-in (he_normal; he_uniform has the same variance)."""
LECUN = dict(scale=1.0, mode="fan_in")
"""LeCun initialisation: weights of variance 1 / fan-in (lecun_normal, as SELU's self-normalisation assumes)."""

PREPROCESSING = ("Rescaling", "Normalization")
"""Layers a model may hold between its input and its Flatten layer."""
ACTIVATION_LAYERS = {"Activation": None, "ELU": "elu", "ReLU": "relu", "LeakyReLU": "leaky_relu",
                     "PReLU": "prelu", "Softmax": "softmax"}
"""Layers that only apply an activation (None: read it from the layer)."""
DROPOUT_LAYERS = ("Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise", "SpatialDropout1D",
                  "SpatialDropout2D", "SpatialDropout3D")

RATES = {"plain_model": 1e-4, "bn_model": 5e-4, "selu_model": 3e-4, "alpha_model": 5e-4}
"""The solution's Nadam learning rates: in the submitted-models mode each handed-in architecture is
retrained with its model's rate, so that its accuracy is comparable with the thresholds calibrated on
the solution."""


def retraining_recipe(model_name, profile):
    """How a handed-in architecture is trained again (`student.retrained_model`): as the notebook's `train`
    does under `profile`, with the solution's learning rate, on the training split only."""
    sizes = SIZES[profile]
    return dict(dataset="cifar10", train=sizes["train"], valid=sizes["valid"], epochs=sizes["epochs"],
                batch_size=sizes["batch_size"], optimizer="nadam", learning_rate=RATES[model_name],
                patience=sizes["patience"], loss="sparse_categorical_crossentropy")


# --- Accuracy credit -------------------------------------------------------------------

CHANCE = 0.10
"""Accuracy of guessing among 10 balanced classes (the test split has 1,000 images per class)."""
FLOOR = 0.15
"""Accuracy that earns no credit: chance plus 5 points. Untrained networks of the four architectures
reach 0.10 ± 0.01 on the 10,000 test images (100 initialisations, highest 0.134: the SELU networks
spread most, ± 0.015), and the plain network trained on 32 images 0.104 ± 0.010 (10 seeds, highest
0.125), so no credit goes to a network that learnt nothing; the first step of credit lies above 0.15."""
STEPS = 4
"""Credit grows in STEPS equal steps from FLOOR to the calibrated threshold."""


def credit_levels(threshold, floor=FLOOR, steps=STEPS):
    """The accuracy each step of credit needs: floor + i/steps * (threshold - floor), i = 1..steps.

    The last level is the threshold itself. A threshold at or below the floor
    (a calibration far weaker than expected) makes every level the threshold.
    """
    if threshold <= floor:
        return [float(threshold)] * steps
    return [float(floor + i / steps * (threshold - floor)) for i in range(1, steps + 1)]


# --- Parameter counts, from the rules ----------------------------------------------------

def dense_params(n_in, n_out):
    """A Dense layer: n_in x n_out weights and n_out biases."""
    return n_in * n_out + n_out


def batch_norm_params(n_features):
    """A BatchNormalization layer: (trainable gamma and beta, non-trainable moving mean and variance)."""
    return 2 * n_features, 2 * n_features


def plain_trainable():
    """The trainable parameters of the 20 x Dense(100) network: 307,300 + 19 x 10,100 + 1,010 = 500,210."""
    sizes = [N_INPUTS] + [UNITS] * N_HIDDEN + [N_CLASSES]
    return sum(dense_params(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def bn_counts():
    """(trainable, non-trainable) of the BN network's layers after Flatten: one BN on the 3,072 inputs, one per hidden layer."""
    features = [N_INPUTS] + [UNITS] * N_HIDDEN
    trainable = plain_trainable() + sum(batch_norm_params(n)[0] for n in features)
    non_trainable = sum(batch_norm_params(n)[1] for n in features)
    return trainable, non_trainable


# --- The data the graders measure on -------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _cifar10():
    import nndl_datasets

    (x_train, y_train), (x_test, y_test) = nndl_datasets.load_data("cifar10")
    if x_test is None:
        raise RuntimeError("the grader's data directory holds no CIFAR-10 test split")
    return x_train, np.asarray(y_train).ravel().astype(int), x_test, np.asarray(y_test).ravel().astype(int)


def training_images(profile):
    """The images the notebook trains on under `profile`: the first SIZES["train"] of the first 45,000 (uint8)."""
    x_train, _, _, _ = _cifar10()
    return x_train[:TRAIN_END][:SIZES[profile]["train"]]


def full_validation_data():
    """The last 5,000 training images (float32, 0-255) and labels: the exercise's validation split, whatever the profile."""
    x_train, y_train, _, _ = _cifar10()
    return x_train[TRAIN_END:].astype("float32"), y_train[TRAIN_END:]


def validation_data(profile):
    """The notebook's validation images (float32, 0-255) and labels under `profile`: the last SIZES["valid"]."""
    x_train, y_train, _, _ = _cifar10()
    n = SIZES[profile]["valid"]
    return x_train[TRAIN_END:][-n:].astype("float32"), y_train[TRAIN_END:][-n:]


def test_data():
    """The 10,000 test images (float32, 0-255) and their labels; the sandbox never has them."""
    _, _, x_test, y_test = _cifar10()
    return x_test.astype("float32"), y_test


def predict(model, x):
    """The model's class probabilities, in batches."""
    return np.asarray(model.predict(x, batch_size=2000, verbose=0), dtype=np.float64).reshape(len(x), -1)


def accuracy(model, x, y):
    """Share of `x` whose highest-scoring class is `y`."""
    return float(np.mean(predict(model, x).argmax(axis=1) == y))


# --- Reading a model -----------------------------------------------------------------------

def _kind(layer):
    return type(layer).__name__


def _activation(layer):
    """The activation a Dense or activation layer applies, by name ("linear" for none)."""
    kind = _kind(layer)
    if kind in ACTIVATION_LAYERS and ACTIVATION_LAYERS[kind] is not None:
        return ACTIVATION_LAYERS[kind]
    function = getattr(layer, "activation", None)
    return getattr(function, "__name__", str(function)) if function is not None else "linear"


def _initializer(layer):
    """(name, matches) of a Dense layer's kernel initializer: matches(rule) for HE and LECUN."""
    import keras

    init = layer.kernel_initializer
    name = _kind(init)

    def matches(rule):
        return (isinstance(init, keras.initializers.VarianceScaling)
                and float(init.scale) == rule["scale"] and init.mode == rule["mode"])

    return name, matches


def describe(layer):
    """A short text for a layer, as a student would write it."""
    kind = _kind(layer)
    if kind == "Dense":
        return f"Dense({layer.units}, {_activation(layer)}, {_initializer(layer)[0]})"
    if kind in ACTIVATION_LAYERS:
        return f"{kind}({_activation(layer)})"
    if "Dropout" in kind:
        return f"{kind}({getattr(layer, 'rate', '?')})"
    return kind


def _texts(layers):
    return [describe(layer) for layer in layers]


class Parsed:
    """A Sequential image classifier read as: preprocessing, Flatten, then Dense blocks.

    Attributes:
        model: the model.
        preprocessing: the layers between the input and Flatten.
        before_dense: the layers between Flatten and the first Dense layer.
        blocks: per Dense layer, (the Dense layer, the layers after it up to the next Dense).
        hidden: blocks[:-1]; output: blocks[-1].
    """

    def __init__(self, model, name):
        import keras

        self.model, self.name = model, name
        assert isinstance(model, keras.Sequential), (
            f"{name}: expected a model built with keras.Sequential, received a {type(model).__name__}")
        assert tuple(model.input_shape) == (None,) + IMAGE_SHAPE, (
            f"{name}: expected raw 32x32x3 images as input (input shape (None, 32, 32, 3)), "
            f"received {model.input_shape}")
        assert tuple(model.output_shape) == (None, N_CLASSES), (
            f"{name}: expected one output per class (output shape (None, 10)), received {model.output_shape}")
        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        flattens = [i for i, layer in enumerate(layers) if _kind(layer) == "Flatten"]
        assert len(flattens) == 1, (
            f"{name}: expected one Flatten layer that turns each image into a vector, received {len(flattens)} "
            f"among {_texts(layers)}")
        self.preprocessing = layers[:flattens[0]]
        body = layers[flattens[0] + 1:]
        dense = [i for i, layer in enumerate(body) if _kind(layer) == "Dense"]
        assert dense, f"{name}: expected Dense layers after Flatten, received {_texts(body)}"
        self.before_dense = body[:dense[0]]
        ends = dense[1:] + [len(body)]
        self.blocks = [(body[i], body[i + 1:end]) for i, end in zip(dense, ends)]
        self.hidden, self.output = self.blocks[:-1], self.blocks[-1]
        self.layers = layers

    def activations(self, block):
        """The activations one block applies in order: its Dense layer's, then its activation layers'."""
        dense, after = block
        chain = [_activation(dense)] + [_activation(layer) for layer in after if _kind(layer) in ACTIVATION_LAYERS]
        return [a for a in chain if a != "linear"]

    def check_preprocessing(self):
        odd = [layer for layer in self.preprocessing if _kind(layer) not in PREPROCESSING]
        assert not odd, (
            f"{self.name}: expected only preprocessing layers ({', '.join(PREPROCESSING)}) before Flatten, "
            f"received {_texts(self.preprocessing)}")

    def check_output(self):
        dense, after = self.output
        extra = [layer for layer in after if _kind(layer) not in ACTIVATION_LAYERS]
        assert dense.units == N_CLASSES and self.activations(self.output) == ["softmax"] and not extra, (
            f"{self.name}: expected the last layer to be a Dense(10) output with the softmax activation, "
            f"received {_texts([dense] + after)}")

    def check_hidden_count(self):
        units = [dense.units for dense, _ in self.hidden]
        assert len(units) == N_HIDDEN and all(u == UNITS for u in units), (
            f"{self.name}: expected {N_HIDDEN} hidden Dense layers of {UNITS} neurons before the output layer, "
            f"received {len(units)} hidden Dense layers of {sorted(set(units))} neurons")

    def check_hidden_activations(self, activation):
        assert self.hidden, f"{self.name}: expected hidden Dense layers before the output layer, received none"
        wrong = [(i, self.activations(block)) for i, block in enumerate(self.hidden, start=1)
                 if self.activations(block) != [activation]]
        if wrong:
            i, got = wrong[0]
            raise AssertionError(
                f"{self.name}: expected every hidden layer to apply the {activation.upper()} activation once, "
                f"received {got or ['none']} in hidden layer {i} ({len(wrong)} of {len(self.hidden)} hidden "
                f"layers differ)")

    def check_hidden_initializers(self, rule, rule_name, keras_name):
        assert self.hidden, f"{self.name}: expected hidden Dense layers before the output layer, received none"
        wrong = [(i, _initializer(dense)[0]) for i, (dense, _) in enumerate(self.hidden, start=1)
                 if not _initializer(dense)[1](rule)]
        if wrong:
            i, got = wrong[0]
            raise AssertionError(
                f"{self.name}: expected {rule_name} initialisation (kernel_initializer=\"{keras_name}\": "
                f"variance {rule['scale']:g} / fan-in) in every hidden Dense layer, received {got} in hidden "
                f"layer {i} ({len(wrong)} of {len(self.hidden)} hidden layers differ)")

    def between_hidden(self, allowed):
        """Layers in the hidden blocks (and between Flatten and the first Dense) not of the `allowed` kinds."""
        found = [layer for layer in self.before_dense if _kind(layer) not in allowed]
        for _, after in self.hidden:
            found += [layer for layer in after if _kind(layer) not in allowed]
        return found


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def non_trainable_count(layers):
    return int(sum(np.prod(w.shape) for layer in layers for w in layer.non_trainable_weights))


# --- 1. The plain deep network ------------------------------------------------------------

def check_plain_layers(model, name="plain_model"):
    """Input, preprocessing, Flatten, exactly 20 hidden Dense(100), a softmax Dense(10); nothing else."""
    parsed = Parsed(model, name)
    parsed.check_preprocessing()
    parsed.check_hidden_count()
    parsed.check_output()
    extra = parsed.between_hidden(tuple(ACTIVATION_LAYERS))
    assert not extra, (
        f"{name}: expected only Dense layers (and activation layers) after Flatten, received {_texts(extra)}")


def check_plain_activations(model, name="plain_model"):
    """Every hidden layer applies ELU."""
    Parsed(model, name).check_hidden_activations("elu")


def check_plain_initializers(model, name="plain_model"):
    """Every hidden Dense layer uses He initialisation."""
    Parsed(model, name).check_hidden_initializers(HE, "He", "he_normal")


def check_plain_params(model, name="plain_model"):
    """The trainable parameters are the 500,210 of the rules."""
    expected, received = plain_trainable(), trainable_count(model)
    per_layer = [dense_params(N_INPUTS, UNITS)] + [dense_params(UNITS, UNITS)] * (N_HIDDEN - 1) + [
        dense_params(UNITS, N_CLASSES)]
    assert received == expected, (
        f"{name}: expected {expected:,} trainable parameters ({per_layer[0]:,} in the first hidden layer, "
        f"{per_layer[1]:,} in each of the {N_HIDDEN - 1} others, {per_layer[-1]:,} in the output layer), "
        f"received {received:,}")


def check_plain_architecture(model, name="plain_model"):
    """All the checks of question 1."""
    for check in (check_plain_layers, check_plain_activations, check_plain_initializers, check_plain_params):
        check(model, name)


# --- 2. Batch normalisation ----------------------------------------------------------------

def check_bn_input(model, name="bn_model"):
    """One BatchNormalization layer right after Flatten, before the first Dense layer."""
    parsed = Parsed(model, name)
    kinds = [_kind(layer) for layer in parsed.before_dense]
    assert kinds == ["BatchNormalization"], (
        f"{name}: expected one BatchNormalization layer right after Flatten, before the first Dense layer, "
        f"received {_texts(parsed.before_dense) or 'the first Dense layer directly after Flatten'}")


def check_bn_hidden(model, name="bn_model"):
    """20 hidden Dense(100, He), each with one BN before or after its ELU; the softmax output; preprocessing."""
    parsed = Parsed(model, name)
    parsed.check_preprocessing()
    parsed.check_hidden_count()
    parsed.check_hidden_activations("elu")
    parsed.check_hidden_initializers(HE, "He", "he_normal")
    for i, (dense, after) in enumerate(parsed.hidden, start=1):
        kinds = [_kind(layer) for layer in after]
        others = [k for k in kinds if k != "BatchNormalization" and k not in ACTIVATION_LAYERS]
        assert kinds.count("BatchNormalization") == 1 and not others, (
            f"{name}: expected each hidden Dense layer to be followed by one BatchNormalization layer and its "
            f"ELU activation, received {_texts([dense] + after)} in hidden layer {i}")
    parsed.check_output()


def check_bn_params(model, name="bn_model"):
    """Trainable and non-trainable counts of the rules (Dense layers with biases, BN on 3,072 + 20 x 100 features)."""
    import keras

    trainable, non_trainable = bn_counts()
    received = trainable_count(model)
    body = [layer for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer) and _kind(layer) not in PREPROCESSING]
    received_non = non_trainable_count(body)
    assert received == trainable and received_non == non_trainable, (
        f"{name}: expected {trainable:,} trainable parameters (the plain network's {plain_trainable():,}, plus "
        f"gamma and beta of a BN layer on the 3,072 inputs and on each hidden layer's 100 outputs) and "
        f"{non_trainable:,} non-trainable ones after Flatten (their moving means and variances), received "
        f"{received:,} trainable and {received_non:,} non-trainable")


def check_bn_architecture(model, name="bn_model"):
    """All the checks of question 3."""
    for check in (check_bn_input, check_bn_hidden, check_bn_params):
        check(model, name)


# --- 3. The self-normalising network ----------------------------------------------------------

def check_selu_layers(model, name="selu_model"):
    """20 hidden Dense(100, selu, LeCun) and the softmax output layer (what lies between: check_plain_stack)."""
    parsed = Parsed(model, name)
    parsed.check_hidden_count()
    parsed.check_hidden_activations("selu")
    parsed.check_hidden_initializers(LECUN, "LeCun normal", "lecun_normal")
    parsed.check_output()


def check_plain_stack(model, name="selu_model", dropout=()):
    """Nothing but Dense layers (and activation layers, and the `dropout` kinds) after Flatten."""
    parsed = Parsed(model, name)
    extra = parsed.between_hidden(tuple(ACTIVATION_LAYERS) + tuple(dropout))
    assert not extra, (
        f"{name}: expected a plain stack of Dense layers after Flatten (self-normalisation breaks with "
        f"batch normalisation, regular dropout or other layers between them), received {_texts(extra)}")


def _standardisation_layer(parsed):
    normalizations = [i for i, layer in enumerate(parsed.preprocessing) if _kind(layer) == "Normalization"]
    assert len(normalizations) == 1, (
        f"{parsed.name}: expected one Normalization layer before Flatten that standardises the raw images "
        f"(SELU self-normalises only on standardised inputs), received {_texts(parsed.preprocessing) or 'none'}")
    return normalizations[0]


def _statistics(x_train, before, reduce):
    """The mean and variance of the training images as they reach a Normalization layer.

    Returns two candidates: the exact statistics (float64, in chunks), and
    numpy's float32 computation on the whole array, which is what Keras's
    ``Normalization.adapt`` does with a numpy array. The second can be far
    off: numpy sums each channel's values one after the other in float32,
    so on 8,000 CIFAR-10 images the variances come out 1% low, and on 45,000
    the means 25% low. A layer adapted with ``adapt(X_train)`` holds exactly
    the float32 figures; one given ``mean=`` and ``variance=`` computed in
    float64, or adapted on batches, holds the exact ones (within 1e-6).
    """
    total, total_sq, count = 0.0, 0.0, 0
    for start in range(0, len(x_train), 2000):
        x = x_train[start:start + 2000].astype("float32")
        for layer in before:
            x = np.asarray(layer(x))
        x = x.astype(np.float64)
        total = total + x.sum(axis=reduce)
        total_sq = total_sq + (x ** 2).sum(axis=reduce)
        count += int(np.prod([x.shape[a] for a in reduce]))
    mean = total / count
    exact = (mean, total_sq / count - mean ** 2)
    x = x_train.astype("float32")
    for layer in before:
        x = np.asarray(layer(x))
    keras_like = (np.mean(x, axis=reduce).astype(np.float64), np.var(x, axis=reduce).astype(np.float64))
    return exact, keras_like


def check_standardised(model, x_train, name="selu_model"):
    """`_check_standardised` against the training images `x_train`, or against any of a list of them (a
    handed-in model may have been adapted to the images of another profile than the grading one)."""
    candidates = x_train if isinstance(x_train, (list, tuple)) else [x_train]
    failure = None
    for images in candidates:
        try:
            return _check_standardised(model, images, name)
        except AssertionError as error:
            failure = failure or error
    raise failure


def _check_standardised(model, x_train, name="selu_model"):
    """A Normalization layer before Flatten whose mean and variance are those of the training images.

    The statistics are compared over the layer's own axes (one mean per
    channel for the default axis=-1, or one per pixel and channel), on the
    images as they reach the layer (after any Rescaling before it), with the
    exact figures or with those numpy computes in float32 (`_statistics`),
    within a relative 1e-4 of either: float32 rounding of the stored weights
    is 6e-8; the statistics of other images (all 50,000 training images
    instead of X_train, say) differ by about 1e-3 or more.
    """
    parsed = Parsed(model, name)
    parsed.check_preprocessing()
    index = _standardisation_layer(parsed)
    layer = parsed.preprocessing[index]
    assert not getattr(layer, "invert", False), f"{name}: the Normalization layer inverts; expected it to standardise"
    axes = tuple(a % 4 for a in layer.axis)
    reduce = tuple(a for a in range(4) if a not in axes)
    exact, keras_like = _statistics(x_train, parsed.preprocessing[:index], reduce)
    got_mean = np.asarray(layer.mean, dtype=np.float64)
    got_variance = np.asarray(layer.variance, dtype=np.float64)
    assert got_mean.size == exact[0].size and got_variance.size == exact[1].size, (
        f"{name}: the Normalization layer holds {got_mean.size} means, expected {exact[0].size} for its "
        f"axis {layer.axis}")
    got_mean, got_variance = got_mean.reshape(exact[0].shape), got_variance.reshape(exact[1].shape)

    def matches(mean, variance):
        scale = np.sqrt(np.abs(variance))
        return bool(np.all(np.abs(got_mean - mean) <= 1e-4 * (np.abs(mean) + scale))
                    and np.all(np.abs(got_variance - variance) <= 1e-4 * np.abs(variance)))

    mean, variance = exact
    more = "..." if mean.size > 3 else ""
    assert matches(*exact) or matches(*keras_like), (
        f"{name}: expected the Normalization layer to be adapted to the training images X_train "
        f"(normalization.adapt(X_train) before building the model): their mean is "
        f"{np.round(mean.ravel()[:3], 2).tolist()}{more} and their variance "
        f"{np.round(variance.ravel()[:3], 1).tolist()}{more}, the layer holds "
        f"{np.round(got_mean.ravel()[:3], 2).tolist()}{more} and {np.round(got_variance.ravel()[:3], 1).tolist()}{more}")


def check_selu_params(model, name="selu_model"):
    """The trainable parameters of the plain stack: 500,210."""
    expected, received = plain_trainable(), trainable_count(model)
    assert received == expected, (
        f"{name}: expected {expected:,} trainable parameters (20 hidden Dense(100) layers and the output "
        f"layer, nothing else trained), received {received:,}")


def check_selu_architecture(model, x_train, name="selu_model"):
    """All the checks of question 4."""
    check_selu_layers(model, name)
    check_plain_stack(model, name)
    check_standardised(model, x_train, name)
    check_selu_params(model, name)


# --- 4. Alpha dropout -------------------------------------------------------------------------

def check_alpha_network(model, x_train, name="alpha_model"):
    """The self-normalising network of question 4 (its dropout layers aside)."""
    check_selu_layers(model, name)
    check_plain_stack(model, name, dropout=DROPOUT_LAYERS)
    check_standardised(model, x_train, name)
    check_selu_params(model, name)


def check_alpha_dropout(model, name="alpha_model"):
    """At least one AlphaDropout layer with a rate between 0 and 1, and no other kind of dropout."""
    parsed = Parsed(model, name)
    dropouts = [layer for layer in parsed.layers if _kind(layer) in DROPOUT_LAYERS]
    alphas = [layer for layer in dropouts if _kind(layer) == "AlphaDropout"]
    others = [layer for layer in dropouts if _kind(layer) != "AlphaDropout"]
    assert alphas and not others, (
        f"{name}: expected AlphaDropout layers, and no other kind of dropout (it would break "
        f"self-normalisation), received {_texts(dropouts) or 'no dropout layer'}")
    rates = [float(layer.rate) for layer in alphas]
    assert all(0 < rate < 1 for rate in rates), (
        f"{name}: expected AlphaDropout rates between 0 and 1 (0.1 in the exercise), received {rates}")


def check_alpha_architecture(model, x_train, name="alpha_model"):
    """All the checks of question 5's model."""
    check_alpha_network(model, x_train, name)
    check_alpha_dropout(model, name)


# --- Training records -------------------------------------------------------------------------

RECORD_KEYS = ("optimizer", "learning_rate", "early_stopping", "epochs", "history", "validation_examples",
               "seconds_per_epoch")
"""The keys of the notebook's `training_record`."""


def best_epoch(history, monitor):
    """The epoch (0-based) EarlyStopping keeps: the first best value of `monitor` (max for accuracies)."""
    values = history[monitor]
    return int(np.argmax(values)) if "acc" in monitor else int(np.argmin(values))
