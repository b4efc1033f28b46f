"""Caps on what grading says: each message, each grade cell's report, each submission.

Kernel output is capped where the notebook runs; the graders' messages are
not, and they quote student values (``f"received {got!r}"``): a function
returning ``"x" * 50_000_000`` makes a 50-million-character message, and one
quoting ``[[0] * 1000] * 1000`` a 3-million-character one from a few bytes of
answer. So every text that reaches a verdict, the gradebook or a feedback
notebook is capped here, by characters and by lines, and what was cut says so.

The caps apply twice: when a verdict is made (`cap_verdict`, from
`nndl.grade`), so stored verdicts stay small, and again when one is written
into a notebook (`nndl.record.cells`), so that any verdict, one stored before
these caps included, is written capped. Capping what is already capped
changes nothing. This module imports nothing heavy: grading workers use it.
"""

import dataclasses
import re

#: Most characters of one message: a failed test's, a run problem's, an intake note. Room for
#: a sentence and an expected and a received value (a small array's repr is a few hundred).
MESSAGE_CHARS = 2_000
#: Most lines of one message: a (5, 5) array's repr fits; a value of thousands of lines does not.
MESSAGE_LINES = 25
#: Most characters of a test's name (pytest's node id); names are shown on one line.
TEST_NAME_CHARS = 300
#: Most characters of one grade cell's report below its score: its tests' lines and the notes.
CELL_CHARS = 10_000
#: Most lines of one grade cell's report below its score.
CELL_LINES = 200
#: Most characters of all the messages of one submission together: in its verdict (tests' and
#: run problems' messages), and in its notebook (the grade cells' reports and the notes under
#: cells). Splitting a huge value over many tests or cells does not get past it; once it is
#: spent, a grade cell shows its score and one line saying the rest was cut.
SUBMISSION_CHARS = 100_000
#: Most characters of the graders' pytest log kept with a verdict: its end, where the summary is.
LOG_CHARS = 5_000
#: Most lines of the graders' pytest log kept with a verdict.
LOG_LINES = 200

# Jupyter shows a lone carriage return as a line break too.
_BREAK = re.compile(r"\r\n|\r|\n")
#: Room kept for the note saying what was cut, so that a capped text, note included, is within its cap.
_NOTE_ROOM = 160


def line_count(text):
    """How many lines `text` shows as: its line breaks (\\n, \\r, \\r\\n), and one more unless it ends with one."""
    return _breaks(text) + (0 if text.endswith(("\n", "\r")) else 1)


def _breaks(text):
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def cap_text(text, chars=MESSAGE_CHARS, lines=MESSAGE_LINES):
    """`text` within `chars` characters and `lines` lines, saying what was cut.

    A text within both caps comes back as it is (but for lone surrogates,
    which no file can hold, written as escapes). A longer one keeps its start
    and ends with a note, e.g. ``… [cut: a message of 50,000,002
    characters; the first 1,840 characters shown]``; the result, note
    included, is within both caps, so capping it again changes nothing. Its
    cost does not grow with the length of `text`.
    """
    if not isinstance(text, str):
        text = str(text)
    if len(text) <= chars and line_count(text) <= lines:
        text = _writable(text)
        if len(text) <= chars:
            return text
    room = max(chars - _NOTE_ROOM, 0)
    head = _writable(text[:room])[:room]
    if lines <= 1:
        head = _BREAK.split(head, maxsplit=1)[0]
    else:
        breaks = [m.start() for m in _BREAK.finditer(head)]
        if len(breaks) >= lines - 1:
            head = head[:breaks[lines - 2]]
    shown_lines = line_count(head)
    if len(text) > chars:
        # Lines are not counted in a text this long: counting would cost as much as it is long.
        note = (f"… [cut: a message of {len(text):,} characters; the first {len(head):,} characters"
                + (f" ({shown_lines:,} lines)" if shown_lines > 1 else "") + " shown]")
    else:
        note = f"… [cut: a message of {line_count(text):,} lines; the first {shown_lines:,} shown]"
    return f"{head} {note}"[:chars] if lines <= 1 else f"{head}\n{note}"


