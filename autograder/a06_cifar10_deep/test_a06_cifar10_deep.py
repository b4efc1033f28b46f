"""Hidden graders for a06_cifar10_deep (a deep network on CIFAR-10: ELU, BN, SELU, alpha and MC dropout).

Each test scores part of one nbgrader grade cell through the engine's
`grade_cell` marker, and reaches the submission only through the engine's
`student` fixture: the four trained models come as `.keras` files loaded
safely (`student.model`), the training records as data (`student.value`), and
MC dropout as calls of `mc_dropout_predict` on images chosen here
(`student.call`; images cross, labels never do). Architecture checks are the
functions of `reference.py`, which take a loaded model. Accuracies are
measured here, on the 10,000 test images the sandbox never has, and compared
with thresholds that `nndl calibrate` derived from runs of the reference
solution under the grading profile: credit grows in `reference.STEPS` equal
steps from `reference.FLOOR` (chance plus 5 points) to the threshold.

In the submitted-models mode (``[grading] mode = "submitted"``) the
architecture tests read the handed-in files (``plain_model.keras``, ...)
instead, and the accuracy tests the same architectures retrained with fresh
weights in the sandbox by the kit (`reference.retraining_recipe`); with
``grade_submitted_weights`` the handed-in weights' own accuracy is graded,
and a model whose validation accuracy falls short of its test accuracy by
more than the calibrated spread is flagged and earns no accuracy credit.
The training records and MC dropout come from the notebook's run in both
modes.
"""

import math
import os

import numpy as np
import pytest

import reference  # from this grader folder: the copy that travelled with the job

MODELS = ("plain_model", "bn_model", "selu_model", "alpha_model")
RECORDS = {"plain_model": "plain_training", "bn_model": "bn_training", "selu_model": "selu_training",
           "alpha_model": "alpha_training"}


def _describe(value):
    """Short, student-readable rendering of a received value and its type."""
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return f"{text[:200]}{'...' if len(text) > 200 else ''} ({type(value).__name__})"


@pytest.fixture(scope="session")
def profile():
    """The grading profile (the notebook's SIZES follow it)."""
    value = os.environ.get("NNDL_PROFILE") or "full"
    assert value in reference.SIZES, f"unknown grading profile {value!r}"
    return value


@pytest.fixture(scope="session")
def kernel_models(student):
    """The models the notebook trained in the sandbox, loaded once each, on first use; a model that cannot
    be had fails its tests."""
    loaded = {}

    def get(name):
        if name not in loaded:
            loaded[name] = student.model(name)
        return loaded[name]

    return get


@pytest.fixture(scope="session")
def handed_in(grading):
    """Whether this assignment grades the `.keras` files handed in beside the notebook."""
    return grading.mode == "submitted"


@pytest.fixture(scope="session")
def models(student, kernel_models, handed_in):
    """The models whose architectures are graded: the handed-in files ("plain_model.keras", ...) in the
    submitted-models mode, loaded safely; otherwise the notebook's own."""
    loaded = {}

    def get(name):
        if not handed_in:
            return kernel_models(name)
        if name not in loaded:
            loaded[name] = student.submitted_model(f"{name}.keras")
        return loaded[name]

    return get


@pytest.fixture(scope="session")
def adapted_to(profile, handed_in):
    """The training images a Normalization layer may be adapted to: the profile's; a handed-in model
    may also have been adapted to those of the other profile (trained at home, at full scale)."""
    if handed_in:
        return [reference.training_images(p) for p in dict.fromkeys([profile, *reference.SIZES])]
    return reference.training_images(profile)


@pytest.fixture(scope="session")
def accuracy_models(student, models, profile, grading, handed_in):
    """The model whose test accuracy earns the accuracy credit.

    retrain mode: the notebook's. Submitted-models mode: the handed-in
    architecture trained again with fresh weights, on the training split only
    (`reference.retraining_recipe`), unless the instructor chose to grade the
    handed-in weights as they are.
    """
    loaded = {}

    def get(name):
        if name not in loaded:
            if handed_in and not grading.grade_submitted_weights:
                models(name)  # a refused file fails here, with its reason, before any retraining
                loaded[name] = student.retrained_model(f"{name}.keras",
                                                       **reference.retraining_recipe(name, profile))
            else:
                loaded[name] = models(name)
        return loaded[name]

    return get


