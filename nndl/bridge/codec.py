"""The only channel between the hidden graders and the student's kernel.

A grader asks for a value, a function call or a model; the coordinator runs a
short, fixed piece of code in the student's kernel that writes the answer to a
file in the sandbox's scratch directory; the coordinator reads that file back
as data. Everything that crosses is JSON; NumPy arrays travel inside it as
`.npy` bytes written and read with ``allow_pickle=False``. Nothing the kernel
writes is ever unpickled or executed on the trusted side, so whatever a
hostile kernel does to its own interpreter, the worst it can send back is a
wrong answer.

Whatever bytes the kernel writes, reading them gives either data or a
`BridgeDecodeError`, which costs the student that one answer, never the
submission. The limits, checked before anything large is built:

- an answer file holds at most `MAX_ANSWER_BYTES` bytes of UTF-8 (invalid
  UTF-8, and text with a lone surrogate such as ``"\\ud800"``, are refused:
  feedback could not be written out);
- at most `MAX_ITEMS` JSON items, counted from the separators and opening
  brackets outside strings, so that 2 bytes of ``[]`` cannot become a 64-byte
  Python object a million times over;
- at most `MAX_DEPTH` levels of JSON nesting (a list is one level, a dict
  two, an array one), measured on the brackets before parsing, so that
  neither parsing nor the recursive decoding and re-encoding can run out of
  stack;
- integers of at most `MAX_INT_DIGITS` digits: Python's own default limit on
  int/str conversion, so that what is accepted can be written out again;
- no object with a repeated key, and no object but the bridge's own
  encodings (``__ndarray__``, ``__dict__``, ``__tuple__``);
- ``NaN``, ``Infinity`` and ``-Infinity`` are accepted as the floats they
  are: they are honest (wrong) answers a grader can name, and `json`
  writes and reads them back;
- an array is an `.npy` version 1.0 file exactly as `numpy.save` writes it:
  booleans, numbers or fixed-width strings (no objects, no structured or
  void dtypes), at most `MAX_ARRAY_DIMS` dimensions, and exactly the data
  bytes its header announces, so a forged header claiming a huge shape
  allocates nothing.

What `decode` returns, `encode` can always write again, and `decode` read
again: the coordinator re-encodes each answer for the grader process, whose
`Student` reads it through `loads` and `decode` once more.
"""

import base64
import binascii
import io
import json
import math
import re

import numpy as np

#: Largest answer file the trusted side reads, in bytes.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: Most JSON items (values and keys) in one answer.
MAX_ITEMS = 2**20
#: Deepest JSON nesting in one answer, the answer's own ``{"ok": ...}`` included.
MAX_DEPTH = 100
#: Most digits of an integer (Python's default int/str conversion limit).
MAX_INT_DIGITS = 4300
#: Most dimensions of an array.
MAX_ARRAY_DIMS = 32
#: Longest error message a kernel may send, in characters.
MAX_ERROR_CHARS = 2000

_INT_BOUND = 10**MAX_INT_DIGITS
# A JSON string, escapes included (one left open runs to the end of the text):
# what is left outside strings is structure. Possessive, and matching from
# every quote, so that it takes time linear in the text and no memory, whatever
# the text.
_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# The one header `numpy.save` writes for an array of a plain dtype (format 1.0).
_NPY_MAGIC = b"\x93NUMPY\x01\x00"
_NPY_HEADER = re.compile(
    r"\{'descr': '(?P<descr>[<>|][biufcSU][0-9]{1,9})', "
    r"'fortran_order': (?P<fortran>True|False), "
    r"'shape': \((?P<shape>(?:[0-9]{1,18}, )*[0-9]{1,18},?|)\), \} *\n")
_ARRAY_KINDS = "biufcSU"


class BridgeDecodeError(ValueError):
    """The kernel's answer is not data the bridge accepts."""


