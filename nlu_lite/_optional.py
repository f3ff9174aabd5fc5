"""Import optional dependencies where they are used, with the pip extra in the error."""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError


def require(module: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise an error naming ``pip install nlu-lite[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module.split(".")[0]
        raise MissingDependencyError(
            f"{name} is needed for this feature but is not installed. Install it with: pip install {name} "
            f"(or the whole extra: pip install 'nlu-lite[{extra}]', or from a clone of nlu-lite: "
            f"pip install -e '.[{extra}]')"
        ) from exc
