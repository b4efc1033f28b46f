"""The data channel between the student's kernel and the graders (nndl.bridge)."""

import base64
import io
import json
import math
import pickle
import tracemalloc

import nbformat
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from toy import toy_notebook, toy_scores

from nndl.batch import coordinator as grade
from nndl.bridge import codec as bridge
from nndl.score import StudentError
from nndl.score.plugin import Student
from nndl.score.runner import _serve


def test_round_trip_of_plain_data_and_arrays():
    """Does plain data, with arrays inside, come back equal and with its dtype?"""
    value = {"a": [1, 2.5, None, True, "x"], "w": np.arange(6, dtype=np.float32).reshape(2, 3),
             "n": np.int64(7)}
    back = bridge.decode(json.loads(json.dumps(bridge.encode(value))))
    assert back["a"] == [1, 2.5, None, True, "x"]
    assert back["w"].dtype == np.float32 and back["w"].shape == (2, 3)
    assert np.array_equal(back["w"], value["w"])
    assert back["n"] == 7 and type(back["n"]) is int


def test_object_arrays_are_refused():
    """Is an object array, which would need pickle, refused on the way out?"""
    with pytest.raises(TypeError):
        bridge.encode(np.array([object()], dtype=object))


def test_pickled_array_from_a_kernel_is_not_unpickled():
    """Does a forged answer carrying a pickled object array fail instead of unpickling?"""
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    forged = {"__ndarray__": base64.b64encode(buffer.getvalue()).decode()}
    with pytest.raises(bridge.BridgeDecodeError):
        bridge.decode(forged)


def test_arbitrary_pickle_bytes_are_never_loaded(tmp_path):
    """Is an answer file holding a pickle rejected as not JSON?"""
    path = tmp_path / "answer.json"
    path.write_bytes(pickle.dumps({"ok": True, "value": 1}))
    with pytest.raises(bridge.BridgeDecodeError, match="not valid JSON"):
        bridge.read_answer(path)


def test_unknown_shapes_of_data_are_rejected():
    """Does a dict that is not one of the bridge's encodings fail to decode?"""
    with pytest.raises(bridge.BridgeDecodeError):
        bridge.decode({"__class__": "os.system", "args": ["true"]})


def test_oversized_answer_is_refused(tmp_path, monkeypatch):
    """Is an answer file over the cap refused before it is parsed?"""
    monkeypatch.setattr(bridge, "MAX_ANSWER_BYTES", 100)
    path = tmp_path / "answer.json"
    path.write_text(json.dumps({"ok": True, "value": "x" * 200}))
    with pytest.raises(bridge.BridgeDecodeError, match="larger than"):
        bridge.read_answer(path)


def test_answer_without_the_ok_flag_is_refused(tmp_path):
    """Does a file that is JSON but not an answer count as no answer?"""
    path = tmp_path / "answer.json"
    path.write_text(json.dumps({"value": 5}))
    with pytest.raises(bridge.BridgeDecodeError, match="format"):
        bridge.read_answer(path)


def test_tuples_reach_the_kernel_as_tuples():
    """Are a grader's tuple arguments decoded as tuples (the kernel code relies on it)?"""
    args, kwargs = bridge.encode_arguments(((1, 2), [3]), {"k": (4,)})
    assert bridge.decode(args) == [(1, 2), [3]]
    assert bridge.decode(kwargs) == {"k": (4,)}


# -- answers a hostile kernel can write: data or BridgeDecodeError, nothing else --

# No example database: a run leaves nothing in the repository.
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _answer(value_text):
    """The bytes of an answer file whose value is `value_text`, as a kernel may write it."""
    return ('{"ok": true, "value": ' + value_text + "}").encode("utf-8", "surrogatepass")


