"""Resolving a local path or a Hugging Face Hub reference, with a clear offline error.

Nothing here downloads unless asked to; with ``HF_HUB_OFFLINE=1`` (or no network) a missing
file raises :class:`~elements.errors.UserError` naming exactly what is needed and where to put it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from elements.errors import UserError


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"org/repo:sub/path"`` -> ``("org/repo", "sub/path")``; ``"org/repo"`` -> ``("org/repo", None)``."""
    if ":" in ref and not Path(ref).exists():
        repo, _, sub = ref.partition(":")
        return repo, (sub or None)
    return ref, None


# huggingface_hub's repo id form: "name" or "org/name"; "/data/sd15" is a path, never a repo.
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when offline mode is set or the Hub's host does not resolve/connect (checked once per process).

    huggingface_hub retries failed requests with back-off for ~25 s; a quick probe lets an
    offline machine fail (or fall back) at once with a clear message instead.
    """
    global _REACHABLE
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return False
    if _REACHABLE is None:
        import socket
        from urllib.parse import urlparse

        host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _REACHABLE = True
        except OSError:
            _REACHABLE = False
    return _REACHABLE


_REACHABLE: bool | None = None


def resolve_file(ref: str, *, what: str, env: str | None = None) -> Path:
    """Return a local path for a single file given as a path or ``repo_id:path/in/repo``.

    Raises UserError when the file is neither on disk nor obtainable from the Hub.
    """
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    repo, filename = split_ref(ref)
    if filename is None or not _REPO_ID.match(repo):
        raise UserError(
            f"{what}: '{ref}' is not a file on disk and not a Hub reference of the form repo_id:path/in/repo."
        )
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id=repo, filename=filename, local_files_only=not hub_reachable()))
    except Exception as err:  # offline, missing repo, missing file, auth: all mean "not obtainable"
        raise UserError(_offline_message(what, f"file '{filename}' from Hub repo '{repo}'", env, err)) from err


def local_file(ref: str) -> Path | None:
    """The local path of a single file given as a path or ``repo_id:path``, if it is on disk or in the Hub cache; never downloads."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    repo, filename = split_ref(ref)
    if filename is None or not _REPO_ID.match(repo):
        return None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id=repo, filename=filename, local_files_only=True))
    except Exception:  # not in the cache (or a malformed id): "not local"
        return None


def resolve_folder(ref: str, *, what: str, env: str | None = None) -> tuple[str, str | None]:
    """Return ``(path_or_repo, subfolder)`` for a ``save_pretrained`` folder, checking it can be had.

    A local folder is returned as is. A Hub id is looked up in the local cache (and downloaded
    unless offline) with ``snapshot_download``; failure raises UserError.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        return str(path), None
    repo, sub = split_ref(ref)
    if not _REPO_ID.match(repo):
        raise UserError(f"{what}: '{ref}' is not a local folder and not a Hub repo id like org/name.")
    try:
        from huggingface_hub import snapshot_download

        allow = [f"{sub}/*", f"{sub}/**/*"] if sub else None
        local = snapshot_download(repo_id=repo, allow_patterns=allow, local_files_only=not hub_reachable())
    except Exception as err:
        raise UserError(_offline_message(what, f"Hub repo '{repo}'", env, err)) from err
    return local, sub


def _offline_message(what: str, thing: str, env: str | None, err: Exception) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    why = (
        "HF_HUB_OFFLINE is set"
        if offline
        else "the Hub cannot be reached"
        if _REACHABLE is False
        else type(err).__name__
    )
    hint = f" or set {env} to a local copy" if env else ""
    return f"{what} is not available: could not get the {thing} ({why}); download it on a connected machine{hint}."
