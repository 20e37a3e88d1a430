"""Load libpq so that it uses its own OpenSSL, whatever else is loaded.

TensorFlow's libtensorflow_framework exports its own copy of BoringSSL
(SSL_new, SSL_free, ...) to the whole process. A libpq loaded after it
binds some of those names to BoringSSL and some to its own OpenSSL, and the
first TLS connection aborts the process ("free(): invalid pointer" in
SSL_free; measured here with psycopg-binary 3.3 and TensorFlow 2.x). Loading
libpq first with RTLD_DEEPBIND | RTLD_NOW makes it resolve every symbol in
its own dependencies before the global scope, once and for all; psycopg
then finds that library already loaded and uses it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.util
import os
import sys
from pathlib import Path


def libpq_candidates() -> list[str]:
    """The libpq psycopg will use: psycopg-binary's bundled one, else the
    system's."""
    try:
        spec = importlib.util.find_spec("psycopg_binary")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent.parent / "psycopg_binary.libs"
        found = sorted(glob.glob(str(bundled / "libpq-*.so*")))
        if found:
            return found
    system = ctypes.util.find_library("pq")
    return [system] if system else []


def isolate_libpq() -> bool:
    """Preload libpq with its own symbol scope; True when it was. Without
    effect (False) once psycopg is imported, or where the platform has no
    RTLD_DEEPBIND (not glibc) or no libpq is found."""
    deepbind = getattr(os, "RTLD_DEEPBIND", None)
    if deepbind is None or "psycopg" in sys.modules:
        return False
    for path in libpq_candidates():
        try:
            ctypes.CDLL(path, mode=os.RTLD_NOW | deepbind)
            return True
        except OSError:
            continue  # a broken candidate: psycopg reports what it finds itself
    return False
