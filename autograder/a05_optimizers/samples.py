"""Sample submissions for a05_optimizers, with the scores they must get.

Each sample is the solution notebook with the source of some answer cells
replaced, keyed by grade_id. The expected points, for every autograded grade
cell, are reasoned out from the hidden graders in `test_a05_optimizers.py`;
each description says why. A cell's score is its points times the weight of
its passing tests over the weight of all its tests (all weights are 1 here).
The written question `adamw_question` is graded by hand and is not listed.

The flaws are mistakes students make when they write these formulas from the
book or from memory; every one of them changes the results by far more than
the graders' tolerances, for any inputs the graders draw (the graders draw
large epsilons, betas far from their defaults, gradients above and below the
clipping thresholds, boundaries that are hit exactly, loss curves with
plateaus, drifts and improvements).
"""

_FULL_MARKS = {
    "sgd_momentum": 3.0,
    "terminal_velocity": 1.0,
    "adagrad_rmsprop": 2.0,
    "adam": 2.0,
    "adamax_nadam": 2.0,
    "adamw": 1.0,
    "clipping": 2.0,
    "schedules": 3.0,
    "performance_scheduling": 2.0,
    "one_cycle": 2.0,
    "optimizer_choices": 3.0,
}
"""Points of each autograded grade cell of the master, for writing `expected` only."""


def _expected(**changed):
    """Full marks on every autograded cell except those given."""
    unknown = set(changed) - set(_FULL_MARKS)
    if unknown:
        raise KeyError(f"Expected grade ids from {sorted(_FULL_MARKS)}, received {sorted(unknown)}")
    return {**_FULL_MARKS, **{grade_id: float(points) for grade_id, points in changed.items()}}


_ADAM_NO_BIAS_CORRECTION = '''
def adam_step(theta, grad, state, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """keras.optimizers.Adam. Returns (new_theta, new_state)."""
    t = state.get("t", 0) + 1
    m = beta_1 * state.get("m", np.zeros_like(theta)) + (1 - beta_1) * grad
    v = beta_2 * state.get("v", np.zeros_like(theta)) + (1 - beta_2) * np.square(grad)
    new_theta = theta - learning_rate * m / (np.sqrt(v) + epsilon)
    return new_theta, {"t": t, "m": m, "v": v}
'''.strip()

_ADAM_STEP_COUNT_NOT_KEPT = '''
def adam_step(theta, grad, state, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """keras.optimizers.Adam. Returns (new_theta, new_state)."""
    t = state.get("t", 1)
    m = beta_1 * state.get("m", np.zeros_like(theta)) + (1 - beta_1) * grad
    v = beta_2 * state.get("v", np.zeros_like(theta)) + (1 - beta_2) * np.square(grad)
    step_size = learning_rate * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    new_theta = theta - step_size * m / (np.sqrt(v) + epsilon)
    return new_theta, {"m": m, "v": v}
'''.strip()

_RMSPROP_EPSILON_OUTSIDE = '''
def adagrad_step(theta, grad, state, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7):
    """keras.optimizers.Adagrad. Returns (new_theta, new_state)."""
    accumulator = state.get("s", np.full_like(theta, initial_accumulator_value))
    accumulator = accumulator + np.square(grad)
    return theta - learning_rate * grad / np.sqrt(accumulator + epsilon), {"s": accumulator}


def rmsprop_step(theta, grad, state, learning_rate=0.001, rho=0.9, epsilon=1e-7):
    """Adds epsilon outside the root, as Keras' Adam does, instead of inside it."""
    average = state.get("s", np.zeros_like(theta))
    average = rho * average + (1 - rho) * np.square(grad)
    return theta - learning_rate * grad / (np.sqrt(average) + epsilon), {"s": average}
'''.strip()

