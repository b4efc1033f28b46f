"""Hidden graders for a05_optimizers (optimizers, gradient clipping, learning-rate schedules).

Each test scores part of one nbgrader grade cell through the engine's
`grade_cell` marker, and talks to the submission only through the engine's
`student` fixture. Every input (parameters, gradient sequences,
hyperparameters, schedules, loss curves) is drawn from the `rng` fixture, so
nothing printed by a visible check is worth anything here.

Expected values come from Keras itself wherever Keras has the thing graded:
the student's update steps run side by side with `keras.optimizers.*` on the
same float64 parameters and the same gradients; clipping is compared with
Keras' `clipvalue` and `clipnorm`; the schedules with
`keras.optimizers.schedules.*`; performance scheduling with the
`ReduceLROnPlateau` callback driven on a loss sequence. What Keras does not
have (1cycle, the power schedule for c != 1, momentum's terminal velocity, the
optimizer questions) comes from `reference.py`.

Tolerances. The optimizers run in float64 on both sides. Keras rounds some
Python floats through float32 (its learning rate is a float32 variable, and
`ops.cast(self.beta_1, dtype)` converts through float32), so every
hyperparameter is drawn as a float32 number, which makes that rounding exact;
the two computations then differ only by float64 rounding (~1e-13 relative at
most over these few steps), and rtol=1e-7 leaves a wide margin for another
order of the same operations. Nadam is the one exception (OPT_ATOL_BY_NAME).
Every flaw the samples name moves the parameters by more than 1e-4. Keras'
schedules compute in float32, hence rtol=1e-5 there. Epsilons are drawn large
(0.05 to 0.5) so that where epsilon sits changes the update visibly, as the
notebook tells the student.
"""

import types

import numpy as np
import pytest

import reference  # from this grader folder: the copy that travelled with the job

OPT_RTOL, OPT_ATOL = 1e-7, 1e-10
OPT_ATOL_BY_NAME = {"nadam_step": 1e-6}
"""Keras' Nadam rounds the 0.96 of its momentum schedule to float32 in `update_step` (an `ops.cast`
of a Python float) but not in the product of the momenta, which moves its parameters by up to
~2e-8 a step away from the exact formula; 1e-6 over 5 steps covers that with room to spare and is
far below what any flaw changes (above 1e-4)."""
SCHEDULE_RTOL = 1e-5


# --- Helpers ---------------------------------------------------------------------

def _describe(value):
    """Short, student-readable rendering of a received value and its type."""
    if isinstance(value, np.ndarray):
        return f"{np.round(value, 6).tolist()!r} (numpy array, shape {value.shape}, dtype {value.dtype})"
    text = repr(value)
    return f"{text[:300]}{'...' if len(text) > 300 else ''} ({type(value).__name__})"


def _r(array, digits=5):
    return np.round(np.asarray(array, dtype=float), digits).tolist()


def _f32(x):
    """A number that a float32 holds exactly (Keras stores learning rates in float32)."""
    return float(np.float32(x))


def _shape(rng):
    return tuple(int(n) for n in rng.integers(2, 4, size=int(rng.integers(1, 3))))


class _LazyKeras:
    """Keras, imported on first use. Every test asks the student first, so a submission whose
    answers all fail (the unanswered release) never pays the few seconds of the import."""

    def __getattr__(self, name):
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras as _keras

        return getattr(_keras, name)


@pytest.fixture(scope="module")
def keras():
    return _LazyKeras()


# --- Optimizers, side by side with Keras ------------------------------------------

def _hyper(rng, name):
    """Hyperparameters for one run, passed by keyword to the student and to Keras.

    All are float32 numbers: Keras rounds Python floats through float32 where it
    casts them (`ops.cast(self.beta_1, dtype)`, the float32 learning-rate
    variable), so float32 values make that rounding exact.
    """
    lr = _f32(rng.uniform(0.01, 0.2))
    if name == "sgd_step":
        return {"learning_rate": lr}
    if name in ("momentum_step", "nesterov_step"):
        return {"learning_rate": lr, "momentum": _f32(rng.uniform(0.5, 0.95))}
    eps = _f32(rng.uniform(0.05, 0.5))
    if name == "adagrad_step":
        return {"learning_rate": lr, "initial_accumulator_value": _f32(rng.uniform(0.05, 0.5)),
                "epsilon": eps}
    if name == "rmsprop_step":
        return {"learning_rate": lr, "rho": _f32(rng.uniform(0.5, 0.95)), "epsilon": eps}
    # beta_1 in [0.8, 0.95] and beta_2 in [0.5, 0.9] keep Adam's first-step correction
    # sqrt(1 - beta_2) / (1 - beta_1) at 1.5 or more, so that leaving it out always shows.
    hp = {"learning_rate": lr, "beta_1": _f32(rng.uniform(0.8, 0.95)),
          "beta_2": _f32(rng.uniform(0.5, 0.9)), "epsilon": eps}
    if name == "adamw_step":
        hp["weight_decay"] = _f32(rng.uniform(0.2, 1.0))
    return hp


