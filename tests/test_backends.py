"""`[resources] keras_backend`: the same a01 submissions graded on TensorFlow and on JAX agree.

The notebooks and graders are Keras 3 (`import keras`, `keras.ops`), so one
notebook runs on either backend; a GPU machine without a CUDA build of
TensorFlow grades through JAX. Each submission gets an extra cell printing
the backend its kernel runs, so the test sees that the setting reached the
sandbox, not only that the points agree.
"""

import json
import shutil

import nbformat
import pytest

from nndl import build, course
from nndl.batch import coordinator
from nndl.cli import samples
from nndl.record import gradebook

from kit import A01, KIT

pytestmark = pytest.mark.slow

CHOSEN = ("s01-solution", "s02-untouched-release")


def _graded(root, backend):
    shutil.copytree(KIT / "source" / A01, root / "source" / A01)
    graders = root / "graders"
    shutil.copytree(KIT / "autograder" / A01, graders / A01, ignore=shutil.ignore_patterns("__pycache__"))
    (graders / A01 / "assignment.toml").write_text(f'[resources]\nkeras_backend = "{backend}"\n')
    course.write_course_config(root, graders=graders)
    build.build(root, assignment=A01)
    notebook, batch = samples.assignment_samples(KIT, A01)
    chosen = [s for s in batch if s.student in CHOSEN or "keras" in s.student]
    for sample in chosen:
        nb = json.loads(sample.content)
        nb["cells"].append(nbformat.v4.new_code_cell("import keras\nprint('backend:', keras.backend.backend())"))
        sample.content = json.dumps(nb)
    samples.write_submissions(root, A01, chosen, notebook)
    results = coordinator.autograde(root, A01, workers=2)
    assert all(r.graded for r in results), [r.error for r in results if not r.graded]
    _, rows = gradebook.cell_scores(f"sqlite:///{root}/gradebook.db", A01)
    said = {s.student: (root / "autograded" / s.student / A01 / notebook).read_text() for s in chosen}
    return {row["student"]: row["scores"] for row in rows}, said, chosen


def test_a01_graded_on_jax_earns_what_it_earns_on_tensorflow(tmp_path):
    """Same submissions, two backends: identical points, and each kernel ran the backend asked for?"""
    pytest.importorskip("jax", reason="the jax extra is not installed (scripts/setup installs it)")
    on_tf, said_tf, chosen = _graded(tmp_path / "tf", "tensorflow")
    on_jax, said_jax, _ = _graded(tmp_path / "jax", "jax")
    assert on_jax == on_tf
    assert all("backend: tensorflow" in text for text in said_tf.values())
    assert all("backend: jax" in text for text in said_jax.values())
    for sample in chosen:  # and each earned what its graders' reasoning says
        assert {g: on_jax[sample.student][g] for g in sample.expected} == pytest.approx(sample.expected)


def test_an_unknown_backend_is_refused_naming_the_choices(tmp_path):
    """`keras_backend = "theano"` stops the batch before anything runs, listing the backends?"""
    from nndl import settings

    folder = tmp_path / A01
    shutil.copytree(KIT / "autograder" / A01, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "assignment.toml").write_text('[resources]\nkeras_backend = "theano"\n')
    with pytest.raises(settings.SettingsError, match="'tensorflow', 'jax', 'torch'"):
        settings.load(A01, tmp_path)
