"""No module reaches into another module's private (underscore) names.

A private name is an implementation detail of the module that defines it; a caller that
imports it breaks when that module is refactored. This walks every `.py` file of the
library, the pipelines and the apps with `ast` and lists, as `file:line`:

* `from x import _name` (also relative: `from . import _name`);
* `import a._b` and `from a._b import name` (a private module, ours or a third party's);
* `mod._name` (or `mod.sub._name`) where `mod` is bound by an import statement in that
  file, e.g. `from kerascv_suite.pipelines import train_classifier as _base` then
  `_base._View`.

Dunder names (`__version__`, `__init__`) are public protocol; attribute access on
anything not bound by an import (`self._x`, `obj._cache`) is the module's own business.
Not marked `backend`: it reads source, so it runs once.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("kerascv_suite", "pipelines", "apps")


def _is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _dotted(node):
    """`"a.b.c"` for a chain of attributes on a name, None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def private_uses(source, filename="<source>"):
    """`[(line, what)]`: every use of another module's private name in `source`."""
    tree = ast.parse(source, filename=filename)
    found, bound = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if any(_is_private(part) for part in alias.name.split(".")):
                    found.append((node.lineno, f"import {alias.name}"))
                bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if any(_is_private(part) for part in (node.module or "").split(".") if part):
                found.append((node.lineno, f"from {module} import ..."))
            for alias in node.names:
                if _is_private(alias.name):
                    found.append((node.lineno, f"from {module} import {alias.name}"))
                bound.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = _dotted(node.value)
            if owner is not None and owner.split(".")[0] in bound:
                found.append((node.lineno, f"{owner}.{node.attr}"))
    return sorted(set(found))


def _python_files():
    for root in ROOTS:
        yield from sorted((REPO / root).rglob("*.py"))


@pytest.mark.parametrize("source, expected", [
    ("from kerascv_suite.models.classification.vgg import _parse_conv\n",
     [(1, "from kerascv_suite.models.classification.vgg import _parse_conv")]),
    ("from . import _helpers as helpers\n", [(1, "from . import _helpers")]),
    ("from kerascv_suite.data.formats._common import probe\n",
     [(1, "from kerascv_suite.data.formats._common import ...")]),
    ("import mlflow.tracking._tracking_service.utils as u\n",
     [(1, "import mlflow.tracking._tracking_service.utils")]),
    ("from kerascv_suite.pipelines import train_classifier as _base\n\n"
     "class View(_base._View):\n    pass\n", [(3, "_base._View")]),
    ("import keras\n\n\ndef f():\n    return keras.src._private.thing\n",
     [(5, "keras.src._private")]),
    # Public, dunder, or not reached through an import: allowed.
    ("from __future__ import annotations\nimport os\n\n\nclass A:\n"
     "    def f(self, other):\n        return self._x, other._y, os.__name__\n", []),
])
def test_private_uses_finds_each_pattern(source, expected):
    assert private_uses(source) == expected


def test_no_private_names_imported_across_modules():
    files = list(_python_files())
    assert len(files) > 50, f"expected the library's sources under {ROOTS}; found {files}"
    offenders = [f"{path.relative_to(REPO)}:{line}: {what}" for path in files
                 for line, what in private_uses(path.read_text(encoding="utf-8"), str(path))]
    assert not offenders, ("private names of other modules used (make them public where "
                           "they are defined, or use the public API):\n" + "\n".join(offenders))
