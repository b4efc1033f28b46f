"""Sample submissions for a03_initialization, with the scores they must get.

Each sample is the solution notebook (the master with its solutions in place)
with the source of some solution cells replaced, keyed by grade_id. The
expected points, for every autograded grade cell, are reasoned out from the
hidden graders in `test_a03_initialization.py`; each description says why.
A cell's score is its points times the weight of its passing tests over the
weight of all its tests. The written justification `symmetry_justification`
is graded by hand and is not listed.

The solution's answers build on one another: `variance_scaling_parameter`
calls `fans`, and `my_initializer` calls `fans`, `variance` and
`sampling_parameter`. A flaw in one of them therefore also costs the later
questions that use it, and the descriptions follow it there. The graders
draw every shape so that each flaw shows for any seed: Dense and Conv2D fans
differ by a factor of 2 or more, convolution windows are at least 2x2, and
every test of `variance_scaling` and `own_initializer` covers a Dense and a
Conv2D kernel and every scheme.

The solution itself and the untouched release are not listed:
`nndl.cli.samples` makes those two for every assignment.
"""

_FULL_MARKS = {
    "fans": 2.0,
    "variance": 3.0,
    "variance_scaling": 4.0,
    "own_initializer": 3.0,
    "activation_stds": 2.0,
    "short_questions": 3.0,
}
"""Points of each autograded grade cell of the master, for writing `expected` only."""


def _expected(**changed):
    """Full marks on every autograded cell except those given."""
    unknown = set(changed) - set(_FULL_MARKS)
    if unknown:
        raise KeyError(f"Expected grade ids from {sorted(_FULL_MARKS)}, received {sorted(unknown)}")
    return {**_FULL_MARKS, **{grade_id: float(points) for grade_id, points in changed.items()}}


def _variance_source(glorot, he, lecun):
    """A variance() whose three formulas are the given expressions."""
    return f'''
def variance(kind, fan_in, fan_out):
    """sigma^2 of the weights for kind "glorot", "he" or "lecun"."""
    fan_avg = (fan_in + fan_out) / 2.0
    if kind == "glorot":
        return {glorot}
    if kind == "he":
        return {he}
    if kind == "lecun":
        return {lecun}
    raise ValueError(f"unknown kind {{kind!r}}")
'''.strip()


_VARIANCE_GLOROT_FAN_IN = _variance_source("1.0 / fan_in", "2.0 / fan_in", "1.0 / fan_in")
_VARIANCE_BOOK_TABLE = _variance_source("1.0 / fan_avg", "2.0 / fan_avg", "1.0 / fan_avg")
_VARIANCE_STD = _variance_source("float(np.sqrt(1.0 / fan_avg))", "float(np.sqrt(2.0 / fan_in))",
                                 "float(np.sqrt(1.0 / fan_in))")

_FANS_NO_RECEPTIVE_FIELD = '''
def fans(shape):
    """Takes the channels of a Conv2D kernel as its fans, forgetting the window."""
    return int(shape[-2]), int(shape[-1])
'''.strip()


def _sampling_source(uniform, truncated):
    """The solution's section 3 with the given uniform and truncated-normal formulas."""
    return f'''
TRUNCATED_UNIT_STD = 0.87962566103423978


def sampling_parameter(distribution, var):
    sigma = float(np.sqrt(var))
    if distribution == "uniform":
        return {uniform}
    if distribution == "truncated_normal":
        return {truncated}
    if distribution == "untruncated_normal":
        return sigma
    raise ValueError(distribution)


def variance_scaling_parameter(shape, scale=1.0, mode="fan_in", distribution="truncated_normal"):
    fan_in, fan_out = fans(shape)
    n = {{"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}}[mode]
    return sampling_parameter(distribution, scale / max(1.0, n))
'''.strip()


_SAMPLING_NO_SQRT3 = _sampling_source("sigma", "sigma / TRUNCATED_UNIT_STD")
_SAMPLING_NO_TRUNCATION_CORRECTION = _sampling_source("float(np.sqrt(3.0 * var))", "sigma")

