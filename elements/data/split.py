"""The held-out evaluation split, defined here and nowhere else.

Rule: a sample is **held out** iff ``int.from_bytes(sha256(key.encode("utf-8")).digest()[:8], "big")
< HOLDOUT_FRACTION · 2**64``, where ``key`` is the sample's URL when it has one (LAION's ``url``
column) and otherwise its webdataset ``__key__`` or, for an image folder, its path relative
to the folder root with forward slashes. The paper holds out 100k of 3M LAION images
(Sec. 4.1, App. C.2), so the fraction is 1/30.

The rule depends on the key alone, so the same sample lands on the same side on every
machine, every run and every shard layout; training readers drop held-out samples before
decoding them, and the eval harness reads only held-out samples.
"""

from __future__ import annotations

import hashlib

HOLDOUT_FRACTION = 1.0 / 30.0  # 100k held out of 3M, Sec. 4.1
_SCALE = 2**64


def split_key(url: str | None = None, key: str | None = None) -> str:
    """The string the split hashes: the URL when present, else the key."""
    if url:
        return str(url)
    if key is None or key == "":
        raise ValueError("a sample needs a url or a key to be assigned to a split")
    return str(key)


def holdout_score(key: str) -> float:
    """sha256 of the key mapped to [0, 1)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def is_heldout(key: str, fraction: float = HOLDOUT_FRACTION) -> bool:
    """True iff the sample with this split key belongs to the held-out evaluation split."""
    return holdout_score(key) < fraction


def rule_text(fraction: float = HOLDOUT_FRACTION) -> str:
    return (
        f"held out iff int(sha256(utf8(url or key))[:8 bytes], big-endian) < {fraction!r} * 2**64 "
        f"(url when present, else the webdataset __key__ or the folder-relative path)"
    )