def _keras_optimizer(keras, name, hp):
    opts = keras.optimizers
    if name == "sgd_step":
        return opts.SGD(**hp)
    if name == "momentum_step":
        return opts.SGD(**hp)
    if name == "nesterov_step":
        return opts.SGD(nesterov=True, **hp)
    return {"adagrad_step": opts.Adagrad, "rmsprop_step": opts.RMSprop, "adam_step": opts.Adam,
            "adamax_step": opts.Adamax, "nadam_step": opts.Nadam, "adamw_step": opts.AdamW}[name](**hp)


def keras_steps(keras, name, hp, theta, grads):
    """The parameters after each Keras step, float64 throughout."""
    variable = keras.Variable(np.array(theta, dtype="float64"), dtype="float64")
    optimizer = _keras_optimizer(keras, name, hp)
    out = []
    for grad in grads:
        optimizer.apply([np.asarray(grad, dtype="float64")], [variable])
        out.append(np.array(keras.ops.convert_to_numpy(variable.value), dtype=float))
    return out


HINTS = {
    "sgd_step": "theta - learning_rate * grad",
    "momentum_step": "m = momentum * m - learning_rate * grad (m starts at 0), then theta + m",
    "nesterov_step": ("Keras keeps the look-ahead point, so grad is the gradient there: "
                      "m = momentum * m - learning_rate * grad, then theta + momentum * m - learning_rate * grad "
                      "with the NEW m"),
    "adagrad_step": ("Keras starts the accumulator s at initial_accumulator_value (not 0), adds grad**2, "
                     "and divides by sqrt(s + epsilon): epsilon inside the root"),
    "rmsprop_step": "s = rho * s + (1 - rho) * grad**2 (s starts at 0), then divide by sqrt(s + epsilon): epsilon inside the root",
    "adam_step": ("Keras folds both bias corrections into the step size, "
                  "alpha = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t), and divides alpha * m by "
                  "sqrt(v) + epsilon: epsilon outside the root, added to sqrt(v) (not to sqrt(v_hat)); "
                  "t counts steps from 1 and must be kept in the state"),
    "adamax_step": ("u = max(beta_2 * u, |grad|), then learning_rate * m / ((1 - beta_1**t) * (u + epsilon)): "
                    "only m is bias-corrected"),
    "nadam_step": ("Keras' Nadam uses the momentum schedule mu_t = beta_1 * (1 - 0.5 * 0.96**t) and the "
                   "products of the mu's in its bias corrections, with v_hat = v / (1 - beta_2**t) "
                   "and epsilon added to sqrt(v_hat)"),
    "adamw_step": ("Keras first decays the weights, theta - learning_rate * weight_decay * theta, then takes "
                   "a plain Adam step with the unchanged gradient: the decay never enters m or v"),
}


def _student_steps(student, name, theta, grads, hp):
    """Runs the student's step over the gradient sequence, passing back the state it returns."""
    state, out = {}, []
    for k, grad in enumerate(grads, start=1):
        result = student.call(name, theta, grad, state, **hp)
        assert isinstance(result, (tuple, list)) and len(result) == 2, (
            f"{name}: expected a pair (new_theta, new_state), received {_describe(result)}")
        new_theta, state = result
        assert isinstance(state, dict), (
            f"{name}, step {k}: expected the new state to be a dict, received {_describe(state)}")
        assert isinstance(new_theta, np.ndarray) and new_theta.shape == np.shape(theta), (
            f"{name}, step {k}: expected new_theta as a numpy array of shape {np.shape(theta)}, "
            f"received {_describe(new_theta)}")
        theta = np.asarray(new_theta, dtype=float)
        out.append(theta)
    return out