def _npy_text(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return json.dumps({"__ndarray__": base64.b64encode(buffer.getvalue()).decode()})


def _forged_npy(descr, fortran, shape, data, version=b"\x01\x00"):
    """An .npy file with any header fields, as numpy.save would lay it out."""
    header = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    return b"\x93NUMPY" + version + len(header).to_bytes(2, "little") + header.encode("latin1") + data


class _AnswerRun:
    """Stands in for a NotebookRun whose kernel wrote `raw` as its answer (as `request` reads it)."""

    def __init__(self, raw):
        self.raw = raw

    def request(self, op, name, args=(), kwargs=None, timeout=None):
        try:
            return bridge.parse_answer(self.raw)
        except bridge.BridgeDecodeError as error:
            return {"ok": False, "error": f"the answer for '{name}' could not be read: {error}"}


def _through_the_graders(raw):
    """What a grader's `student.call("f")` gets when the kernel wrote `raw`: coordinator, pipe, Student."""
    message = {"op": "call", "name": "f", "args": [], "kwargs": {"__dict__": {}}, "timeout": None}
    line = json.dumps(_serve(_AnswerRun(raw), message)) + "\n"  # as GraderProcess.serve writes it
    return Student(io.StringIO(line), io.StringIO()).call("f")


def _text_of(value):
    return json.dumps(bridge.encode(value))


def _check_answer(raw):
    """Read `raw` as the coordinator and the graders do; only data or a clean refusal may come out."""
    try:
        answer = bridge.parse_answer(raw)
    except bridge.BridgeDecodeError as error:
        assert str(error)
        answer = None
    try:
        got = _through_the_graders(raw)
    except StudentError as error:
        assert answer is None or not answer["ok"], f"a readable answer was refused on the way: {error}"
        if answer is not None:
            assert str(error) == answer["error"]
            answer["error"].encode("utf-8")  # fit to be written into the feedback
        return
    assert answer is not None and answer["ok"]
    # What was accepted is written out again, read again and written out alike.
    first = _text_of(answer["value"])
    assert _text_of(bridge.decode(bridge.loads(first))) == first
    assert _text_of(got) == first
    for array in _arrays(answer["value"]):
        assert array.nbytes <= len(raw)


def _arrays(value):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _arrays(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _arrays(v)


_ARRAYS = hnp.arrays(
    dtype=st.one_of(hnp.boolean_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
                    hnp.floating_dtypes(), hnp.complex_number_dtypes(), hnp.unicode_string_dtypes(),
                    hnp.byte_string_dtypes()),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
_FORGED_NPY = st.builds(
    _forged_npy,
    descr=st.sampled_from(["'<f8'", "'>i2'", "'|b1'", "'<U3'", "'|O'", "'|V8'", "[('a', '<f4')]",
                           "'<U0'", "'|S0'", "'<M8[ns]'", "('<f8', (2,))", "'<f3'", "'=f8'", "1"]),
    fortran=st.sampled_from(["True", "False", "1", "None"]),
    shape=st.lists(st.one_of(st.integers(0, 3), st.integers(-3, 10**13), st.sampled_from([2**26, 2**31])),
                   max_size=40).map(tuple),
    data=st.binary(max_size=64),
    version=st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x01\x01"]))
_SCALAR_TEXT = st.one_of(
    st.sampled_from(["null", "true", "false", "NaN", "Infinity", "-Infinity", "-0", "1e999", "-1e-999",
                     "0.5", "01", "1.", "nan"]),
    st.integers(-10**20, 10**20).map(str),
    st.tuples(st.sampled_from(["", "-"]), st.integers(bridge.MAX_INT_DIGITS - 2, bridge.MAX_INT_DIGITS + 2))
    .map(lambda t: t[0] + "9" * t[1]),  # around the digit limit
    st.text(max_size=8).map(json.dumps),
    st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.text(st.characters(categories=["Cs", "Lu"]), max_size=3).map(json.dumps),  # lone surrogates, escaped
    st.sampled_from(['"\\ud83d\\ude00"', '"\\ud800"', '"' + chr(0xD800) + '"']),  # a pair; lone, escaped or raw
    _ARRAYS.map(_npy_text),
    _FORGED_NPY.map(lambda raw: json.dumps({"__ndarray__": base64.b64encode(raw).decode()})),
    st.binary(max_size=40).map(lambda raw: json.dumps({"__ndarray__": base64.b64encode(raw).decode()})),
    st.text(alphabet="AZaz09+/=!-_ \n", max_size=12).map(lambda s: json.dumps({"__ndarray__": s})),
)
_KEYS = st.one_of(st.sampled_from(["__ndarray__", "__dict__", "__tuple__", "ok", "value", "error"]),
                  st.text(max_size=4), st.text(st.characters(categories=["Cs"]), min_size=1, max_size=1))


def _object_text(pairs):
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"


_JSON_TEXT = st.recursive(_SCALAR_TEXT, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
    st.lists(st.tuples(_KEYS, inner), max_size=4, unique_by=lambda kv: kv[0]).map(_object_text),
    st.tuples(_KEYS, inner, inner).map(lambda t: _object_text([(t[0], t[1]), (t[0], t[2])])),  # a key twice
    st.lists(st.tuples(_KEYS, inner), max_size=4, unique_by=lambda kv: kv[0])
    .map(lambda pairs: '{"__dict__":' + _object_text(pairs) + "}"),
    st.lists(inner, max_size=4).map(lambda xs: '{"__tuple__":[' + ",".join(xs) + "]}"),
    st.tuples(st.integers(1, 2 * bridge.MAX_DEPTH), inner).map(lambda t: "[" * t[0] + t[1] + "]" * t[0]),
), max_leaves=12)
_ANSWER_TEXT = st.one_of(
    _JSON_TEXT.map(lambda t: '{"ok": true, "value": ' + t + "}"),
    _JSON_TEXT.map(lambda t: '{"ok": false, "error": ' + t + "}"),
    st.lists(st.tuples(_KEYS, _JSON_TEXT), max_size=3).map(_object_text),
    _JSON_TEXT,
)
# Edits at random places: structural characters, or any bytes (UTF-8 or not).
_EDITS = st.one_of(st.just([]), st.lists(st.tuples(
    st.integers(0, 10**6), st.integers(0, 3),
    st.one_of(st.sampled_from([b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b"9"]), st.binary(max_size=3))),
    min_size=1, max_size=2))


def _edited(text, edits):
    raw = text.encode("utf-8", "surrogatepass")
    for at, cut, insert in edits:
        at %= len(raw) + 1
        raw = raw[:at] + insert + raw[at + cut:]
    return raw


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_are_an_answer_or_a_clean_refusal(raw):
    """Do arbitrary bytes from a kernel give an answer or a BridgeDecodeError, never another error?"""
    _check_answer(raw)


@FUZZ
@given(_ANSWER_TEXT, _EDITS)
def test_adversarial_json_is_an_answer_or_a_clean_refusal(text, edits):
    """Does forged JSON (deep, huge ints, NaN, repeated keys, forged arrays, surrogates), edited at
    random, reach the graders as data or as a StudentError for that call, and what passes write out again?"""
    _check_answer(_edited(text, edits))


_PLAIN_DATA = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(-10**30, 10**30),
              st.integers(0, 1).map(lambda n: 10**bridge.MAX_INT_DIGITS - 1 - n), st.text(max_size=5), _ARRAYS),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=8)


@FUZZ
@given(_PLAIN_DATA)
def test_answers_a_kernel_honestly_writes_are_read_as_sent(value):
    """Is any plain data within the limits (NaN, the longest ints, arrays, nesting) read as it was sent?"""
    sent = json.dumps(bridge.encode(value))
    raw = ('{"ok": true, "value": ' + sent + "}").encode()
    assert _text_of(bridge.parse_answer(raw)["value"]) == sent
    _check_answer(raw)


_PYTHON_DATA = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=4),
              st.integers(0, 2).map(lambda n: 10 ** (bridge.MAX_INT_DIGITS - 1 + n)), _ARRAYS),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(_KEYS, inner, max_size=3),
                            st.dictionaries(st.text(max_size=3), inner, max_size=2).map(lambda d: {"__dict__": d}),
                            st.lists(inner, max_size=3).map(lambda xs: {"__tuple__": xs})),
    max_leaves=10)