# The book's forms where Keras differs: Adam as the book writes it (epsilon inside the root of
# s_hat, no epsilon hat), AdaGrad's accumulator starting at 0 as in the book, and piecewise constant
# scheduling switching at the boundary itself (the book's piecewise_constant_fn).
_BOOK_ADAM = '''
def adam_step(theta, grad, state, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Adam as the book writes it (epsilon inside the root), with the book's sign of m."""
    t = state.get("t", 0) + 1
    m = beta_1 * state.get("m", np.zeros_like(theta)) - (1 - beta_1) * grad
    s = beta_2 * state.get("s", np.zeros_like(theta)) + (1 - beta_2) * grad * grad
    m_hat = m / (1 - beta_1 ** t)
    s_hat = s / (1 - beta_2 ** t)
    return theta + learning_rate * m_hat / np.sqrt(s_hat + epsilon), {"t": t, "m": m, "s": s}
'''.strip()

_BOOK_ADAGRAD = '''
def adagrad_step(theta, grad, state, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7):
    """AdaGrad as the book writes it: s starts at 0."""
    s = state.get("s", np.zeros_like(theta)) + grad * grad
    return theta - learning_rate * grad / np.sqrt(s + epsilon), {"s": s}


def rmsprop_step(theta, grad, state, learning_rate=0.001, rho=0.9, epsilon=1e-7):
    """keras.optimizers.RMSprop (no momentum, not centered). Returns (new_theta, new_state)."""
    average = state.get("s", np.zeros_like(theta))
    average = rho * average + (1 - rho) * np.square(grad)
    return theta - learning_rate * grad / np.sqrt(average + epsilon), {"s": average}
'''.strip()

_NESTEROV_OLD_VELOCITY = '''
def sgd_step(theta, grad, state, learning_rate=0.01):
    """keras.optimizers.SGD: theta - learning_rate * grad. Returns (new_theta, new_state)."""
    return theta - learning_rate * grad, {}


def momentum_step(theta, grad, state, learning_rate=0.01, momentum=0.9):
    """keras.optimizers.SGD(momentum=...), as in the book. Returns (new_theta, new_state)."""
    velocity = state.get("m", np.zeros_like(theta))
    velocity = momentum * velocity - learning_rate * grad
    return theta + velocity, {"m": velocity}


def nesterov_step(theta, grad, state, learning_rate=0.01, momentum=0.9):
    """Looks ahead with the velocity of the previous step instead of the new one."""
    old_velocity = state.get("m", np.zeros_like(theta))
    velocity = momentum * old_velocity - learning_rate * grad
    return theta + momentum * old_velocity - learning_rate * grad, {"m": velocity}
'''.strip()

_NADAM_CONSTANT_MOMENTUM = '''
def adamax_step(theta, grad, state, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """keras.optimizers.Adamax. Returns (new_theta, new_state)."""
    t = state.get("t", 0) + 1
    m = beta_1 * state.get("m", np.zeros_like(theta)) + (1 - beta_1) * grad
    u = np.maximum(beta_2 * state.get("u", np.zeros_like(theta)), np.abs(grad))
    new_theta = theta - learning_rate * m / ((1 - beta_1 ** t) * (u + epsilon))
    return new_theta, {"t": t, "m": m, "u": u}


def nadam_step(theta, grad, state, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """"Adam plus Nesterov" with a constant momentum beta_1 (no momentum schedule)."""
    t = state.get("t", 0) + 1
    m = beta_1 * state.get("m", np.zeros_like(theta)) + (1 - beta_1) * grad
    v = beta_2 * state.get("v", np.zeros_like(theta)) + (1 - beta_2) * np.square(grad)
    m_hat = beta_1 * m / (1 - beta_1 ** (t + 1)) + (1 - beta_1) * grad / (1 - beta_1 ** t)
    v_hat = v / (1 - beta_2 ** t)
    new_theta = theta - learning_rate * m_hat / (np.sqrt(v_hat) + epsilon)
    return new_theta, {"t": t, "m": m, "v": v}
'''.strip()

_ADAMW_COUPLED_L2 = '''
def adamw_step(theta, grad, state, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
               epsilon=1e-7):
    """Weight decay added to the gradient (an L2 penalty), which Adam then rescales."""
    return adam_step(theta, grad + weight_decay * theta, state, learning_rate=learning_rate,
                     beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
'''.strip()

