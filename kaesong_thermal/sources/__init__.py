"""Where scenes come from besides local files: STAC APIs (:mod:`kaesong_thermal.sources.stac`)."""

from __future__ import annotations

from kaesong_thermal.sources.stac import StacProduct, StacRun, detect_stac, search_scenes

__all__ = ["StacProduct", "StacRun", "detect_stac", "search_scenes"]
