"""New Landsat scenes straight from a STAC API: search, skip what is stored, detect.

:func:`search_scenes` asks a STAC API [1]_ (Microsoft Planetary Computer ``landsat-c2-l2``, USGS
LandsatLook ``landsat-c2l2-st`` / ``landsat-c2l1``, Earth Search ``landsat-c2-l2``, or any other)
for the items over the footprints' bounds, with pystac-client [2]_ (paging, GET/POST search,
conformance). :func:`detect_stac` is the nightly job: it searches, drops the scenes already in
the store (by product id: nothing is fetched for them) and the items without surface
temperature (a reason is given), and hands the rest to :func:`kaesong_thermal.pipeline.detect`:
the same extraction as local products, in parallel, one transaction per scene. Each scene is
read window by window through :mod:`kaesong_thermal.landsat.remote`.

Planetary Computer hrefs need a short-lived signature: with the optional ``planetary-computer``
package installed (``pip install "kaesong-thermal[planetary-computer]"``) they are signed inside
the worker that reads them, right before the read, so that tokens never reach the store, a log
line or a report.

References
----------
.. [1] STAC API - Item Search v1.0.0,
   https://github.com/radiantearth/stac-api-spec/tree/v1.0.0/item-search
.. [2] pystac-client, https://pystac-client.readthedocs.io/
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pandas as pd

from kaesong_thermal.config import DEFAULT_STORE
from kaesong_thermal.errors import ConfigError, ProductError
from kaesong_thermal.landsat.cloud import HttpOptions, redact
from kaesong_thermal.landsat.remote import (
    DEFAULT_MAX_SITE_CLOUD,
    RemoteScene,
    merge_items,
    open_item,
    product_id,
    self_href,
    skip_reason,
    strip_query,
)

if TYPE_CHECKING:
    from kaesong_thermal.pipeline import DetectResult
    from kaesong_thermal.store import Store

logger = logging.getLogger(__name__)

#: Default collection searched (Planetary Computer and Earth Search name it so).
DEFAULT_COLLECTIONS = ("landsat-c2-l2",)
#: ``since="last"`` searches from the previous run's as-of date minus this many days: Level-2
#: products are published days to weeks after acquisition, and stored ones are skipped anyway.
LOOKBACK_DAYS = 32
#: Hosts whose asset hrefs are signed with the ``planetary-computer`` package.
PLANETARY_COMPUTER_HOSTS = ("planetarycomputer.microsoft.com",)
_PAGE = 100


# ------------------------------------------------------------------------------ products
@dataclass(frozen=True)
class StacProduct:
    """One scene found by a STAC search, ready for :func:`kaesong_thermal.pipeline.detect`.

    Picklable (sent to worker processes); ``str()`` names it in messages; ``source`` is what the
    store records (the item's URL, never a signed href).

    Attributes
    ----------
    item : dict
        The STAC item (LandsatLook ``_ST`` / ``_SR`` items already merged), unsigned.
    product_id : str
        Landsat product id (or the item id when the item does not say).
    api_url : str
        The STAC API searched.
    sign : str or None
        ``"planetary-computer"`` to sign the hrefs before reading, else None.
    http : HttpOptions
        Timeouts and retries of the reads.
    max_site_cloud : float or None
        Cloud pre-filter share (see :class:`kaesong_thermal.landsat.remote.RemoteScene`).
    """

    item: dict[str, Any]
    product_id: str
    api_url: str = ""
    sign: str | None = None
    http: HttpOptions = field(default_factory=HttpOptions.from_env)
    max_site_cloud: float | None = DEFAULT_MAX_SITE_CLOUD

    @property
    def source(self) -> str:
        """The item's URL (its ``self`` link), else ``API/collections/C/items/ID``."""
        own = self_href(self.item)
        if own:
            return redact(own)
        collection = self.item.get("collection") or "-"
        return redact(
            f"{strip_query(self.api_url).rstrip('/')}/collections/{collection}/items/{self.item.get('id')}"
        )

    def __str__(self) -> str:
        return self.source

    def open(self) -> RemoteScene:
        """Sign the hrefs if needed and open the scene (reads the MTL and the band headers)."""
        item = sign_item(self.item) if self.sign == "planetary-computer" else self.item
        return open_item(
            item, http=self.http, max_site_cloud=self.max_site_cloud, label=self.source
        )


def sign_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """``item`` with its Planetary Computer hrefs signed (``planetary-computer`` extra)."""
    try:
        import planetary_computer
        import pystac
    except ImportError as exc:
        raise ConfigError(
            "Planetary Computer assets must be signed: pip install "
            "'kaesong-thermal[planetary-computer]'"
        ) from exc
    try:
        signed = planetary_computer.sign(pystac.Item.from_dict(dict(item)))
    except Exception as exc:  # the SAS token service: network or HTTP errors
        raise ProductError(
            f"STAC item {item.get('id')}: cannot sign its hrefs ({redact(str(exc))[:200]})"
        ) from None
    return dict(signed.to_dict())


def signing_for(api_url: str) -> str | None:
    """``"planetary-computer"`` for the Planetary Computer API, else None."""
    host = (urlsplit(api_url).hostname or "").lower()
    return "planetary-computer" if host.endswith(PLANETARY_COMPUTER_HOSTS) else None


# -------------------------------------------------------------------------------- search
def _bbox(footprints: Any) -> list[float]:
    from kaesong_thermal.footprints import load_footprints

    fp = footprints if hasattr(footprints, "to_crs") else load_footprints(footprints)
    if fp.crs is None:
        raise ConfigError("footprints: no CRS, cannot search by bounds")
    west, south, east, north = (float(v) for v in fp.to_crs(4326).total_bounds)
    return [west, south, east, north]


def _iso(value: Any, name: str) -> str | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} {value!r}: not a date (YYYY-MM-DD)") from exc
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def search_scenes(
    api_url: str,
    footprints: Any = None,
    start: Any = None,
    end: Any = None,
    collections: Sequence[str] | str | None = None,
    max_cloud: float | None = None,
    *,
    timeout_s: float = 60.0,
) -> list[Any]:
    """STAC items over the footprints' bounds, oldest first.

    Parameters
    ----------
    api_url : str
        Root of a STAC API (``https://planetarycomputer.microsoft.com/api/stac/v1``,
        ``https://landsatlook.usgs.gov/stac-server``, ``https://earth-search.aws.element84.com/v1``).
    footprints : GeoDataFrame, path or None
        Building footprints (any CRS); None is the shipped Kaesong set. Their WGS 84 bounds are
        the search ``bbox``.
    start, end : date-like, optional
        Acquisition interval (inclusive, UTC); open-ended when None.
    collections : str or sequence of str, optional
        Default ``landsat-c2-l2``. LandsatLook: ``landsat-c2l2-st``; the ``_SR`` item of each
        ``_ST`` item (QA_PIXEL, MTL) is fetched by id and the two are merged into one.
    max_cloud : float, optional
        Keep items whose ``eo:cloud_cover`` (whole scene, percent) is at most this; a scene's
        cover says little about one site, which :class:`~kaesong_thermal.landsat.remote.RemoteScene`
        checks on QA_PIXEL before it reads the thermal band.
    timeout_s : float
        Timeout of each API request, seconds.

    Returns
    -------
    list of pystac.Item
        LandsatLook ``_ST`` / ``_SR`` pairs merged, sorted by ``datetime``.

    Raises
    ------
    ProductError
        The API cannot be reached or answers with an error.
    ConfigError
        A malformed date or ``max_cloud``.
    """
    import pystac
    import pystac_client
    import requests
    from pystac_client.exceptions import APIError

    if isinstance(collections, str):
        collections = [collections]
    chosen = list(collections or DEFAULT_COLLECTIONS)
    if max_cloud is not None and not 0 <= float(max_cloud) <= 100:
        raise ConfigError(f"max_cloud {max_cloud!r}: a percentage between 0 and 100")
    bbox = _bbox(footprints)
    a, b = _iso(start, "start"), _iso(end, "end")
    interval = None if a is None and b is None else f"{a or '..'}/{b or '..'}"
    where = redact(api_url)
    try:
        client = pystac_client.Client.open(api_url, timeout=timeout_s)
        search = client.search(collections=chosen, bbox=bbox, datetime=interval, limit=_PAGE)
        raw = [item.to_dict() for item in search.items()]
        ids = {str(i.get("id")) for i in raw}
        # LandsatLook: a _ST item whose _SR sibling (QA_PIXEL, MTL) was not searched for
        missing = sorted(
            f"{i[:-3]}_SR" for i in ids if i.upper().endswith("_ST") and f"{i[:-3]}_SR" not in ids
        )
        if missing:
            siblings = client.search(ids=missing, limit=_PAGE)
            raw += [item.to_dict() for item in siblings.items()]
    except (APIError, requests.RequestException, pystac.STACError, ValueError) as exc:
        text = redact(str(exc)).strip().splitlines()
        raise ProductError(
            f"{where}: STAC search failed ({text[0][:200] if text else type(exc).__name__})"
        ) from None
    items = merge_items(raw)
    if max_cloud is not None:
        kept = []
        for item in items:
            cover = (item.get("properties") or {}).get("eo:cloud_cover")
            if cover is None or float(cover) <= float(max_cloud):
                kept.append(item)
        items = kept
    items.sort(key=lambda i: (str((i.get("properties") or {}).get("datetime")), str(i.get("id"))))
    logger.info("%s: %d item(s) in %s over %s", where, len(items), ", ".join(chosen), bbox)
    return [pystac.Item.from_dict(item, preserve_dict=False) for item in items]


