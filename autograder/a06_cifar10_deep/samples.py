"""Sample submissions for a06_cifar10_deep, with the scores they must get.

Each sample is the solution notebook (the master with its solutions in place)
with the source of some solution cells replaced, keyed by grade_id. The
expected points, for every autograded grade cell, are reasoned out from the
hidden graders in `test_a06_cifar10_deep.py` and the checks of `reference.py`;
each description says why, for any seed. A cell's score is its points times
the weight of its passing tests over the weight of all its tests.

The samples are graded in the smoke profile (`tests/test_assignments.py`):
accuracies are compared with the thresholds calibrated for that profile
(`calibration/smoke.json`). An architecture flaw changes the network little
enough that it trains as well as the solution's in two epochs (measured:
docstring of each), so it loses exactly its architecture tests' points. The
solution itself, the untouched release and the broken files any assignment
can receive are made by `nndl.cli.samples`.
"""

_FULL_MARKS = {
    "plain_architecture": 4.0,
    "training_setup": 3.0,
    "plain_accuracy": 2.0,
    "bn_architecture": 3.0,
    "bn_accuracy": 2.0,
    "selu_architecture": 4.0,
    "selu_accuracy": 2.0,
    "alpha_architecture": 2.0,
    "alpha_accuracy": 2.0,
    "mc_dropout": 4.0,
}
"""Points of each autograded grade cell of the master, for writing `expected` only."""


def _expected(**changed):
    """Full marks on every autograded cell except those given."""
    unknown = set(changed) - set(_FULL_MARKS)
    if unknown:
        raise KeyError(f"Expected grade ids from {sorted(_FULL_MARKS)}, received {sorted(unknown)}")
    return {**_FULL_MARKS, **{grade_id: float(points) for grade_id, points in changed.items()}}


_PLAIN_TEMPLATE = '''
plain_model = keras.Sequential(
    [keras.Input(shape=(32, 32, 3)), keras.layers.Rescaling(1 / 127.5, offset=-1), keras.layers.Flatten()]
    + [keras.layers.Dense(100, {hidden}) for _ in range({n_hidden})]
    + [keras.layers.Dense(10, activation="softmax")]
)
plain_model.summary()
'''.strip()

_PLAIN_19 = _PLAIN_TEMPLATE.format(hidden='activation="elu", kernel_initializer="he_normal"', n_hidden=19)
_PLAIN_RELU = _PLAIN_TEMPLATE.format(hidden='activation="relu", kernel_initializer="he_normal"', n_hidden=20)
_PLAIN_GLOROT = _PLAIN_TEMPLATE.format(hidden='activation="elu"', n_hidden=20)

_BN_NO_INPUT_BN = '''
# The inputs are standardised by a Normalization layer, so no BN layer after Flatten.
bn_normalization = keras.layers.Normalization()
bn_normalization.adapt(X_train)
_layers = [keras.Input(shape=(32, 32, 3)), bn_normalization, keras.layers.Flatten()]
for _ in range(20):
    _layers += [keras.layers.Dense(100, kernel_initializer="he_normal"),
                keras.layers.BatchNormalization(),
                keras.layers.Activation("elu")]
_layers.append(keras.layers.Dense(10, activation="softmax"))
bn_model = keras.Sequential(_layers)
bn_model.summary()
'''.strip()

_SELU_WITH_BN = '''
# The BN model with SELU: the batch normalisation layers were left in.
normalization = keras.layers.Normalization()
normalization.adapt(X_train)
_layers = [keras.Input(shape=(32, 32, 3)), normalization, keras.layers.Flatten()]
for _ in range(20):
    _layers += [keras.layers.Dense(100, activation="selu", kernel_initializer="lecun_normal"),
                keras.layers.BatchNormalization()]
_layers.append(keras.layers.Dense(10, activation="softmax"))
selu_model = keras.Sequential(_layers)
selu_model.summary()
'''.strip()

_SELU_RESCALED = '''
# The other models' preprocessing: pixels scaled to [-1, 1], centred on their range but not standardised.
selu_model = keras.Sequential(
    [keras.Input(shape=(32, 32, 3)), keras.layers.Rescaling(1 / 127.5, offset=-1), keras.layers.Flatten()]
    + [keras.layers.Dense(100, activation="selu", kernel_initializer="lecun_normal") for _ in range(20)]
    + [keras.layers.Dense(10, activation="softmax")]
)
selu_model.summary()
'''.strip()

