"""Names that are either a local folder or a Hugging Face Hub id."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from maskpt.core.errors import InputNotFound

# a Hub repo id: a name, or owner/name; letters, digits, "-", "_", "."
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")


def is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name)) and ".." not in name and "--" not in name


def check_local_or_hub(name: str, what: str) -> None:
    """Refuse at once a `name` that can only be a local folder and is not one
    (a path like ./tok, /data/model or runs/x/hf), instead of asking the Hub."""
    if Path(name).expanduser().exists():
        return
    local = name.startswith(("/", "./", "../", "~")) or name.endswith("/") or not is_hub_id(name)
    if local:
        raise InputNotFound(f"{what} {name!r}: no such folder")


def offline() -> bool:
    """True when the Hub is not to be asked: HF_HUB_OFFLINE is set, or its host
    does not answer within a few seconds (instead of retrying for a minute)."""

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host or "huggingface.co", 443), timeout=3).close()
    except OSError:
        return True
    return False


def from_local_or_hub(load, name: str, what: str, **kwargs):
    """`load(name, **kwargs)` offline first: a local folder, else the Hugging
    Face cache, else the Hub when it is reachable. A name that is neither
    local nor cached while offline raises `InputNotFound` at once."""
    if Path(name).expanduser().exists():
        return load(name, **kwargs)
    try:
        return load(name, local_files_only=True, **kwargs)
    except OSError:
        if offline():
            raise InputNotFound(
                f"{what} {name!r} is not a local folder, not in the Hugging Face cache, and the "
                "Hub is unreachable (or HF_HUB_OFFLINE is set)"
            ) from None
    return load(name, **kwargs)
