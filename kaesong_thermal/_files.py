"""Writing output files so that an interrupted or failed write never leaves half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def replace_atomically(out: Path, write: Callable[[Path], None]) -> None:
    """Write ``out`` through a temporary file in the same directory and a rename.

    ``write(tmp)`` fills the temporary file; ``os.replace`` (atomic on POSIX and Windows) then
    puts it in place, so ``out`` is either the old file or the complete new one. The file gets
    the permissions of the file it replaces (a new one: 0o666 less the umask), not the owner-only
    mode of a temporary file. On any failure the temporary file is removed and the error raised.
    """
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, _mode_for(out))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _mode_for(out: Path) -> int:
    """Permission bits for ``out``: those of the existing file, else 0o666 less the umask."""
    try:
        return out.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
