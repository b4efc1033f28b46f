"""Sample submissions for a04_batch_norm, with the scores they must get.

Each sample is the solution notebook with the source of some solution cells
replaced, keyed by grade_id. The expected points, for every autograded grade
cell that loses points, are reasoned out from the hidden graders in
`test_a04_batch_norm.py`; each description says why. A cell's score is its
points times the weight of its passing tests over the weight of all its
tests (all weights are 1 here). The written question `bn_bias_question` is
graded by hand and is not listed.

Most samples make two mistakes in different answer cells, graded by
different tests, so that twelve real mistakes and a spoof fit in seven
submissions (the whole batch must grade in two minutes on two cores); each
description says which tests each mistake fails.

The solution itself, the untouched release and the broken files are made by
`nndl.cli.samples` for every assignment.
"""

_FULL_MARKS = {
    "bn_train": 4.0,
    "bn_inference": 2.0,
    "bn_params": 2.0,
    "keras_bn_models": 3.0,
    "model_param_split": 3.0,
    "fold_bn": 3.0,
    "folded_model": 2.0,
}
"""Points of each autograded grade cell of the master, for checking `expected` only."""


def _expected(**changed):
    """The cells that lose points, checked against the master's grade ids."""
    unknown = set(changed) - set(_FULL_MARKS)
    if unknown:
        raise KeyError(f"Expected grade ids from {sorted(_FULL_MARKS)}, received {sorted(unknown)}")
    return {grade_id: float(points) for grade_id, points in changed.items()}


def _train(normalise, moving_var="var_batch", momentum_new="momentum", axes="tuple(range(x.ndim - 1))"):
    """batch_norm_train with parts swapped for a flaw."""
    return f'''
def batch_norm_train(x, gamma, beta, moving_mean, moving_var, momentum=0.99, epsilon=1e-3):
    x = np.asarray(x)
    axes = {axes}
    mu_batch = np.mean(x, axis=axes)
    var_batch = np.var(x, axis=axes)
    y = gamma * {normalise} + beta
    new_moving_mean = moving_mean * {momentum_new} + mu_batch * (1 - {momentum_new})
    new_moving_var = moving_var * {momentum_new} + {moving_var} * (1 - {momentum_new})
    return y, new_moving_mean, new_moving_var
'''.strip()


_RIGHT_NORMALISE = "(x - mu_batch) / np.sqrt(var_batch + epsilon)"

_UNBIASED_VARIANCE = '''
def batch_norm_train(x, gamma, beta, moving_mean, moving_var, momentum=0.99, epsilon=1e-3):
    """Uses the unbiased batch variance (ddof=1) everywhere."""
    x = np.asarray(x)
    axes = tuple(range(x.ndim - 1))
    mu_batch = x.mean(axis=axes)
    var_batch = x.var(axis=axes, ddof=1)
    y = gamma * (x - mu_batch) / np.sqrt(var_batch + epsilon) + beta
    return (y, moving_mean * momentum + mu_batch * (1 - momentum),
            moving_var * momentum + var_batch * (1 - momentum))
'''.strip()

_INFERENCE_EPSILON_OUTSIDE = '''
def batch_norm_inference(x, gamma, beta, moving_mean, moving_var, epsilon=1e-3):
    return gamma * (np.asarray(x) - moving_mean) / (np.sqrt(moving_var) + epsilon) + beta
'''.strip()

_INFERENCE_BATCH_STATISTICS = '''
def batch_norm_inference(x, gamma, beta, moving_mean, moving_var, epsilon=1e-3):
    """Normalises with the batch's statistics, as in training, and ignores the moving ones."""
    x = np.asarray(x)
    axes = tuple(range(x.ndim - 1))
    return gamma * (x - x.mean(axis=axes)) / np.sqrt(x.var(axis=axes) + epsilon) + beta
'''.strip()