def check_against_keras(student, keras, rng, name, n_steps, shape=None):
    """Compares the student's step with Keras over n_steps of a random gradient sequence."""
    shape = shape or _shape(rng)
    hp = _hyper(rng, name)
    theta0 = rng.normal(size=shape)
    scales = rng.uniform(0.2, 3.0, size=(n_steps, 1))
    grads = [rng.normal(size=shape) * s for s in scales]
    received = _student_steps(student, name, theta0, grads, hp)
    expected = keras_steps(keras, name, hp, theta0, grads)
    for k, (exp, got) in enumerate(zip(expected, received), start=1):
        if not np.allclose(got, exp, rtol=OPT_RTOL, atol=OPT_ATOL_BY_NAME.get(name, OPT_ATOL)):
            args = ", ".join(f"{key}={value:.6g}" for key, value in hp.items())
            raise AssertionError(
                f"{name}({args}), starting from theta={_r(theta0, 4)} with state {{}}, gradients "
                f"{[_r(g, 4) for g in grads[:k]]}: after step {k} of {n_steps}, expected Keras' "
                f"theta={_r(exp, 7)}, received {_r(got, 7)} (largest difference "
                f"{np.max(np.abs(np.asarray(got) - exp)):.3g}). Keras' form: {HINTS[name]}.")


@pytest.mark.grade_cell("sgd_momentum", weight=1)
def test_sgd_step(student, keras, rng):
    """Does sgd_step match keras.optimizers.SGD over several steps?"""
    check_against_keras(student, keras, rng, "sgd_step", n_steps=3)


@pytest.mark.grade_cell("sgd_momentum", weight=1)
def test_momentum_step(student, keras, rng):
    """Does momentum_step match keras.optimizers.SGD(momentum=...) over several steps?"""
    check_against_keras(student, keras, rng, "momentum_step", n_steps=5)


@pytest.mark.grade_cell("sgd_momentum", weight=1)
def test_nesterov_step(student, keras, rng):
    """Does nesterov_step match keras.optimizers.SGD(momentum=..., nesterov=True)?"""
    check_against_keras(student, keras, rng, "nesterov_step", n_steps=5)


@pytest.mark.grade_cell("adagrad_rmsprop", weight=1)
def test_adagrad_step(student, keras, rng):
    """Does adagrad_step match keras.optimizers.Adagrad (initial accumulator included)?"""
    check_against_keras(student, keras, rng, "adagrad_step", n_steps=4)


@pytest.mark.grade_cell("adagrad_rmsprop", weight=1)
def test_rmsprop_step(student, keras, rng):
    """Does rmsprop_step match keras.optimizers.RMSprop (epsilon inside the root)?"""
    check_against_keras(student, keras, rng, "rmsprop_step", n_steps=4)


@pytest.mark.grade_cell("adam", weight=1)
def test_adam_first_step(student, keras, rng):
    """Does one adam_step from a fresh state match keras.optimizers.Adam's first step?"""
    check_against_keras(student, keras, rng, "adam_step", n_steps=1)


@pytest.mark.grade_cell("adam", weight=1)
def test_adam_steps(student, keras, rng):
    """Do five adam_steps, passing the state along, match keras.optimizers.Adam?"""
    check_against_keras(student, keras, rng, "adam_step", n_steps=5)


@pytest.mark.grade_cell("adamax_nadam", weight=1)
def test_adamax_step(student, keras, rng):
    """Does adamax_step match keras.optimizers.Adamax over several steps?"""
    check_against_keras(student, keras, rng, "adamax_step", n_steps=5)


@pytest.mark.grade_cell("adamax_nadam", weight=1)
def test_nadam_step(student, keras, rng):
    """Does nadam_step match keras.optimizers.Nadam (its momentum schedule included)?"""
    check_against_keras(student, keras, rng, "nadam_step", n_steps=5)


@pytest.mark.grade_cell("adamw", weight=1)
def test_adamw_step(student, keras, rng):
    """Does adamw_step match keras.optimizers.AdamW (decoupled weight decay)?"""
    check_against_keras(student, keras, rng, "adamw_step", n_steps=5)


# --- Momentum's terminal velocity ---------------------------------------------------