@pytest.fixture(scope="session")
def test_accuracies(accuracy_models):
    """Each model's accuracy on the 10,000 test images, and on the 5,000 validation images, measured once."""
    measured = {}

    def get(name, split="test"):
        if (name, split) not in measured:
            model = accuracy_models(name)
            assert tuple(model.input_shape) == (None,) + reference.IMAGE_SHAPE and tuple(model.output_shape) == (
                None, reference.N_CLASSES), (
                f"{name}: expected raw 32x32x3 images in and 10 class probabilities out to be evaluated, "
                f"received input shape {model.input_shape} and output shape {model.output_shape}")
            x, y = reference.test_data() if split == "test" else reference.full_validation_data()
            measured[name, split] = reference.accuracy(model, x, y)
        return measured[name, split]

    return get


# --- 1. The plain deep network -------------------------------------------------------------------

@pytest.mark.grade_cell("plain_architecture", weight=1)
def test_plain_layers(models):
    """Input, preprocessing, Flatten, exactly 20 hidden Dense(100) and a Dense(10, softmax) output; nothing else?"""
    reference.check_plain_layers(models("plain_model"))


@pytest.mark.grade_cell("plain_architecture", weight=1)
def test_plain_activations(models):
    """Does every hidden layer apply ELU?"""
    reference.check_plain_activations(models("plain_model"))


@pytest.mark.grade_cell("plain_architecture", weight=1)
def test_plain_initializers(models):
    """Does every hidden Dense layer use He initialisation?"""
    reference.check_plain_initializers(models("plain_model"))


@pytest.mark.grade_cell("plain_architecture", weight=1)
def test_plain_param_count(models):
    """Are its trainable parameters the 500,210 of the rules?"""
    reference.check_plain_params(models("plain_model"))


# --- 2. The training records ------------------------------------------------------------------------

def _record(student, kernel_models, profile, model_name):
    """The training record of one model, checked to describe that model's training.

    The record must have training_record's keys, a history of 1 to
    SIZES["epochs"] epochs with a validation accuracy per epoch, the profile's
    number of validation images; and the model's accuracy on those images,
    measured here, must be one of the history's validation accuracies (within
    one image: the same weights give the same predictions, up to float
    rounding in near-ties). A record typed in, or made on other validation
    images, fails here.
    """
    name = RECORDS[model_name]
    sizes = reference.SIZES[profile]
    record = student.value(name)
    assert isinstance(record, dict) and set(reference.RECORD_KEYS) <= set(record), (
        f"{name}: expected the dict that training_record returns, with the keys {list(reference.RECORD_KEYS)}, "
        f"received {_describe(record)}")
    epochs, history = record["epochs"], record["history"]
    assert isinstance(epochs, int) and 1 <= epochs <= sizes["epochs"], (
        f"{name}['epochs']: expected between 1 and {sizes['epochs']} epochs (SIZES['epochs']), received "
        f"{_describe(epochs)}")
    val = history.get("val_accuracy") if isinstance(history, dict) else None
    assert isinstance(val, list) and len(val) == epochs and all(isinstance(v, float) for v in val), (
        f"{name}['history']: expected a 'val_accuracy' for each of the {epochs} epochs (fit with "
        f"validation_data=(X_valid, y_valid) and metrics=['accuracy']), received "
        f"{sorted(history) if isinstance(history, dict) else _describe(history)}")
    assert record["validation_examples"] == sizes["valid"], (
        f"{name}: expected validation on the {sizes['valid']:,} images of X_valid, received "
        f"{_describe(record['validation_examples'])} validation images")
    x_valid, y_valid = reference.validation_data(profile)
    measured = reference.accuracy(kernel_models(model_name), x_valid, y_valid)
    tolerance = 1.5 / len(y_valid)
    assert any(abs(measured - v) <= tolerance for v in val), (
        f"{name}: {model_name}'s accuracy on the validation images X_valid, measured by the grader, is "
        f"{measured:.4f}, which is none of the validation accuracies of its history "
        f"{[round(v, 4) for v in val]}: the record does not describe this model's training on "
        f"(X_valid, y_valid)")
    return record, measured


def _records(student, kernel_models, profile):
    """The records of the models the notebook trained; the plain model's is required."""
    found = {}
    for model_name in MODELS:
        try:
            student.value(RECORDS[model_name])
        except Exception:  # not trained (an unanswered question): that question's own tests say so
            if model_name == "plain_model":
                raise
            continue
        found[model_name] = _record(student, kernel_models, profile, model_name)
    return found


@pytest.mark.grade_cell("training_setup", weight=1)
def test_records_describe_the_training(student, kernel_models, profile):
    """Does each training record describe its model's training, validated on X_valid?"""
    _records(student, kernel_models, profile)