@FUZZ
@given(_PYTHON_DATA)
def test_decode_of_any_objects_is_data_or_a_clean_refusal(obj):
    """Does `decode`, given any objects, return data `encode` can write again, or refuse cleanly?"""
    try:
        value = bridge.decode(obj)
    except bridge.BridgeDecodeError:
        return
    text = _text_of(value)
    assert _text_of(bridge.decode(bridge.loads(text))) == text


@settings(FUZZ, max_examples=100)
@given(st.lists(_PLAIN_DATA, max_size=3),
       st.dictionaries(st.from_regex(r"[a-z]{1,3}", fullmatch=True), _PLAIN_DATA, max_size=2))
def test_grader_arguments_reach_the_kernel_and_come_back(tmp_path_factory, args, kwargs):
    """Do a grader's arguments, through the kernel-side code and back, arrive as the data they were?"""
    folder = tmp_path_factory.mktemp("bridge")
    request, answer = folder / "request.json", folder / "answer.json"
    enc_args, enc_kwargs = bridge.encode_arguments(args, kwargs)
    request.write_text(json.dumps({"op": "call", "name": "echo", "args": enc_args, "kwargs": enc_kwargs}))
    kernel = {}
    exec(compile(bridge.KERNEL_SIDE, "<nndl-bridge>", "exec"), kernel)  # noqa: S102 (as the kernel runs it)
    kernel["_nndl_serve"](str(request), str(answer), {"echo": lambda *a, **k: [a, k]})
    back = bridge.read_answer(answer)
    assert back["ok"], back
    assert _text_of(back["value"]) == _text_of([args, kwargs])