_OWN_CLIPPED = '''
def my_initializer(kind, distribution, shape, seed):
    """Truncates the normal by clipping to +-2s instead of drawing again."""
    rng = np.random.default_rng(seed)
    parameter = sampling_parameter(distribution, variance(kind, *fans(shape)))
    if distribution == "uniform":
        return rng.uniform(-parameter, parameter, size=shape)
    return np.clip(rng.normal(0.0, parameter, size=shape), -2.0 * parameter, 2.0 * parameter)
'''.strip()

_STDS_OF_PREACTIVATIONS = '''
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def activation_stds(X, weights):
    """Records the std of z = h W, before the sigmoid."""
    h = np.asarray(X, dtype=np.float64)
    stds = []
    for kernel in weights:
        z = h @ kernel
        stds.append(np.std(z))
        h = sigmoid(z)
    return np.array(stds)
'''.strip()

# Constants that satisfy every visible check: the visible checks' own shapes, positive
# floats, a reproducible (all-zero) array, one number per layer, and the same letter for
# every question (any letter passes the visible check).
_SPOOF = {
    "fans_answer": '''
def fans(shape):
    return (64, 10) if len(shape) == 2 else (144, 288)
'''.strip(),
    "variance_answer": '''
def variance(kind, fan_in, fan_out):
    return 0.005
'''.strip(),
    "variance_scaling_answer": '''
def sampling_parameter(distribution, var):
    return 0.1


def variance_scaling_parameter(shape, scale=1.0, mode="fan_in", distribution="truncated_normal"):
    return 0.1
'''.strip(),
    "own_initializer_answer": '''
def my_initializer(kind, distribution, shape, seed):
    return np.zeros(shape)
'''.strip(),
    "activation_stds_answer": '''
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def activation_stds(X, weights):
    return np.full(len(weights), 0.44)
'''.strip(),
    "short_answers": '''
ANSWER_SYMMETRY = "a"
ANSWER_LECUN_GLOROT = "a"
ANSWER_ZERO_BIASES = "a"
'''.strip(),
}

_OWN_FAILS_ITS_DISTRIBUTIONS = (
    "my_initializer calls variance(), so its uniform and truncated-normal tests (every scheme) "
    "fail on the wrong variance, while the seed test (shape, dtype, reproducibility) passes: "
    "own_initializer 3 * 1/3 = 1.")

