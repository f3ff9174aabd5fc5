"""Environment switches shared by every step (progress bars, offline mode)."""
from __future__ import annotations

import os

ENV_PROGRESS = "NLU_LITE_PROGRESS"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def env_flag(name: str) -> bool | None:
    """``True``/``False`` for the usual spellings of an environment switch, ``None`` when unset."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def progress_enabled(option: bool | None, default: bool = True) -> bool:
    """The argument if given; else off when ``NLU_LITE_PROGRESS`` says off; else ``default``."""
    if option is not None:
        return bool(option)
    if env_flag(ENV_PROGRESS) is False:
        return False
    return default
