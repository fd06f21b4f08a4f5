"""GDAL settings for reading Cloud-Optimized GeoTIFFs over HTTP: the one place they are set.

Every remote read of the toolkit (``/vsicurl/`` for http(s) hrefs, ``/vsis3/`` for ``s3://``)
runs inside :func:`cloud_env`, a :class:`rasterio.env.Env` with the options below [1]_ [2]_:

- ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``: no directory listing when a file is opened (a
  listing of an S3 prefix or an HTML index costs requests and can be huge).
- ``CPL_VSIL_CURL_ALLOWED_EXTENSIONS``: only ``.tif``/``.tiff`` are probed by ``/vsicurl/``, so
  GDAL never asks the server for side-car files (``.aux.xml``, ``.ovr``, ``.msk``).
- ``GDAL_INGESTED_BYTES_AT_OPEN``: after one HEAD (the file size), the file is opened with one
  ranged GET that brings the whole COG header (IFDs and tile index).
- ``GDAL_HTTP_MERGE_CONSECUTIVE_RANGES=YES``: adjacent tiles of a window come in one range.
- ``GDAL_HTTP_MULTIPLEX=YES``: HTTP/2 multiplexing of parallel range requests where the server
  offers it.
- ``GDAL_HTTP_MAX_RETRY`` / ``GDAL_HTTP_RETRY_DELAY``: HTTP 429/500/502/503/504 are retried with
  a growing delay, a bounded number of times; ``GDAL_HTTP_TIMEOUT`` / ``GDAL_HTTP_CONNECTTIMEOUT``
  bound a slow or silent server.
- ``GDAL_CACHEMAX`` / ``CPL_VSIL_CURL_CACHE_SIZE``: a bounded raster block cache and a bounded
  cache of downloaded ranges, so a window read twice (QA_PIXEL for the cloud pre-filter, then for
  the validity mask) is fetched once.

References
----------
.. [1] GDAL, "GDAL Virtual File Systems: /vsicurl/", https://gdal.org/user/virtual_file_systems.html
.. [2] GDAL, "Configuration options", https://gdal.org/user/configoptions.html (networking).
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import rasterio

from kaesong_thermal.errors import ConfigError

#: Environment variables that override the :class:`HttpOptions` defaults (e.g. in cron).
ENV_VARS = {
    "timeout_s": "KAESONG_THERMAL_HTTP_TIMEOUT",
    "retries": "KAESONG_THERMAL_HTTP_RETRIES",
    "retry_delay_s": "KAESONG_THERMAL_HTTP_RETRY_DELAY",
}
_QUERY = re.compile(r"\?[\w.~%-]+=[^\s'\"(),]*")


@dataclass(frozen=True)
class HttpOptions:
    """Network limits of remote reads.

    Attributes
    ----------
    timeout_s : float
        Longest wait for one HTTP request, seconds (connection included).
    connect_timeout_s : float
        Longest wait for a connection, seconds.
    retries : int
        Retries of a failed request (HTTP 429/5xx, timeout, reset or truncated response), each
        after a delay that doubles from ``retry_delay_s``.
    retry_delay_s : float
        First delay between retries, seconds.
    cache_mb : int
        GDAL raster block cache and downloaded-range cache, MiB each.
    """

    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    retries: int = 3
    retry_delay_s: float = 0.5
    cache_mb: int = 64

    def __post_init__(self) -> None:
        if not (self.timeout_s > 0 and self.connect_timeout_s > 0):
            raise ConfigError(f"HTTP timeouts must be positive, not {self}")
        if self.retries < 0 or self.retry_delay_s < 0 or self.cache_mb < 1:
            raise ConfigError(f"HTTP retries/delay must be >= 0 and the cache >= 1 MiB: {self}")

    @classmethod
    def from_env(cls, environ: Any = None) -> HttpOptions:
        """Defaults, overridden by ``KAESONG_THERMAL_HTTP_TIMEOUT`` / ``_RETRIES`` / ``_RETRY_DELAY``."""
        env = os.environ if environ is None else environ
        changes: dict[str, Any] = {}
        for name, var in ENV_VARS.items():
            text = env.get(var)
            if text:
                try:
                    changes[name] = int(text) if name == "retries" else float(text)
                except ValueError as exc:
                    raise ConfigError(f"{var}={text!r}: not a number") from exc
        return replace(cls(), **changes)


def gdal_options(options: HttpOptions | None = None) -> dict[str, str | int]:
    """GDAL configuration options of remote COG reads (see the module docstring)."""
    opts = options or HttpOptions()
    return {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.TIFF",
        "GDAL_INGESTED_BYTES_AT_OPEN": "16384",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_MULTIPLEX": "YES",
        "GDAL_HTTP_MAX_RETRY": str(opts.retries),
        "GDAL_HTTP_RETRY_DELAY": f"{opts.retry_delay_s:g}",
        "GDAL_HTTP_TIMEOUT": str(max(1, math.ceil(opts.timeout_s))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, math.ceil(opts.connect_timeout_s))),
        "GDAL_CACHEMAX": opts.cache_mb << 20,  # bytes (rasterio sets it with GDALSetCacheMax64)
        "CPL_VSIL_CURL_CACHE_SIZE": str(opts.cache_mb << 20),
        "VSI_CACHE": "FALSE",
    }


def cloud_env(options: HttpOptions | None = None) -> rasterio.Env:
    """A :class:`rasterio.env.Env` with the remote COG settings of :func:`gdal_options`."""
    return rasterio.Env(**gdal_options(options))


def is_remote(href: str) -> bool:
    """True for the hrefs read over the network (``http://``, ``https://``, ``s3://``)."""
    return href.lower().startswith(("http://", "https://", "s3://"))


def gdal_path(href: str) -> str:
    """The GDAL path of a remote href: ``/vsicurl/`` for http(s), ``/vsis3/`` for ``s3://``."""
    if href.lower().startswith("s3://"):
        return "/vsis3/" + href[len("s3://") :]
    if href.lower().startswith(("http://", "https://")):
        return "/vsicurl/" + href
    raise ConfigError(f"{redact(href)}: not an http(s) or s3 href")


def redact(text: str) -> str:
    """``text`` with the query string of every URL in it removed (signing tokens live there)."""
    return _QUERY.sub("", text)


def clear_cache(path: str) -> None:
    """Forget what GDAL's ``/vsicurl/`` cache holds for ``path`` (so a retry asks the server
    again instead of repeating a cached failure); a no-op where libgdal cannot be found."""
    lib = _libgdal()
    if lib is not None:
        lib.VSICurlPartialClearCache(path.encode("utf-8"))


def read_vsi_bytes(path: str, name: str, options: HttpOptions | None = None) -> bytes:
    """The whole content of a small remote file GDAL can read (``/vsis3/...``: an MTL on S3,
    with GDAL's own ``AWS_*`` credentials and request signing).

    Raises
    ------
    ProductError
        GDAL cannot open or read the file (or libgdal cannot be loaded).
    """
    import ctypes

    from kaesong_thermal.errors import ProductError

    lib = _libgdal()
    if lib is None:
        raise ProductError(f"{name}: cannot fetch through GDAL here (libgdal not found)")
    chunks: list[bytes] = []
    settings = gdal_options(options or HttpOptions.from_env())
    suffix = Path(path).suffix
    settings["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"] = (
        f"{settings['CPL_VSIL_CURL_ALLOWED_EXTENSIONS']},{suffix}"
    )
    with rasterio.Env(**settings):
        lib.CPLErrorReset()
        handle = lib.VSIFOpenL(path.encode("utf-8"), b"rb")
        if not handle:
            message = (lib.CPLGetLastErrorMsg() or b"").decode("utf-8", "replace")
            raise ProductError(f"{name}: cannot fetch ({redact(message) or 'not found'})")
        try:
            buffer = ctypes.create_string_buffer(1 << 16)
            while True:
                n = lib.VSIFReadL(buffer, 1, len(buffer), handle)
                if n <= 0:
                    break
                chunks.append(buffer.raw[:n])
        finally:
            lib.VSIFCloseL(handle)
    return b"".join(chunks)


@functools.lru_cache(maxsize=1)
def _libgdal() -> Any:
    import ctypes
    import ctypes.util
    import glob

    here = Path(rasterio.__file__).parent
    candidates = sorted(glob.glob(str(here.parent / "rasterio.libs" / "libgdal*.so*")))
    found = ctypes.util.find_library("gdal")
    for name in [*candidates, *([found] if found else [])]:
        try:
            lib = ctypes.CDLL(name)
            lib.VSICurlPartialClearCache.argtypes = [ctypes.c_char_p]
            lib.VSICurlPartialClearCache.restype = None
            lib.VSIFOpenL.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
            lib.VSIFOpenL.restype = ctypes.c_void_p
            lib.VSIFReadL.argtypes = [
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_size_t,
                ctypes.c_void_p,
            ]
            lib.VSIFReadL.restype = ctypes.c_size_t
            lib.VSIFCloseL.argtypes = [ctypes.c_void_p]
            lib.VSIFCloseL.restype = ctypes.c_int
            lib.CPLGetLastErrorMsg.argtypes = []
            lib.CPLGetLastErrorMsg.restype = ctypes.c_char_p
            lib.CPLErrorReset.argtypes = []
            lib.CPLErrorReset.restype = None
            return lib
        except (OSError, AttributeError):
            continue
    return None


__all__ = [
    "HttpOptions",
    "clear_cache",
    "cloud_env",
    "gdal_options",
    "gdal_path",
    "is_remote",
    "read_vsi_bytes",
    "redact",
]
