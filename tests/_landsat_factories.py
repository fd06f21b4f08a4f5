"""Small builders for Landsat reader tests: products linked, tarred or itemised in ``tmp_path``.

The real fixtures are never copied into the project; tests link or tar them inside pytest's
temporary directories only.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

L2_ID = "LC08_L2SP_008059_20191201_20200825_02_T1"
L2_SUFFIXES = ("MTL.txt", "ST_B10.TIF", "ST_QA.TIF", "QA_PIXEL.TIF", "QA_RADSAT.TIF")
LC8_ID = "LC80400282014193LGN00"


def l2_dir(fixtures_dir: Path) -> Path:
    """The real Collection 2 Level-2 product directory."""
    return fixtures_dir / "stactools-landsat" / L2_ID


def lc8_dir(fixtures_dir: Path) -> Path:
    """The real pre-collection Landsat 8 Level-1 subset."""
    return fixtures_dir / "satellite_image" / "lc8_image"


def link_files(src: Path, dest: Path, names: Iterable[str]) -> Path:
    """Symlink ``names`` from ``src`` into ``dest`` (created); return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dest / name).symlink_to((src / name).resolve())
    return dest


def make_tar(path: Path, src: Path, names: Iterable[str]) -> Path:
    """Write an uncompressed tar of ``names`` from ``src`` (flat, as USGS bundles are)."""
    with tarfile.open(path, "w") as archive:
        for name in names:
            archive.add(src / name, arcname=name)
    return path


def add_raw_member(path: Path, member_name: str, data: bytes) -> Path:
    """Write a tar whose single member has exactly ``member_name`` (e.g. ``../x`` or ``/abs``)."""
    import io

    info = tarfile.TarInfo(member_name)
    info.size = len(data)
    with tarfile.open(path, "w") as archive:
        archive.addfile(info, io.BytesIO(data))
    return path


def make_stac_item(
    path: Path, src: Path, assets: dict[str, str], *, relative: bool = False
) -> Path:
    """Write a STAC item JSON at ``path`` with ``assets`` {key: file name in src}."""
    entries = {}
    for key, name in assets.items():
        target = (src / name).resolve()
        href = os.path.relpath(target, path.parent) if relative else str(target)
        entries[key] = {"href": href, "type": "image/tiff; application=geotiff"}
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": path.stem,
        "collection": "landsat-c2-l2",
        "properties": {"datetime": "2019-12-01T15:13:51Z"},
        "geometry": None,
        "assets": entries,
        "links": [],
    }
    path.write_text(json.dumps(item), encoding="utf-8")
    return path