@pytest.mark.grade_cell("training_setup", weight=1)
def test_nadam(student, kernel_models, profile):
    """Was each model compiled with Nadam, at a learning rate of the student's choice?"""
    for model_name, (record, _) in _records(student, kernel_models, profile).items():
        name = RECORDS[model_name]
        assert record["optimizer"] == "Nadam", (
            f"{name}: expected {model_name} to be trained with keras.optimizers.Nadam, received "
            f"{record['optimizer']!r}")
        rate = record["learning_rate"]
        assert isinstance(rate, float) and math.isfinite(rate) and 0 < rate < 1, (
            f"{name}: expected a learning rate between 0 and 1, received {_describe(rate)}")


@pytest.mark.grade_cell("training_setup", weight=1)
def test_early_stopping(student, kernel_models, profile):
    """EarlyStopping with the profile's patience, restore_best_weights, and the best epoch's weights kept?"""
    sizes = reference.SIZES[profile]
    for model_name, (record, measured) in _records(student, kernel_models, profile).items():
        name = RECORDS[model_name]
        settings = record["early_stopping"]
        assert isinstance(settings, dict), (
            f"{name}: expected a keras.callbacks.EarlyStopping among the callbacks passed to fit and to "
            f"training_record, received none")
        assert settings.get("restore_best_weights") is True, (
            f"{name}: expected EarlyStopping(restore_best_weights=True), which puts back the best epoch's "
            f"weights, received restore_best_weights={settings.get('restore_best_weights')!r}")
        assert settings.get("patience") == sizes["patience"], (
            f"{name}: expected EarlyStopping(patience=SIZES['patience']), {sizes['patience']} in this profile, "
            f"received patience={settings.get('patience')!r}")
        monitor = settings.get("monitor")
        assert monitor in ("val_accuracy", "val_loss") and monitor in record["history"], (
            f"{name}: expected EarlyStopping to monitor 'val_accuracy' (or 'val_loss'), received {monitor!r}")
        history = record["history"]
        best = reference.best_epoch(history, monitor)
        epochs = record["epochs"]
        assert epochs == sizes["epochs"] or epochs == best + sizes["patience"] + 1, (
            f"{name}: training ran {epochs} epochs; with its best {monitor} at epoch {best + 1}, early stopping "
            f"with patience {sizes['patience']} stops after epoch {best + sizes['patience'] + 1} (or at "
            f"SIZES['epochs'] = {sizes['epochs']})")
        kept = history["val_accuracy"][best]
        assert abs(measured - kept) <= 1.5 / sizes["valid"], (
            f"{name}: expected {model_name} to hold the weights of its best epoch ({best + 1}, validation "
            f"accuracy {kept:.4f}), but its validation accuracy is {measured:.4f}")


# --- Accuracy ------------------------------------------------------------------------------------------

def _accuracy_step(model_name, step, test_accuracies, calibration, grading):
    """Credit step `step` (1 to STEPS) of a model's test accuracy; the last step records the measurement.

    When handed-in weights are graded as they are, every step also needs the
    model not to be flagged: its accuracy on the 5,000 validation images minus
    its test accuracy must reach the calibrated threshold (the reference's
    models score about the same on both). Weights trained on the public test
    images score far higher on them than on images they never saw.
    """
    short = model_name.removesuffix("_model")
    measurement = f"{short}_test_accuracy"
    what = f"{model_name}'s accuracy on the 10,000 hidden test images"
    accuracy = test_accuracies(model_name)
    weights_as_handed_in = grading.mode == "submitted" and grading.grade_submitted_weights
    if calibration.calibrating or weights_as_handed_in:
        gap_name = f"{short}_validation_minus_test_accuracy"
        gap = test_accuracies(model_name, "validation") - accuracy
        if not calibration.calibrating:
            allowed = calibration.threshold(gap_name)
            assert gap >= allowed, (
                f"{model_name} is flagged: its test accuracy ({accuracy:.4f}) is above its accuracy on the 5,000 "
                f"validation images ({accuracy + gap:.4f}) by {-gap:.4f}, more than the {-allowed:.4f} that the "
                f"calibrated spread allows (profile {calibration.profile!r}). Weights trained on the public test "
                f"images show this way; no accuracy credit is given for them")
        if step == reference.STEPS:
            calibration.check(gap_name, gap, f"{model_name}'s validation minus test accuracy", data="cifar10")
    if step == reference.STEPS:
        calibration.check(measurement, accuracy, what, data="cifar10")
        return
    if calibration.calibrating:  # the threshold is being measured: only the last step records it
        return
    threshold = calibration.threshold(measurement)
    needed = reference.credit_levels(threshold)[step - 1]
    assert accuracy >= needed, (
        f"{what}: {accuracy:.4f}. Credit grows in {reference.STEPS} steps from {reference.FLOOR:.2f} "
        f"(no credit) to the threshold {threshold:.4f} calibrated for the profile {calibration.profile!r}; "
        f"step {step} needs {needed:.4f}")


