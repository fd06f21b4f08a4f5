"""Error hierarchy of kaesong_thermal.

One root, :class:`KaesongThermalError`; subclasses also inherit the matching built-in
exception so that ``except ValueError`` / ``except OSError`` in user code still works
(the same pattern as ``rasterio.errors.RasterioIOError(RasterioError, OSError)``).

Every message names the file (or feature) at fault and what is wrong, in one line:
the CLI prints ``str(error)`` and exits with :data:`EXIT_DATA_ERROR`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_DATA_ERROR = 1
EXIT_USAGE_ERROR = 2
EXIT_NEWLY_ACTIVE = 3


class KaesongThermalError(Exception):
    """Root of every error raised on purpose by kaesong_thermal."""


class ProductError(KaesongThermalError, ValueError):
    """A Landsat product (directory, tar, MTL, STAC item) is missing, malformed or inconsistent."""


class MetadataError(ProductError):
    """An MTL file cannot be parsed or lacks a required field (e.g. thermal constants)."""


class RasterReadError(KaesongThermalError, OSError):
    """A raster cannot be opened or read (truncated, corrupt, not a GeoTIFF)."""


class FootprintError(KaesongThermalError, ValueError):
    """A footprint file or feature is invalid (ids, geometry, CRS)."""


class StoreError(KaesongThermalError, OSError):
    """The observation store cannot be opened, is not a store, or has an incompatible schema."""


class AnalysisError(KaesongThermalError, ValueError):
    """Observations cannot be analysed as asked (bad baseline period, missing columns)."""


class ConfigError(KaesongThermalError, ValueError):
    """A configuration file or option value is invalid."""


class SchedulerError(KaesongThermalError, OSError):
    """A Dask scheduler cannot be reached or started, or dask.distributed is not installed."""
