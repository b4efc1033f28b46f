"""Paths and helpers shared by the kit's tests (import them; never copy them)."""

import pathlib

import nbformat

KIT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = KIT / "tests" / "fixtures"
A01 = "a01_perceptrons_xor"


def feedback(path):
    """What a student reads in a graded notebook: each cell's source and the text of its outputs.

    A cell's printed text is joined into one string (how a kernel's prints are
    cut into messages depends on timing); stderr notes of the run, timings and
    execution counts are left out, so two gradings of the same submission
    compare equal wherever they ran.
    """
    nb = nbformat.read(str(path), as_version=4)
    read = []
    for cell in nb.cells:
        outputs = cell.get("outputs", [])
        printed = "".join(o.get("text", "") for o in outputs
                          if o.get("output_type") == "stream" and o.get("name") == "stdout")
        rest = [o.get("evalue") or o.get("data", {}).get("text/plain") for o in outputs
                if o.get("output_type") != "stream"]
        read.append((cell.source, printed, rest))
    return read


def code_lines(path):
    """The stripped lines of a Python file that hold code (not only strings or comments)."""
    import io
    import tokenize

    source = pathlib.Path(path).read_text()
    code = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (tokenize.STRING, tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE,
                              tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code.add(token.start[0])
    lines = source.splitlines()
    return {lines[n - 1].strip() for n in code}
