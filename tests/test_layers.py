"""The library's import layers: a module may import its own layer and the layers below it, never one above.

    0 leaf        wordlists, clip_towers, checkpoints, export_files, export (nothing of moviead but each other)
    1 data        moviead.data, moviead.toy, FocusedAD's records/recognition/templates/character bank
    2 models      moviead.models, moviead.metrics, extraction, plots, FocusedAD's captioner and its pieces
    3 losses      moviead.losses
    4 recipes     moviead.recipes, moviead.evaluation, moviead.config, FocusedAD's commands
    5 cli         moviead.cli, moviead.__main__

Every ``import`` counts, those inside functions too. (Stages and DataModules live outside ``src/moviead`` and
sit above the library; ``tests/test_packaging.py`` checks that the library never imports them or Lightning.)
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "moviead"

LAYERS: list[tuple[int, tuple[str, ...]]] = [  # most specific prefix first
    (1, ("moviead.focused.data", "moviead.focused.templates", "moviead.focused.recognition",
         "moviead.focused.face_sets", "moviead.focused.char_bank", "moviead.focused.relabel")),
    (2, ("moviead.focused.captioner", "moviead.focused.prompt", "moviead.focused.character_tokens",
         "moviead.focused.faces", "moviead.focused.name_accuracy")),
    (4, ("moviead.focused.commands",)),
    (0, ("moviead.atomic_files", "moviead.wordlists", "moviead.clip_towers", "moviead.checkpoints", "moviead.user_errors", "moviead.export_files", "moviead.export")),
    (1, ("moviead.data", "moviead.toy")),
    (2, ("moviead.models", "moviead.metrics", "moviead.extraction", "moviead.plots")),
    (3, ("moviead.losses",)),
    (4, ("moviead.recipes", "moviead.evaluation", "moviead.config", "moviead.config_ranges", "moviead.ablation")),
    (4, ("moviead.speech",)),
    (5, ("moviead.cli", "moviead.cli_args", "moviead.cli_ad_track", "moviead.cli_ablate", "moviead.cli_sequence",
         "moviead.__main__")),
]
PACKAGE_INITS = {"moviead", "moviead.focused"}  # namespace-only __init__ files: no layer of their own


def layer_of(module: str) -> int | None:
    for rank, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(source: str, package: str) -> set[str]:
    """The moviead modules (and ``module.name`` pairs) that ``source`` imports; relative imports resolved against
    ``package``."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from moviead.data import toy`
    return {n for n in names if n == "moviead" or n.startswith("moviead.")}


def imports_of(path: Path) -> set[str]:
    name = module_name(path)
    return imports_in(path.read_text(encoding="utf-8"), name if path.name == "__init__.py" else name.rsplit(".", 1)[0])


def back_arrows(importer: str, imported: set[str]) -> list[str]:
    rank = layer_of(importer)
    found = []
    for name in sorted(imported):
        target = layer_of(name)
        if rank is not None and target is not None and target > rank:
            found.append(f"{importer} (layer {rank}) imports {name} (layer {target})")
    return found


def test_every_library_module_has_a_layer() -> None:
    missing = [module_name(p) for p in SRC.rglob("*.py")
               if layer_of(module_name(p)) is None and module_name(p) not in PACKAGE_INITS]
    assert not missing, f"give these modules a layer in tests/test_layers.py: {missing}"


def test_no_import_from_a_higher_layer() -> None:
    back = [arrow for path in sorted(SRC.rglob("*.py")) for arrow in back_arrows(module_name(path), imports_of(path))]
    assert not back, "imports from a higher layer:\n" + "\n".join(back)


def test_the_walk_finds_function_level_and_relative_back_arrows() -> None:
    source = "def f():\n    from moviead.recipes import build_recipe\n\nfrom ..losses import contextual\n"
    found = imports_in(source, "moviead.models")
    assert {"moviead.recipes", "moviead.losses", "moviead.losses.contextual"} <= found
    assert len(back_arrows("moviead.models.dsm", found)) == 4  # two modules, each also as module.name
    assert back_arrows("moviead.recipes.base", {"moviead.models.dsm", "moviead.data.records"}) == []