# -------------------------------------------------------------------------------- detect
@dataclass(frozen=True)
class StacRun:
    """What :func:`detect_stac` found and did.

    Attributes
    ----------
    result : DetectResult
        The detection run (ingested, failed, newly active...).
    found : int
        Items the search returned (after merging).
    already_stored : list of str
        Product ids skipped because the store has them (nothing was fetched).
    unusable : list of (str, str)
        ``(item id, reason)`` of items skipped without error (e.g. L2SR without temperature).
    start : str or None
        Start of the searched interval (ISO 8601), None when open.
    """

    result: DetectResult
    found: int
    already_stored: list[str]
    unusable: list[tuple[str, str]]
    start: str | None = None


def _short_id(pid: str) -> str:
    """Product id without the processing date (the form of Planetary Computer item ids)."""
    parts = pid.split("_")
    return "_".join(parts[:4] + parts[5:]) if len(parts) == 7 else pid


def _store_state(store: Any) -> tuple[set[str], pd.Timestamp | None]:
    """Stored scene ids, and the as-of date of the last run without failures."""
    from kaesong_thermal.store import Store

    if isinstance(store, Store):
        st, owned = store, False
    else:
        if not Path(os.fspath(store)).exists():
            return set(), None
        st, owned = Store(store, create=False), True
    try:
        ids = set(st.scene_checksums())
        runs = st.runs()
        clean = runs[runs["finished"].notna() & (runs["n_failed"].fillna(0) == 0)]
        clean = clean[clean["as_of"].notna()]
        as_of = None if clean.empty else pd.Timestamp(clean["as_of"].iloc[-1])
    finally:
        if owned:
            st.close()
    return ids, as_of


