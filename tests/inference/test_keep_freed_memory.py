"""runtime.keep_freed_memory (issue 13): glibc malloc serves multi-megabyte blocks from the heap and keeps them.

Checked in fresh interpreters through ``mallinfo2`` (glibc >= 2.33): a 20 MB block is mmap'd by default (its
pages are faulted in anew on every allocation) and comes from the heap, kept after ``free``, with the setting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys

import pytest

from vidseg.inference.runtime import keep_freed_memory

SCRIPT = """
import ctypes, ctypes.util, json, sys
import numpy as np
if sys.argv[1] == "1":
    from vidseg.inference.runtime import keep_freed_memory
    assert keep_freed_memory()
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                              "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
block = np.ones(5_000_000, np.float32)  # 20 MB
mapped = libc.mallinfo2().hblkhd
del block
print(json.dumps({"mapped": mapped, "heap_after_free": libc.mallinfo2().arena}))
"""


def _glibc_with_mallinfo2() -> bool:
    name = ctypes.util.find_library("c")
    return bool(name) and hasattr(ctypes.CDLL(name), "mallinfo2")


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="needs glibc >= 2.33")
def test_large_blocks_come_from_the_heap_and_stay():
    runs = {}
    for flag in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", SCRIPT, flag], capture_output=True, text=True, check=True)
        runs[flag] = json.loads(out.stdout.strip().splitlines()[-1])
    block = 20_000_000
    assert runs["0"]["mapped"] >= block  # default: mmap'd, returned to the OS when freed
    assert runs["1"]["mapped"] < block  # with the setting: from the heap ...
    assert runs["1"]["heap_after_free"] >= block  # ... and kept there after free
    assert keep_freed_memory()
