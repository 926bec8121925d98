"""What the app imports is what pyproject.toml installs: `./scripts/run` installs the app without the test tools."""
from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = {"fpdf"}  # the handbook's PDF builder, an extra: `pip install .[handbook]`


def imported_modules() -> set[str]:
    found = set()
    for path in [*ROOT.joinpath("mailer").rglob("*.py"), *ROOT.joinpath("worker").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"mailer", "worker", "__future__"} - OPTIONAL


def installed_without_extras(distribution: str, seen: set[str] | None = None) -> set[str]:
    """`distribution` and everything its requirements bring, extras left out (as a plain `pip install .` does)."""
    seen = set() if seen is None else seen
    name = re.sub(r"[-_.]+", "-", distribution).lower()
    if name in seen:
        return seen
    seen.add(name)
    for line in metadata.requires(distribution) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):  # no extras, this Python
            installed_without_extras(requirement.name, seen)
    return seen


def test_every_module_the_app_imports_comes_with_its_own_dependencies():
    app_only = installed_without_extras("mailer")
    providers = metadata.packages_distributions()
    missing = {module: providers.get(module) for module in imported_modules()
               if not {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(module, [])} & app_only}
    assert not missing, f"imported by the app but not installed by `pip install .`: {missing}; add them to pyproject.toml"