_PLAIN_TRAINING_TOO_LITTLE = '''
# A first try on one batch of images, never rerun on the whole training set.
plain_training = train(plain_model, 1e-4, X_train[:32], y_train[:32], X_valid, y_valid)
show_training("plain_model", plain_training)
'''.strip()

_TRAIN_NO_RESTORE = '''
def train(model, learning_rate, X_train, y_train, X_valid, y_valid):
    """Early stopping without restore_best_weights: the last epoch's weights are kept."""
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=keras.optimizers.Nadam(learning_rate=learning_rate),
                  metrics=["accuracy"])
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=SIZES["patience"]),
                 EpochTimer()]
    history = model.fit(X_train, y_train, epochs=SIZES["epochs"], batch_size=SIZES["batch_size"],
                        validation_data=(X_valid, y_valid), callbacks=callbacks, verbose=0)
    return training_record(model, history, callbacks, X_valid)
'''.strip()

_MC_NOT_FORCED = '''
class MCAlphaDropout(keras.layers.AlphaDropout):
    """Meant to stay active at prediction time, but it passes Keras's training flag on unchanged."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=training)


mc_model = keras.Sequential(
    [keras.Input(shape=(32, 32, 3))]
    + [MCAlphaDropout(layer.rate) if isinstance(layer, keras.layers.AlphaDropout) else layer
       for layer in alpha_model.layers]
)


def mc_dropout_predict(X, n_samples):
    X = np.asarray(X, dtype="float32")
    Y_probas = np.stack([mc_model.predict(X, batch_size=1000, verbose=0) for _ in range(n_samples)])
    return Y_probas.mean(axis=0)
'''.strip()

_SPOOF_RECORD = '''
# Typed in from what the visible checks and show_training print; {model} is never trained.
{record} = {{
    "optimizer": "Nadam", "learning_rate": {rate}, "epochs": 2,
    "early_stopping": {{"monitor": "val_accuracy", "patience": 1, "restore_best_weights": True}},
    "history": {{"loss": [2.1, 1.9], "accuracy": [0.24, 0.31], "val_loss": [2.0, 1.9],
                "val_accuracy": [0.281, 0.312]}},
    "validation_examples": 1000, "seconds_per_epoch": [9.5, 8.7],
}}
show_training("{model}", {record})
'''.strip()

_NOT_ANSWERED = "# YOUR CODE HERE\nraise NotImplementedError()"
_QUESTIONS_3_TO_5_NOT_ANSWERED = {grade_id: _NOT_ANSWERED for grade_id in (
    "bn_model_answer", "bn_training_answer", "selu_model_answer", "selu_training_answer",
    "alpha_model_answer", "alpha_training_answer", "mc_dropout_answer")}