_BN_PARAMS_ALL_TRAINABLE = '''
def bn_params(n_features, center=True, scale=True):
    """Counts the moving mean and variance as trainable."""
    return {"trainable": n_features * (int(center) + int(scale) + 2), "non_trainable": 0}
'''.strip()

_BN_PARAMS_IGNORES_FLAGS = '''
def bn_params(n_features, center=True, scale=True):
    """Always counts gamma and beta, whatever center and scale say."""
    return {"trainable": 2 * n_features, "non_trainable": 2 * n_features}
'''.strip()


def _split(conv_kernel):
    """The solution's model_param_split with another conv kernel count."""
    return f'''
def model_param_split(spec):
    shape = list(spec["input_shape"])
    trainable = non_trainable = 0
    for layer in spec["layers"]:
        kind = layer["type"]
        if kind == "dense":
            trainable += shape[-1] * layer["units"] + (layer["units"] if layer["use_bias"] else 0)
            shape = shape[:-1] + [layer["units"]]
        elif kind == "conv2d":
            k, s, filters = layer["kernel_size"], layer["strides"], layer["filters"]
            trainable += {conv_kernel} + (filters if layer["use_bias"] else 0)
            if layer["padding"] == "same":
                sides = [-(-n // s) for n in shape[:2]]
            else:
                sides = [(n - k) // s + 1 for n in shape[:2]]
            shape = sides + [filters]
        elif kind == "batch_norm":
            counts = bn_params(shape[-1], center=layer["center"], scale=layer["scale"])
            trainable += counts["trainable"]
            non_trainable += counts["non_trainable"]
        elif kind == "flatten":
            shape = [int(np.prod(shape))]
    return {{"total": trainable + non_trainable, "trainable": trainable, "non_trainable": non_trainable}}
'''.strip()


_MODELS_BIAS_KEPT = '''
model_bn_after = keras.Sequential([
    keras.Input(shape=(28, 28)), keras.layers.Flatten(), keras.layers.BatchNormalization(),
    keras.layers.Dense(300, activation="relu"), keras.layers.BatchNormalization(),
    keras.layers.Dense(100, activation="relu"), keras.layers.BatchNormalization(),
    keras.layers.Dense(10, activation="softmax"),
])
# BN moved before the activations, but the Dense layers keep their (useless) bias.
model_bn_before = keras.Sequential([
    keras.Input(shape=(28, 28)), keras.layers.Flatten(), keras.layers.BatchNormalization(),
    keras.layers.Dense(300), keras.layers.BatchNormalization(), keras.layers.Activation("relu"),
    keras.layers.Dense(100), keras.layers.BatchNormalization(), keras.layers.Activation("relu"),
    keras.layers.Dense(10, activation="softmax"),
])
codelab_model = keras.Sequential([keras.Input(shape=(28, 28, 1))] + [
    layer for filters, size, strides in [(12, 3, 1), (24, 6, 2), (32, 6, 2)]
    for layer in (keras.layers.Conv2D(filters, size, strides=strides, padding="same", use_bias=False),
                  keras.layers.BatchNormalization(scale=False, center=True), keras.layers.Activation("relu"))
] + [keras.layers.Flatten(), keras.layers.Dense(200, use_bias=False),
     keras.layers.BatchNormalization(scale=False, center=True), keras.layers.Activation("relu"),
     keras.layers.Dropout(0.4), keras.layers.Dense(10, activation="softmax")])
'''.strip()


def _fold(sigma, bias):
    return f'''
def fold_bn(W, b, gamma, beta, moving_mean, moving_var, epsilon=1e-3):
    sigma = {sigma}
    W_folded = np.asarray(W) * (gamma / sigma)
    b_folded = {bias}
    return W_folded, b_folded
'''.strip()


_RIGHT_SIGMA = "np.sqrt(moving_var + epsilon)"
_RIGHT_BIAS = "gamma * (b - moving_mean) / sigma + beta"