STEP_IDS = list(range(1, reference.STEPS + 1))


@pytest.mark.grade_cell("plain_accuracy", weight=1)
@pytest.mark.parametrize("step", STEP_IDS)
def test_plain_accuracy(step, test_accuracies, calibration, grading):
    """Does plain_model reach this step of credit for its accuracy on the test images?"""
    _accuracy_step("plain_model", step, test_accuracies, calibration, grading)


# --- 3. Batch normalisation ---------------------------------------------------------------------------

@pytest.mark.grade_cell("bn_architecture", weight=1)
def test_bn_after_input(models):
    """Is there a BatchNormalization layer right after Flatten, before the first Dense layer?"""
    reference.check_bn_input(models("bn_model"))


@pytest.mark.grade_cell("bn_architecture", weight=1)
def test_bn_hidden_layers(models):
    """20 hidden Dense(100, He) layers, each with one BN and its ELU, and the softmax output?"""
    reference.check_bn_hidden(models("bn_model"))


@pytest.mark.grade_cell("bn_architecture", weight=1)
def test_bn_param_counts(models):
    """Are the trainable and non-trainable counts those of the rules?"""
    reference.check_bn_params(models("bn_model"))


@pytest.mark.grade_cell("bn_accuracy", weight=1)
@pytest.mark.parametrize("step", STEP_IDS)
def test_bn_accuracy(step, test_accuracies, calibration, grading):
    """Does bn_model reach this step of credit for its accuracy on the test images?"""
    _accuracy_step("bn_model", step, test_accuracies, calibration, grading)


# --- 4. SELU ------------------------------------------------------------------------------------------

@pytest.mark.grade_cell("selu_architecture", weight=1)
def test_selu_layers(models):
    """20 hidden Dense(100, selu) layers with LeCun normal initialisation, and the softmax output?"""
    reference.check_selu_layers(models("selu_model"))


@pytest.mark.grade_cell("selu_architecture", weight=1)
def test_selu_plain_stack(models):
    """Nothing but Dense layers after Flatten: no batch normalisation, no dropout?"""
    reference.check_plain_stack(models("selu_model"))


@pytest.mark.grade_cell("selu_architecture", weight=1)
def test_selu_standardised_inputs(models, adapted_to):
    """A Normalization layer adapted to the training images standardises the raw images?"""
    reference.check_standardised(models("selu_model"), adapted_to)


@pytest.mark.grade_cell("selu_architecture", weight=1)
def test_selu_param_count(models):
    """Are its trainable parameters the 500,210 of the plain stack?"""
    reference.check_selu_params(models("selu_model"))


@pytest.mark.grade_cell("selu_accuracy", weight=1)
@pytest.mark.parametrize("step", STEP_IDS)
def test_selu_accuracy(step, test_accuracies, calibration, grading):
    """Does selu_model reach this step of credit for its accuracy on the test images?"""
    _accuracy_step("selu_model", step, test_accuracies, calibration, grading)


# --- 5. Alpha dropout and MC dropout -------------------------------------------------------------------

@pytest.mark.grade_cell("alpha_architecture", weight=1)
def test_alpha_network(models, adapted_to):
    """The self-normalising network of question 4 (standardised inputs, 20 SELU layers, LeCun)?"""
    reference.check_alpha_network(models("alpha_model"), adapted_to)


@pytest.mark.grade_cell("alpha_architecture", weight=1)
def test_alpha_dropout(models):
    """AlphaDropout, and no other kind of dropout?"""
    reference.check_alpha_dropout(models("alpha_model"))


@pytest.mark.grade_cell("alpha_accuracy", weight=1)
@pytest.mark.parametrize("step", STEP_IDS)
def test_alpha_accuracy(step, test_accuracies, calibration, grading):
    """Does alpha_model reach this step of credit for its accuracy on the test images?"""
    _accuracy_step("alpha_model", step, test_accuracies, calibration, grading)


def _test_images(rng, n):
    """`n` test images drawn at random (float32, 0-255), with their indices; the labels stay here."""
    x_test, _ = reference.test_data()
    index = np.sort(rng.choice(len(x_test), size=n, replace=False))
    return x_test[index], index