SAMPLES = [
    {
        "name": "glorot_fan_in",
        "description": (
            "variance() uses 1/fan_in for Glorot, where fan_avg belongs (He and LeCun are right). "
            "variance: the Glorot test fails (the grader's fans differ by a factor of 2 or more, so "
            "1/fan_in is never 1/fan_avg), He and LeCun pass: 3 * 2/3 = 2. " + _OWN_FAILS_ITS_DISTRIBUTIONS),
        "replace": {"variance_answer": _VARIANCE_GLOROT_FAN_IN},
        "expected": _expected(variance=2, own_initializer=1),
    },
    {
        "name": "he_lecun_fan_avg_book_table",
        "description": (
            "variance() follows the misprinted table: 2/fan_avg for He and 1/fan_avg for LeCun. "
            "variance: Glorot passes, He and LeCun fail (fan_avg != fan_in on every drawn pair): "
            "3 * 1/3 = 1. " + _OWN_FAILS_ITS_DISTRIBUTIONS),
        "replace": {"variance_answer": _VARIANCE_BOOK_TABLE},
        "expected": _expected(variance=1, own_initializer=1),
    },
    {
        "name": "std_instead_of_variance",
        "description": (
            "variance() returns the standard deviation sqrt(scale/n) instead of scale/n. With fans of "
            "at least 4, scale/n <= 1/2 and its square root differs from it by a factor of 1.4 or more: "
            "all three variance tests fail, 0. " + _OWN_FAILS_ITS_DISTRIBUTIONS),
        "replace": {"variance_answer": _VARIANCE_STD},
        "expected": _expected(variance=0, own_initializer=1),
    },
    {
        "name": "conv_fans_without_receptive_field",
        "description": (
            "fans() returns the channels (c_in, c_out) of a Conv2D kernel, without the window kh*kw "
            "(which is 4 or more in every drawn shape). fans: Dense passes, Conv2D fails: 2 * 1/2 = 1. "
            "variance_scaling_parameter calls fans(), and each of its three tests includes a Conv2D "
            "kernel: 0. my_initializer calls fans() on a Conv2D kernel in both distribution tests "
            "(variance kh*kw times too large); the seed test passes: 3 * 1/3 = 1. variance() takes "
            "the fans as arguments: full marks."),
        "replace": {"fans_answer": _FANS_NO_RECEPTIVE_FIELD},
        "expected": _expected(fans=1, variance_scaling=0, own_initializer=1),
    },
    {
        "name": "uniform_limit_without_sqrt3",
        "description": (
            "sampling_parameter('uniform', var) returns sqrt(var) instead of sqrt(3 var). "
            "variance_scaling: the uniform test (weight 1) fails, truncated (2) and untruncated (1) "
            "pass: 4 * 3/4 = 3. my_initializer's uniform weights have a third of the variance: its "
            "uniform test fails, truncated and seed tests pass: 3 * 2/3 = 2."),
        "replace": {"variance_scaling_answer": _SAMPLING_NO_SQRT3},
        "expected": _expected(variance_scaling=3, own_initializer=2),
    },
    {
        "name": "truncation_correction_forgotten",
        "description": (
            "sampling_parameter('truncated_normal', var) returns sigma instead of sigma / 0.8796..., "
            "so the truncated weights have variance 0.77 sigma^2. variance_scaling: the truncated test "
            "(weight 2) fails, uniform and untruncated pass: 4 * 2/4 = 2. my_initializer: the "
            "truncated test fails on the variance (the support check passes, 2 sigma < 2 s), uniform "
            "and seed tests pass: 3 * 2/3 = 2."),
        "replace": {"variance_scaling_answer": _SAMPLING_NO_TRUNCATION_CORRECTION},
        "expected": _expected(variance_scaling=2, own_initializer=2),
    },
    {
        "name": "truncated_normal_by_clipping",
        "description": (
            "my_initializer clips the normal to +-2s instead of drawing again: 4.6% of the weights pile "
            "up on +-2s and the variance is 1.19 sigma^2. The support check passes, the variance check "
            "fails: truncated test fails, uniform and seed tests pass: 3 * 2/3 = 2."),
        "replace": {"own_initializer_answer": _OWN_CLIPPED},
        "expected": _expected(own_initializer=2),
    },
    {
        "name": "stds_of_preactivations",
        "description": (
            "activation_stds records the standard deviation of z = h W before the sigmoid instead of "
            "the activations after it (several times larger for N(0, 1) weights, and different for "
            "Glorot's too): both activation_stds tests fail, 0."),
        "replace": {"activation_stds_answer": _STDS_OF_PREACTIVATIONS},
        "expected": _expected(activation_stds=0),
    },
    {
        "name": "spoof_visible_checks",
        "description": (
            "Every function returns constants that pass the visible checks: fans returns the fans of "
            "the checks' own shapes, variance and both sampling functions a positive float, "
            "my_initializer zeros (reproducible for a seed), activation_stds 0.44 per layer. The hidden "
            "graders draw their own shapes, seeds and weights: fans, variance, variance_scaling and "
            "activation_stds 0; my_initializer's seed test fails (the same zeros for another seed) and "
            "its distribution tests fail (every weight 0): 0. Every short answer is 'a', which is right for "
            "ANSWER_ZERO_BIASES only: short_questions 3 * 1/3 = 1."),
        "replace": _SPOOF,
        "expected": _expected(fans=0, variance=0, variance_scaling=0, own_initializer=0,
                              activation_stds=0, short_questions=1),
    },
]
"""Flawed submissions: name, description (why these scores), replace, expected."""
