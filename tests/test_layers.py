"""The package's shape: layers import only downwards, every third-party import is declared (the core
layers need only the core dependencies to load), and the losses stay light to import.

Layers, lowest first: ``gcalib.validation`` < ``gcalib.ot`` < ``gcalib.losses`` < ``gcalib.training`` <
``gcalib.cli`` < ``gcalib.notebook``. A module may import its own layer and the layers below it; nothing
outside ``gcalib.notebook`` imports it. Imports inside functions count as much as those at the top.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gcalib"
RANK = {"validation": 0, "ot": 1, "losses": 2, "training": 3, "cli": 4, "__main__": 4, "notebook": 5}
# Import names whose distribution is spelled differently on PyPI.
DISTRIBUTION = {"sklearn": "scikit-learn", "PIL": "pillow", "IPython": "ipython", "ot": "pot"}
HEAVY = ("matplotlib", "ipywidgets", "IPython", "sklearn", "pandas", "seaborn", "scipy")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``; ``from P import n`` yields ``P.n`` when ``n``
    is a module of gcalib, else ``P``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = (ROOT / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                    ROOT / Path(*candidate.split("."))).is_dir()
                found.append((node.lineno, candidate if base.startswith("gcalib") and is_module else base))
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    for path in _sources():
        layer = _layer(_module_name(path))
        assert layer in RANK or layer == "__init__", f"{path.relative_to(ROOT)} is in no layer of {sorted(RANK)}"


def test_layers_import_only_downwards_and_nobody_imports_the_notebook_layer():
    violations = []
    for path in _sources():
        source = _layer(_module_name(path))
        for line, target in _imports(path):
            if not target.startswith("gcalib."):
                continue
            destination = _layer(target)
            if source == "__init__":
                allowed = destination in {"ot", "losses", "training"}
            else:
                allowed = RANK[destination] <= RANK[source]
            if not allowed:
                violations.append(f"{path.relative_to(ROOT)}:{line} ({source}) imports {target} ({destination})")
    assert not violations, "imports against the layering:\n" + "\n".join(violations)


def _declared() -> dict[str, set[str]]:
    """Distribution names by group: ``core`` (dependencies) and each optional extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements):
        return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}

    groups = {"core": names(project["dependencies"])}
    groups.update({extra: names(reqs) for extra, reqs in project["optional-dependencies"].items()})
    return groups


def _third_party(path: Path, module_level_only: bool) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    top_lines = {node.lineno for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))}
    found = []
    for line, target in _imports(path):
        top = target.split(".")[0]
        if top in ("gcalib", "") or top in sys.stdlib_module_names:
            continue
        if module_level_only and line not in top_lines:
            continue
        found.append((line, DISTRIBUTION.get(top, top).lower()))
    return found


def test_every_third_party_import_is_declared():
    groups = _declared()
    everything = set().union(*groups.values())
    missing = [f"{path.relative_to(ROOT)}:{line} imports {dist}" for path in _sources()
               for line, dist in _third_party(path, module_level_only=False) if dist not in everything]
    assert not missing, "imports declared nowhere in pyproject.toml:\n" + "\n".join(missing)


def test_module_level_imports_need_only_the_layers_dependencies():
    """The core layers import only core dependencies when loaded (optional ones only inside the
    functions that need them); the notebook layer may also rely on the ``notebooks`` extra."""
    groups = _declared()
    wrong = []
    for path in _sources():
        allowed = groups["core"] | (groups["notebooks"] if _layer(_module_name(path)) == "notebook" else set())
        wrong += [f"{path.relative_to(ROOT)}:{line} imports {dist}" for line, dist in
                  _third_party(path, module_level_only=True) if dist not in allowed]
    assert not wrong, "module-level imports outside the layer's dependencies:\n" + "\n".join(wrong)


def test_a_loss_call_after_import_gcalib_loads_no_heavy_dependency():
    code = (
        "import json, sys, torch, gcalib\n"
        "z = torch.randn(8, 4)\n"
        "for name in gcalib.LOSSES:\n"
        "    gcalib.make_loss(name)(z, z + 0.1)\n"
        "gcalib.sinkhorn(torch.rand(4, 4), 0.5)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