def test_integer_of_5000_digits_is_refused():
    """Is an int past the digit limit (which json.loads would raise on) refused, and one at it read?"""
    with pytest.raises(bridge.BridgeDecodeError, match=f"more than {bridge.MAX_INT_DIGITS} digits"):
        bridge.parse_answer(_answer("9" * 5000))
    with pytest.raises(bridge.BridgeDecodeError, match="digits"):
        bridge.parse_answer(_answer("[-" + "9" * (bridge.MAX_INT_DIGITS + 1) + "]"))
    at_limit = bridge.parse_answer(_answer("-" + "9" * bridge.MAX_INT_DIGITS))["value"]
    assert at_limit == -(10**bridge.MAX_INT_DIGITS - 1)
    assert json.loads(json.dumps(bridge.encode(at_limit))) == at_limit
    with pytest.raises(bridge.BridgeDecodeError, match="digits"):
        bridge.decode(10**5000)


def test_list_nested_100000_deep_is_refused():
    """Is a list nested 100,000 deep (RecursionError in json.loads) refused, and one at the limit read?"""
    with pytest.raises(bridge.BridgeDecodeError, match=f"nested deeper than {bridge.MAX_DEPTH} levels"):
        bridge.parse_answer(_answer("[" * 100_000 + "]" * 100_000))
    inside = bridge.MAX_DEPTH - 1  # the answer's own {"ok": ...} is one level
    value = bridge.parse_answer(_answer("[" * inside + "7" + "]" * inside))["value"]
    for _ in range(inside):
        value = value[0]
    assert value == 7
    with pytest.raises(bridge.BridgeDecodeError, match="nested deeper"):
        bridge.parse_answer(_answer("[" * (inside + 1) + "]" * (inside + 1)))


def test_dicts_nested_a_million_deep_are_refused():
    """Are dicts nested 10**6 deep refused, as JSON text and as objects handed to decode?"""
    deep = '{"__dict__": {"a": ' * 10**6 + "1" + "}}" * 10**6
    with pytest.raises(bridge.BridgeDecodeError, match="items"):
        bridge.parse_answer(_answer(deep))
    obj = 1
    for _ in range(10**6):
        obj = {"__dict__": {"a": obj}}
    with pytest.raises(bridge.BridgeDecodeError, match="nested deeper"):
        bridge.decode(obj)


def test_brackets_inside_strings_do_not_count():
    """Are brackets, quotes and separators inside strings data, not structure?"""
    text = json.dumps(["[" * 500, "]" * 3, '"{', "\\", ":,"] * 3)
    assert bridge.parse_answer(_answer(text))["value"] == json.loads(text)


