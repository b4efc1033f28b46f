"""A submitted model's architecture, trained afresh in a sandbox of its own.

A `.keras` file handed in proves nothing by its accuracy: its weights may
have been trained anywhere, on the public test images too. So in the
submitted-models grading mode the graders ask for the architecture to be
retrained: `retraining_notebook` makes a notebook of the kit's own code (no
student code runs in it) that loads the file's architecture (checked on the
trusted side first, then loaded with ``safe_mode``), gives it fresh weights
(`keras.models.clone_model`), adapts its Normalization layers to the
training images, and trains it on the training split only, as the grader's
recipe says. It runs in a fresh sandboxed kernel under the assignment's
limits and profile (`nndl.grade.SubmissionServices.retrain`); the model it
leaves in the global ``retrained`` goes back to the graders as any exported
model does.
"""

import json

import nbformat

#: The recipe's keys, their meaning and defaults (a grader passes what differs).
RECIPE_DEFAULTS = {
    "dataset": "cifar10",        # nndl_datasets name; its training split only is in the sandbox
    "train": 45_000,             # the first `train` training images are trained on
    "valid": 5_000,              # the last `valid` are the validation set
    "epochs": 100,
    "batch_size": 32,
    "optimizer": "nadam",        # a keras.optimizers name
    "learning_rate": 1e-3,
    "patience": 10,              # EarlyStopping on val_accuracy, best weights restored; 0: none
    "loss": "sparse_categorical_crossentropy",
}

_SOURCE = '''
import json

import keras
import numpy as np

import nndl_datasets

recipe = json.loads(RECIPE)
keras.utils.set_random_seed(nndl_datasets.seed())
submitted = keras.saving.load_model(MODEL_FILE, safe_mode=True, compile=False)
retrained = keras.models.clone_model(submitted)  # the same architecture, fresh weights
(x, y), _ = nndl_datasets.load_data(recipe["dataset"])
x = x.astype("float32")
x_train, y_train = x[:recipe["train"]], y[:recipe["train"]]
x_valid, y_valid = x[-recipe["valid"]:], y[-recipe["valid"]:]
for layer in retrained.layers:
    if isinstance(layer, keras.layers.Normalization) and layer.input_mean is None:
        # Its statistics were weights, gone with the clone: adapted again, to the training
        # images as they reach it (after a Rescaling, say).
        upstream = keras.Model(retrained.inputs, layer.input)
        layer.adapt(upstream.predict(x_train, batch_size=1024, verbose=0))
retrained.compile(optimizer=keras.optimizers.get({"class_name": recipe["optimizer"],
                                                 "config": {"learning_rate": recipe["learning_rate"]}}),
                  loss=recipe["loss"], metrics=["accuracy"])
callbacks = []
if recipe["patience"]:
    callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=recipe["patience"],
                                                   restore_best_weights=True))
fitted = retrained.fit(x_train, y_train, epochs=recipe["epochs"], batch_size=recipe["batch_size"],
                       validation_data=(x_valid, y_valid), callbacks=callbacks, verbose=0)
history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
'''


class RecipeError(ValueError):
    """A grader's retraining recipe names a key the kit does not know, or a value of the wrong type."""


def recipe(**given):
    """The full recipe: `RECIPE_DEFAULTS` with what the grader gave, checked."""
    unknown = sorted(set(given) - set(RECIPE_DEFAULTS))
    if unknown:
        raise RecipeError(f"unknown retraining recipe key {unknown[0]!r}; known: {', '.join(RECIPE_DEFAULTS)}")
    full = {**RECIPE_DEFAULTS, **given}
    for key, default in RECIPE_DEFAULTS.items():
        kind = float if isinstance(default, float) else type(default)
        value = full[key]
        if not isinstance(value, (int, float) if kind is float else kind) or isinstance(value, bool):
            raise RecipeError(f"retraining recipe {key!r} is {value!r}; expected {kind.__name__}")
    if full["train"] < 1 or full["valid"] < 1 or full["epochs"] < 1 or full["batch_size"] < 1:
        raise RecipeError("retraining recipe: train, valid, epochs and batch_size must be 1 or more")
    return full


def retraining_notebook(model_file, full_recipe):
    """The kit's notebook that retrains `model_file`'s architecture by `full_recipe`."""
    source = (_SOURCE.replace("RECIPE", repr(json.dumps(full_recipe)), 1)
              .replace("MODEL_FILE", repr(str(model_file)), 1))
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.cells = [nbformat.v4.new_code_cell(source.strip())]
    return nb