def encode(value):
    """Encode plain data and NumPy arrays as JSON-ready objects.

    Args:
        value: None, bool, int, float, str, list, tuple, dict with str keys,
            NumPy scalars or arrays (not of object dtype).

    Returns:
        An object `json.dumps` accepts.

    Raises:
        TypeError: for anything else.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("arrays of Python objects cannot cross the bridge")
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return {"__ndarray__": base64.b64encode(buffer.getvalue()).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("only dicts with string keys can cross the bridge")
        return {"__dict__": {k: encode(v) for k, v in value.items()}}
    raise TypeError(f"values of type {type(value).__name__} cannot cross the bridge")


def decode(obj):
    """Turn what `encode` produced (possibly forged by a kernel) back into data.

    Checks the limits of the module's docstring on `obj` itself (nesting,
    integers, text, arrays), so whatever it returns `encode` can write again.

    Raises:
        BridgeDecodeError: when `obj` holds anything but data within those limits.
    """
    try:
        return _decode(obj, MAX_DEPTH)
    except RecursionError:  # only when called with the stack already nearly full
        raise BridgeDecodeError("the answer is nested too deeply to be read") from None


def _decode(obj, depth):
    if obj is None or isinstance(obj, (bool, float)):
        return obj
    if isinstance(obj, int):
        if not -_INT_BOUND < obj < _INT_BOUND:
            raise BridgeDecodeError(f"the answer holds an integer of more than {MAX_INT_DIGITS} digits")
        return obj
    if isinstance(obj, str):
        return _text(obj)
    if isinstance(obj, (list, dict)) and depth <= 0:
        raise BridgeDecodeError(f"the answer is nested deeper than {MAX_DEPTH} levels")
    if isinstance(obj, list):
        return [_decode(v, depth - 1) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"} and isinstance(obj["__ndarray__"], str):
            return _array(obj["__ndarray__"])
        if set(obj) == {"__dict__"} and isinstance(obj["__dict__"], dict):
            inner = obj["__dict__"]
            if depth <= 1:
                raise BridgeDecodeError(f"the answer is nested deeper than {MAX_DEPTH} levels")
            if not all(isinstance(k, str) for k in inner):
                raise BridgeDecodeError("the answer holds a dict whose keys are not all strings")
            return {_text(k): _decode(v, depth - 2) for k, v in inner.items()}
        if set(obj) == {"__tuple__"} and isinstance(obj["__tuple__"], list):
            if depth <= 1:
                raise BridgeDecodeError(f"the answer is nested deeper than {MAX_DEPTH} levels")
            return tuple(_decode(v, depth - 2) for v in obj["__tuple__"])
    raise BridgeDecodeError(f"unexpected data of type {type(obj).__name__}")


def _text(value):
    """`value` if it is text that can be written out as UTF-8 (no lone surrogates)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BridgeDecodeError("the answer holds text that is not valid Unicode "
                                    "(a lone surrogate)") from None
    return value


