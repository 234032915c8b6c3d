"""Names that are either a local folder or a Hugging Face Hub id."""

from __future__ import annotations

import re
from pathlib import Path

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
