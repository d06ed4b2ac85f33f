"""Remove the files of the kinds that were not chosen, and say what was generated."""

from __future__ import annotations

from pathlib import Path

PACKAGE = {{ cookiecutter.package | tojson }}
ASKED = {{ cookiecutter.kinds | tojson }}
KINDS = {{ cookiecutter.__kinds | tojson }}.split(",")

FILES = {
    "framework": [f"{PACKAGE}/_model.py", "tests/test_framework.py"],
    "trainer": [f"{PACKAGE}/_training.py", "tests/test_trainer.py"],
    "datastore": [f"{PACKAGE}/_data.py", "tests/test_datastore.py"],
    "tuner": [f"{PACKAGE}/_search.py", "tests/test_tuner.py"],
    "compressor": [f"{PACKAGE}/_compress.py", "tests/test_compressor.py"],
    "deployer": [f"{PACKAGE}/_server.py", "tests/test_deployer.py"],
    "monitor": [f"{PACKAGE}/_events.py", "tests/test_monitor.py"],
    "orchestrator": [f"{PACKAGE}/_orchestrate.py", "tests/test_orchestrator.py"],
}

if __name__ == "__main__":
    for kind, paths in FILES.items():
        if kind not in KINDS:
            for path in paths:
                Path(path).unlink()
    asked = {part.strip().lower() for part in ASKED.split(",")}
    added = [kind for kind in ("framework", "trainer") if kind in KINDS and kind not in asked]
    if added:
        print(f"note: added {added[0]}: a framework and its trainer are generated together "
              "(a framework's models need a trainer to run in a stack, and a trainer needs models to train)")
