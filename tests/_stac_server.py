"""A small STAC API and COG file server on 127.0.0.1 for the STAC tests and the benchmark.

- ``GET /`` landing page (STAC API core + item search conformance), ``/conformance``,
  ``/collections``, ``/collections/{id}``, ``/collections/{id}/items/{item}``;
- ``GET /search`` and ``POST /search`` with ``bbox``, ``datetime``, ``collections``, ``limit``,
  ``query`` (``eo:cloud_cover`` ``lt``/``lte``) and paging by ``next`` links (a ``token``);
- ``GET``/``HEAD /data/...``: files with HTTP Range support (206 Partial Content, single and
  multiple ranges);
- fault injection per data path (:meth:`StacServer.fault`): ``"404"``, ``"500"``, ``"slow"``
  (the response starts after ``slow_s``), ``"truncate"`` (half the body, then the connection is
  closed);
- counts of requests and body bytes served per path (server side).

Bound to 127.0.0.1 only; started in a daemon thread.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
_RANGE = re.compile(r"(\d*)-(\d*)")


@dataclass
class Served:
    """What the server sent for one path."""

    requests: int = 0
    bytes: int = 0
    statuses: list[int] = field(default_factory=list)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _interval(text: str | None) -> tuple[datetime | None, datetime | None]:
    if not text:
        return None, None
    if "/" not in text:
        t = _parse_time(text)
        return t, t
    a, b = text.split("/", 1)
    return (
        None if a in ("", "..") else _parse_time(a),
        None if b in ("", "..") else _parse_time(b),
    )


class StacServer:
    """The server; ``url`` is its root (``http://127.0.0.1:PORT``)."""

    def __init__(self, root: Path, *, slow_s: float = 3.0) -> None:
        self.root = Path(root)
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        self.items: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.served: dict[str, Served] = defaultdict(Served)
        self.faults: dict[str, list[str]] = {}
        self.slow_s = slow_s
        self.lock = threading.Lock()
        self.httpd = _Quiet(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    # ---------------------------------------------------------------- content
    def add_file(self, local: Path, rel: str) -> str:
        """Serve ``local`` at ``/data/rel``; return its URL."""
        dest = self.root / "data" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest != local:
            shutil.copyfile(local, dest)
        return f"{self.url}/data/{rel}"

    def add_item(self, collection: str, item: dict[str, Any]) -> None:
        """Publish ``item`` in ``collection`` (its links are set here)."""
        item = dict(item)
        item["collection"] = collection
        item["links"] = [
            {
                "rel": "self",
                "href": f"{self.url}/collections/{collection}/items/{item['id']}",
                "type": "application/geo+json",
            },
            {"rel": "collection", "href": f"{self.url}/collections/{collection}"},
        ]
        with self.lock:
            self.items[collection].append(item)

    def fault(self, path_part: str, *kinds: str) -> None:
        """The next requests of data paths containing ``path_part`` fail as ``kinds`` (in order)."""
        with self.lock:
            self.faults[path_part] = list(kinds)

    def reset_counts(self) -> None:
        with self.lock:
            self.served.clear()

    def totals(self, part: str = "/data/") -> tuple[int, int]:
        """(requests, body bytes) served for paths containing ``part``."""
        with self.lock:
            chosen = [s for p, s in self.served.items() if part in p]
        return sum(s.requests for s in chosen), sum(s.bytes for s in chosen)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---------------------------------------------------------------- search
    def search(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        collections = params.get("collections")
        if isinstance(collections, str):
            collections = collections.split(",")
        bbox = params.get("bbox")
        if isinstance(bbox, str):
            bbox = [float(v) for v in bbox.split(",")]
        start, end = _interval(params.get("datetime"))
        query = params.get("query") or {}
        if isinstance(query, str):
            query = json.loads(query)
        with self.lock:
            pool = [
                item
                for cid, items in sorted(self.items.items())
                if not collections or cid in collections
                for item in items
            ]
        wanted = params.get("ids")
        if isinstance(wanted, str):
            wanted = wanted.split(",")
        out = []
        for item in pool:
            if wanted and item["id"] not in wanted:
                continue
            if bbox is not None:
                b = item["bbox"]
                if b[0] > bbox[2] or b[2] < bbox[0] or b[1] > bbox[3] or b[3] < bbox[1]:
                    continue
            if wanted:
                out.append(item)
                continue
            t = _parse_time(item["properties"]["datetime"])
            if (start is not None and t < start) or (end is not None and t > end):
                continue
            cc = item["properties"].get("eo:cloud_cover")
            rule = query.get("eo:cloud_cover", {})
            if cc is not None and (
                ("lt" in rule and not cc < rule["lt"]) or ("lte" in rule and not cc <= rule["lte"])
            ):
                continue
            out.append(item)
        out.sort(key=lambda i: (i["properties"]["datetime"], i["id"]), reverse=True)
        return out


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client closing early (GDAL aborting a transfer) is not a server error


def _handler(server: StacServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        # ------------------------------------------------------------ helpers
        def _json(self, obj: Any, status: int = 200) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int) -> None:
            body = json.dumps({"code": str(status)}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _page(self, params: dict[str, Any], method: str) -> None:
            limit = int(params.get("limit") or 10)
            token = int(params.get("token") or 0)
            found = server.search(params)
            page = found[token : token + limit]
            links: list[dict[str, Any]] = [{"rel": "root", "href": server.url + "/"}]
            if token + limit < len(found):
                nxt = {k: v for k, v in params.items() if v is not None}
                nxt["token"] = str(token + limit)
                if method == "POST":
                    links.append(
                        {
                            "rel": "next",
                            "href": f"{server.url}/search",
                            "method": "POST",
                            "body": nxt,
                            "type": "application/geo+json",
                        }
                    )
                else:
                    flat = {
                        k: (",".join(map(str, v)) if isinstance(v, list) else v)
                        for k, v in nxt.items()
                    }
                    links.append(
                        {
                            "rel": "next",
                            "href": f"{server.url}/search?{urlencode(flat)}",
                            "method": "GET",
                            "type": "application/geo+json",
                        }
                    )
            self._json(
                {
                    "type": "FeatureCollection",
                    "features": page,
                    "links": links,
                    "numberMatched": len(found),
                    "numberReturned": len(page),
                }
            )

        def _landing(self) -> None:
            u = server.url
            self._json(
                {
                    "type": "Catalog",
                    "id": "loopback",
                    "stac_version": "1.0.0",
                    "description": "test STAC API",
                    "conformsTo": CONFORMANCE,
                    "links": [
                        {"rel": "self", "href": u + "/", "type": "application/json"},
                        {"rel": "root", "href": u + "/", "type": "application/json"},
                        {"rel": "conformance", "href": u + "/conformance"},
                        {"rel": "data", "href": u + "/collections"},
                        {
                            "rel": "search",
                            "href": u + "/search",
                            "method": "GET",
                            "type": "application/geo+json",
                        },
                        {
                            "rel": "search",
                            "href": u + "/search",
                            "method": "POST",
                            "type": "application/geo+json",
                        },
                    ],
                }
            )

        def _collection(self, cid: str) -> dict[str, Any]:
            return {
                "type": "Collection",
                "id": cid,
                "stac_version": "1.0.0",
                "description": cid,
                "license": "proprietary",
                "extent": {
                    "spatial": {"bbox": [[-180, -90, 180, 90]]},
                    "temporal": {"interval": [[None, None]]},
                },
                "links": [{"rel": "self", "href": f"{server.url}/collections/{cid}"}],
            }

        # ------------------------------------------------------------ data
        def _data(self, path: str) -> None:
            kind = None
            with server.lock:
                stats = server.served[path]
                stats.requests += 1
                for part, kinds in server.faults.items():
                    if part in path and kinds:
                        kind = kinds.pop(0)
                        break
            if kind in ("404", "500"):
                with server.lock:
                    stats.statuses.append(int(kind))
                self._error(int(kind))
                return
            if kind == "slow":
                time.sleep(server.slow_s)
            local = server.root / path.lstrip("/")
            if not local.is_file():
                with server.lock:
                    stats.statuses.append(404)
                self._error(404)
                return
            data = local.read_bytes()
            size = len(data)
            header = self.headers.get("Range")
            ranges: list[tuple[int, int]] = []
            if header and header.startswith("bytes="):
                for spec in header[len("bytes=") :].split(","):
                    m = _RANGE.fullmatch(spec.strip())
                    if not m:
                        continue
                    a, b = m.groups()
                    if a == "":
                        first, last = max(0, size - int(b)), size - 1
                    else:
                        first, last = int(a), min(int(b) if b else size - 1, size - 1)
                    if first <= last:
                        ranges.append((first, last))
                if not ranges:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            if not ranges:
                status, body, ctype = 200, data, "image/tiff"
                extra: dict[str, str] = {}
            elif len(ranges) == 1:
                first, last = ranges[0]
                status, body, ctype = 206, data[first : last + 1], "image/tiff"
                extra = {"Content-Range": f"bytes {first}-{last}/{size}"}
            else:
                boundary = "kaesongbytes"
                parts = []
                for first, last in ranges:
                    parts.append(
                        (
                            f"--{boundary}\r\nContent-Type: image/tiff\r\n"
                            f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n"
                        ).encode()
                        + data[first : last + 1]
                        + b"\r\n"
                    )
                body = b"".join(parts) + f"--{boundary}--\r\n".encode()
                status, ctype = 206, f"multipart/byteranges; boundary={boundary}"
                extra = {}
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra.items():
                self.send_header(k, v)
            if kind == "truncate":
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                with server.lock:
                    stats.statuses.append(status)
                return
            sent = body[: max(1, len(body) // 2)] if kind == "truncate" else body
            try:
                self.wfile.write(sent)
                self.wfile.flush()
            except OSError:
                pass
            with server.lock:
                stats.bytes += len(sent)
                stats.statuses.append(status)
            if kind == "truncate":
                self.close_connection = True

        # ------------------------------------------------------------ verbs
        def do_HEAD(self) -> None:
            path = urlsplit(self.path).path
            if path.startswith("/data/"):
                self._data(path)
            else:
                self._error(404)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/") or "/"
            if path.startswith("/data/"):
                self._data(parts.path)
            elif path == "/":
                self._landing()
            elif path == "/conformance":
                self._json({"conformsTo": CONFORMANCE})
            elif path == "/collections":
                with server.lock:
                    ids = sorted(server.items)
                self._json({"collections": [self._collection(c) for c in ids], "links": []})
            elif path == "/search":
                q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                self._page(q, "GET")
            elif path.startswith("/collections/"):
                bits = path.split("/")
                if len(bits) == 3:
                    self._json(self._collection(bits[2]))
                elif len(bits) == 5 and bits[3] == "items":
                    with server.lock:
                        match = [i for i in server.items.get(bits[2], []) if i["id"] == bits[4]]
                    if match:
                        self._json(match[0])
                    else:
                        self._error(404)
                else:
                    self._error(404)
            else:
                self._error(404)

        def do_POST(self) -> None:
            path = urlsplit(self.path).path.rstrip("/")
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if path == "/search":
                self._page(body, "POST")
            else:
                self._error(404)

    return Handler


# ------------------------------------------------------------------------ products as COGs
PC_KEYS = {  # simulator keys are Planetary Computer's already
    "lwir11": "lwir11",
    "qa": "qa",
    "qa_pixel": "qa_pixel",
    "qa_radsat": "qa_radsat",
    "mtl.txt": "mtl.txt",
    "mtl.json": "mtl.json",
    "mtl.xml": "mtl.xml",
}
OLD_KEYS = {
    "lwir11": "ST_B10",
    "qa": "ST_QA",
    "qa_pixel": "QA_PIXEL",
    "qa_radsat": "QA_RADSAT",
    "mtl.txt": "MTL.txt",
}


def write_cog(src: Path, dest: Path) -> None:
    """Copy a GeoTIFF as a Cloud-Optimized GeoTIFF (256 px tiles, DEFLATE)."""
    import rasterio
    from rasterio.shutil import copy as rio_copy

    dest.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.Env(GDAL_NUM_THREADS="1"):
        rio_copy(
            str(src),
            str(dest),
            driver="COG",
            COMPRESS="DEFLATE",
            PREDICTOR="2",
            BLOCKSIZE="256",
            OVERVIEWS="NONE",
        )


def publish_product(
    server: StacServer,
    product: Path,
    *,
    collection: str = "landsat-c2-l2",
    style: str = "pc",
) -> dict[str, Any]:
    """Write a simulated product's bands as COGs under the server and publish its STAC item.

    ``style="pc"``: Planetary Computer keys (``lwir11``, ``qa``, ``qa_pixel``...) and official
    file names; ``style="old"``: upper-case keys (``ST_B10``, ``ST_QA``, ``QA_PIXEL``) and generic
    file names (``st_b10.tif``) so that only the keys identify the bands.
    """
    pid = product.name
    item = json.loads((product / f"{pid}_stac.json").read_text())
    keys = PC_KEYS if style == "pc" else OLD_KEYS
    short = "_".join(pid.split("_")[:4] + pid.split("_")[5:])  # no processing date
    folder = pid if style == "pc" else short
    assets: dict[str, Any] = {}
    for key, asset in item["assets"].items():
        if key not in keys:
            continue
        local = product / asset["href"].removeprefix("./")
        new_key = keys[key]
        name = local.name
        if style != "pc":
            name = f"{new_key.lower()}.tif" if local.suffix.upper() == ".TIF" else new_key.lower()
        rel = f"{collection}/{folder}/{name}"
        if local.suffix.upper() == ".TIF":
            dest = server.root / "data" / rel
            write_cog(local, dest)
            href = f"{server.url}/data/{rel}"
        else:
            href = server.add_file(local, rel)
        assets[new_key] = {**asset, "href": href}
    item["assets"] = assets
    if style != "pc":
        item["properties"].pop("landsat:product_id", None)
        item["id"] = short
    server.add_item(collection, item)
    return item