_CLIPNORM_PER_ELEMENT = '''
def clip_by_value(grad, clip_value):
    """Keras' clipvalue: every component of grad clipped to [-clip_value, clip_value]."""
    return np.minimum(np.maximum(grad, -clip_value), clip_value)


def clip_by_norm(grad, clip_norm):
    """Rescales each component by its own norm (its absolute value) instead of the array's norm."""
    return grad * clip_norm / np.maximum(np.abs(grad), clip_norm)
'''.strip()

_SCHEDULES_EXPONENT_WITHOUT_S = '''
def power_schedule(t, initial_learning_rate, s, c=1.0):
    """Power scheduling: eta(t) = eta0 / (1 + t/s)**c."""
    return initial_learning_rate * (1 + t / s) ** (-c)


def exponential_schedule(t, initial_learning_rate, s):
    """Drops by 10 every step: 0.1**t instead of 0.1**(t/s)."""
    return initial_learning_rate * 0.1 ** t


def piecewise_constant_schedule(t, boundaries, values):
    """Piecewise constant scheduling, as keras.optimizers.schedules.PiecewiseConstantDecay."""
    for boundary, value in zip(boundaries, values):
        if t <= boundary:
            return value
    return values[-1]
'''.strip()

_BOOK_SCHEDULES = '''
def power_schedule(t, initial_learning_rate, s, c=1.0):
    """Power scheduling: eta(t) = eta0 / (1 + t/s)**c."""
    return initial_learning_rate * (1 + t / s) ** (-c)


def exponential_schedule(t, initial_learning_rate, s):
    """Exponential scheduling: eta(t) = eta0 * 0.1**(t/s)."""
    return initial_learning_rate * 0.1 ** (t / s)


def piecewise_constant_schedule(t, boundaries, values):
    """Switches at the boundary itself (t < boundary), as the book's piecewise_constant_fn."""
    for boundary, value in zip(boundaries, values):
        if t < boundary:
            return value
    return values[-1]
'''.strip()

_PLATEAU_WAIT_NOT_RESET = '''
def reduce_lr_on_plateau(losses, learning_rate, factor=0.1, patience=10, min_delta=1e-4, min_lr=0.0):
    """Forgets to restart the wait after a reduction: reduces again at every further bad epoch."""
    rates = []
    best = None
    wait = 0
    for loss in losses:
        if best is None or loss < best - min_delta:
            best, wait = loss, 0
        else:
            wait += 1
            if wait >= patience and learning_rate > min_lr:
                learning_rate = max(learning_rate * factor, min_lr)
        rates.append(learning_rate)
    return rates
'''.strip()

_ONE_CYCLE_FLOAT_HALF = '''
def one_cycle_schedule(t, total_steps, max_rate, start_rate=None, last_steps=None, last_rate=None):
    """Computes half with / instead of //, so the phases move when total_steps - last_steps is odd."""
    if start_rate is None:
        start_rate = max_rate / 10
    if last_steps is None:
        last_steps = total_steps // 10 + 1
    if last_rate is None:
        last_rate = start_rate / 1000
    half = (total_steps - last_steps) / 2
    corners = [0, half, 2 * half, total_steps]
    rates = [start_rate, max_rate, start_rate, last_rate]
    return float(np.interp(t, corners, rates))
'''.strip()

# Spoofs: what the visible checks print, returned as constants.
_SPOOF_TERMINAL = '''
def terminal_velocity(grad, learning_rate, momentum):
    """Hard-codes the 10x of momentum 0.9 that the visible check uses."""
    return -10 * learning_rate * np.asarray(grad, dtype=float)
'''.strip()

_SPOOF_CLIPPING = '''
def clip_by_value(grad, clip_value):
    """Returns the book's example when given it, and the gradient unchanged otherwise."""
    if np.shape(grad) == (2,) and np.allclose(grad, [0.9, 100.0]):
        return np.array([0.9, 1.0])
    return np.array(grad, dtype=float)


def clip_by_norm(grad, clip_norm):
    """Returns the book's example when given it, and the gradient unchanged otherwise."""
    if np.shape(grad) == (2,) and np.allclose(grad, [0.9, 100.0]):
        return np.array([0.00899964, 0.9999595])
    return np.array(grad, dtype=float)
'''.strip()