def _check_terminal_velocity(student, grad, lr, beta, expected_fn, source):
    received = student.call("terminal_velocity", grad, lr, beta)
    expected = expected_fn()
    call = f"terminal_velocity(grad={_r(grad, 4)}, learning_rate={lr:.6g}, momentum={beta:.6g})"
    assert isinstance(received, np.ndarray) and received.shape == grad.shape, (
        f"{call}: expected a numpy array of shape {grad.shape}, received {_describe(received)}")
    assert np.allclose(received, expected, rtol=1e-6, atol=1e-12), (
        f"{call}: expected {source} {_r(expected, 6)}, received {_r(received, 6)}; the velocity settles "
        f"where m = momentum * m - learning_rate * grad stops changing")


@pytest.mark.grade_cell("terminal_velocity", weight=1)
def test_terminal_velocity_matches_keras(student, keras, rng):
    """Is terminal_velocity the step Keras' SGD(momentum) settles to under a constant gradient?"""
    grad = rng.normal(size=_shape(rng))
    lr = _f32(rng.uniform(0.01, 0.2))
    beta = _f32(rng.uniform(0.3, 0.6))  # beta**80 < 2e-18: the velocity has settled to float64 precision

    def settled_step():
        positions = keras_steps(keras, "momentum_step", {"learning_rate": lr, "momentum": beta},
                                np.zeros_like(grad), [grad] * 80)
        return positions[-1] - positions[-2]

    _check_terminal_velocity(student, grad, lr, beta, settled_step,
                             "the displacement per step of keras.optimizers.SGD after 80 steps,")


@pytest.mark.grade_cell("terminal_velocity", weight=1)
def test_terminal_velocity_high_momentum(student, rng):
    """Is terminal_velocity -lr * g / (1 - beta) for momenta close to 1 (not only beta = 0.9)?"""
    grad = rng.normal(size=_shape(rng))
    lr = _f32(rng.uniform(0.001, 0.1))
    beta = float(rng.uniform(0.92, 0.995))
    _check_terminal_velocity(student, grad, lr, beta, lambda: reference.terminal_velocity(grad, lr, beta),
                             "-learning_rate * grad / (1 - momentum) =")


# --- Gradient clipping ----------------------------------------------------------------

def _keras_clipped(keras, grad, **clip):
    """What Keras' clipvalue / clipnorm does to one variable's gradient (SGD with lr=1 from 0)."""
    return -keras_steps(keras, "sgd_step", {"learning_rate": 1.0, **clip}, np.zeros_like(grad), [grad])[0]


def _clip_cases(rng):
    """Gradients of random shapes, some above the threshold and some below it."""
    cases = []
    for big in (True, True, False):
        shape = (int(rng.integers(2, 5)), int(rng.integers(2, 5)))
        grad = rng.normal(size=shape) * rng.uniform(0.5, 3.0)
        norm = float(np.linalg.norm(grad))
        # Threshold well below the norm (clipping happens) or well above it (nothing to clip).
        threshold = norm * float(rng.uniform(0.2, 0.6) if big else rng.uniform(1.5, 3.0))
        cases.append((grad, threshold))
    return cases


@pytest.mark.grade_cell("clipping", weight=1)
def test_clip_by_value(student, keras, rng):
    """Does clip_by_value match Keras' clipvalue on random gradients?"""
    for grad, _ in _clip_cases(rng):
        value = float(np.quantile(np.abs(grad), rng.uniform(0.3, 0.7)))
        received = student.call("clip_by_value", grad, value)
        expected = _keras_clipped(keras, grad, clipvalue=value)
        call = f"clip_by_value(grad={_r(grad, 4)}, clip_value={value:.6g})"
        assert isinstance(received, np.ndarray) and received.shape == grad.shape, (
            f"{call}: expected an array of shape {grad.shape}, received {_describe(received)}")
        assert np.allclose(received, expected, rtol=1e-12, atol=1e-12), (
            f"{call}: expected Keras' clipvalue result {_r(expected, 6)}, received {_r(received, 6)}; "
            f"each component is clipped to [-clip_value, clip_value] on its own")


