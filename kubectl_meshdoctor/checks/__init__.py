"""The checks: one module per check, each defining ``CHECK``; found here without import side effects.

Adding a check = one module in this package, its catalogue entry, and its test cases.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from kubectl_meshdoctor.checks.base import Check

_NOT_CHECKS = {"base", "context"}


@cache
def all_checks() -> tuple[Check, ...]:
    checks = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_") or module_info.name in _NOT_CHECKS:
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        checks.append(module.CHECK)
    return tuple(sorted(checks, key=lambda c: (c.codes, c.name)))