def _search_start(since: Any, as_of: pd.Timestamp | None) -> Any:
    if since is None:
        return None
    if isinstance(since, str) and since.strip().lower() == "last":
        if as_of is None:
            return None
        return as_of - pd.Timedelta(days=LOOKBACK_DAYS)
    _iso(since, "since")  # a malformed date is a ConfigError naming --since
    return since


def detect_stac(
    api_url: str,
    *,
    footprints: Any = None,
    store: str | os.PathLike[str] | Store = DEFAULT_STORE,
    collections: Sequence[str] | str | None = None,
    since: Any = "last",
    end: Any = None,
    max_cloud: float | None = None,
    max_site_cloud: float | None = DEFAULT_MAX_SITE_CLOUD,
    http: HttpOptions | None = None,
    **detect_options: Any,
) -> StacRun:
    """Search a STAC API, skip what the store has, ingest the rest, report what became active.

    Parameters
    ----------
    api_url : str
        Root of the STAC API.
    footprints : GeoDataFrame, path or None
        Building footprints; None is the shipped Kaesong set.
    store : path or Store
        The store (created when missing).
    collections : str or sequence of str, optional
        Collections to search (default ``landsat-c2-l2``).
    since : "last", date-like or None, default "last"
        Start of the search: ``"last"`` = the as-of date of the last run that had no failure,
        minus :data:`LOOKBACK_DAYS` (so that a scene that failed is searched again, and one
        published late is still found; everything on the first run); a date; None = the
        whole record.
    end : date-like, optional
        End of the search interval.
    max_cloud : float, optional
        Whole-scene ``eo:cloud_cover`` ceiling, percent.
    max_site_cloud : float or None, default 1.0
        Skip the thermal read when more than this share of the site's pixels are clouded
        (QA_PIXEL read first); None reads every scene whole-window.
    http : HttpOptions, optional
        Timeouts and retries of the reads (default :meth:`HttpOptions.from_env`).
    **detect_options
        Keyword arguments of :func:`kaesong_thermal.pipeline.detect` (``workers``, ``baseline``,
        ``thresholds``, ``extract_options``, ``progress``, ``force``, ``command``...).

    Returns
    -------
    StacRun
    """
    from kaesong_thermal.footprints import load_footprints
    from kaesong_thermal.pipeline import detect

    fp = footprints if hasattr(footprints, "to_crs") else load_footprints(footprints)
    stored, as_of = _store_state(store)
    start = _search_start(since, as_of)
    items = search_scenes(
        api_url, fp, start=start, end=end, collections=collections, max_cloud=max_cloud
    )
    stored_short = {_short_id(s) for s in stored}
    force = bool(detect_options.get("force"))
    products: list[StacProduct] = []
    already: list[str] = []
    unusable: list[tuple[str, str]] = []
    sign = signing_for(api_url)
    opts = http or HttpOptions.from_env()
    seen: set[str] = set()
    for obj in items:
        item = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
        pid = product_id(item)
        reason = skip_reason(item)
        if reason is not None:
            logger.info("%s: skipped, %s", item.get("id"), reason)
            unusable.append((str(item.get("id")), reason))
            continue
        if pid in seen:
            continue
        seen.add(pid)
        if not force and (pid in stored or _short_id(pid) in stored_short):
            already.append(pid)
            continue
        products.append(
            StacProduct(
                item=item,
                product_id=pid,
                api_url=strip_query(api_url),
                sign=sign,
                http=opts,
                max_site_cloud=max_site_cloud,
            )
        )
    logger.info(
        "%s: %d item(s), %d already stored, %d unusable, %d to read",
        redact(api_url),
        len(items),
        len(already),
        len(unusable),
        len(products),
    )
    result = detect(products, footprints=fp, store=store, allow_empty=True, **detect_options)
    return StacRun(
        result=result,
        found=len(items),
        already_stored=already,
        unusable=unusable,
        start=_iso(start, "since"),
    )


def products_of(items: Iterable[Any], api_url: str = "", **options: Any) -> list[StacProduct]:
    """:class:`StacProduct` of each usable item (e.g. of :func:`search_scenes`), for ``detect``."""
    out = []
    for obj in items:
        item = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
        if skip_reason(item) is None:
            out.append(
                StacProduct(item=item, product_id=product_id(item), api_url=api_url, **options)
            )
    return out


__all__ = [
    "DEFAULT_COLLECTIONS",
    "LOOKBACK_DAYS",
    "StacProduct",
    "StacRun",
    "detect_stac",
    "products_of",
    "search_scenes",
    "sign_item",
    "signing_for",
]
