"""Paths and helpers shared by the kit's tests (import them; never copy them)."""

import pathlib

import nbformat

KIT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = KIT / "tests" / "fixtures"
A01 = "a01_perceptrons_xor"


def feedback(path):
    """What a student reads in a graded notebook: each cell's source and the text of its outputs.

    Timings, stderr notes of the run and execution counts are left out, so
    two gradings of the same submission compare equal wherever they ran.
    """
    nb = nbformat.read(str(path), as_version=4)
    return [(c.source, [o.get("evalue") or (o.get("text") if o.get("name") != "stderr" else None)
                        or o.get("data", {}).get("text/plain") for o in c.get("outputs", [])])
            for c in nb.cells]