def test_many_small_items_are_refused_before_they_are_built():
    """Is an answer of a million `[]` (64 bytes of Python each from 2 of JSON) refused with little memory?"""
    raw = _answer("[" + "[]," * bridge.MAX_ITEMS + "[]]")
    tracemalloc.start()
    try:
        with pytest.raises(bridge.BridgeDecodeError, match=f"more than {bridge.MAX_ITEMS} items"):
            bridge.parse_answer(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # A few copies of the text; a list per item would be over 20 times its size.
    assert peak < 4 * len(raw), f"{peak} bytes traced to refuse {len(raw)} bytes"


def test_nan_and_infinity_are_floats_that_travel_on():
    """Are NaN and ±Infinity read as floats, and passed to the graders intact?"""
    raw = _answer("[NaN, Infinity, -Infinity, 1e999]")
    value = bridge.parse_answer(raw)["value"]
    assert math.isnan(value[0]) and value[1:] == [math.inf, -math.inf, math.inf]
    got = _through_the_graders(raw)
    assert math.isnan(got[0]) and got[1:] == [math.inf, -math.inf, math.inf]


def test_repeated_keys_are_refused():
    """Is an object that repeats a key (json would silently keep the last) refused, at any level?"""
    with pytest.raises(bridge.BridgeDecodeError, match="repeats the key 'ok'"):
        bridge.parse_answer(b'{"ok": false, "ok": true, "value": 5}')
    with pytest.raises(bridge.BridgeDecodeError, match="repeats the key 'k'"):
        bridge.parse_answer(_answer('{"__dict__": {"k": 1, "k": 2}}'))


def test_invalid_utf8_and_lone_surrogates_are_refused():
    """Are bytes that are not UTF-8, and text holding lone surrogates, refused (and errors made printable)?"""
    with pytest.raises(bridge.BridgeDecodeError, match="not valid JSON"):
        bridge.parse_answer(b'{"ok": true, "value": "caf\xe9"}')
    with pytest.raises(bridge.BridgeDecodeError, match="not valid JSON"):
        bridge.parse_answer(b'{"ok": true, "value": "\xed\xa0\x80"}')  # a surrogate, UTF-8 encoded
    for text in ['"\\ud800"', '{"__dict__": {"\\udfff": 1}}', '["ok", "\\udc00x"]']:
        with pytest.raises(bridge.BridgeDecodeError, match="lone surrogate"):
            bridge.parse_answer(_answer(text))
    assert bridge.parse_answer(_answer('"\\ud83d\\ude00"'))["value"] == "\U0001F600"  # a pair is fine
    error = bridge.parse_answer(b'{"ok": false, "error": "bad \\ud800 thing"}')["error"]
    assert error == "bad \\ud800 thing" and error.encode("utf-8")


def test_answers_that_are_not_objects_are_refused():
    """Is JSON whose top level is not the answer object refused?"""
    for text in ["[1]", "5", '"ok"', "null", "NaN", '{"ok": 1, "value": 2}', ""]:
        with pytest.raises(bridge.BridgeDecodeError):
            bridge.parse_answer(text.encode())


def test_forged_array_header_claiming_10_12_elements_allocates_nothing():
    """Is an .npy header claiming 10**12 float64 elements (8 TB) over 8 bytes of data refused?"""
    forged = _forged_npy("'<f8'", "False", (10**12,), b"\0" * 8)
    with pytest.raises(bridge.BridgeDecodeError, match="needs 8000000000000 bytes, it has 8"):
        bridge.decode({"__ndarray__": base64.b64encode(forged).decode()})


def test_forged_array_header_allocates_no_more_than_the_data():
    """Does a header claiming 1 GiB over 8 bytes of data cost no memory (numpy.load would reserve 1 GiB)?"""
    forged = {"__ndarray__": base64.b64encode(_forged_npy("'<f8'", "False", (2**27,), b"\0" * 8)).decode()}
    tracemalloc.start()
    try:
        with pytest.raises(bridge.BridgeDecodeError, match="shape"):
            bridge.decode(forged)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes traced for an array of 8 bytes"


@pytest.mark.parametrize("descr, why", [
    ("'|O'", "header"), ("'<V8'", "header"), ("[('a', '<f4')]", "header"), ("('<f8', (2,))", "header"),
    ("'<U0'", "dtype"), ("'|S0'", "dtype"), ("'<M8[ns]'", "header"), ("'<f3'", "dtype"), ("'<S3'", "dtype"),
])
def test_arrays_of_other_dtypes_are_refused(descr, why):
    """Are object, structured, void, zero-width, datetime and malformed dtypes refused?"""
    forged = _forged_npy(descr, "False", (2,), b"\0" * 16)
    with pytest.raises(bridge.BridgeDecodeError, match=why):
        bridge.decode({"__ndarray__": base64.b64encode(forged).decode()})


@pytest.mark.parametrize("payload", [
    "not base64!", "AAAA", base64.b64encode(b"\x93NUMPY\x03\x00" + bytes(60)).decode(),
    base64.b64encode(_forged_npy("'<f8'", "False", (-1, -2), b"\0" * 16)).decode(),
    base64.b64encode(_forged_npy("'<f8'", "False", (2,), b"\0" * 17)).decode(),
    base64.b64encode(_forged_npy("'<f8'", "False", (1,) * 40, b"\0" * 8)).decode(),
    base64.b64encode(_forged_npy("'<f8'", "False", (0, 10**15), b"")).decode(),
    base64.b64encode(_forged_npy("'<f8'", "False", (0, 2**26, 2**26, 2**26), b"")).decode(),  # numpy: too big
    "\u00e9" * 4,
])
def test_malformed_array_payloads_are_refused(payload):
    """Are bad base64, other .npy versions, negative or impossible shapes and wrong data lengths refused?"""
    with pytest.raises(bridge.BridgeDecodeError, match="an array could not be read"):
        bridge.decode({"__ndarray__": payload})


@pytest.mark.parametrize("array", [
    np.arange(6.0).reshape(2, 3).T, np.array(3, dtype=">i2"), np.array(["ab", "c"]), np.array([b"x"]),
    np.zeros((0, 4), np.float16), np.array([1 + 2j]), np.array([[True]]),
])
def test_arrays_numpy_writes_are_read_back(array):
    """Do the arrays numpy.save writes (Fortran order, big-endian, 0-d, empty, strings) come back equal?"""
    back = bridge.decode(bridge.encode(array))
    assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array)
    assert back.flags.writeable


