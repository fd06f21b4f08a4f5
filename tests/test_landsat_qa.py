"""QA_PIXEL / QA_RADSAT / ST_QA decoding with hand-computed values and the real L2 fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from hypothesis import given
from hypothesis import strategies as st

from kaesong_thermal.landsat import qa


def test_documented_example_values() -> None:
    clear = qa.describe(21824)  # 0b0101_0101_0100_0000
    assert clear["clear"] and not clear["cloud"] and not clear["fill"]
    assert clear["cloud_confidence"] == 1 and clear["cirrus_confidence"] == 1
    cloud = qa.describe(22280)  # 0b0101_0111_0000_1000
    assert cloud["cloud"] and cloud["cloud_confidence"] == 3 and not cloud["clear"]
    values = np.array([21824, 22280, 1, 2, 4, 16, 32, 0b1000_0000], dtype=np.uint16)
    assert qa.fill_mask(values).tolist() == [False, False, True, False, False, False, False, False]
    assert qa.cloud_mask(values).tolist() == [False, True, False, True, True, True, False, False]
    assert qa.invalid_mask(values).tolist() == [False, True, True, True, True, True, False, False]
    assert qa.invalid_mask(values, mask_snow=True)[6]
    assert qa.snow_mask(values).tolist() == [False] * 6 + [True, False]


def test_confidence_fields() -> None:
    value = np.array([(3 << 8) | (1 << 10) | (0 << 12) | (3 << 14)], dtype=np.uint16)
    assert qa.confidence(value, "cloud")[0] == 3
    assert qa.confidence(value, "cloud_shadow")[0] == 1
    assert qa.confidence(value, "snow_ice")[0] == 0
    assert qa.confidence(value, "cirrus")[0] == 3


@given(st.integers(min_value=0, max_value=0xFFFF))
def test_invalid_is_union_of_fill_and_cloud(value: int) -> None:
    arr = np.array([value], dtype=np.uint16)
    expected = bool(value & 0b1_1111)
    assert qa.invalid_mask(arr)[0] == expected
    assert qa.invalid_mask(arr)[0] == (qa.fill_mask(arr) | qa.cloud_mask(arr))[0]


def test_radsat_bits_per_sensor() -> None:
    radsat = np.array([1 << 5, 1 << 8, 1 << 9, 1 << 11, 0], dtype=np.uint16)
    # Landsat 8/9 TIRS has no saturation bit: nothing flagged, whatever bits are set
    assert not qa.saturated_mask(radsat, "LC08", "B10").any()
    assert not qa.saturated_mask(radsat, "LC09", "ST_B10").any()
    # TM band 6 = bit 5; dropped pixel = bit 9
    assert qa.saturated_mask(radsat, "LT05", "B6").tolist() == [True, False, True, False, False]
    # ETM+ band 6 high gain (VCID_2) = bit 8
    assert qa.saturated_mask(radsat, "LE07", "B6_VCID_2").tolist() == [
        False,
        True,
        True,
        False,
        False,
    ]
    assert qa.radsat_bit("LE07", "B6_VCID_1") == 5


def test_sigma_k_scaling_and_fill() -> None:
    sigma = qa.sigma_k(np.array([[250, -9999, 0, 437]], dtype=np.int16))
    assert sigma.dtype == np.float32
    assert np.isclose(sigma[0, 0], 2.5) and np.isnan(sigma[0, 1])
    assert sigma[0, 2] == 0 and np.isclose(sigma[0, 3], 4.37)


def test_real_level2_qa_pixel_is_mostly_cloud(fixtures_dir: Path) -> None:
    path = next((fixtures_dir / "stactools-landsat").glob("LC08_L2SP_*/*_QA_PIXEL.TIF"))
    with rasterio.open(path) as ds:
        values = ds.read(1)
    image = ~qa.fill_mask(values)
    cloud_bit = qa.bit(values, qa.CLOUD)[image].mean()
    assert 0.80 < cloud_bit < 0.82  # MTL CLOUD_COVER = 81.02
    # most frequent values are the documented examples
    uniq, counts = np.unique(values[image], return_counts=True)
    top = set(uniq[np.argsort(-counts)[:2]].tolist())
    assert top == {22280, 21824}