def cap_tail(text, chars=LOG_CHARS, lines=LOG_LINES):
    """The end of `text` within `chars` characters and `lines` lines (for logs, whose end matters)."""
    if not isinstance(text, str):
        text = str(text)
    if len(text) <= chars and line_count(text) <= lines:
        text = _writable(text)
        if len(text) <= chars:
            return text
    room = max(chars - _NOTE_ROOM, 0)
    tail = _writable(text[len(text) - room:])
    tail = tail[len(tail) - room:]
    breaks = [m.end() for m in _BREAK.finditer(tail)]
    if len(breaks) >= lines - 1:
        tail = tail[breaks[-(lines - 1)]:]
    return f"[cut: the first {len(text) - len(tail):,} of {len(text):,} characters]\n{tail}"


def _writable(text):
    """`text` with lone surrogates (from a value never meant as text) escaped, so that UTF-8 files can hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class Budget:
    """What is left of one submission's `SUBMISSION_CHARS`, spent as messages are kept."""

    #: What a message becomes once the budget is spent and its note was shown already.
    CUT = "… [cut]"

    def __init__(self, chars=SUBMISSION_CHARS):
        self.total = chars
        self.left = chars
        self.noted = False

    def spend(self, text):
        """Count `text` against the budget; returns it."""
        self.left -= len(text)
        return text

    def note(self):
        """The line shown in place of what no longer fits: in full the first time, then short."""
        if self.noted:
            return self.CUT
        self.noted = True
        return self.spend(f"… [cut: this submission's messages reached their limit of {self.total:,} "
                          "characters; the rest are not shown]")


def cap_message(text, budget):
    """One message, capped on its own and then to what is left of the submission's `budget`."""
    text = cap_text(text)
    if budget.left <= 0:
        return budget.note()
    if len(text) > budget.left:
        text = cap_text(text, chars=max(budget.left, _NOTE_ROOM + 40))
    return budget.spend(text)


def cap_lines(pieces, chars, lines, what="lines"):
    """Join `pieces` with line breaks, keeping the first ones within `chars` and `lines`.

    Each piece should already be capped (`cap_text`); one that does not fit
    whole is left out, with those after it, and a last line says how many
    were. The result is within `chars` + `_NOTE_ROOM` characters and `lines`
    lines.
    """
    kept, used_chars, used_lines = [], 0, 0
    for index, piece in enumerate(pieces):
        piece_lines = _breaks(piece) + 1  # a piece's own line, and one more for each break in it
        if used_chars + len(piece) + 1 > chars or used_lines + piece_lines > lines - 1:
            left_out = pieces[index:]
            size = sum(len(p) for p in left_out)
            kept.append(f"… [cut: {len(left_out):,} more {what} ({size:,} characters) not shown]")
            break
        kept.append(piece)
        used_chars += len(piece) + 1
        used_lines += piece_lines
    return "\n".join(kept)


def cap_verdict(verdict):
    """A copy of `verdict` with every message, test name and its log capped.

    Each test's and run problem's message is capped on its own
    (`MESSAGE_CHARS`, `MESSAGE_LINES`) and all of them together
    (`SUBMISSION_CHARS`, in the order the tests ran); test names to one line of
    `TEST_NAME_CHARS`; the pytest log to its last `LOG_CHARS` and `LOG_LINES`.
    Scores, outputs and figures are unchanged.
    """
    budget = Budget()
    outcomes = [dataclasses.replace(o, test=cap_text(o.test, TEST_NAME_CHARS, 1),
                                    message=cap_message(o.message, budget) if o.message else o.message)
                for o in verdict.outcomes]
    problems = [dataclasses.replace(p, message=cap_message(p.message, budget)) for p in verdict.problems]
    return dataclasses.replace(verdict, outcomes=outcomes, problems=problems, log=cap_tail(verdict.log or ""))
