"""The one rule for names that become folder or file names (runs, methods, sweeps, submissions):
letters and digits first, then letters, digits, '.', '_' or '-', so a name can never climb out
of its folder, hide as a dotfile or carry a path separator. Only the length differs by use."""

from __future__ import annotations

import re

SAFE_NAME_CHARS = r"[A-Za-z0-9][A-Za-z0-9._-]"


def safe_name(max_length: int) -> re.Pattern[str]:
    """The rule for names of at most ``max_length`` characters (use ``fullmatch``)."""
    return re.compile(f"{SAFE_NAME_CHARS}{{0,{max_length - 1}}}")