SAMPLES = [
    {
        "name": "nineteen_layers_bn_input_missing_selu_with_bn",
        "description": (
            "Three architecture mistakes, one per model, each scored by its own cell. (1) plain_model has 19 "
            "hidden layers instead of 20: the layers test fails (19 hidden Dense layers) and so does the "
            "parameter count (490,110 trainable, 10,100 short of 500,210); every hidden layer is still ELU "
            "with He initialisation: plain_architecture 4 * 2/4 = 2. (2) bn_model has a BN layer in each "
            "hidden layer but none right after its input's Flatten (a Normalization layer standardises the "
            "images instead): the input-BN test fails, and the counts test too (6,144 trainable and 6,144 "
            "non-trainable parameters short); the hidden-layers test passes: bn_architecture 3 * 1/3 = 1. "
            "(3) selu_model keeps a BatchNormalization layer after each SELU Dense layer: its 20 hidden "
            "layers are still Dense(100, selu, lecun_normal) and its Normalization layer is adapted to "
            "X_train (both tests pass), but it is no plain stack (fails) and has 4,000 trainable "
            "parameters too many (fails): selu_architecture 4 * 2/4 = 2. Each of the three networks "
            "trains as well as the solution's in the smoke profile (their test accuracies lie within the "
            "solution's calibrated spread), so every accuracy earns every step."),
        "replace": {"plain_model_answer": _PLAIN_19, "bn_model_answer": _BN_NO_INPUT_BN,
                    "selu_model_answer": _SELU_WITH_BN},
        "expected": _expected(plain_architecture=2, bn_architecture=1, selu_architecture=2),
    },
    {
        "name": "relu_instead_of_elu_selu_not_standardised",
        "description": (
            "(1) plain_model's hidden layers use ReLU: only the activations test fails (layers, He "
            "initialisation and the 500,210 parameters are right): plain_architecture 4 * 3/4 = 3. (2) "
            "selu_model scales the pixels to -1..1 with Rescaling instead of standardising them with a "
            "Normalization layer adapted to X_train: only the standardised-inputs test fails: "
            "selu_architecture 4 * 3/4 = 3. Both networks train about as well in two epochs, so every "
            "accuracy earns every step."),
        "replace": {"plain_model_answer": _PLAIN_RELU, "selu_model_answer": _SELU_RESCALED},
        "expected": _expected(plain_architecture=3, selu_architecture=3),
    },
    {
        "name": "glorot_instead_of_he_no_restore_best_weights",
        "description": (
            "(1) plain_model leaves kernel_initializer out, so Keras's default Glorot uniform "
            "initialisation (variance 1 / fan-avg) replaces He's (2 / fan-in): only the initialisers test "
            "fails: plain_architecture 4 * 3/4 = 3. (2) train's EarlyStopping leaves restore_best_weights "
            "at its default, False, so each model keeps its last epoch's weights: the early-stopping test "
            "fails on the record's setting for every model, whatever the epochs' accuracies; the records "
            "still describe the training (each model's validation accuracy is its last epoch's) and the "
            "optimizer is Nadam: training_setup 3 * 2/3 = 2. The last epoch's weights are as good on the "
            "test images as the best epoch's (in two epochs the last is the best most of the time, and "
            "otherwise within the spread), so every accuracy earns every step."),
        "replace": {"plain_model_answer": _PLAIN_GLOROT, "train_answer": _TRAIN_NO_RESTORE},
        "expected": _expected(plain_architecture=3, training_setup=2),
    },
    {
        "name": "trained_on_too_little_mc_dropout_not_forced",
        "description": (
            "(1) plain_model is trained on the first 32 images only (one batch per epoch): its test "
            "accuracy stays at chance, 0.106 ± 0.012 over 10 seeds (highest 0.122), below even the first "
            "credit step, which lies above the floor of 0.15: plain_accuracy 0 for any seed. Its record "
            "still describes its training, validated on X_valid, with Nadam and early stopping: "
            "training_setup keeps 3. (2) MCAlphaDropout passes Keras's training flag on unchanged, so "
            "predict runs it in inference mode and every pass is alpha_model's deterministic prediction: "
            "the shape test passes, the stochastic-passes and the averaging tests fail (two passes are "
            "identical), and the accuracy test passes: the MC average is the deterministic prediction, a "
            "gain of 0, above the calibrated threshold (negative: the MC average may be slightly less "
            "accurate than one pass): mc_dropout 4 * 2/4 = 2."),
        "replace": {"plain_training_answer": _PLAIN_TRAINING_TOO_LITTLE, "mc_dropout_answer": _MC_NOT_FORCED},
        "expected": _expected(plain_accuracy=0, mc_dropout=2),
    },
    {
        "name": "questions_3_to_5_not_answered",
        "description": (
            "Only questions 1 and 2 are answered (the release's stubs are left in questions 3 to 5): "
            "plain_model and its training earn full marks (the training records of the models that were "
            "never built are not asked for); bn_model, selu_model, alpha_model and mc_dropout_predict do "
            "not exist, so every test of their cells fails: 0 on each."),
        "replace": _QUESTIONS_3_TO_5_NOT_ANSWERED,
        "expected": _expected(bn_architecture=0, bn_accuracy=0, selu_architecture=0, selu_accuracy=0,
                              alpha_architecture=0, alpha_accuracy=0, mc_dropout=0),
    },
    {
        "name": "spoof_visible_checks",
        "description": (
            "The training records of plain_model, bn_model and selu_model are typed in from what the visible "
            "checks print, and those models are never trained. The grader measures each model's validation "
            "accuracy itself: untrained, about 0.10, which is none of the typed-in 0.281 and 0.312, so "
            "every training_setup test fails: 0. Untrained, the three models score 0.10 ± 0.01 on the test "
            "images (highest of 60 initialisations: 0.127), under the floor of 0.15: plain, bn and selu "
            "accuracy 0. Their architectures are the solution's (full marks), and alpha_model is trained for "
            "real, so its accuracy and MC dropout keep full marks."),
        "replace": {
            "plain_training_answer": _SPOOF_RECORD.format(record="plain_training", model="plain_model", rate="0.0001"),
            "bn_training_answer": _SPOOF_RECORD.format(record="bn_training", model="bn_model", rate="0.0005"),
            "selu_training_answer": _SPOOF_RECORD.format(record="selu_training", model="selu_model", rate="0.0003"),
        },
        "expected": _expected(training_setup=0, plain_accuracy=0, bn_accuracy=0, selu_accuracy=0),
    },
]
"""Flawed submissions: name, description (why these scores), replace, expected. Flaws that touch
different grade cells share a notebook, so that the batch trains fewer networks (each training notebook
costs about a minute of CPU in the smoke profile)."""

