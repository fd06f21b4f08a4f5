"""Landsat products in, kelvin out: discovery, metadata (MTL), QA decoding and radiometry.

``open_scene(path)`` accepts a product directory, any file of a product, a USGS ``.tar`` bundle or a
STAC item JSON; ``Scene.read_kelvin(bounds, crs)`` returns a :class:`ThermalWindow`. See
``docs/landsat.md``.
"""

from __future__ import annotations

from kaesong_thermal.landsat.scene import Scene, SceneMetadata, ThermalWindow, open_scene

__all__ = ["Scene", "SceneMetadata", "ThermalWindow", "open_scene"]
