"""Trusted reference implementations for a05_optimizers.

Most expected values come from Keras itself (`keras.optimizers.*`, their
`clipvalue` and `clipnorm`, `keras.optimizers.schedules.*` and the
`ReduceLROnPlateau` callback); the graders build those in `test_a05_optimizers.py`.
This module holds what Keras does not have (the 1cycle schedule, the power
schedule for c != 1, the terminal velocity of momentum, the answer key of the
optimizer questions), the numpy forms of the optimizers that the notebook asks
for (Keras' exact update rules, read from `keras/src/optimizers/*.py`), used
to check the graders' own Keras set-up, and the generators of the loss
sequences that drive `ReduceLROnPlateau`. It is written independently of the
master notebook and is never shipped to students.
"""

import numpy as np


# --- Optimizers, in Keras' exact form -----------------------------------------
# Each takes (theta, grad, state, **hyperparameters) and returns (new_theta, new_state);
# `state` is {} before the first step. t counts steps from 1, as Keras' `iterations + 1`.

def sgd(theta, grad, state, learning_rate):
    """keras.optimizers.SGD(learning_rate): theta - lr * g."""
    return theta - learning_rate * grad, dict(state)


def momentum(theta, grad, state, learning_rate, momentum):
    """keras.optimizers.SGD(learning_rate, momentum): m = beta*m - lr*g; theta + m."""
    m = state.get("m", np.zeros_like(theta)) * momentum - learning_rate * grad
    return theta + m, {"m": m}


def nesterov(theta, grad, state, learning_rate, momentum):
    """keras.optimizers.SGD(learning_rate, momentum, nesterov=True).

    Keras stores the look-ahead point theta + beta*m, so the gradient it gets
    is the one at the look-ahead point: m = beta*m - lr*g; theta += beta*m - lr*g
    (the new m).
    """
    m = state.get("m", np.zeros_like(theta)) * momentum - learning_rate * grad
    return theta + (m * momentum - learning_rate * grad), {"m": m}


def adagrad(theta, grad, state, learning_rate, initial_accumulator_value, epsilon):
    """keras.optimizers.Adagrad: s starts at initial_accumulator_value; s += g^2; theta - lr*g/sqrt(s + eps)."""
    s = state.get("s", np.full_like(theta, initial_accumulator_value)) + grad ** 2
    return theta - learning_rate * grad / np.sqrt(s + epsilon), {"s": s}


def rmsprop(theta, grad, state, learning_rate, rho, epsilon):
    """keras.optimizers.RMSprop (no momentum, not centered): epsilon inside the root."""
    s = rho * state.get("s", np.zeros_like(theta)) + (1 - rho) * grad ** 2
    return theta - learning_rate * grad / np.sqrt(s + epsilon), {"s": s}


def adam(theta, grad, state, learning_rate, beta_1, beta_2, epsilon):
    """keras.optimizers.Adam: the bias corrections folded into the step size, epsilon "hat".

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t); theta - alpha * m / (sqrt(v) + eps).
    """
    t = state.get("t", 0) + 1
    m = beta_1 * state.get("m", np.zeros_like(theta)) + (1 - beta_1) * grad
    v = beta_2 * state.get("v", np.zeros_like(theta)) + (1 - beta_2) * grad ** 2
    alpha = learning_rate * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    return theta - alpha * m / (np.sqrt(v) + epsilon), {"m": m, "v": v, "t": t}


def adamax(theta, grad, state, learning_rate, beta_1, beta_2, epsilon):
    """keras.optimizers.Adamax: u = max(beta_2*u, |g|); theta - lr*m / ((1 - beta_1^t) * (u + eps))."""
    t = state.get("t", 0) + 1
    m = beta_1 * state.get("m", np.zeros_like(theta)) + (1 - beta_1) * grad
    u = np.maximum(beta_2 * state.get("u", np.zeros_like(theta)), np.abs(grad))
    return theta - learning_rate * m / ((1 - beta_1 ** t) * (u + epsilon)), {"m": m, "u": u, "t": t}


def nadam_momentum(beta_1, t):
    """Keras Nadam's momentum schedule: mu_t = beta_1 * (1 - 0.5 * 0.96^t)."""
    return beta_1 * (1.0 - 0.5 * 0.96 ** t)


def nadam(theta, grad, state, learning_rate, beta_1, beta_2, epsilon):
    """keras.optimizers.Nadam, with its momentum schedule and the product of its momenta."""
    t = state.get("t", 0) + 1
    mu_t = nadam_momentum(beta_1, t)
    mu_next = nadam_momentum(beta_1, t + 1)
    product = state.get("mu_product", 1.0) * mu_t
    product_next = product * mu_next
    m = beta_1 * state.get("m", np.zeros_like(theta)) + (1 - beta_1) * grad
    v = beta_2 * state.get("v", np.zeros_like(theta)) + (1 - beta_2) * grad ** 2
    m_hat = mu_next * m / (1 - product_next) + (1 - mu_t) * grad / (1 - product)
    v_hat = v / (1 - beta_2 ** t)
    update = learning_rate * m_hat / (np.sqrt(v_hat) + epsilon)
    return theta - update, {"m": m, "v": v, "t": t, "mu_product": product}


def adamw(theta, grad, state, learning_rate, weight_decay, beta_1, beta_2, epsilon):
    """keras.optimizers.AdamW: theta -= lr * weight_decay * theta first, then the Adam step."""
    theta = theta - theta * weight_decay * learning_rate
    return adam(theta, grad, state, learning_rate, beta_1, beta_2, epsilon)


OPTIMIZERS = {
    "sgd_step": sgd, "momentum_step": momentum, "nesterov_step": nesterov,
    "adagrad_step": adagrad, "rmsprop_step": rmsprop, "adam_step": adam,
    "adamax_step": adamax, "nadam_step": nadam, "adamw_step": adamw,
}
"""Each student-facing step function's reference, by name."""