BROKEN_BASE = "questions_3_to_5_not_answered"
"""The broken kinds (cut-off JSON, a deleted grade cell, a duplicated cell id, a dying kernel) are made
from this sample's notebook, which trains one network instead of four."""

# --- The submitted-models mode ------------------------------------------------------------------------

MODELS = ("plain_model", "bn_model", "selu_model", "alpha_model")

SUBMITTED = [
    {
        "name": "solution_with_its_models",
        "description": (
            "The solution notebook, with the four architectures handed in as .keras files (fresh weights: "
            "in this mode weights earn nothing). Every architecture check passes on the files; each "
            "architecture retrained in the sandbox reaches the solution's accuracies; the training records "
            "and MC dropout come from the notebook's run: full marks."),
        "files": {name: "architecture" for name in MODELS},
        "grade_submitted_weights": False,
        "expected": _expected(),
    },
    {
        "name": "refused_files_and_weights_trained_on_test",
        "description": (
            "plain_model.keras holds weights trained on the 10,000 public test images: its architecture is "
            "the solution's, and its accuracy credit comes from retraining that architecture with fresh "
            "weights on the training split, so the memorised weights earn nothing and the plain cells earn "
            "what the architecture earns: full marks (the grader's measured accuracy is the retrained "
            "model's, far below the handed-in weights' own). bn_model.keras holds a Lambda layer, "
            "selu_model.keras names a layer class from a module outside Keras's, and alpha_model.keras is "
            "not a Keras file: each is refused before loading, so its architecture and accuracy cells earn "
            "0. The notebook answers questions 1 and 2 only (it trains one network, not four): plain_model's "
            "training record earns full marks, and mc_dropout_predict does not exist: mc_dropout 0."),
        "replace": _QUESTIONS_3_TO_5_NOT_ANSWERED,
        "files": {"plain_model": "trained_on_test", "bn_model": "lambda", "selu_model": "foreign_class",
                  "alpha_model": "not_keras"},
        "grade_submitted_weights": False,
        "expected": _expected(bn_architecture=0, bn_accuracy=0, selu_architecture=0, selu_accuracy=0,
                              alpha_architecture=0, alpha_accuracy=0, mc_dropout=0),
        "messages": ["Lambda", "not one of Keras's", "not a Keras"],
    },
    {
        "name": "weights_graded_as_handed_in",
        "description": (
            "The instructor grades the handed-in weights. selu_model.keras is trained honestly (the smoke "
            "recipe, on the training split): its accuracy earns every step and it is not flagged. "
            "plain_model.keras is trained on the 10,000 test images: its test accuracy is far above its accuracy "
            "on the 5,000 validation images, so it is flagged and earns no accuracy credit. bn_model.keras "
            "and alpha_model.keras hold untrained weights: chance accuracy, 0. The architectures are the "
            "solution's: full marks for them. The notebook answers questions 1 and 2 only: plain_model's "
            "training record earns full marks, and mc_dropout_predict does not exist: mc_dropout 0."),
        "replace": _QUESTIONS_3_TO_5_NOT_ANSWERED,
        "files": {"plain_model": "trained_on_test", "bn_model": "architecture", "selu_model": "trained",
                  "alpha_model": "architecture"},
        "grade_submitted_weights": True,
        "expected": _expected(plain_accuracy=0, bn_accuracy=0, alpha_accuracy=0, mc_dropout=0),
        "messages": ["plain_model is flagged"],
    },
]
"""Submissions graded in the submitted-models mode (`[grading] mode = "submitted"`), with the
`.keras` files `model_file` makes. Graded in the smoke profile by `tests/test_assignments.py`."""