def _array(text):
    """The array in the base64 `.npy` text of an ``__ndarray__``, checked before it is built."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BridgeDecodeError(f"an array could not be read (bad base64: {error})") from None
    if not raw.startswith(_NPY_MAGIC) or len(raw) < 10:
        raise BridgeDecodeError("an array could not be read (not an .npy file of format 1.0)")
    header_length = int.from_bytes(raw[8:10], "little")
    header = _NPY_HEADER.fullmatch(raw[10:10 + header_length].decode("latin1"))
    if header is None:
        raise BridgeDecodeError("an array could not be read (its .npy header is not one numpy.save "
                                "writes for an array of booleans, numbers or strings)")
    try:
        dtype = np.dtype(header["descr"])
    except TypeError:
        dtype = None
    if dtype is None or dtype.str != header["descr"] or dtype.kind not in _ARRAY_KINDS or dtype.itemsize == 0:
        raise BridgeDecodeError(f"an array could not be read (unsupported dtype {header['descr']!r})")
    shape = tuple(int(n) for n in header["shape"].replace(",", " ").split())
    if len(shape) > MAX_ARRAY_DIMS:
        raise BridgeDecodeError(f"an array could not be read (it has {len(shape)} dimensions, "
                                f"more than {MAX_ARRAY_DIMS})")
    data = memoryview(raw)[10 + header_length:]
    count = math.prod(shape)
    if count * dtype.itemsize != len(data):
        raise BridgeDecodeError(f"an array could not be read (its shape {shape} of {header['descr']} "
                                f"needs {count * dtype.itemsize} bytes, it has {len(data)})")
    # An empty array may claim any other sides; numpy refuses some, so they are bounded too.
    if math.prod(max(n, 1) for n in shape) * dtype.itemsize > MAX_ANSWER_BYTES:
        raise BridgeDecodeError(f"an array could not be read (its shape {shape} is impossible)")
    flat = np.frombuffer(data, dtype=dtype, count=count)
    if header["fortran"] == "True":
        array = flat.reshape(shape[::-1]).transpose()
    else:
        array = flat.reshape(shape)
    return array.copy(order="K")


def loads(text):
    """Parse untrusted JSON text within the limits of the module's docstring.

    Args:
        text: the JSON text (str).

    Returns:
        Plain JSON objects, not yet `decode`-d.

    Raises:
        BridgeDecodeError: not JSON, or JSON beyond the limits.
    """
    # Structure is measured with the strings taken out, each an item: no more
    # of them than the limit are taken out.
    skeleton, strings = _STRING.subn("", text, count=MAX_ITEMS + 1)
    if strings > MAX_ITEMS:
        raise BridgeDecodeError(f"the answer holds more than {MAX_ITEMS} items")
    opening = skeleton.count("[") + skeleton.count("{")
    items = opening + skeleton.count(",") + skeleton.count(":") + 1
    if items > MAX_ITEMS:
        raise BridgeDecodeError(f"the answer holds more than {MAX_ITEMS} items")
    if skeleton.count("]") + skeleton.count("}") != opening:
        raise BridgeDecodeError("the answer is not valid JSON (its brackets do not match)")
    # Each pass removes the innermost pairs, one level of nesting.
    brackets = _NOT_BRACKET.sub("", skeleton).replace("{", "[").replace("}", "]")
    del skeleton
    for _ in range(MAX_DEPTH):
        if not brackets:
            break
        brackets = brackets.replace("[]", "")
    if brackets:
        if "[]" in brackets:
            raise BridgeDecodeError(f"the answer is nested deeper than {MAX_DEPTH} levels")
        raise BridgeDecodeError("the answer is not valid JSON (its brackets do not match)")
    try:
        return json.loads(text, object_pairs_hook=_object, parse_int=_int)
    except BridgeDecodeError:
        raise
    except ValueError as error:  # json.JSONDecodeError among them
        raise BridgeDecodeError(f"the answer is not valid JSON ({error})") from None
    except RecursionError:  # cannot happen within MAX_DEPTH; kept as a last guard
        raise BridgeDecodeError(f"the answer is nested deeper than {MAX_DEPTH} levels") from None
    except MemoryError:
        raise BridgeDecodeError("the answer needs more memory to read than the grader has") from None


def _object(pairs):
    """A JSON object as a dict, refusing repeated keys (which `json` would silently drop)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                shown = key if len(key) <= 40 else key[:40] + "..."
                raise BridgeDecodeError(f"the answer repeats the key {shown!r} in one object")
            seen.add(key)
    return result


def _int(digits):
    """A JSON integer, refusing those too long to convert (and to write out again)."""
    if len(digits) - digits.startswith("-") > MAX_INT_DIGITS:
        raise BridgeDecodeError(f"the answer holds an integer of more than {MAX_INT_DIGITS} digits")
    return int(digits)


def parse_answer(raw):
    """Decode the bytes of an answer file the kernel wrote.

    Args:
        raw: the file's bytes, at most `MAX_ANSWER_BYTES` + 1 of them, or
            None when there was no file.

    Returns:
        The decoded answer dict: ``{"ok": True, "value": ...}`` or
        ``{"ok": False, "error": str}``.

    Raises:
        BridgeDecodeError: missing, oversized, not JSON, beyond the limits of
            the module's docstring, or not an answer; nothing else, whatever
            `raw` holds.
    """
    if raw is None:
        raise BridgeDecodeError("the notebook's kernel gave no answer")
    if len(raw) > MAX_ANSWER_BYTES:
        raise BridgeDecodeError(
            f"the answer is larger than {MAX_ANSWER_BYTES // 2**20} MiB")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise BridgeDecodeError(f"the answer is not valid JSON ({error})") from None
    answer = loads(text)
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise BridgeDecodeError("the answer is not in the bridge's format")
    if answer["ok"]:
        return {"ok": True, "value": decode(answer.get("value"))}
    error = answer.get("error", "unknown error")
    error = (error if isinstance(error, str) else "unknown error")[:MAX_ERROR_CHARS]
    # A lone surrogate would break writing the feedback out as UTF-8.
    return {"ok": False, "error": error.encode("utf-8", "backslashreplace").decode("utf-8")}


