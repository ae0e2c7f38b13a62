"""Minimal, dependency-free (numpy only) safetensors writer/reader.

File layout (https://github.com/huggingface/safetensors):
  * 8 bytes: little-endian u64 N = byte length of the JSON header
  * N bytes: UTF-8 JSON object
        {name: {"dtype": "F32"|"F64"|"I32"|"I64"|"BOOL",
                "shape": [d0, d1, ...],
                "data_offsets": [begin, end]},      # relative to buffer start
         "__metadata__": {str: str}}                # optional
    padded with trailing spaces so that 8 + N is a multiple of 8
  * the byte buffer: every tensor's data, row-major (C order), little-endian,
    laid out back to back in sorted-name order.

Usage:
    import st_io
    st_io.save("f.safetensors", {"a": np.zeros((2, 3), np.float32)},
               metadata={"format": "pt"})
    d = st_io.load("f.safetensors")              # dict name -> np.ndarray
    d, meta = st_io.load("f.safetensors", with_metadata=True)
"""

import json
import os
import struct
import tempfile

import numpy as np

# safetensors dtype string <-> numpy dtype (little-endian)
_DTYPES = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
    "BOOL": np.dtype("bool"),
}


def _dtype_name(dt):
    dt = np.dtype(dt)
    for name, npdt in _DTYPES.items():
        if dt.kind == npdt.kind and dt.itemsize == npdt.itemsize:
            return name
    raise TypeError("st_io: unsupported dtype %s" % dt)


def save(path, tensors, metadata=None):
    """Write dict name -> numpy array to `path` atomically (temp file + os.replace)."""
    if metadata is not None:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("st_io: __metadata__ must map str -> str")
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise ValueError("st_io: '__metadata__' is reserved")
        arr = np.asarray(tensors[name])
        dname = _dtype_name(arr.dtype)
        data = np.ascontiguousarray(arr, dtype=_DTYPES[dname]).tobytes(order="C")
        header[name] = {
            "dtype": dname,
            "shape": [int(s) for s in arr.shape],
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    pad = (-(8 + len(hbytes))) % 8
    hbytes += b" " * pad

    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".st_io_", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(hbytes)))
            f.write(hbytes)
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load(path, with_metadata=False):
    """Read a safetensors file -> dict name -> numpy array (copies, writable).

    With with_metadata=True returns (dict, metadata_dict_or_None)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("st_io: file too small")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("st_io: header length %d exceeds file size" % n)
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    buf = memoryview(raw)[8 + n:]
    meta = header.pop("__metadata__", None)
    out = {}
    spans = []
    for name, info in header.items():
        dt = _DTYPES.get(info["dtype"])
        if dt is None:
            raise TypeError("st_io: unsupported dtype %r for %s" % (info["dtype"], name))
        shape = tuple(int(s) for s in info["shape"])
        b, e = (int(v) for v in info["data_offsets"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if e - b != count * dt.itemsize or b < 0 or e > len(buf):
            raise ValueError("st_io: bad data_offsets for %s" % name)
        spans.append((b, e))
        out[name] = np.frombuffer(buf[b:e], dtype=dt, count=count).reshape(shape).copy()
    # Validate the buffer is exactly covered, contiguous and non-overlapping.
    pos = 0
    for b, e in sorted(spans):
        if b != pos:
            raise ValueError("st_io: tensor data not contiguous at offset %d" % b)
        pos = e
    if pos != len(buf):
        raise ValueError("st_io: trailing bytes in buffer (%d != %d)" % (pos, len(buf)))
    if with_metadata:
        return out, meta
    return out
