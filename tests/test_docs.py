"""The documentation builds without warnings (mkdocs --strict), and the reference pages keep up with the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

DOCS = REPO / "docs"


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module with ``mkdocs build --strict``."""
    site = tmp_path_factory.mktemp("docs") / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def test_docs_build_strict(built_site: Path) -> None:
    assert (built_site / "architecture" / "index.html").is_file()


# ---------------------------------------------------------------- the hook reference
def hook_specs() -> dict[str, bool]:
    """Every hook of ``aios_core/hookspecs.py`` and whether its first result wins."""
    import aios_core.hookspecs as specs

    return {name: bool(getattr(value, "aios_spec").get("firstresult"))
            for name, value in vars(specs).items() if callable(value) and hasattr(value, "aios_spec")}


def hook_table() -> dict[str, str]:
    """The rows of the reference page's table: hook name -> its 'first result wins' cell."""
    text = (DOCS / "reference" / "hooks.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(aios_\w+)` \|(.*)\|\s*$", text, flags=re.M)
    return {name: [cell.strip() for cell in cells.split("|")][2] for name, cells in rows}


def test_the_hook_reference_table_lists_every_hook_with_its_first_result_semantics() -> None:
    specs, table = hook_specs(), hook_table()
    assert specs, "no hook specs found in aios_core.hookspecs"
    missing = sorted(set(specs) - set(table))
    assert not missing, f"docs/reference/hooks.md: add a row to the table for {missing}"
    assert not sorted(set(table) - set(specs)), "docs/reference/hooks.md names hooks that do not exist"
    wrong = {name: table[name] for name, first in specs.items() if table[name] != ("yes" if first else "no")}
    assert not wrong, f"docs/reference/hooks.md: the 'first result wins' cell disagrees with the spec for {wrong}"


def test_every_hook_is_documented_on_the_generated_reference_page(built_site: Path) -> None:
    import aios_core.hookspecs as specs

    page = (built_site / "reference" / "hooks" / "index.html").read_text(encoding="utf-8")
    for name in hook_specs():
        assert (getattr(specs, name).__doc__ or "").strip(), f"hook {name} has no docstring in aios_core/hookspecs.py"
        assert f'id="aios_core.hookspecs.{name}"' in page, f"the hook reference page does not document {name}"


def test_the_types_reference_documents_the_records_and_helpers(built_site: Path) -> None:
    page = (built_site / "reference" / "types" / "index.html").read_text(encoding="utf-8")
    names = ["records.ModelArtifact", "records.Dataset", "records.DataDescription", "records.TrainResult",
             "records.TuneResult", "context.RunContext", "context.RunOptions", "context.ValidationContext",
             "rundir.RunDirectory", "rundir.RunState", "rundir.final_artifact", "rundir.TrainSummary",
             "training.EpochProgress", "training.CheckpointWriter", "training.report_steps",
             "training.check_resume_params", "training.TrainingDiverged", "inference.onnx_session",
             "inference.onnx_predictor", "components.Framework", "components.Params", "components.ModelParams",
             "components.TrainingParams"]
    missing = [name for name in names if f'id="aios_core.{name}"' not in page]
    assert not missing, f"docs/reference/types.md does not document {missing}"


# ---------------------------------------------------------------- the architecture page
KERNEL = REPO / "aios_core"


def kernel_modules() -> list[str]:
    """Every Python module of the kernel, as the architecture page names it (``stack/reading.py``)."""
    return sorted(str(path.relative_to(KERNEL)) for path in KERNEL.rglob("*.py")
                  if "__pycache__" not in path.parts and path.relative_to(KERNEL).parts[0] != "plugin_template")


def test_the_architecture_page_names_every_kernel_module() -> None:
    named = set(re.findall(r"`([\w/]+\.py)`", (DOCS / "architecture.md").read_text(encoding="utf-8")))
    missing = [module for module in kernel_modules() if module not in named]
    assert not missing, (f"docs/architecture.md does not name {missing}: add a row with the module's job and what "
                         "it may import to the kernel's tables")


def kernel_imports(module: str) -> set[str]:
    """The kernel modules ``module`` imports, at its top or inside functions, leaving out annotation-only imports."""
    import ast

    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names if alias.name.startswith("aios_core"))
            elif isinstance(child, ast.ImportFrom) and (child.module or "").startswith("aios_core"):
                found.add(child.module)
                found.update(f"{child.module}.{alias.name}" for alias in child.names)  # from aios_core import stack
            visit(child)

    visit(ast.parse((KERNEL / module).read_text(encoding="utf-8")))
    return found


def reaches(imports: set[str], layers: tuple[str, ...]) -> list[str]:
    return sorted(name for name in imports for layer in layers if name == layer or name.startswith(layer + "."))


ABOVE_THE_LOADER = ("aios_core.catalog", "aios_core.installer", "aios_core.settings", "aios_core.stack",
                    "aios_core.runner", "aios_core.cli")


@pytest.mark.parametrize(("modules", "forbidden"), [
    (("vocabulary.py", "records.py", "batches.py", "hookspecs.py"), ("aios_core",)),
    (("plugins.py",), ABOVE_THE_LOADER),
    (("catalog.py",), ("aios_core.plugins", "aios_core.stack", "aios_core.runner", "aios_core.cli")),
], ids=["foundation imports nothing", "the loader imports no layer above it", "the index reads no plugin code"])
def test_the_layering_the_architecture_page_states_holds(modules: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    for module in modules:
        imports = kernel_imports(module)
        if forbidden == ("aios_core",):
            imports -= {"aios_core"}  # `from aios_core import __version__` is not a module of the kernel
            if module == "records.py":  # Dataset.batches serves the batch contract, imported on demand
                imports = {name for name in imports if not reaches({name}, ("aios_core.batches",))}
        bad = reaches(imports, forbidden)
        assert not bad, f"aios_core/{module} imports {bad}, which docs/architecture.md says it may not"


def test_the_contract_kit_imports_no_runner_cli_or_index() -> None:
    for module in kernel_modules():
        if module.startswith("testing/"):
            bad = reaches(kernel_imports(module), ("aios_core.runner", "aios_core.cli", "aios_core.catalog",
                                                   "aios_core.installer"))
            assert not bad, f"aios_core/{module} imports {bad}; the contract kit uses the kernel as a plugin sees it"
