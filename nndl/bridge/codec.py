"""The only channel between the hidden graders and the student's kernel.

A grader asks for a value, a function call or a model; the coordinator runs a
short, fixed piece of code in the student's kernel that writes the answer to a
file in the sandbox's scratch directory; the coordinator reads that file back
as data. Everything that crosses is JSON; NumPy arrays travel inside it as
`.npy` bytes written and read with ``allow_pickle=False``. Nothing the kernel
writes is ever unpickled or executed on the trusted side, so whatever a
hostile kernel does to its own interpreter, the worst it can send back is a
wrong answer.
"""

import base64
import io
import json

import numpy as np

#: Largest answer file the trusted side reads, in bytes.
MAX_ANSWER_BYTES = 64 * 1024 * 1024


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

    Raises:
        BridgeDecodeError: when `obj` holds anything but plain data.
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"} and isinstance(obj["__ndarray__"], str):
            try:
                raw = base64.b64decode(obj["__ndarray__"], validate=True)
                return np.load(io.BytesIO(raw), allow_pickle=False)
            except Exception as error:
                raise BridgeDecodeError(f"an array could not be read ({error})") from None
        if set(obj) == {"__dict__"} and isinstance(obj["__dict__"], dict):
            return {str(k): decode(v) for k, v in obj["__dict__"].items()}
        if set(obj) == {"__tuple__"} and isinstance(obj["__tuple__"], list):
            return tuple(decode(v) for v in obj["__tuple__"])
    raise BridgeDecodeError(f"unexpected data of type {type(obj).__name__}")


def parse_answer(raw):
    """Decode the bytes of an answer file the kernel wrote.

    Args:
        raw: the file's bytes, at most `MAX_ANSWER_BYTES` + 1 of them, or
            None when there was no file.

    Returns:
        The decoded answer dict: ``{"ok": True, "value": ...}`` or
        ``{"ok": False, "error": str}``.

    Raises:
        BridgeDecodeError: missing, oversized, not JSON, or not an answer.
    """
    if raw is None:
        raise BridgeDecodeError("the notebook's kernel gave no answer")
    if len(raw) > MAX_ANSWER_BYTES:
        raise BridgeDecodeError(
            f"the answer is larger than {MAX_ANSWER_BYTES // 2**20} MiB")
    try:
        answer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BridgeDecodeError(f"the answer is not valid JSON ({error})") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise BridgeDecodeError("the answer is not in the bridge's format")
    if answer["ok"]:
        return {"ok": True, "value": decode(answer.get("value"))}
    return {"ok": False, "error": str(answer.get("error", "unknown error"))[:2000]}


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
# its answer is treated as untrusted data. `_nndl_request` names the request
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
    except BaseException as error:
        where = ""
        tb = traceback.extract_tb(error.__traceback__)
        for frame in reversed(tb):
            if frame.filename.startswith("<ipython-input") or "/ipykernel_" in frame.filename:
                where = f" (in your code, line {frame.lineno}: {(frame.line or '').strip()})"
                break
        answer = {"ok": False, "error": f"{type(error).__name__}: {error}{where}"}
    with open(answer_path, "w") as fh:
        json.dump(answer, fh)

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