def run_steps(step, theta, grads, **hyperparameters):
    """The parameters after each step of `step` over a gradient sequence, as a list."""
    state, out = {}, []
    for grad in grads:
        theta, state = step(theta, grad, state, **hyperparameters)
        out.append(theta)
    return out


# --- Gradient clipping --------------------------------------------------------

def clip_by_value(grad, clip_value):
    """Keras' clipvalue: each component clipped to [-clip_value, clip_value]."""
    return np.clip(grad, -clip_value, clip_value)


def clip_by_norm(grad, clip_norm):
    """Keras' clipnorm: the whole gradient array rescaled when its L2 norm exceeds clip_norm."""
    norm = np.sqrt(np.sum(np.square(grad)))
    return grad * clip_norm / max(norm, clip_norm)


# --- Momentum's terminal velocity ------------------------------------------------

def terminal_velocity(grad, learning_rate, momentum):
    """The limit of Keras' m = beta*m - lr*g under a constant gradient: -lr*g / (1 - beta)."""
    return -learning_rate * np.asarray(grad, dtype=float) / (1.0 - momentum)


# --- Learning-rate schedules --------------------------------------------------

def power_schedule(t, initial_learning_rate, s, c=1.0):
    """Power scheduling (Géron): eta0 / (1 + t/s)^c. For c = 1, Keras' InverseTimeDecay(eta0, s, 1)."""
    return initial_learning_rate / (1.0 + t / s) ** c


def one_cycle_schedule(t, total_steps, max_rate, start_rate=None, last_steps=None, last_rate=None):
    """The learning rate at iteration t (from 0) of Géron's OneCycleScheduler.

    Linear from start_rate (default max_rate / 10) up to max_rate over the
    first half_steps = (total_steps - last_steps) // 2 iterations, linear back
    down to start_rate over the next half_steps, then linear from start_rate to
    last_rate (default start_rate / 1000) over the remaining iterations up to
    total_steps; last_steps defaults to total_steps // 10 + 1.
    """
    start_rate = start_rate or max_rate / 10
    last_steps = last_steps or total_steps // 10 + 1
    last_rate = last_rate or start_rate / 1000
    half_steps = (total_steps - last_steps) // 2

    def interpolate(t1, t2, rate1, rate2):
        return (rate2 - rate1) * (t - t1) / (t2 - t1) + rate1

    if t < half_steps:
        return interpolate(0, half_steps, start_rate, max_rate)
    if t < 2 * half_steps:
        return interpolate(half_steps, 2 * half_steps, max_rate, start_rate)
    return interpolate(2 * half_steps, total_steps, start_rate, last_rate)


def reduce_lr_on_plateau(losses, learning_rate, factor, patience, min_delta, min_lr=0.0):
    """Keras' ReduceLROnPlateau(mode="min", cooldown=0) on a loss sequence: the rate after each epoch.

    Kept here to check the graders' own way of driving the Keras callback; the
    graders compare with the callback itself.
    """
    best, wait, lr, out = None, 0, float(np.float32(learning_rate)), []
    for loss in losses:
        improved = best is None or loss < best - min_delta
        if improved:
            best, wait = loss, 0
        else:
            wait += 1
            if wait >= patience and lr > np.float32(min_lr):
                lr = float(np.float32(max(lr * factor, min_lr)))
                wait = 0
        out.append(lr)
    return out


def plateau_losses(rng, min_delta, patience, n_blocks=6):
    """A loss sequence for ReduceLROnPlateau that exercises every rule of the callback.

    Built from blocks, each starting from the best loss so far (`best`):
    - "improve": one loss clearly below best - min_delta (resets the wait);
    - "plateau": patience + 1 losses that are not improvements, mixing losses
      above best and losses below best by less than min_delta (a rule that
      ignores min_delta sees improvements there);
    - "drift": losses that creep down by less than min_delta each, until one
      is more than min_delta below best (a rule that moves best on every small
      gain never sees that improvement).
    Every loss is at least min_delta / 5 away from every threshold the
    callback compares it with, far more than float32 rounding, so the
    comparisons cannot depend on the precision they are made in.

    Returns:
        list of float.
    """
    best = float(rng.uniform(1.0, 2.0))
    losses = [best]
    kinds = ["plateau", "improve", "plateau", "drift", "plateau", "plateau"]
    kinds += list(rng.choice(["plateau", "improve", "drift"], size=max(0, n_blocks - len(kinds))))
    for kind in kinds:
        if kind == "improve":
            best -= min_delta * float(rng.uniform(1.5, 4.0))
            losses.append(best)
        elif kind == "plateau":
            for i in range(patience + 1):
                if i % 2 == 0:
                    losses.append(best - min_delta * float(rng.uniform(0.2, 0.8)))
                else:
                    losses.append(best + min_delta * float(rng.uniform(0.2, 5.0)))
        else:
            first = best - min_delta * float(rng.uniform(0.2, 0.4))
            second = best - min_delta * float(rng.uniform(0.6, 0.8))
            best -= min_delta * float(rng.uniform(1.2, 1.4))
            losses += [first, second, best]
    return losses


# --- Which optimizer when (Géron, Table 11-2 and the text around it) -------------

OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamax", "nadam", "adamw")

CHOICES = {
    "fastest_convergence": {"adagrad", "rmsprop", "adam", "adamax", "nadam", "adamw"},
    "slowest_convergence": {"sgd"},
    "always_best_quality": {"sgd", "momentum", "nesterov"},
    "stops_too_early": {"adagrad"},
    "allergic_to_adaptive": {"nesterov"},
}
"""The answer key: the set of optimizer names each question asks for."""
