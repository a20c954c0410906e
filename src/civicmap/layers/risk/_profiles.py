"""Loading the risk layer's data profiles (needs, vulnerability): shipped by name, or a JSON file by path."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from civicmap.errors import InputError, NotFoundError

__all__ = ["read_profile_json"]


def read_profile_json(name_or_path: str | Path, shipped: Mapping[str, str], what: str) -> tuple[Any, str]:
    """The parsed JSON of a shipped profile (``shipped`` maps upper-case names to files) or of a file.

    Returns ``(data, where)``; ``where`` names the source for error messages.
    """
    file = shipped.get(str(name_or_path).upper())
    if file is not None:
        text = resources.files("civicmap.layers.risk").joinpath("profiles", file).read_text(encoding="utf-8")
        where = f"{what} {str(name_or_path).upper()}"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise NotFoundError(f"{what} {str(name_or_path)!r} is neither {sorted(shipped)} nor a file")
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        return json.loads(text), where
    except json.JSONDecodeError as exc:
        raise InputError(f"{where} is not valid JSON: {exc}") from exc
