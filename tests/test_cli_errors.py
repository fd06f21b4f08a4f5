"""Bad input from the outside: one clear line, the right exit code, and nothing damaged.

Every case runs the command line (or the public API) on a realistic mistake and checks that the
user gets exactly one error line naming the file or value at fault, no traceback, exit code 2 for
usage errors and 1 for data errors, and that nothing that existed before (store, outputs) changed
by a single byte, while nothing new (an empty store, a half-written file, a stray directory) was
left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

import kaesong_thermal as kt
from kaesong_thermal.cli import main
from kaesong_thermal.errors import ConfigError, FootprintError, ProductError

# ------------------------------------------------------------------------------------ helpers


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, list[str], str]:
    """Run the CLI in this process: exit code, non-empty stderr lines, stdout."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.strip()], captured.out


def assert_data_error(code: int, err: list[str], *names: str) -> str:
    """Exit 1, exactly one stderr line, naming every one of ``names``, no traceback."""
    assert code == 1, err
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith("kaesong-thermal: error: "), line
    assert "internal error" not in line and "Traceback" not in line
    for name in names:
        assert name in line, (name, line)
    return line


def assert_usage_error(code: int, err: list[str], *names: str) -> str:
    """Exit 2; argparse's usage lines then exactly one error line naming ``names``."""
    assert code == 2, err
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1 and errors[0] == err[-1], err
    assert all(line.startswith(("usage:", " ")) for line in err[:-1]), err
    assert not any("Traceback" in line for line in err)
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]


