"""Helpers of the Dask tests that must be importable on the worker processes."""

from __future__ import annotations

import os
from typing import Any


def install_killer(marker: str) -> bool:
    """Make this worker process exit in the middle of the next scene's task, once in all.

    Runs on every worker (``Client.run``); the first task to create ``marker`` kills its own
    process after opening its product, so that task is lost. A restarted worker is a new
    process without the patch.
    """
    from kaesong_thermal import pipeline

    original = pipeline._process

    def killing(path: str, state: Any = None) -> Any:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return original(path, state)
        os.write(fd, path.encode())
        os.close(fd)
        from kaesong_thermal.landsat import open_scene

        open_scene(path)  # mid-task: the product is open, nothing returned yet
        os._exit(1)

    pipeline._process = killing  # type: ignore[assignment]
    return True