_SPOOF = '''
def batch_norm_train(x, gamma, beta, moving_mean, moving_var, momentum=0.99, epsilon=1e-3):
    """Arrays of the shapes the visible check asks for, nothing computed."""
    return np.zeros_like(x), np.zeros(np.shape(x)[-1]), np.ones(np.shape(x)[-1])


def batch_norm_inference(x, gamma, beta, moving_mean, moving_var, epsilon=1e-3):
    return np.zeros_like(x)


def bn_params(n_features, center=True, scale=True):
    return {"trainable": 2 * 784, "non_trainable": 2 * 784}


def model_param_split(spec):
    """The counts printed for Géron's model, whatever the spec."""
    return {"total": 271346, "trainable": 268978, "non_trainable": 2368}


def fold_bn(W, b, gamma, beta, moving_mean, moving_var, epsilon=1e-3):
    return np.asarray(W), np.asarray(b)
'''.strip()

SAMPLES = [
    {
        "name": "unbiased_variance_and_moving_stats_trainable",
        "description": (
            "Two mistakes. batch_norm_train uses the unbiased batch variance (ddof=1) where Keras 3 "
            "divides by m: with at most 144 values per feature the standard deviation is off by "
            "1/288 or more, so both output tests fail; the moving mean is right; the moving variance "
            "averages in m/(m-1) times the batch variance (at least (1 - 0.95)/31 of it too much) "
            "and fails: bn_train 4 * 1/4 = 1. bn_params counts the moving mean and variance as "
            "trainable (4n trainable, 0 non-trainable): both bn_params tests fail, 0; "
            "model_param_split uses it: its totals are right, so the dense total test passes, but "
            "the dense split and the conv test (which checks the split) fail: model_param_split "
            "3 * 1/3 = 1."),
        "replace": {"bn_train_answer": _UNBIASED_VARIANCE, "bn_params_answer": _BN_PARAMS_ALL_TRAINABLE},
        "expected": _expected(bn_train=1, bn_params=0, model_param_split=1),
    },
    {
        "name": "momentum_reversed_and_beta_forgotten",
        "description": (
            "Two mistakes. batch_norm_train weights the moving statistics by 1 - momentum and the "
            "batch's by momentum (PyTorch's convention): the outputs only use the batch statistics "
            "and pass; with momentum in [0.8, 0.95] and moving statistics drawn away from the "
            "batch's, both moving averages fail, bn_train 4 * 2/4 = 2. fold_bn leaves beta out of "
            "the folded bias (|beta| >= 0.5 in the fold tests): the three fold_bn tests fail, 0; "
            "folded_model's trained beta is nonzero, so its bias fails while its layers pass: "
            "folded_model 2 * 1/2 = 1."),
        "replace": {"bn_train_answer": _train(_RIGHT_NORMALISE, momentum_new="(1 - momentum)"),
                    "fold_bn_answer": _fold(_RIGHT_SIGMA, "gamma * (b - moving_mean) / sigma")},
        "expected": _expected(bn_train=2, fold_bn=0, folded_model=1),
    },
    {
        "name": "epsilon_mistakes",
        "description": (
            "Two mistakes with epsilon. Both passes divide by sqrt(var) + epsilon instead of "
            "sqrt(var + epsilon); half the features have a standard deviation in [0.02, 0.2], where "
            "the two differ by 1% or more: both training output tests fail, the moving statistics "
            "(no epsilon there) pass, bn_train 4 * 2/4 = 2; both inference tests fail, bn_inference "
            "0. fold_bn leaves epsilon out of sigma (as Géron's formula does): with moving "
            "variances in [0.5, 2] and epsilon in [1e-3, 1e-2], every folded weight is off by "
            "2.5e-4 relative or more, beyond the 1e-5 tolerance: the three fold_bn tests fail, 0. "
            "folded_model is built with it: its layers pass, its weights (trained moving variances "
            "about 0.6, epsilon 1e-3: off by about 8e-4) fail, folded_model 2 * 1/2 = 1."),
        "replace": {"bn_train_answer": _train("(x - mu_batch) / (np.sqrt(var_batch) + epsilon)"),
                    "bn_inference_answer": _INFERENCE_EPSILON_OUTSIDE,
                    "fold_bn_answer": _fold("np.sqrt(moving_var)", _RIGHT_BIAS)},
        "expected": _expected(bn_train=2, bn_inference=0, fold_bn=0, folded_model=1),
    },
    {
        "name": "conv_confusions",
        "description": (
            "Two mistakes about convolutional feature maps. batch_norm_train reduces over the batch "
            "axis only (axis=0), so a (batch, height, width, channels) input gets statistics per "
            "position instead of per channel: the 2-D output test and the moving-statistics tests "
            "(2-D inputs) pass, the 4-D output test fails, bn_train 4 * 3/4 = 3 "
            "(batch_norm_inference is the solution's). model_param_split counts a Conv2D kernel as "
            "k * k * filters, without the input channels (at least 2 in every conv spec): the two "
            "dense tests pass, the conv test fails, model_param_split 3 * 2/3 = 2."),
        "replace": {"bn_train_answer": _train(_RIGHT_NORMALISE, axes="0"),
                    "model_param_split_answer": _split("k * k * filters")},
        "expected": _expected(bn_train=3, model_param_split=2),
    },
    {
        "name": "flags_and_biases_ignored",
        "description": (
            "Two mistakes about which parameters exist. bn_params always counts gamma and beta, "
            "ignoring center and scale: the default test passes, the flags test fails, bn_params "
            "2 * 1/2 = 1; the dense specs only have default BN layers and pass both tests, every "
            "conv spec has a BN(scale=False): model_param_split 3 * 2/3 = 2. model_bn_before keeps "
            "the Dense layers' biases (use_bias=True): its layer list and counts differ, that test "
            "fails, the other two models pass: keras_bn_models 3 * 2/3 = 2."),
        "replace": {"bn_params_answer": _BN_PARAMS_IGNORES_FLAGS, "keras_models_answer": _MODELS_BIAS_KEPT},
        "expected": _expected(bn_params=1, model_param_split=2, keras_bn_models=2),
    },
    {
        "name": "inference_batch_statistics_and_bias_not_scaled",
        "description": (
            "batch_norm_inference normalises with the batch's mean and variance, ignoring the moving "
            "statistics (drawn 0.5 to 2 standard deviations and a factor 2 to 4 away from the "
            "batch's): both inference tests fail, bn_inference 0. fold_bn adds the Dense bias "
            "unscaled, b' = b - gamma * mean / sigma + beta: right when b = 0, so the bias-free test "
            "passes, while the with-bias test and the Keras test (with a bias) fail, fold_bn "
            "3 * 1/3 = 1; bn_dense_model's Dense layer has no bias, so folded_model is right."),
        "replace": {"bn_inference_answer": _INFERENCE_BATCH_STATISTICS,
                    "fold_bn_answer": _fold(_RIGHT_SIGMA, "b - gamma * moving_mean / sigma + beta")},
        "expected": _expected(bn_inference=0, fold_bn=1),
    },
    {
        "name": "spoof_visible_checks",
        "description": (
            "Every function returns what the visible checks look at, right types and shapes, "
            "nothing computed: zeros for the outputs, fixed moving statistics, the counts of "
            "Géron's model for any spec, W and b unfolded. Every hidden test draws its own inputs "
            "and compares values: bn_train, bn_inference, bn_params, model_param_split and fold_bn "
            "0. The Keras models are the solution's (full marks); folded_model is built with the "
            "unfolded weights: its layers pass, its weights fail, 1."),
        "replace": {"bn_train_answer": _SPOOF, "bn_inference_answer": "", "bn_params_answer": "",
                    "model_param_split_answer": "", "fold_bn_answer": ""},
        "expected": _expected(bn_train=0, bn_inference=0, bn_params=0, model_param_split=0, fold_bn=0,
                              folded_model=1),
    },
]
"""Flawed submissions: name, description (why these scores), replace, expected."""