@pytest.mark.grade_cell("clipping", weight=1)
def test_clip_by_norm(student, keras, rng):
    """Does clip_by_norm match Keras' clipnorm (one norm per gradient array) on random gradients?"""
    for grad, threshold in _clip_cases(rng):
        received = student.call("clip_by_norm", grad, threshold)
        expected = _keras_clipped(keras, grad, clipnorm=threshold)
        call = f"clip_by_norm(grad={_r(grad, 4)}, clip_norm={threshold:.6g})"
        assert isinstance(received, np.ndarray) and received.shape == grad.shape, (
            f"{call}: expected an array of shape {grad.shape}, received {_describe(received)}")
        assert np.allclose(received, expected, rtol=1e-9, atol=1e-12), (
            f"{call} (the L2 norm of the whole array is {np.linalg.norm(grad):.6g}): expected Keras' "
            f"clipnorm result {_r(expected, 6)}, received {_r(received, 6)}; Keras rescales the whole "
            f"array by clip_norm / norm when its L2 norm (over all its components) exceeds clip_norm, and "
            f"leaves it unchanged otherwise")


# --- Learning-rate schedules --------------------------------------------------------------

def _schedule_values(student, name, steps, **kwargs):
    out = []
    for t in steps:
        received = student.call(name, int(t), **kwargs)
        value = np.asarray(received)
        assert value.size == 1 and np.issubdtype(value.dtype, np.number), (
            f"{name}({int(t)}, {kwargs}): expected a number, received {_describe(received)}")
        out.append(float(value.reshape(())))
    return np.array(out)


def _compare_schedule(name, steps, kwargs, expected, received, source, hint, rtol=SCHEDULE_RTOL):
    wrong = np.flatnonzero(~np.isclose(received, expected, rtol=rtol, atol=0))
    if wrong.size:
        i = wrong[0]
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise AssertionError(
            f"{name}(t, {args}) at t={int(steps[i])}: expected {source} {expected[i]:.8g}, received "
            f"{received[i]:.8g} ({wrong.size} of the {len(steps)} steps checked differ: "
            f"t={[int(steps[j]) for j in wrong[:8]]}); {hint}")


def _keras_schedule(schedule, steps):
    return np.array([float(schedule(int(t))) for t in steps])


@pytest.mark.grade_cell("schedules", weight=1)
def test_power_schedule(student, keras, rng):
    """Does power_schedule match InverseTimeDecay for c = 1, and eta0 / (1 + t/s)**c for other c?"""
    eta0 = _f32(rng.uniform(0.005, 0.1))
    s = int(rng.integers(5, 50))
    steps = np.unique(np.concatenate([[0, s, 2 * s], rng.integers(1, 5 * s, size=3)]))
    received = _schedule_values(student, "power_schedule", steps, initial_learning_rate=eta0, s=s)
    expected = _keras_schedule(keras.optimizers.schedules.InverseTimeDecay(eta0, decay_steps=s, decay_rate=1.0), steps)
    _compare_schedule("power_schedule", steps, {"initial_learning_rate": eta0, "s": s}, expected, received,
                      "keras.optimizers.schedules.InverseTimeDecay(eta0, decay_steps=s, decay_rate=1):",
                      "the default c is 1")
    c = float(rng.uniform(1.5, 3.0))
    received = _schedule_values(student, "power_schedule", steps, initial_learning_rate=eta0, s=s, c=c)
    expected = np.array([reference.power_schedule(int(t), eta0, s, c) for t in steps])
    _compare_schedule("power_schedule", steps, {"initial_learning_rate": eta0, "s": s, "c": c}, expected,
                      received, "eta0 / (1 + t/s)**c =", "the power c applies to the whole (1 + t/s)",
                      rtol=1e-9)


@pytest.mark.grade_cell("schedules", weight=1)
def test_exponential_schedule(student, keras, rng):
    """Does exponential_schedule match ExponentialDecay(eta0, decay_steps=s, decay_rate=0.1)?"""
    eta0 = _f32(rng.uniform(0.005, 0.1))
    s = int(rng.integers(5, 50))
    steps = np.unique(np.concatenate([[0, 1, s, 2 * s], rng.integers(2, 3 * s, size=3)]))
    received = _schedule_values(student, "exponential_schedule", steps, initial_learning_rate=eta0, s=s)
    expected = _keras_schedule(keras.optimizers.schedules.ExponentialDecay(eta0, decay_steps=s, decay_rate=0.1), steps)
    _compare_schedule("exponential_schedule", steps, {"initial_learning_rate": eta0, "s": s}, expected,
                      received, "keras.optimizers.schedules.ExponentialDecay(eta0, decay_steps=s, decay_rate=0.1):",
                      "the rate drops by a factor of 10 every s steps, smoothly: eta0 * 0.1**(t / s)")


