"""kaesong_thermal: which factory buildings are running, from Landsat thermal imagery.

The public API is re-exported here and imported lazily, so ``import kaesong_thermal as kt``
stays fast and a notebook only pays for what it uses::

    import kaesong_thermal as kt
    scene = kt.open_scene("LC08_L2SP_116034_20251105_20251110_02_T1.tar")
    footprints = kt.load_footprints()          # the shipped Kaesong set
    obs = kt.extract(scene, footprints)        # one row per building
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "open_scene": "kaesong_thermal.landsat",
    "Scene": "kaesong_thermal.landsat",
    "SceneMetadata": "kaesong_thermal.landsat",
    "ThermalWindow": "kaesong_thermal.landsat",
    "load_footprints": "kaesong_thermal.footprints",
    "validate_footprints": "kaesong_thermal.footprints",
    "footprints_hash": "kaesong_thermal.footprints",
    "extract": "kaesong_thermal.extraction",
    "simulate": "kaesong_thermal.simulation",
    "analyze": "kaesong_thermal.analysis",
    "Analysis": "kaesong_thermal.analysis",
    "evaluate": "kaesong_thermal.evaluation",
    "Store": "kaesong_thermal.store",
    "detect": "kaesong_thermal.pipeline",
    "extract_products": "kaesong_thermal.pipeline",
    "search_scenes": "kaesong_thermal.sources.stac",
    "detect_stac": "kaesong_thermal.sources.stac",
    "write_report": "kaesong_thermal.report",
    "KaesongThermalError": "kaesong_thermal.errors",
}

__all__ = [
    "Analysis",
    "KaesongThermalError",
    "Scene",
    "SceneMetadata",
    "Store",
    "ThermalWindow",
    "__version__",
    "analyze",
    "detect",
    "detect_stac",
    "evaluate",
    "extract",
    "extract_products",
    "footprints_hash",
    "load_footprints",
    "open_scene",
    "search_scenes",
    "simulate",
    "validate_footprints",
    "write_report",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from kaesong_thermal.analysis import Analysis, analyze
    from kaesong_thermal.errors import KaesongThermalError
    from kaesong_thermal.evaluation import evaluate
    from kaesong_thermal.extraction import extract
    from kaesong_thermal.footprints import footprints_hash, load_footprints, validate_footprints
    from kaesong_thermal.landsat import Scene, SceneMetadata, ThermalWindow, open_scene
    from kaesong_thermal.pipeline import detect, extract_products
    from kaesong_thermal.report import write_report
    from kaesong_thermal.simulation import simulate
    from kaesong_thermal.sources.stac import detect_stac, search_scenes
    from kaesong_thermal.store import Store


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'kaesong_thermal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
