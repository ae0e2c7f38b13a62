#!/usr/bin/env python3
"""Check that .safetensors files (e.g. written by the dan C++ code) load with
the official `safetensors` package (https://pypi.org/project/safetensors/).

Setup (once; does NOT need torch -- uses the numpy API only):

    /usr/bin/python3 -m venv --system-site-packages /tmp/stvenv
    /tmp/stvenv/bin/pip install safetensors numpy

Usage:

    /tmp/stvenv/bin/python scripts/check_safetensors_compat.py FILE [FILE ...]
        [--cross-check]   also load with scripts/st_io.py and require
                          bit-identical arrays, same names and same metadata
        [--quiet]         only print one summary line per file

For every tensor prints: name, dtype (safetensors spelling), shape, and two
checksums: crc32 of the raw little-endian C-order bytes, and the float64 sum
of the values (bools counted as 0/1). Also prints __metadata__.

Exit status: 0 if every file loaded (and cross-checked, if asked);
1 if any file failed; 2 if the safetensors package is missing.
"""

import argparse
import os
import sys
import zlib

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file
except ImportError as e:  # pragma: no cover
    sys.stderr.write(
        "check_safetensors_compat: cannot import safetensors/numpy (%s).\n"
        "Install: /usr/bin/python3 -m venv --system-site-packages /tmp/stvenv && "
        "/tmp/stvenv/bin/pip install safetensors numpy\n" % e)
    sys.exit(2)

_ST_NAMES = {
    ("f", 2): "F16", ("f", 4): "F32", ("f", 8): "F64",
    ("i", 1): "I8", ("i", 2): "I16", ("i", 4): "I32", ("i", 8): "I64",
    ("u", 1): "U8", ("u", 2): "U16", ("u", 4): "U32", ("u", 8): "U64",
    ("b", 1): "BOOL",
}


def st_dtype(a):
    return _ST_NAMES.get((a.dtype.kind, a.dtype.itemsize), str(a.dtype))


def checksums(a):
    raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    crc = zlib.crc32(raw) & 0xFFFFFFFF
    s = float(a.astype(np.float64).sum()) if a.size else 0.0
    return crc, s


def load_any(path):
    """numpy has no bfloat16: files with BF16 tensors load through safetensors.torch instead
    (Debian's torch via --system-site-packages), BF16 widened to float32 for the checksums."""
    try:
        return load_file(path)
    except TypeError as e:
        if "bfloat16" not in str(e):
            raise
        import torch
        from safetensors.torch import load_file as load_torch
        return {k: (v.float() if v.dtype == torch.bfloat16 else v).numpy()
                for k, v in load_torch(path).items()}


def check_file(path, cross_check=False, quiet=False):
    tensors = load_any(path)
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
        keys = list(f.keys())
    if sorted(keys) != sorted(tensors):
        raise RuntimeError("safe_open keys differ from load_file keys")
    if not quiet:
        print("== %s" % path)
        print("   __metadata__: %r" % (meta,))
        for name in sorted(tensors):
            a = tensors[name]
            crc, s = checksums(a)
            print("   %-40s %-5s %-16s crc32=%08x sum=%.9g"
                  % (name, st_dtype(a), list(a.shape), crc, s))
    if cross_check:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import st_io
        mine, mine_meta = st_io.load(path, with_metadata=True)
        if sorted(mine) != sorted(tensors):
            raise RuntimeError("st_io names differ: %s vs %s"
                               % (sorted(mine), sorted(tensors)))
        if (mine_meta or None) != (meta or None):
            raise RuntimeError("st_io metadata differs: %r vs %r" % (mine_meta, meta))
        for name, a in tensors.items():
            b = mine[name]
            if a.dtype != b.dtype or a.shape != b.shape:
                raise RuntimeError("%s: st_io gives %s%s, safetensors %s%s"
                                   % (name, b.dtype, b.shape, a.dtype, a.shape))
            if a.tobytes() != b.tobytes():
                raise RuntimeError("%s: bytes differ between st_io and safetensors" % name)
    nbytes = sum(a.nbytes for a in tensors.values())
    print("OK %s: %d tensors, %d data bytes%s"
          % (path, len(tensors), nbytes, ", cross-checked with st_io" if cross_check else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--cross-check", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    bad = 0
    for p in args.files:
        try:
            check_file(p, cross_check=args.cross_check, quiet=args.quiet)
        except Exception as e:  # noqa: BLE001 -- report any failure, keep going
            bad += 1
            print("FAIL %s: %s: %s" % (p, type(e).__name__, e))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