@pytest.mark.grade_cell("schedules", weight=1)
def test_piecewise_constant_schedule(student, keras, rng):
    """Does piecewise_constant_schedule match PiecewiseConstantDecay, at the boundaries too?"""
    n = int(rng.integers(2, 4))
    boundaries = sorted(int(b) for b in rng.choice(np.arange(3, 60), size=n, replace=False))
    values = [_f32(v) for v in sorted(rng.uniform(0.0005, 0.1, size=n + 1), reverse=True)]
    steps = np.unique([0] + [b + d for b in boundaries for d in (-1, 0, 1)] + [boundaries[-1] + 10])
    received = _schedule_values(student, "piecewise_constant_schedule", steps, boundaries=boundaries, values=values)
    expected = _keras_schedule(keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values), steps)
    _compare_schedule("piecewise_constant_schedule", steps, {"boundaries": boundaries, "values": values},
                      expected, received, "keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values):",
                      "Keras uses values[0] while t <= boundaries[0], values[i] while "
                      "boundaries[i-1] < t <= boundaries[i], and values[-1] after the last boundary")


# --- Performance scheduling (ReduceLROnPlateau) ----------------------------------------------

def keras_plateau(keras, losses, learning_rate, factor, patience, min_delta, min_lr):
    """The learning rate after each epoch of Keras' ReduceLROnPlateau, driven on a loss sequence."""
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate)
    callback = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min", factor=factor,
                                                 patience=patience, min_delta=min_delta, min_lr=min_lr,
                                                 cooldown=0, verbose=0)
    callback.set_model(types.SimpleNamespace(optimizer=optimizer))
    callback.on_train_begin()
    out = []
    for epoch, loss in enumerate(losses):
        callback.on_epoch_end(epoch, {"val_loss": float(loss)})
        out.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
    return out


def _check_plateau(student, keras, rng, with_floor):
    patience = int(rng.integers(2, 5))
    min_delta = float(rng.uniform(0.005, 0.03))
    factor = float(rng.uniform(0.2, 0.7))
    lr = _f32(rng.uniform(0.01, 0.2))
    losses = reference.plateau_losses(rng, min_delta, patience, n_blocks=int(rng.integers(6, 9)))
    kwargs = {"factor": factor, "patience": patience, "min_delta": min_delta}
    if with_floor:
        # Half-way between two reachable rates (geometric mean), so that no rounding decides.
        k = int(rng.integers(1, 3))
        kwargs["min_lr"] = float(lr * factor ** (k + 0.5))
    received = student.call("reduce_lr_on_plateau", losses, lr, **kwargs)
    expected = keras_plateau(keras, losses, lr, min_lr=kwargs.get("min_lr", 0.0), **{
        key: kwargs[key] for key in ("factor", "patience", "min_delta")})
    args = ", ".join(f"{k}={v:.6g}" for k, v in kwargs.items())
    call = f"reduce_lr_on_plateau(losses, learning_rate={lr:.6g}, {args}) on losses={_r(losses, 5)}"
    assert isinstance(received, (list, np.ndarray)) and len(received) == len(losses), (
        f"{call}: expected a list of {len(losses)} learning rates, one per epoch, received {_describe(received)}")
    received = np.asarray(received, dtype=float)
    wrong = np.flatnonzero(~np.isclose(received, expected, rtol=1e-5, atol=0))
    assert wrong.size == 0, (
        f"{call}: from epoch {int(wrong[0])} on (counting from 0), expected Keras' ReduceLROnPlateau "
        f"rates {_r(expected, 7)}, received {_r(received, 7)}. Keras counts an epoch as an improvement "
        f"only when loss < best - min_delta (then best = loss and the wait restarts), reduces the rate "
        f"to max(rate * factor, min_lr) when the wait reaches patience, and restarts the wait after "
        f"each reduction")


@pytest.mark.grade_cell("performance_scheduling", weight=1)
def test_reduce_lr_on_plateau(student, keras, rng):
    """Does reduce_lr_on_plateau give Keras' ReduceLROnPlateau rates on plateaus, drifts and improvements?"""
    for _ in range(2):
        _check_plateau(student, keras, rng, with_floor=False)