def architecture(model_name, x_train):
    """The solution's architecture of `model_name`, fresh weights; Normalization adapted to `x_train`."""
    import keras

    inputs = [keras.Input(shape=(32, 32, 3))]
    if model_name == "plain_model":
        return keras.Sequential(
            inputs + [keras.layers.Rescaling(1 / 127.5, offset=-1), keras.layers.Flatten()]
            + [keras.layers.Dense(100, activation="elu", kernel_initializer="he_normal") for _ in range(20)]
            + [keras.layers.Dense(10, activation="softmax")])
    if model_name == "bn_model":
        layers = inputs + [keras.layers.Rescaling(1 / 127.5, offset=-1), keras.layers.Flatten(),
                           keras.layers.BatchNormalization()]
        for _ in range(20):
            layers += [keras.layers.Dense(100, kernel_initializer="he_normal"), keras.layers.BatchNormalization(),
                       keras.layers.Activation("elu")]
        return keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax")])
    normalization = keras.layers.Normalization()
    normalization.adapt(x_train)
    dropout = [keras.layers.AlphaDropout(rate=0.1)] if model_name == "alpha_model" else []
    return keras.Sequential(
        inputs + [normalization, keras.layers.Flatten()]
        + [keras.layers.Dense(100, activation="selu", kernel_initializer="lecun_normal") for _ in range(20)]
        + dropout + [keras.layers.Dense(10, activation="softmax")])


def model_file(kind, model_name, path, profile="smoke", seed=0):
    """Write the handed-in file `path` of one `kind`:

    ``architecture``: the solution's architecture, untrained; ``trained``: trained as the notebook's
    `train` does under `profile`, on the training split; ``trained_on_test``: trained on the 10,000
    test images (6 epochs), which it then scores well above images it never saw; ``lambda``: a Lambda layer after Flatten; ``foreign_class``: a
    Dense layer's class named from a module outside Keras's in config.json; ``not_keras``: not a zip.
    """
    import json
    import zipfile

    import keras
    import numpy as np

    import nndl_datasets
    import reference

    path = str(path)
    if kind == "not_keras":
        with open(path, "wb") as file:
            file.write(b"PK\x03\x04 a notebook's output saved under the wrong name")
        return path
    keras.utils.set_random_seed(seed)
    x_train = reference.training_images(profile).astype("float32")
    model = architecture(model_name, x_train)
    if kind == "lambda":
        layers = list(model.layers)
        model = keras.Sequential([keras.Input(shape=(32, 32, 3))] + layers[:2] + [keras.layers.Lambda(lambda t: t * 1.0)]
                                 + layers[2:])
    if kind in ("trained", "trained_on_test"):
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      optimizer=keras.optimizers.Nadam(learning_rate=reference.RATES[model_name]))
        if kind == "trained":
            sizes = reference.SIZES[profile]
            (x, y), _ = nndl_datasets.load_data("cifar10")
            y = np.asarray(y).ravel()
            model.fit(x_train, y[:len(x_train)], epochs=sizes["epochs"], batch_size=sizes["batch_size"], verbose=0)
        else:
            x_test, y_test = reference.test_data()
            model.optimizer.learning_rate = 1e-3
            model.fit(x_test, y_test, epochs=6, batch_size=64, verbose=0)
    model.save(path)
    if kind == "foreign_class":
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        config = json.loads(members["config.json"])
        dense = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")
        dense["module"] = "student_layers"
        members["config.json"] = json.dumps(config).encode()
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    return path
