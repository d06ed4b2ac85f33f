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
