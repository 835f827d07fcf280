"""A check of an .npz archive's array headers against the bytes its entries hold.

An .npy header declares its array's shape and dtype; numpy allocates that much before reading. A
crafted or damaged header (a 1.6 kB file declaring terabytes) would end in ``MemoryError``.
``check_declared_sizes`` reads every entry's header only and refuses one that declares more data
than the entry holds, naming the entry.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib

import numpy as np


def check_declared_sizes(file) -> None:
    """ValueError ``"key 'x': ..."`` for the first entry of the .npz ``file`` (path or binary file
    object, left at its start) whose header declares more bytes than the entry holds, or a path
    that exists but is not a regular file (a named pipe would block the read forever). Entries
    that are not readable .npy data are left to ``np.load`` to report."""
    if isinstance(file, (str, os.PathLike)) and os.path.exists(file) and not os.path.isfile(file):
        raise ValueError("not a regular file (a folder, a named pipe or a device)")
    start = file.tell() if hasattr(file, "tell") else None
    try:
        with zipfile.ZipFile(file) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as entry:
                    try:
                        version = np.lib.format.read_magic(entry)
                        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                else np.lib.format.read_array_header_2_0)
                        shape, _, dtype = read(entry, max_header_size=100_000)
                    except (ValueError, OSError, EOFError, SyntaxError, zipfile.BadZipFile, zlib.error):
                        continue
                    held = info.file_size - entry.tell()
                declared = math.prod(shape) * dtype.itemsize
                if declared > held:
                    raise ValueError(f"key {info.filename[:-4]!r}: its header declares shape {shape} {dtype} "
                                     f"({declared} bytes), but the entry holds {max(held, 0)} bytes")
    except zipfile.BadZipFile:
        pass
    finally:
        if start is not None:
            file.seek(start)