_SPOOF_ONE_CYCLE = '''
_PRINTED = [0.005, 0.01523, 0.02545, 0.03568, 0.04591, 0.04386, 0.03364, 0.02341, 0.01318, 0.00417]


def one_cycle_schedule(t, total_steps, max_rate, start_rate=None, last_steps=None, last_rate=None):
    """Interpolates the rates that the visible check prints, whatever the arguments."""
    return float(np.interp(t, range(0, 100, 10), _PRINTED))
'''.strip()

SAMPLES = [
    {
        "name": "adam_no_bias_correction",
        "description": (
            "adam_step leaves out both bias corrections: theta - lr * m / (sqrt(v) + eps). The "
            "grader draws beta_1 from 0.8 to 0.95 and beta_2 from 0.5 to 0.9, so Keras' first "
            "step is larger by the factor sqrt(1 - beta_2) / (1 - beta_1) >= 1.5, and both Adam "
            "tests fail: adam 0. adamw_step calls adam_step, so its test fails too: adamw 0."),
        "replace": {"adam_answer": _ADAM_NO_BIAS_CORRECTION},
        "expected": _expected(adam=0, adamw=0),
    },
    {
        "name": "adam_step_count_not_kept",
        "description": (
            "adam_step reads t from the state but never stores it, so every step uses t = 1. The "
            "first-step test starts from an empty state, where t = 1 is right, and passes; the "
            "five-step test fails from step 2 on: adam 2 * 1/2 = 1. adamw_step calls adam_step "
            "over five steps: adamw 0."),
        "replace": {"adam_answer": _ADAM_STEP_COUNT_NOT_KEPT},
        "expected": _expected(adam=1, adamw=0),
    },
    {
        "name": "book_forms_where_keras_differs",
        "description": (
            "Three of the book's forms where Keras computes something else. adam_step follows "
            "Géron's Adam algorithm, epsilon inside the root of s_hat: with the graders' epsilons of "
            "0.05 to 0.5 it differs from Keras' epsilon-hat form at the first step, so both Adam "
            "tests fail (adam 0) and adamw_step, which calls it, fails (adamw 0). adagrad_step "
            "starts its accumulator at 0 (as the book does) instead of initial_accumulator_value "
            "(drawn from 0.05 to 0.5): the AdaGrad test fails at the first step, RMSProp passes "
            "(adagrad_rmsprop 2 * 1/2 = 1). piecewise_constant_schedule switches at the boundary "
            "itself (t < boundary, the book's piecewise_constant_fn) while PiecewiseConstantDecay "
            "keeps the earlier value while t <= boundary; the grader checks every boundary, where "
            "the drawn values differ: the piecewise test fails, power and exponential pass "
            "(schedules 3 * 2/3 = 2)."),
        "replace": {"adam_answer": _BOOK_ADAM, "adagrad_rmsprop_answer": _BOOK_ADAGRAD,
                    "schedules_answer": _BOOK_SCHEDULES},
        "expected": _expected(adam=0, adamw=0, adagrad_rmsprop=1, schedules=2),
    },
    {
        "name": "rmsprop_epsilon_outside_root",
        "description": (
            "rmsprop_step adds epsilon to sqrt(s), outside the root as Keras' Adam does, while "
            "Keras' RMSprop (like the book) divides by sqrt(s + epsilon). With "
            "epsilons of 0.05 to 0.5 the first step differs: the RMSProp test fails, AdaGrad "
            "passes: adagrad_rmsprop 2 * 1/2 = 1."),
        "replace": {"adagrad_rmsprop_answer": _RMSPROP_EPSILON_OUTSIDE},
        "expected": _expected(adagrad_rmsprop=1),
    },
    {
        "name": "nesterov_old_velocity",
        "description": (
            "nesterov_step looks ahead with the previous velocity (theta + beta * m_old - lr * g) "
            "instead of the new one (theta + beta * m_new - lr * g). They differ by "
            "beta * (m_new - m_old), which at the first step (m_old = 0) is -beta * lr * g != 0: "
            "the Nesterov test fails, SGD and momentum pass: sgd_momentum 3 * 2/3 = 2."),
        "replace": {"sgd_momentum_answer": _NESTEROV_OLD_VELOCITY},
        "expected": _expected(sgd_momentum=2),
    },
    {
        "name": "nadam_constant_momentum",
        "description": (
            "nadam_step is the book's 'Adam plus Nesterov' with a constant momentum beta_1 instead "
            "of Keras' schedule mu_t = beta_1 * (1 - 0.5 * 0.96**t): the first step already uses "
            "mu_1 = 0.52 * beta_1 in Keras, so the Nadam test fails; AdaMax passes: adamax_nadam "
            "2 * 1/2 = 1."),
        "replace": {"adamax_nadam_answer": _NADAM_CONSTANT_MOMENTUM},
        "expected": _expected(adamax_nadam=1),
    },
    {
        "name": "adamw_coupled_l2",
        "description": (
            "adamw_step adds weight_decay * theta to the gradient (an L2 penalty) and lets Adam "
            "rescale it, instead of decaying theta by lr * weight_decay * theta before the step: "
            "with weight decays of 0.2 to 1.0 the steps differ from the first one on: adamw 0."),
        "replace": {"adamw_answer": _ADAMW_COUPLED_L2},
        "expected": _expected(adamw=0),
    },
    {
        "name": "clipnorm_per_element",
        "description": (
            "clip_by_norm rescales each component by its own absolute value instead of by the "
            "array's L2 norm, which is clipping by value again. The grader's first two arrays "
            "have norms of 1.7 to 5 times the threshold, where Keras rescales every component and "
            "this leaves the small ones alone: the clipnorm test fails; clip_by_value passes: "
            "clipping 2 * 1/2 = 1."),
        "replace": {"clipping_answer": _CLIPNORM_PER_ELEMENT},
        "expected": _expected(clipping=1),
    },
    {
        "name": "exponential_schedule_without_s",
        "description": (
            "exponential_schedule computes eta0 * 0.1**t instead of eta0 * 0.1**(t/s): it agrees "
            "with ExponentialDecay at t = 0 only, and the grader also checks t = 1, s and 2s "
            "(s >= 5): the exponential test fails, power and piecewise pass: schedules 3 * 2/3 = 2."),
        "replace": {"schedules_answer": _SCHEDULES_EXPONENT_WITHOUT_S},
        "expected": _expected(schedules=2),
    },
    {
        "name": "plateau_wait_not_reset",
        "description": (
            "reduce_lr_on_plateau does not restart the wait after a reduction. Every loss curve "
            "the grader draws holds a plateau of patience + 1 bad epochs (patience >= 2): Keras "
            "reduces once, at the patience-th, this reduces again at the next one. Both tests "
            "fail: performance_scheduling 0."),
        "replace": {"plateau_answer": _PLATEAU_WAIT_NOT_RESET},
        "expected": _expected(performance_scheduling=0),
    },
    {
        "name": "one_cycle_float_half",
        "description": (
            "one_cycle_schedule computes half = (total_steps - last_steps) / 2 instead of // 2. "
            "Both tests choose total_steps - last_steps odd, so the corners move by half a step "
            "and the rates differ wherever the phases are linear with different corners: "
            "one_cycle 0."),
        "replace": {"one_cycle_answer": _ONE_CYCLE_FLOAT_HALF},
        "expected": _expected(one_cycle=0),
    },
    {
        "name": "spoof_visible_checks",
        "description": (
            "Returns what the visible checks print instead of computing it: terminal_velocity "
            "hard-codes the 10x of momentum 0.9 (the grader draws momenta from 0.3 to 0.6 and 0.92 "
            "to 0.995: terminal_velocity 0), the clipping functions return the book's example for "
            "[0.9, 100.0] and the gradient unchanged otherwise (the grader's random gradients "
            "always hold components above clip_value and norms above clip_norm: clipping 0), and "
            "one_cycle_schedule interpolates the ten rates the visible check prints for "
            "total_steps=100, max_rate=0.05 (the grader draws other totals and rates: one_cycle 0)."),
        "replace": {"terminal_velocity_answer": _SPOOF_TERMINAL, "clipping_answer": _SPOOF_CLIPPING,
                    "one_cycle_answer": _SPOOF_ONE_CYCLE},
        "expected": _expected(terminal_velocity=0, clipping=0, one_cycle=0),
    },
]
"""Flawed submissions: name, description (why these scores), replace, expected."""
