"""Landsat products in, kelvin out: discovery, metadata (MTL), QA decoding and radiometry."""
