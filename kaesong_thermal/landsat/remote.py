"""Landsat scenes from STAC items whose assets are remote Cloud-Optimized GeoTIFFs.

:func:`open_item` turns a STAC Item [1]_ (a dict, a ``pystac.Item`` or a local JSON file) into a
:class:`RemoteScene`: the MTL is fetched (a few KB), the bands are opened through GDAL's
``/vsicurl/`` (``/vsis3/`` for ``s3://``) with the settings of
:mod:`kaesong_thermal.landsat.cloud`, and only the tiles under the requested window are read.

Asset keys of every live Collection 2 convention are understood, on top of the official file
names the MTL lists (which always win):

- ``lwir11`` / ``qa`` / ``qa_pixel`` / ``qa_radsat`` (Microsoft Planetary Computer, Earth
  Search, stactools, USGS LandsatLook today), ``lwir`` for TM/ETM+;
- the older upper-case keys ``ST_B10`` / ``ST_QA`` / ``QA_PIXEL`` / ``ST_B6``;
- LandsatLook's separate ``<PRODUCT_ID>_ST`` (surface temperature) and ``<PRODUCT_ID>_SR``
  items of one product, merged by :func:`merge_items`.

The DN-to-kelvin scale and offset come from the thermal asset's ``raster:bands`` when present
(STAC raster extension [2]_), else from the MTL.

Before the thermal band is read, :meth:`RemoteScene.read_kelvin` reads QA_PIXEL over the
requested window (a few KB): when the site is clouded (more than ``max_site_cloud`` of its
image pixels are cloud, cloud shadow, cirrus or dilated cloud) the thermal band is not read and
the window comes back invalid. A whole scene's ``eo:cloud_cover`` says little about a 3 km site.

Faults (HTTP 404 / 5xx, timeouts, truncated responses) are retried with a growing delay a
bounded number of times and end as one :class:`~kaesong_thermal.errors.RasterReadError` or
:class:`~kaesong_thermal.errors.ProductError` naming the URL without its query string: signing
tokens never reach a message, a log line or the store.

References
----------
.. [1] STAC Item specification v1.0.0, https://github.com/radiantearth/stac-spec/blob/v1.0.0/item-spec/item-spec.md
.. [2] STAC raster extension v1.1.0, https://github.com/stac-extensions/raster
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import numpy as np
from rasterio.errors import RasterioError
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from kaesong_thermal.errors import (
    KaesongThermalError,
    ProductError,
    RasterReadError,
)
from kaesong_thermal.landsat import bands, qa
from kaesong_thermal.landsat.cloud import (
    HttpOptions,
    clear_cache,
    cloud_env,
    gdal_path,
    is_remote,
    redact,
)
from kaesong_thermal.landsat.mtl import L2Scaling
from kaesong_thermal.landsat.scene import (
    FileRef,
    Scene,
    ThermalWindow,
    _build_scene,
    _Listing,
    _pick_mtl,
)

logger = logging.getLogger(__name__)

#: Default share of a site's image pixels flagged cloud/shadow/cirrus above which the thermal
#: band is not read (the site is clouded).
DEFAULT_MAX_SITE_CLOUD = 1.0
#: Asset keys (lower case) of surface temperature / thermal bands, any convention.
THERMAL_KEYS = ("lwir11", "lwir", "st_b10", "st_b6", "lwir_low", "b10", "b6")
_PRODUCT_ID = re.compile(
    r"(L[CEOTM]\d{2}_L[12][A-Z]{2}_\d{6}_\d{8}_\d{8}_\d{2}_(?:T1|T2|RT|A1|A2))", re.IGNORECASE
)
_THERMAL_SUFFIX = re.compile(r"_(ST_B10|ST_B6|B10|B6|B6_VCID_1)\.TIF$", re.IGNORECASE)
#: Faults a retry cannot mend: HTTP 401/403/404 as GDAL words them ("HTTP response code: 404"),
#: and a missing or unreadable file.  Codes are matched as codes only, never as digits inside
#: a URL (a port such as 40103, a date such as 20200404).
_PERMANENT = re.compile(
    r"(?:response code|http(?: error)?|status)\W{0,3}(?:401|403|404)\b"
    r"|not found|no such file|not recognized",
    re.IGNORECASE,
)


def is_permanent(text: str) -> bool:
    """Whether a read error names a fault that retrying cannot mend (see :data:`_PERMANENT`)."""
    return _PERMANENT.search(text) is not None


# ---------------------------------------------------------------------------------- HTTP
def fetch_bytes(url: str, name: str | None = None, options: HttpOptions | None = None) -> bytes:
    """GET a small remote file (an MTL) whole, retrying 429/5xx, resets and truncation.

    Parameters
    ----------
    url : str
        http(s) URL (may carry a signing query; it never appears in a message).
    name : str, optional
        How to call the file in messages (default the URL without its query).
    options : HttpOptions, optional
        Timeouts and retries (default :meth:`HttpOptions.from_env`).

    Raises
    ------
    ProductError
        The file cannot be fetched (HTTP error, timeout, truncated body) after the retries.
    """
    import requests

    opts = options or HttpOptions.from_env()
    label = name or redact(url)
    delay = opts.retry_delay_s
    last = "no attempt"
    for attempt in range(opts.retries + 1):
        if attempt:
            time.sleep(delay)
            delay *= 2
        try:
            response = requests.get(
                url, timeout=(opts.connect_timeout_s, opts.timeout_s), allow_redirects=True
            )
            status = response.status_code
            if status == 200:
                expected = response.headers.get("Content-Length")
                body = response.content
                if expected is not None and expected.isdigit() and len(body) != int(expected):
                    last = f"truncated response ({len(body)} of {expected} bytes)"
                    continue
                return body
            last = f"HTTP {status}"
            if status not in (408, 425, 429, 500, 502, 503, 504):
                break
        except requests.Timeout:
            last = f"timed out after {opts.timeout_s:g} s"
        except requests.RequestException as exc:
            last = _request_error(exc)
    raise ProductError(f"{label}: cannot fetch ({last}; {attempt + 1} attempt(s))")


def _request_error(exc: BaseException) -> str:
    text = redact(str(exc))
    if "IncompleteRead" in text or "ChunkedEncodingError" in type(exc).__name__:
        return "truncated response"
    if "Connection refused" in text:
        return "connection refused"
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


# ---------------------------------------------------------------------------------- items
def _as_item(source: Any) -> dict[str, Any]:
    if hasattr(source, "to_dict") and not isinstance(source, Mapping):
        source = source.to_dict()
    if not isinstance(source, Mapping):
        raise ProductError(f"{source!r}: not a STAC item (expected a dict or a pystac.Item)")
    item = dict(source)
    if item.get("type") != "Feature" or not isinstance(item.get("assets"), Mapping):
        raise ProductError(f"STAC item {item.get('id', '?')}: not a STAC Feature with assets")
    return item


def has_remote_assets(item: Mapping[str, Any]) -> bool:
    """True when any asset href of ``item`` is http(s) or ``s3://``."""
    assets = item.get("assets")
    if not isinstance(assets, Mapping):
        return False
    return any(
        isinstance(a, Mapping) and isinstance(a.get("href"), str) and is_remote(a["href"])
        for a in assets.values()
    )


