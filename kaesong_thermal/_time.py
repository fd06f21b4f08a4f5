"""Timestamps: every date-like input normalised to a tz-aware UTC ``pandas.Timestamp``."""

from __future__ import annotations

from typing import Any

import pandas as pd


def utc_timestamp(value: Any) -> pd.Timestamp | None:
    """A tz-aware UTC timestamp (naive values are taken as UTC), or None when unknown.

    None, NaN and NaT give None; a string or object pandas cannot read raises ``ValueError`` or
    ``TypeError`` (callers turn that into their own error).
    """
    if value is None:
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