def snapshot(*roots: Path) -> dict[str, tuple[bytes, int, int]]:
    """Bytes, mtime and mode of every file under ``roots`` (and the set of paths)."""
    state: dict[str, tuple[bytes, int, int]] = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            st = path.stat()
            state[str(path)] = (path.read_bytes(), st.st_mtime_ns, st.st_mode)
    return state


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated record (Nov 2022 - Jan 2023) ingested into ``site/kt.db``."""
    root = tmp_path_factory.mktemp("site")
    sim = kt.simulate(root / "sim", start="2022-11-01", end="2023-01-31", seed=3)
    kt.detect(
        [root / "sim" / "products"],
        footprints=sim.footprints_path,
        store=root / "kt.db",
        workers=1,
        baseline="auto",
    )
    return root


@pytest.fixture()
def work(site: Path, tmp_path: Path) -> Path:
    """A private copy of the store (``kt.db``) and a scratch directory for outputs."""
    shutil.copy2(site / "kt.db", tmp_path / "kt.db")
    return tmp_path


def first_product(site: Path) -> Path:
    """The first simulated product directory of the site."""
    return sorted((site / "sim" / "products").iterdir())[0]


def empty_store(path: Path) -> Path:
    from kaesong_thermal.store import Store

    Store(path).close()
    return path


# ----------------------------------------------------------------------------------------- info


def test_info_rejects_a_non_positive_sigma_ceiling(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product = first_product(site)
    for value in ("-1", "0", "nan"):
        code, err, out = run(capsys, "info", product, "--max-sigma-k", value)
        assert_usage_error(code, err, "--max-sigma-k", repr(value))
        assert out == ""


def test_info_on_a_truncated_band_names_the_band(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product = tmp_path / first_product(site).name
    shutil.copytree(first_product(site), product)
    band = product / f"{product.name}_ST_B10.TIF"
    band.write_bytes(band.read_bytes()[:5000])
    code, err, _ = run(capsys, "info", product)
    line = assert_data_error(code, err, band.name, "truncated or corrupt")
    assert "See previous exception" not in line


# ------------------------------------------------------------------------------------- simulate


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--start", "2025-13-45"], ["--start", "2025-13-45"]),
        (["--workers", "-1"], ["--workers", "'-1'"]),
    ],
)
def test_simulate_usage_errors_create_nothing(
    args: list[str], names: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err, _ = run(capsys, "simulate", tmp_path / "out", *args)
    assert_usage_error(code, err, *names)
    assert not (tmp_path / "out").exists()


def test_simulate_end_before_start_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err, _ = run(
        capsys, "simulate", tmp_path / "out", "--start", "2023-03-01", "--end", "2023-01-01"
    )
    assert_data_error(code, err, "start 2023-03-01 is after end 2023-01-01")
    assert not (tmp_path / "out").exists()


def test_simulate_period_without_acquisitions_is_an_error_not_an_empty_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err, _ = run(
        capsys,
        "simulate",
        tmp_path / "out",
        "--sensors",
        "landsat-5",
        "--start",
        "2023-01-01",
        "--end",
        "2023-02-01",
    )
    assert_data_error(code, err, "no acquisition of landsat-5", "2023-01-01", "2011-11-18")
    assert not (tmp_path / "out").exists()


def test_simulate_with_bad_footprints_creates_no_output_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "buildings.csv"
    csv.write_text("id,name\n1,a\n")
    code, err, _ = run(
        capsys, "simulate", tmp_path / "out", "--footprints", csv, "--end", "2014-01-01"
    )
    assert_data_error(code, err, str(csv))
    assert not (tmp_path / "out").exists()


def test_simulate_onto_a_file_or_an_unwritable_place(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(work / "kt.db")
    code, err, _ = run(
        capsys, "simulate", work / "kt.db", "--start", "2023-01-01", "--end", "2023-02-01"
    )
    assert_data_error(code, err, str(work / "kt.db"), "not a directory")
    assert snapshot(work / "kt.db") == before
    code, err, _ = run(
        capsys, "simulate", "/proc/kt-sim", "--start", "2023-01-01", "--end", "2023-02-01"
    )
    assert_data_error(code, err, "/proc/kt-sim", "cannot be created")


def test_simulate_api_checks_workers_and_names_the_bad_date(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^start '2023-02-30': not an ISO date"):
        kt.simulate(tmp_path / "a", start="2023-02-30")
    with pytest.raises(ConfigError, match="workers -2"):
        kt.simulate(tmp_path / "b", start="2023-01-01", end="2023-02-01", workers=-2)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------- demo


def test_demo_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workdir = tmp_path / "demo"
    code, err, _ = run(capsys, "demo", "--workdir", workdir, "--workers", "0")
    assert_usage_error(code, err, "--workers", "'0'")
    code, err, _ = run(capsys, "demo", "--workdir", workdir, "--start", "2023-02-30")
    assert_usage_error(code, err, "--start", "2023-02-30")
    assert not workdir.exists()
    code, err, _ = run(
        capsys, "demo", "--workdir", workdir, "--start", "2023-03-01", "--end", "2023-01-01"
    )
    assert_data_error(code, err, "start 2023-03-01 is after end 2023-01-01")
    assert not workdir.exists()


def test_demo_workdir_that_is_a_file_is_left_alone(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(work / "kt.db")
    code, err, _ = run(capsys, "demo", "--workdir", work / "kt.db", "--end", "2014-03-01")
    assert_data_error(code, err, str(work / "kt.db"), "not a directory")
    assert snapshot(work / "kt.db") == before


def test_demo_without_acquisitions_leaves_no_workdir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "demo"
    code, err, _ = run(
        capsys, "-q", "demo", "--workdir", workdir, "--start", "2023-01-01", "--end", "2023-01-02"
    )
    assert_data_error(code, err, "no acquisition", "2023-01-02")
    assert not workdir.exists()


# --------------------------------------------------------------------------------------- detect


def test_detect_failed_product_is_named_once(
    work: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    missing = work / "nowhere"
    footprints = site / "sim" / "footprints.geojson"
    code, _, out = run(
        capsys, "detect", missing, "--store", work / "kt.db", "--footprints", footprints, "--json"
    )
    assert code == 1
    failed = json.loads(out)["failed"]
    assert failed == [{"path": str(missing), "message": "no such file or directory"}]


def test_detect_skips_an_unreadable_subdirectory(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "downloads" / "locked").mkdir(parents=True)
    real_is_dir = Path.is_dir

    def is_dir(self: Path) -> bool:  # root ignores chmod: a permission error made by hand
        if self.name == "locked":
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_dir(self)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    before = snapshot(work / "kt.db")
    code, err, _ = run(capsys, "detect", work / "downloads", "--store", work / "kt.db")
    assert_data_error(code, err, str(work / "downloads"), "no Landsat product found")
    assert snapshot(work / "kt.db") == before


def test_detect_api_refuses_no_products_and_bad_workers(tmp_path: Path, site: Path) -> None:
    store = tmp_path / "new.db"
    with pytest.raises(ProductError, match="none given"):
        kt.detect([], store=store)
    for workers in (0, -1):
        with pytest.raises(ConfigError, match=f"workers {workers}"):
            kt.detect([site / "sim" / "products"], store=store, workers=workers)
    assert not store.exists()


# ------------------------------------------------------------------------------- status / dates


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["status", "--as-of", "2300-01-01"], ["--as-of", "2300-01-01", "out of range"]),
        (["status", "--as-of", "2025-13-45"], ["--as-of", "2025-13-45"]),
        (["export", "x.csv", "--what", "status", "--as-of", "1800-01-01"], ["1800-01-01"]),
        (["report", "--since", "yesterday"], ["--since", "yesterday"]),
        (["report", "--since", "2300-01-01"], ["--since", "2300-01-01"]),
    ],
)
def test_bad_dates_are_usage_errors(
    argv: list[str], names: list[str], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(work)
    code, err, out = run(capsys, *argv, "--store", work / "kt.db")
    line = assert_usage_error(code, err, *names)
    assert line.count("--since") <= 1
    assert out == "" and snapshot(work) == before


# --------------------------------------------------------------------------------------- export


def test_export_onto_a_directory_or_unwritable_place(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "out").mkdir()
    before = snapshot(work)
    code, err, _ = run(capsys, "export", work / "out", "--format", "csv", "--store", work / "kt.db")
    assert_data_error(code, err, str(work / "out"), "is a directory")
    code, err, _ = run(capsys, "export", "/proc/kt.csv", "--store", work / "kt.db")
    assert_data_error(code, err, "/proc/kt.csv", "cannot be written")
    assert snapshot(work) == before


def test_export_replacing_a_file_keeps_its_permissions(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = work / "obs.csv"
    out.write_text("old\n")
    out.chmod(0o640)
    code, err, _ = run(capsys, "export", out, "--store", work / "kt.db")
    assert code == 0, err
    assert out.stat().st_mode & 0o777 == 0o640
    assert len(pd.read_csv(out)) > 0
    fresh = work / "fresh.csv"
    code, err, _ = run(capsys, "export", fresh, "--store", work / "kt.db")
    umask = os.umask(0)
    os.umask(umask)
    assert code == 0 and fresh.stat().st_mode & 0o777 == 0o666 & ~umask


def test_export_of_an_empty_store_leaves_the_old_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = empty_store(tmp_path / "empty.db")
    out = tmp_path / "obs.csv"
    out.write_text("yesterday's export\n")
    before = snapshot(tmp_path)
    code, err, _ = run(capsys, "export", out, "--store", store)
    assert_data_error(code, err, str(store), "no observations")
    assert snapshot(tmp_path) == before


def test_export_interrupted_keeps_the_previous_file(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kaesong_thermal._commands import export

    out = work / "obs.csv"
    out.write_text("previous export\n")
    before = snapshot(work)

    def interrupted(frame: pd.DataFrame, path: Path, *args: object) -> None:
        path.write_text("half a fi")
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_write", interrupted)
    code, err, _ = run(capsys, "export", out, "--store", work / "kt.db")
    assert code == 130 and err == ["kaesong-thermal: interrupted"]
    assert snapshot(work) == before


@pytest.mark.parametrize("command", ["status", "export", "report", "plot"])
def test_missing_store_is_an_error_and_is_not_created(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "nowhere.db"
    argv = {
        "status": ["status"],
        "export": ["export", tmp_path / "x.csv"],
        "report": ["report", "--out", tmp_path / "rep"],
        "plot": ["plot", "heatmap", "--out", tmp_path / "x.png"],
    }[command]
    code, err, _ = run(capsys, *argv, "--store", store)
    assert_data_error(code, err, str(store))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------- report


def test_report_store_that_is_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err, _ = run(capsys, "report", "--store", tmp_path, "--out", tmp_path / "rep")
    assert_data_error(code, err, str(tmp_path), "is a directory")
    assert not (tmp_path / "rep").exists()


def test_report_onto_a_file_or_unwritable_place(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = work / "report.txt"
    target.write_text("not a directory\n")
    before = snapshot(work)
    code, err, _ = run(capsys, "report", "--store", work / "kt.db", "--out", target)
    assert_data_error(code, err, str(target), "is a file")
    code, err, _ = run(capsys, "report", "--store", work / "kt.db", "--out", target / "sub")
    assert_data_error(code, err, str(target), "is a file")
    code, err, _ = run(capsys, "report", "--store", work / "kt.db", "--out", "/proc/kt-report")
    assert_data_error(code, err, "/proc/kt-report", "cannot write the report")
    assert snapshot(work) == before  # the store records no report that was not written


def test_report_interrupted_keeps_the_previous_report(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kaesong_thermal import report

    out = work / "rep"
    code, err, _ = run(capsys, "report", "--store", work / "kt.db", "--out", out)
    assert code == 0, err
    before = snapshot(work)

    def interrupted(facts: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "render_markdown", interrupted)
    code, err, _ = run(capsys, "report", "--store", work / "kt.db", "--out", out)
    assert code == 130 and err == ["kaesong-thermal: interrupted"]
    assert snapshot(work) == before


# ----------------------------------------------------------------------------------------- plot


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["heatmap", "--out", "{w}/h.png", "--dpi", "0"], ["--dpi", "'0'"]),
        (["heatmap", "amos", "--out", "{w}/h.png"], ["plot heatmap", "amos"]),
        (["status", "--out", "{w}/s.pdf"], ["--out", "s.pdf", "PNG"]),
        (["status", "--out", "{w}"], ["--out", "is a directory"]),
    ],
)
def test_plot_usage_errors(
    argv: list[str], names: list[str], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(work)
    filled = [a.format(w=work) for a in argv]
    code, err, _ = run(capsys, "plot", *filled, "--store", work / "kt.db")
    assert_usage_error(code, err, *names)
    assert snapshot(work) == before


def test_plot_output_below_a_file_and_map_with_a_missing_store(
    work: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = work / "figures"
    blocker.write_text("a file, not a directory\n")
    before = snapshot(work)
    code, err, _ = run(
        capsys, "plot", "heatmap", "--out", blocker / "h.png", "--store", work / "kt.db"
    )
    assert_data_error(code, err, str(blocker), "not a directory")
    product = first_product(site)
    missing = work / "nowhere.db"
    code, err, _ = run(capsys, "plot", "map", product, "--out", work / "m.png", "--store", missing)
    assert_data_error(code, err, str(missing), "no such file")
    assert snapshot(work) == before


# --------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("content", "names"),
    [
        (b"\xff\xfe store = 1", ["not a UTF-8 text file"]),
        (b'[thresholds]\nz_active = "high"\n', ["[thresholds] z_active", "expected a number"]),
        (b"[thresholds]\nwindow = 2.5\n", ["[thresholds] window", "expected an integer"]),
        (b"[thresholds]\nz_activ = 3\n", ["unknown [thresholds] key 'z_activ'"]),
        (b'[extract]\nring_outer_m = "far"\n', ["[extract] ring_outer_m", "expected a number"]),
    ],
)
def test_corrupt_or_mistyped_config_is_named(
    content: bytes, names: list[str], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = work / "kaesong-thermal.toml"
    config.write_bytes(content)
    before = snapshot(work)
    code, err, out = run(capsys, "status", "--config", config, "--store", work / "kt.db")
    assert_data_error(code, err, str(config), *names)
    assert out == "" and snapshot(work) == before


def test_config_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = run(capsys, "status", "--config", tmp_path)
    assert_data_error(code, err, str(tmp_path), "is a directory")


# ----------------------------------------------------------------------------------- python API


def test_load_footprints_refuses_what_is_not_a_footprint_source() -> None:
    with pytest.raises(FootprintError, match=r"^footprints: expected .* not DataFrame$"):
        kt.load_footprints(pd.DataFrame({"building_id": ["a"]}))
    with pytest.raises(FootprintError, match="no active geometry column"):
        kt.load_footprints(gpd.GeoDataFrame({"building_id": ["a"]}))


# --------------------------------------------------------------------------- as a user runs it


def test_console_run_prints_one_line_and_no_traceback(work: Path) -> None:
    """The installed entry point, in a fresh process, on a formerly crashing input."""
    before = snapshot(work / "kt.db")
    proc = subprocess.run(
        [sys.executable, "-m", "kaesong_thermal", "-q", "simulate", work / "kt.db"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"kaesong-thermal: error: outdir {work / 'kt.db'}: exists and is not a directory"
    ]
    assert snapshot(work / "kt.db") == before