def self_href(item: Mapping[str, Any]) -> str | None:
    """The item's ``self`` link, if any (without a query string)."""
    for link in item.get("links") or ():
        if isinstance(link, Mapping) and link.get("rel") == "self" and link.get("href"):
            return strip_query(str(link["href"]))
    return None


def strip_query(url: str) -> str:
    """``url`` without query string and fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def product_id(item: Mapping[str, Any]) -> str:
    """The Landsat product id of an item (``landsat:product_id``, else from the asset file names,
    else the item id without LandsatLook's ``_ST`` / ``_SR`` suffix)."""
    props = item.get("properties") or {}
    pid = props.get("landsat:product_id")
    if isinstance(pid, str) and pid:
        return pid
    for asset in (item.get("assets") or {}).values():
        href = asset.get("href") if isinstance(asset, Mapping) else None
        if isinstance(href, str):
            match = _PRODUCT_ID.search(_href_path(href))
            if match:
                return match.group(1).upper()
    return _base_id(str(item.get("id", "")))


def _href_path(href: str) -> str:
    """The path part of an href (URL path, or the local path)."""
    return urlsplit(href).path if "://" in href else href


def _base_id(item_id: str) -> str:
    upper = item_id.upper()
    return item_id[:-3] if upper.endswith(("_ST", "_SR")) else item_id


def thermal_asset(item: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """``(key, asset)`` of the thermal (surface temperature or brightness) band, or None."""
    assets = item.get("assets") or {}
    for key, asset in assets.items():
        if str(key).lower() in THERMAL_KEYS and isinstance(asset, Mapping):
            return str(key), asset
    for key, asset in assets.items():
        href = asset.get("href") if isinstance(asset, Mapping) else None
        if isinstance(href, str) and _THERMAL_SUFFIX.search(_href_path(href)):
            return str(key), asset
    return None


def skip_reason(item: Mapping[str, Any]) -> str | None:
    """Why an item cannot give temperatures (None when it can)."""
    props = item.get("properties") or {}
    correction = str(props.get("landsat:correction") or props.get("landsat:processing_level") or "")
    if thermal_asset(item) is None:
        if correction.upper() == "L2SR" or str(item.get("id", "")).upper().endswith("_SR"):
            return "Level-2 surface reflectance only (L2SR): no surface temperature band"
        return "no thermal band asset (lwir11 / lwir / ST_B10 / ST_B6)"
    return None


def merge_items(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Merge LandsatLook's ``<PRODUCT_ID>_ST`` and ``_SR`` items of one product into one item.

    The merged item has the product id as its id, the assets of both (the ``_ST`` item's win on
    a shared key) and the properties of both. Other items pass through unchanged, in order.
    """
    out: list[dict[str, Any]] = []
    groups: dict[str, dict[str, Any]] = {}
    for raw in items:
        item = _as_item(raw)
        item_id = str(item.get("id", ""))
        suffix = item_id[-3:].upper()
        if suffix not in ("_ST", "_SR"):
            out.append(item)
            continue
        base = _base_id(item_id)
        merged = groups.get(base)
        if merged is None:
            merged = {**item, "id": base, "assets": {}, "properties": {}}
            merged["links"] = list(item.get("links") or [])
            groups[base] = merged
            out.append(merged)
        first, second = (item, None) if suffix == "_ST" else (None, item)
        if second is not None:  # _SR: below whatever _ST brought
            merged["assets"] = {**dict(second["assets"]), **merged["assets"]}
            merged["properties"] = {**dict(second.get("properties") or {}), **merged["properties"]}
        if first is not None:
            merged["assets"] = {**merged["assets"], **dict(first["assets"])}
            merged["properties"] = {**merged["properties"], **dict(first.get("properties") or {})}
            merged["links"] = list(first.get("links") or merged["links"])
    return out


def _remote_listing(item: Mapping[str, Any], label: str, base: Any) -> _Listing:
    files: dict[str, FileRef] = {}
    keyed: dict[str, FileRef] = {}
    base_url = self_href(item) if base is None else None
    for key, asset in (item.get("assets") or {}).items():
        if not isinstance(asset, Mapping) or not isinstance(asset.get("href"), str):
            continue
        href: str = asset["href"]
        if href.startswith("file://"):
            href = href[len("file://") :]
        if not is_remote(href):
            if base is not None:
                local = Path(href) if Path(href).is_absolute() else Path(base).parent / href
                ref = FileRef(str(local), str(local))
            elif base_url is not None and is_remote(base_url):
                href = urljoin(base_url, href)
                ref = _url_ref(href)
            else:
                logger.debug("%s: asset %s has a relative href and no base; skipped", label, key)
                continue
        else:
            ref = _url_ref(href)
        files[ref.basename] = ref
        keyed[str(key).lower()] = ref
    return _Listing(label, files, hints=keyed)


def _url_ref(href: str) -> FileRef:
    url = href if href.lower().startswith(("http://", "https://")) else None
    return FileRef(redact(href), gdal_path(href), url=url)


def _st_scale_offset(asset: Mapping[str, Any] | None) -> tuple[float, float] | None:
    bands = asset.get("raster:bands") if asset else None
    if isinstance(bands, list) and bands and isinstance(bands[0], Mapping):
        scale, offset = bands[0].get("scale"), bands[0].get("offset")
        if isinstance(scale, (int, float)) and isinstance(offset, (int, float)):
            return float(scale), float(offset)
    return None


def open_item(
    source: Any,
    *,
    base: Any = None,
    http: HttpOptions | None = None,
    max_site_cloud: float | None = DEFAULT_MAX_SITE_CLOUD,
    label: str | None = None,
) -> RemoteScene:
    """Open a STAC item with remote assets as a :class:`RemoteScene`.

    Parameters
    ----------
    source : dict, pystac.Item or product
        The item (LandsatLook ``_ST`` / ``_SR`` pairs merged first with :func:`merge_items`), or
        an object with an ``open()`` method returning a scene (a STAC search product).
    base : path, optional
        The local JSON file the item was read from (relative hrefs are resolved beside it);
        otherwise relative hrefs are resolved against the item's ``self`` link.
    http : HttpOptions, optional
        Timeouts and retries (default :meth:`HttpOptions.from_env`).
    max_site_cloud : float or None, default 1.0
        Cloud pre-filter of :meth:`RemoteScene.read_kelvin`; None disables it.
    label : str, optional
        How to name the scene in messages (default the item's ``self`` link or id).

    Returns
    -------
    RemoteScene

    Raises
    ------
    ProductError
        Not a STAC item, no surface temperature (L2SR only), MTL missing or not fetchable.
    RasterReadError
        A band cannot be opened (HTTP error, timeout, truncated or not a GeoTIFF).
    """
    opener = getattr(source, "open", None)
    if not isinstance(source, Mapping) and not hasattr(source, "to_dict") and callable(opener):
        scene = opener()
        if not isinstance(scene, RemoteScene):
            raise ProductError(f"{source}: did not open as a remote scene")
        return scene
    item = _as_item(source)
    name = label or (str(base) if base is not None else None)
    name = name or self_href(item) or f"STAC item {item.get('id', '?')}"
    name = redact(name)
    reason = skip_reason(item)
    if reason is not None:
        raise ProductError(f"{name}: {reason}")
    opts = http or HttpOptions.from_env()
    listing = _remote_listing(item, name, base)
    key_asset = thermal_asset(item)
    scale = _st_scale_offset(key_asset[1] if key_asset else None)
    canonical = strip_query(str(key_asset[1].get("href"))) if key_asset else name
    checksum_basis = "|".join(
        str(v)
        for v in (
            canonical,
            (key_asset[1].get("file:checksum") if key_asset else None) or "",
            (item.get("properties") or {}).get("updated") or "",
        )
    )
    factory = functools.partial(
        RemoteScene,
        http=opts,
        st_scale=scale,
        checksum_basis=checksum_basis,
        max_site_cloud=max_site_cloud,
    )
    for ref in listing.files.values():  # a failure cached by an earlier run is asked again
        if ref.gdal_path.startswith(("/vsicurl/", "/vsis3/")):
            clear_cache(ref.gdal_path)
    try:
        mtl_ref = _pick_mtl(listing)
        with cloud_env(opts):
            scene = _build_scene(name, listing, mtl_ref, factory=factory)
    except KaesongThermalError as exc:
        raise type(exc)(redact(str(exc))) from None
    if not isinstance(scene, RemoteScene):  # pragma: no cover - the factory makes one
        raise ProductError(f"{name}: not opened as a remote scene")
    return scene


def open_url(url: str, *, http: HttpOptions | None = None) -> RemoteScene:
    """Fetch the STAC item at ``url`` (e.g. a store's ``source_path``) and open it.

    Planetary Computer items are signed first (needs the ``planetary-computer`` extra).
    """
    import json

    opts = http or HttpOptions.from_env()
    body = fetch_bytes(url, redact(url), opts)
    try:
        item = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProductError(f"{redact(url)}: not a JSON STAC item ({exc})") from None
    if not isinstance(item, dict):
        raise ProductError(f"{redact(url)}: not a JSON STAC item")
    from kaesong_thermal.sources.stac import sign_item, signing_for

    if signing_for(url):
        item = sign_item(item)
    return open_item(item, http=opts, label=strip_query(url))


# --------------------------------------------------------------------------------- scene
class RemoteScene(Scene):
    """A :class:`~kaesong_thermal.landsat.scene.Scene` whose bands are remote COGs.

    Reads run inside :func:`kaesong_thermal.landsat.cloud.cloud_env`, are retried on transient
    faults, and never name a URL with its query string. See the module docstring.
    """

    def __init__(
        self,
        *,
        http: HttpOptions,
        st_scale: tuple[float, float] | None,
        checksum_basis: str,
        max_site_cloud: float | None,
        **kwargs: Any,
    ) -> None:
        self.http = http
        self._st_scale = st_scale
        self._checksum_basis = checksum_basis
        self.max_site_cloud = max_site_cloud
        #: True when the last :meth:`read_kelvin` skipped the thermal band (site clouded).
        self.site_clouded = False
        super().__init__(**kwargs)

    def _env(self) -> Any:
        return cloud_env(self.http)

    def _st_scaling(self, band: str) -> Any:
        if self._st_scale is not None and band == self.thermal_band:
            return L2Scaling(band, self._st_scale[0], self._st_scale[1])
        return super()._st_scaling(band)

    def _retrying(self, role: str, call: Any) -> Any:
        """``call()``, retried after transient faults with a doubling delay (GDAL retries HTTP
        5xx itself first); its cache of the file is cleared before each retry."""
        ref = self.files[role]
        delay = self.http.retry_delay_s
        for attempt in range(self.http.retries + 1):
            try:
                return call()
            except (KaesongThermalError, RasterioError) as exc:
                text = redact(str(exc))
                permanent = is_permanent(text)
                if permanent or attempt == self.http.retries:
                    cls = type(exc) if isinstance(exc, KaesongThermalError) else RasterReadError
                    raise cls(f"{text} [{attempt + 1} attempt(s)]") from None
                logger.debug("%s: %s; retrying in %.2f s", ref.name, text, delay)
                stale = self._datasets.pop(role, None)
                if stale is not None:
                    stale.close()
                clear_cache(ref.gdal_path)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _dataset(self, role: str) -> Any:
        return self._retrying(role, lambda: Scene._dataset(self, role))

    def _read(self, role: str, window: Window, fill: float | int) -> Any:
        def read() -> Any:
            with self._env():
                Scene._dataset(self, role)
                return Scene._read(self, role, window, fill)

        return self._retrying(role, read)

    def read_kelvin(
        self,
        bounds: tuple[float, float, float, float] | None = None,
        crs: Any = None,
        *,
        max_sigma_k: float | None = bands.DEFAULT_MAX_SIGMA_K,
        mask_snow: bool = False,
        band: str | None = None,
    ) -> ThermalWindow:
        """As :meth:`Scene.read_kelvin`, QA_PIXEL first: a clouded site skips the thermal read.

        When at least ``max_site_cloud`` of the window's image pixels are cloud, shadow, cirrus
        or dilated cloud (or the window holds no image pixel), the thermal band and ST_QA are not
        read; the window comes back all invalid (NaN kelvin) with its cloud mask, and
        :attr:`site_clouded` is True.
        """
        self.site_clouded = False
        name = self._band(band)
        window = self.window_for(bounds, crs)
        with self._env():
            if bounds is not None and self.max_site_cloud is not None and "QA_PIXEL" in self.files:
                qa_pixel = self._read("QA_PIXEL", window, qa.QA_PIXEL_OUTSIDE)
                fill = qa.fill_mask(qa_pixel)
                cloud = qa.cloud_mask(qa_pixel) & ~fill
                image = int(np.count_nonzero(~fill))
                share = 1.0 if image == 0 else np.count_nonzero(cloud) / image
                if share >= self.max_site_cloud or image == 0:
                    logger.info(
                        "%s: site clouded (%.0f %% of %d image pixels); thermal band not read",
                        self.scene_id,
                        100 * share,
                        image,
                    )
                    self.site_clouded = True
                    shape = (int(window.height), int(window.width))
                    sigma = (
                        np.full(shape, np.nan, dtype=np.float32)
                        if name.startswith("ST_") and "ST_QA" in self.files
                        else None
                    )
                    return ThermalWindow(
                        kelvin=np.full(shape, np.nan, dtype=np.float32),
                        valid=np.zeros(shape, dtype=bool),
                        sigma_k=sigma,
                        cloud=cloud,
                        transform=window_transform(window, self.transform),
                        crs=self.crs,
                        metadata=self.metadata,
                        band=name,
                    )
            return super().read_kelvin(
                bounds, crs, max_sigma_k=max_sigma_k, mask_snow=mask_snow, band=band
            )

    def qa_summary(
        self, *, max_sigma_k: float | None = bands.DEFAULT_MAX_SIGMA_K, mask_snow: bool = False
    ) -> dict[str, float | int]:
        """As :meth:`Scene.qa_summary` (reads the whole band: costly over a network)."""
        with self._env():
            return super().qa_summary(max_sigma_k=max_sigma_k, mask_snow=mask_snow)

    def thermal_checksum(self, band: str | None = None) -> str:
        """``stac:`` + SHA-256 of the thermal asset's href (without query), its
        ``file:checksum`` and the item's ``updated`` time: the band is not downloaded whole."""
        self._band(band)
        digest = hashlib.sha256(self._checksum_basis.encode("utf-8")).hexdigest()
        return f"stac:{digest}"


__all__ = [
    "DEFAULT_MAX_SITE_CLOUD",
    "RemoteScene",
    "fetch_bytes",
    "has_remote_assets",
    "merge_items",
    "open_item",
    "open_url",
    "product_id",
    "skip_reason",
    "thermal_asset",
]