def _mc(student, x, n_samples):
    """mc_dropout_predict(x, n_samples), checked to be one row of 10 probabilities per image."""
    call = f"mc_dropout_predict(X of shape {x.shape}, {n_samples})"
    received = student.call("mc_dropout_predict", x, n_samples)
    assert isinstance(received, np.ndarray), f"{call}: expected a numpy array, received {_describe(received)}"
    assert received.shape == (len(x), reference.N_CLASSES), (
        f"{call}: expected the average of the passes, of shape ({len(x)}, {reference.N_CLASSES}) (the passes "
        f"stacked as [n_samples, instances, 10], averaged over the first axis), received shape {received.shape}")
    probas = received.astype(np.float64)
    assert np.all(np.isfinite(probas)) and probas.min() >= -1e-6 and probas.max() <= 1 + 1e-6, (
        f"{call}: expected probabilities between 0 and 1, received values from {probas.min():.4g} to "
        f"{probas.max():.4g}")
    sums = probas.sum(axis=1)
    assert np.allclose(sums, 1, atol=1e-3), (
        f"{call}: expected each image's probabilities to sum to 1 (float32: within 1e-3), received sums from "
        f"{sums.min():.5f} to {sums.max():.5f}")
    return probas


@pytest.mark.grade_cell("mc_dropout", weight=1)
def test_mc_shape_and_probabilities(student, rng):
    """One row of 10 probabilities summing to 1 per image, for image counts and passes the check does not use?"""
    for n_images, n_samples in ((int(rng.integers(6, 40)), int(rng.integers(2, 7))), (1, 1)):
        x, _ = _test_images(rng, n_images)
        _mc(student, x, n_samples)


@pytest.mark.grade_cell("mc_dropout", weight=1)
def test_mc_passes_differ(student, kernel_models, rng):
    """Are single passes stochastic (dropout active at prediction time), unlike alpha_model's own predictions?"""
    x, _ = _test_images(rng, 200)
    first, second = _mc(student, x, 1), _mc(student, x, 1)
    deterministic = reference.predict(kernel_models("alpha_model"), x)
    # AlphaDropout(0.1) drops about 10 of the last layer's 100 inputs in every pass: the probabilities
    # move by 1e-2 or more; float32 rounding moves them by 1e-6.
    assert np.abs(first - second).max() > 1e-3, (
        "mc_dropout_predict(X, 1) twice on the same 200 images: expected two different stochastic passes "
        "(MCAlphaDropout must call AlphaDropout with training=True), received the same probabilities twice")
    assert np.abs(first - deterministic).max() > 1e-3, (
        "mc_dropout_predict(X, 1): expected a stochastic pass, received alpha_model's deterministic "
        "probabilities (dropout is off in predict unless MCAlphaDropout forces training=True)")


@pytest.mark.grade_cell("mc_dropout", weight=1)
def test_mc_averages_n_samples(student, rng):
    """Does the average of n_samples passes vary about 1/sqrt(n_samples) as much as one pass?"""
    x, _ = _test_images(rng, 300)
    n = int(rng.integers(25, 41))
    spread_one = np.abs(_mc(student, x, 1) - _mc(student, x, 1)).mean()
    spread_n = np.abs(_mc(student, x, n) - _mc(student, x, n)).mean()
    # Independent passes: two averages of n differ about sqrt(n) = 5 to 6.3 times less than two single
    # passes, a ratio measured over 3,000 probabilities, so within a few percent; 2.5 leaves room.
    assert spread_one > 1e-4, (
        "mc_dropout_predict(X, 1) twice: expected two different stochastic passes, received the same "
        "probabilities")
    assert spread_n <= spread_one / 2.5, (
        f"mc_dropout_predict: two calls with n_samples=1 differ by {spread_one:.5f} on average, two calls "
        f"with n_samples={n} by {spread_n:.5f}; an average of {n} independent passes should differ about "
        f"{math.sqrt(n):.1f} times less (is each call averaging n_samples passes?)")


@pytest.mark.grade_cell("mc_dropout", weight=1)
def test_mc_accuracy(student, kernel_models, rng, calibration):
    """Is the MC average, on test images, not less accurate than one deterministic pass beyond the calibrated margin?"""
    x, index = _test_images(rng, 2000)
    _, y_test = reference.test_data()
    y = y_test[index]
    averaged = _mc(student, x, 16).argmax(axis=1)
    deterministic = reference.predict(kernel_models("alpha_model"), x).argmax(axis=1)
    gain = float(np.mean(averaged == y) - np.mean(deterministic == y))
    calibration.check("mc_minus_deterministic_accuracy", gain,
                      "MC dropout's accuracy (16 passes) minus one deterministic pass's, on 2,000 hidden "
                      "test images", data="cifar10")
