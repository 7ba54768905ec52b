"""Credentials never reach output: a Redis URL as it may be printed or logged. No I/O."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact"]


def redact(url: str) -> str:
    """``url`` with its password (and a username given alone, which Redis takes as a password)
    replaced by ``***``: ``redis://:s3cret@host:6379/0`` -> ``redis://:***@host:6379/0``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:***" if colon else "***"
    return urlunsplit(parts._replace(netloc=f"{masked}@{host}"))
