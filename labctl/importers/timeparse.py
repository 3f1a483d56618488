"""Dates found in vendor files, as unix seconds (UTC; files without a zone are taken as UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_FORMATS = (
    "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S",
    "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S.%f", "%m/%d/%Y %H:%M",
    "%d.%m.%Y %H:%M:%S", "%d %B %Y, %I:%M:%S %p", "%d %B %Y %H:%M:%S", "%Y/%m/%d %H:%M:%S",
    "%m/%d/%Y",
)

OLE_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)


def first_datetime_unix(text: str) -> float | None:
    """Unix seconds of a date/time text in one of the vendors' formats, else None."""
    text = " ".join(str(text).split())
    if not text:
        return None
    for fmt in _FORMATS:
        try:
            dt = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def ole_date_unix(days: float) -> float:
    """An OLE automation date (days since 1899-12-30, Arbin's DateTime) as unix seconds."""
    return (OLE_EPOCH + timedelta(days=float(days))).timestamp()