@pytest.mark.grade_cell("performance_scheduling", weight=1)
def test_reduce_lr_on_plateau_min_lr(student, keras, rng):
    """Does reduce_lr_on_plateau stop at min_lr as Keras' callback does?"""
    _check_plateau(student, keras, rng, with_floor=True)


# --- 1cycle ---------------------------------------------------------------------------------

def _check_one_cycle(student, rng, total, kwargs):
    """Compares at the corners of the three phases, their neighbours, and a few random steps."""
    last = kwargs.get("last_steps") or total // 10 + 1
    half = (total - last) // 2
    corners = [0, 1, half - 1, half, half + 1, 2 * half - 1, 2 * half, 2 * half + 1, total - 2, total - 1]
    steps = np.unique(np.concatenate([corners, rng.integers(0, total, size=3)]))
    expected = np.array([reference.one_cycle_schedule(int(t), total, **kwargs) for t in steps])
    received = _schedule_values(student, "one_cycle_schedule", steps, total_steps=total, **kwargs)
    _compare_schedule("one_cycle_schedule", steps, {"total_steps": total, **kwargs}, expected, received,
                      "Géron's 1cycle rate", "half = (total_steps - last_steps) // 2 steps up from start_rate "
                      "to max_rate, half steps back down to start_rate, then down to last_rate at total_steps; "
                      "defaults start_rate = max_rate / 10, last_steps = total_steps // 10 + 1, "
                      "last_rate = start_rate / 1000", rtol=1e-9)


@pytest.mark.grade_cell("one_cycle", weight=1)
def test_one_cycle_explicit(student, rng):
    """Does one_cycle_schedule follow the three linear phases, with every rate given?"""
    total = int(rng.integers(30, 80))
    last = int(rng.integers(3, 10))
    if (total - last) % 2 == 0:
        last += 1  # an odd remainder: half = (total - last) // 2 must round down
    max_rate = _f32(rng.uniform(0.01, 0.5))
    _check_one_cycle(student, rng, total, {"max_rate": max_rate, "start_rate": max_rate * float(rng.uniform(0.05, 0.3)),
                                      "last_steps": last, "last_rate": max_rate * float(rng.uniform(1e-4, 1e-2))})


@pytest.mark.grade_cell("one_cycle", weight=1)
def test_one_cycle_defaults(student, rng):
    """Does one_cycle_schedule use Géron's defaults for start_rate, last_steps and last_rate?"""
    total = int(rng.integers(40, 120))
    while (total - (total // 10 + 1)) % 2 == 0:
        total += 1
    _check_one_cycle(student, rng, total, {"max_rate": _f32(rng.uniform(0.01, 0.5))})


# --- Which optimizer when -----------------------------------------------------------------------

def _choice(student, question):
    choices = student.value("OPTIMIZER_CHOICES")
    assert isinstance(choices, dict), (
        f"OPTIMIZER_CHOICES: expected a dict of lists of optimizer names, received {_describe(choices)}")
    assert question in choices, (
        f"OPTIMIZER_CHOICES: expected the key {question!r}, received the keys {sorted(choices)}")
    answer = choices[question]
    names = [answer] if isinstance(answer, str) else answer
    assert isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names), (
        f"OPTIMIZER_CHOICES[{question!r}]: expected a list of names from {list(reference.OPTIMIZER_NAMES)}, "
        f"received {_describe(answer)}")
    unknown = sorted(set(names) - set(reference.OPTIMIZER_NAMES))
    assert not unknown, (
        f"OPTIMIZER_CHOICES[{question!r}]: {unknown} are not among the names {list(reference.OPTIMIZER_NAMES)}")
    assert set(names) == reference.CHOICES[question], (
        f"OPTIMIZER_CHOICES[{question!r}]: {sorted(set(names))} is not what Table 11-2 and its text say; "
        f"read the row of every optimizer in the table again")


@pytest.mark.grade_cell("optimizer_choices", weight=1)
@pytest.mark.parametrize("question", sorted(reference.CHOICES))
def test_optimizer_choice(student, question):
    """Does the answer to this question match Géron's Table 11-2 (and the text around it)?"""
    _choice(student, question)