def test_kernel_side_reports_a_value_json_cannot_write(tmp_path):
    """Does the kernel-side code answer with an error, not half a file, when json cannot write the value?"""
    request, answer = tmp_path / "request.json", tmp_path / "answer.json"
    request.write_text(json.dumps({"op": "value", "name": "big", "args": [], "kwargs": {}}))
    kernel = {}
    exec(compile(bridge.KERNEL_SIDE, "<nndl-bridge>", "exec"), kernel)  # noqa: S102 (as the kernel runs it)
    kernel["_nndl_serve"](str(request), str(answer), {"big": 10**5000})
    back = bridge.read_answer(answer)
    assert not back["ok"] and "ValueError" in back["error"] and "4300" in back["error"]


# -- the whole pipeline: an unreadable answer costs its own points, not the submission --

UNREADABLE_ADD = {
    "huge-int": ("def add(a, b):\n    import sys\n    sys.set_int_max_str_digits(0)\n    return 10 ** 4999\n",
                 f"the answer holds an integer of more than {bridge.MAX_INT_DIGITS} digits"),
    "deep-list": (("def add(a, b):\n    import sys\n    sys.setrecursionlimit(100000)\n    v = 0\n"
                   "    for _ in range(5000):\n        v = [v]\n    return v\n"),
                  f"the answer is nested deeper than {bridge.MAX_DEPTH} levels"),
}


@pytest.mark.slow
def test_unreadable_answer_costs_only_its_own_points(toy_course, submit):
    """Is a submission whose `add` returns a 5,000-digit int, or a list nested 5,000 deep, graded:
    0 for `add` with the reason it could not be read, full marks for `scale`?"""
    for student, (source, _) in UNREADABLE_ADD.items():
        submit(toy_course, "toy", student, "toy.ipynb", toy_notebook(toy_course, add_answer=source))
    results = grade.autograde(toy_course, "toy")
    assert all(r.graded for r in results), [r.error for r in results]
    assert toy_scores(toy_course) == {student: {"add": 0.0, "scale": 3.0} for student in UNREADABLE_ADD}
    for student, (_, why) in UNREADABLE_ADD.items():
        nb = nbformat.read(str(toy_course / "autograded" / student / "toy" / "toy.ipynb"), as_version=4)
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "add")
        feedback = "".join(o.get("text", "") for o in cell.outputs)
        assert f"the answer for 'add' could not be read: {why}" in feedback, feedback
