"""Promises about the project's shape: package list, import direction, Makefile help, CI command."""

import ast
import configparser
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {
    "moviead": REPO / "src" / "moviead",
    "moviead.stages": REPO / "stages",
    "moviead.datamodules": REPO / "datamodules",
}


def _packages_on_disk() -> set[str]:
    found = set()
    for name, root in ROOTS.items():
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root).parts
            found.add(".".join((name, *rel)))
    return found


def test_setup_cfg_lists_every_package() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    assert _packages_on_disk() <= listed, f"add to setup.cfg packages: {sorted(_packages_on_disk() - listed)}"
    assert listed <= _packages_on_disk() | {"moviead.stages"}, "setup.cfg lists a package with no __init__.py"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_library_never_imports_lightning() -> None:
    offenders = []
    for path in (REPO / "src" / "moviead").rglob("*.py"):
        if path.name == "cli.py":
            continue
        mods = _imported_modules(path)
        if any(m.split(".")[0] in {"lightning", "pytorch_lightning"} for m in mods):
            offenders.append(str(path.relative_to(REPO)))
        if any(m.startswith(("moviead.stages", "moviead.datamodules")) for m in mods):
            offenders.append(f"{path.relative_to(REPO)} (imports stages/datamodules)")
    assert not offenders, offenders


def test_datamodules_do_not_import_stages() -> None:
    for path in (REPO / "datamodules").rglob("*.py"):
        assert not any(m.startswith("moviead.stages") for m in _imported_modules(path)), path


def test_no_cuda_calls_in_library() -> None:
    for path in (REPO / "src" / "moviead").rglob("*.py"):
        assert ".cuda()" not in path.read_text(encoding="utf-8"), path


def test_makefile_targets_have_help() -> None:
    text = (REPO / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z0-9-]*):", text, flags=re.M)
    for target in ("help", "install", "test", "test-all", "lint", "demo", "bench", "clean"):
        assert target in targets, target
    for target in targets:
        assert re.search(rf"^{target}:.*## \S", text, flags=re.M), f"target {target} has no ## help text"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make install && make demo" in readme and "make install && make test" in readme
    first_block = readme.split("```")[1]
    assert "make install && make demo" in first_block and "make install && make test" in first_block
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make install && make test$", ci, flags=re.M)