def read_answer(path):
    """Read (never through a link) and decode an answer file; see `parse_answer`."""
    from nndl.kernel.sandbox import read_regular_file

    try:
        raw = read_regular_file(path, MAX_ANSWER_BYTES + 1)
    except FileNotFoundError:
        raw = None
    except OSError as error:
        raise BridgeDecodeError(f"the answer could not be read ({error.strerror or error})") from None
    return parse_answer(raw)


# Runs inside the student's kernel. It is sent whole with every request, so it
# does not rely on anything the notebook may have defined or replaced; even so
# its answer is treated as untrusted data. The answer is written out whole
# once serialized, so a value `json` cannot write (an int past the interpreter's
# digit limit) gives the student its error instead of half a file. `_nndl_request` names the request
# file, `_nndl_answer` the answer file, `_nndl_ns` the notebook's globals.
KERNEL_SIDE = r'''
def _nndl_serve(request_path, answer_path, ns):
    import base64, io, json, traceback
    import numpy as np

    def enc(v):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            if v.dtype == object:
                raise TypeError("it is an array of Python objects; use a numeric dtype")
            buf = io.BytesIO()
            np.save(buf, v, allow_pickle=False)
            return {"__ndarray__": base64.b64encode(buf.getvalue()).decode("ascii")}
        if isinstance(v, (list, tuple)):
            return [enc(x) for x in v]
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise TypeError("it is a dict with non-string keys")
            return {"__dict__": {k: enc(x) for k, x in v.items()}}
        if hasattr(v, "numpy") and callable(v.numpy):
            return enc(np.asarray(v.numpy()))
        raise TypeError(f"values of type {type(v).__name__} cannot be graded")

    def dec(v):
        if isinstance(v, list):
            return [dec(x) for x in v]
        if isinstance(v, dict):
            if "__ndarray__" in v:
                return np.load(io.BytesIO(base64.b64decode(v["__ndarray__"])), allow_pickle=False)
            if "__dict__" in v:
                return {k: dec(x) for k, x in v["__dict__"].items()}
            if "__tuple__" in v:
                return tuple(dec(x) for x in v["__tuple__"])
        return v

    with open(request_path) as fh:
        req = json.load(fh)
    name = req["name"]
    try:
        if name not in ns:
            raise NameError(f"name '{name}' is not defined; run the cell that defines it and make sure it has this exact name")
        target = ns[name]
        if req["op"] == "value":
            answer = {"ok": True, "value": enc(target)}
        elif req["op"] == "call":
            if not callable(target):
                raise TypeError(f"'{name}' is a {type(target).__name__}, not a function")
            result = target(*dec(req["args"]), **dec(req["kwargs"]))
            answer = {"ok": True, "value": enc(result)}
        elif req["op"] == "model":
            if not (hasattr(target, "save") and hasattr(target, "layers")):
                raise TypeError(f"'{name}' is a {type(target).__name__}, not a Keras model")
            target.save(req["path"])
            answer = {"ok": True, "value": None}
        else:
            raise ValueError("unknown request")
        text = json.dumps(answer)
    except BaseException as error:
        where = ""
        tb = traceback.extract_tb(error.__traceback__)
        for frame in reversed(tb):
            if frame.filename.startswith("<ipython-input") or "/ipykernel_" in frame.filename:
                where = f" (in your code, line {frame.lineno}: {(frame.line or '').strip()})"
                break
        text = json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}{where}"})
    with open(answer_path, "w") as fh:
        fh.write(text)

'''


def kernel_code(request_path, answer_path):
    """The code cell that serves one request inside the student's kernel."""
    # Compiled under its own file name so that tracebacks tell the student's
    # frames from the bridge's.
    return (
        "_nndl_bridge = {}\n"
        f"exec(compile({KERNEL_SIDE!r}, '<nndl-bridge>', 'exec'), _nndl_bridge)\n"
        f"_nndl_bridge['_nndl_serve']({str(request_path)!r}, {str(answer_path)!r}, globals())\n"
        "del _nndl_bridge\n"
    )


def encode_arguments(args, kwargs):
    """Encode a grader's call arguments; tuples are kept as tuples."""

    def enc(v):
        if isinstance(v, tuple):
            return {"__tuple__": [enc(x) for x in v]}
        if isinstance(v, list):
            return [enc(x) for x in v]
        if isinstance(v, dict):
            return {"__dict__": {k: enc(x) for k, x in v.items()}}
        return encode(v)

    return enc(list(args)), enc(dict(kwargs))
