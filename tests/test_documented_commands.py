"""Every shell command the README, docs/ and the plugins' READMEs show, run the way a user runs it (issue 9).

Users copy commands from the pages into a terminal, in an empty directory or at the root of a
clone, with the default ``runs/``. Issue 9: the Ray swap failed from that layout while every
test passed because the tests gave ``--runs-dir`` an absolute path. So each command found in a
fenced block (``documented_commands``) gets exactly one decision in the tables below:

- ``RUN``: run exactly as written by the test named, in a fresh directory;
- ``SUBSTITUTED``: run as written once its placeholders (``runs/<run>``, a page's example run
  name, ``path/to/aios``) are replaced by what an earlier step really made in the same
  directory, or once the file the page describes (``digits.yaml``, ``stack.yaml``) is written;
- ``NOT_RUN``: not runnable here, with the reason, and the test that covers it where one does.

A command in none of them, or in two, fails ``test_every_documented_command_has_one_decision``:
new docs need a decision. Error output shown on its own (a text block of ``error:`` lines)
needs one too (``ERROR_EXAMPLES``).

Where the commands run:

- a fresh empty directory, when the command names no file of the repository (``aios run``'s
  bundled stack, the Ray swap, ``aios new plugin``, a stack file the user writes);
- otherwise the root of a fresh copy of the clone, never this checkout: the files
  ``git ls-files`` lists (tracked and new, from this working tree: what a clone of it holds),
  with ``.venv`` linked to the environment running these tests (what ``scripts/setup.sh``
  makes). A command the page runs inside a folder of the clone (the worked example) runs there;
- ``PATH`` starts with that environment's ``bin``, as after ``source .venv/bin/activate`` (the
  authors' guide's setup), ``AIOS_*`` variables are removed (runs go to ``./runs``) and the
  commands run with ``bash -c``, trailing comments included;
- a plugin the page installs with pip (``pip install dist/...whl``, ``pip install -e``) is
  installed as pip would, into a directory of the test on ``PYTHONPATH``, not into the shared
  environment; the ``pip install`` command itself is in ``NOT_RUN``;
- servers and the ``curl`` commands against them run in a private network namespace
  (``unshare --user --net``) when the system allows one: the documented port 8080 is free
  whatever else runs on the machine, and nothing leaves the namespace's loopback, not even
  ``--host 0.0.0.0``. Without one, port 8080 must be free and the ``0.0.0.0`` command is skipped;
- epochs are the stacks' own (``AIOS_EPOCHS`` unset). With ``AIOS_EPOCHS=2`` the default stack
  misses its documented gate (test accuracy 0.84 < 0.97, exit 1, no deploy phase, so nothing to
  serve); an epoch of the digits CNN costs about 0.3 s of CPU against about 8 s of fixed cost per
  run, so fewer epochs would save little and make the documented exit codes wrong.

The commands are grouped so that one directory serves a sequence (a run, then ``aios serve`` of
that run, then the ``curl`` calls); each group is one test, marked slow when it trains.
"""

from __future__ import annotations

import gzip
import json
import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from documented_commands import (BIN, REPO, RUN_TIMEOUT, CloneRun, DocCommand, block_before, documented_commands,
                                 error_examples, finished_run, fresh_clone, output_differences, user_environment)
from support import bare_installs, first_party_names

SHORT_TIMEOUT = 120

# --- the decisions ------------------------------------------------------------------------------

# Run exactly as written: command -> the test that runs it.
RUN: dict[str, str] = {
    "aios new plugin": "test_the_template_answers_its_questions_interactively",
    'aios new plugin --no-input plugin_name=hello kinds=monitor author="Ada Lovelace"':
        "test_a_generated_plugin_builds_installs_and_runs_its_stack",
    "hatch build -t wheel": "test_a_generated_plugin_builds_installs_and_runs_its_stack",
    "aios plugins list": "test_a_generated_plugin_builds_installs_and_runs_its_stack",
    "aios plugins doctor": "test_a_generated_plugin_builds_installs_and_runs_its_stack",
    "aios plugins info hello": "test_a_generated_plugin_builds_installs_and_runs_its_stack",
    "aios validate examples/stack.yaml": "test_a_generated_plugin_builds_installs_and_runs_its_stack",
    "aios run examples/stack.yaml": "test_a_generated_plugin_builds_installs_and_runs_its_stack",
    "cd examples/plugins/aios-nearest-centroid": "test_the_worked_example_runs_its_stack_from_its_folder",
    "aios run examples/digits.yaml": "test_the_worked_example_runs_its_stack_from_its_folder",
    "aios stack requirements examples/digits-torch.yaml": "test_stack_requirements_prints_the_lines_the_page_shows",
    ".venv/bin/python registry-index/build.py": "test_the_registry_build_runs_from_a_clone_and_names_a_broken_entry",
    ".venv/bin/python registry-index/build.py --check": "test_the_registry_build_runs_from_a_clone_and_names_a_broken_entry",
    "aios run examples/mnist-keras.yaml": "test_the_keras_quickstart_runs_on_digits_and_on_idx_files",
    "aios run examples/digits-compress.yaml": "test_the_compression_example_runs_from_a_clone_and_shows_the_gain",
    "aios run examples/diabetes-regression.yaml": "test_the_regression_example_runs_from_a_clone_near_ridge",
    "aios run examples/diabetes-regression.yaml --set model.framework=keras --set trainer.plugin=keras":
        "test_the_regression_example_runs_from_a_clone_near_ridge",
    "curl -s http://127.0.0.1:8080/v2": "test_a_finished_run_is_served_and_answers_the_documented_curl_calls",
    "curl -s http://127.0.0.1:8080/v2/models/digits-torch":
        "test_a_finished_run_is_served_and_answers_the_documented_curl_calls",
    "curl -s http://127.0.0.1:8080/v2/models/digits-torch/infer -H 'Content-Type: application/json' -d '{ \"id\": "
    "\"first\", \"parameters\": {\"raw\": true}, \"inputs\": [{\"name\": \"input\", \"shape\": [1, 64], \"datatype\": "
    "\"FP32\", \"data\": [0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0, "
    "0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0]}]}'":
        "test_a_finished_run_is_served_and_answers_the_documented_curl_calls",
    "curl -s -X POST http://127.0.0.1:8080/v2/repository/index":
        "test_a_finished_run_is_served_and_answers_the_documented_curl_calls",
    "aios pipeline run --local": "test_the_default_stack_runs_as_a_kubeflow_pipeline_from_an_empty_directory",
    "aios pipeline compile -o pipeline.yaml": "test_the_default_stack_runs_as_a_kubeflow_pipeline_from_an_empty_directory",
    "aios pipeline dockerfile -o Dockerfile": "test_the_default_stack_runs_as_a_kubeflow_pipeline_from_an_empty_directory",
    "aios pipeline compile --set orchestrator.image=registry.example.com/aios/digits-torch:1 -o pipeline.yaml":
        "test_the_default_stack_runs_as_a_kubeflow_pipeline_from_an_empty_directory",
    "aios run --run-dir runs/steps --phases data,train": "test_the_phases_of_the_default_stack_run_one_command_at_a_time",
    "aios run --resume runs/steps --phases export,compress,evaluate,deploy":
        "test_the_phases_of_the_default_stack_run_one_command_at_a_time",
    "aios run examples/digits-mlflow.yaml": "test_the_mlflow_walkthrough_runs_from_a_clone",
    "mlflow experiments search": "test_the_mlflow_walkthrough_runs_from_a_clone",
    "mlflow runs list --experiment-id 1": "test_the_mlflow_walkthrough_runs_from_a_clone",
}

# Run once placeholders are replaced: command -> (the test that runs it, what is substituted).
SUBSTITUTED: dict[str, tuple[str, str]] = {
    "aios serve runs/20261129-150402-digits-torch": (
        "test_a_finished_run_is_served_and_answers_the_documented_curl_calls",
        "the example run -> the run `.venv/bin/aios run` (run-default-stack.sh's run step) made at the clone's root"),
    "curl -s -X POST http://127.0.0.1:8080/v2/repository/models/digits-torch/load -H 'Content-Type: application/json' "
    "-d '{\"parameters\": {\"run_dir\": \"runs/20261130-091500-digits-torch\"}}'": (
        "test_a_finished_run_is_served_and_answers_the_documented_curl_calls",
        ("the later example run -> a copy of the run under a later timestamp (a copied run serves as it is, "
         "serving.md says; a second training would test nothing more here)")),
    "curl -s -X POST http://127.0.0.1:8080/v2/repository/models/digits-torch/unload -H 'Content-Type: application/json' "
    "-d '{\"parameters\": {\"version\": \"20261129-150402\"}}'": (
        "test_a_finished_run_is_served_and_answers_the_documented_curl_calls",
        "the example version -> the served run's timestamp"),
    "python -m aios_serve runs/20261129-150402-digits-torch --repository-api": (
        "test_a_finished_run_is_served_and_answers_the_documented_curl_calls",
        "the example run -> the run `.venv/bin/aios run` made at the clone's root (after `aios serve` stopped)"),
    "python client_http.py": (
        "test_a_finished_run_is_served_and_answers_the_documented_curl_calls",
        "client_http.py -> the python block above it on the page, written to the clone's root"),
    "python client_grpc.py": (
        "test_a_finished_run_is_served_and_answers_the_documented_curl_calls",
        "client_grpc.py -> the python block above it on the page, written to the clone's root"),
    "aios serve runs/A runs/B --host 0.0.0.0 --port 9000": (
        "test_several_runs_are_served_on_all_addresses_of_a_private_network",
        "runs/A runs/B -> the run and its copy; only inside a private network namespace"),
    "cookiecutter path/to/aios/cookiecutter-plugin": (
        "test_the_template_answers_its_questions_interactively", "path/to/aios -> a fresh copy of the clone"),
    "aios runs show <run>": (
        "test_a_generated_plugin_builds_installs_and_runs_its_stack", "<run> -> the run `aios run examples/stack.yaml` printed"),
    "git add registry-index/plugins/<name>.toml registry-index/index.json registry-index/catalog.html "
    "aios_core/index.json": (
        "test_the_registry_build_runs_from_a_clone_and_names_a_broken_entry",
        "<name> -> aios-torch, in a git repository made of the clone's copy"),
    "aios run digits.yaml": (
        "test_the_torch_or_keras_swap_runs_the_stack_the_page_shows", "digits.yaml -> the YAML block above it on the page"),
    "aios run digits.yaml --set model.framework=keras": (
        "test_the_torch_or_keras_swap_runs_the_stack_the_page_shows", "digits.yaml -> the YAML block above it on the page"),
    "aios validate stack.yaml": (
        "test_aios_validate_names_the_data_problems_the_aios_data_readme_shows",
        ("stack.yaml and data/animals.csv -> the files the output implies (path on line 4, target on line 5, "
         "columns weight, legs, color, labels); /home/me/project -> the directory")),
    "aios run examples/mnist-keras.yaml --set data.plugin=files --set data.path=data/mnist/train-images-idx3-ubyte.gz": (
        "test_the_keras_quickstart_runs_on_digits_and_on_idx_files",
        ("MNIST's IDX files -> scikit-learn's digits written as IDX files at that path (MNIST is a download from "
         "outside the package registries)")),
}
_S3_TEST = "test_the_large_data_page_streams_from_s3_compatible_storage"
_S3_SUBSTITUTION = ("127.0.0.1:9000 -> a real S3 server on 127.0.0.1 (moto's server mode, a free port) holding "
                    "scikit-learn's digits as three Parquet files under s3://tables/events/; the block runs as one "
                    "terminal session, so the exports hold for the commands after them")
SUBSTITUTED.update({
    "export AWS_ACCESS_KEY_ID=minio AWS_SECRET_ACCESS_KEY=minio-secret AWS_DEFAULT_REGION=us-east-1": (
        _S3_TEST, _S3_SUBSTITUTION),
    "export AWS_ENDPOINT_URL=http://127.0.0.1:9000": (_S3_TEST, _S3_SUBSTITUTION),
    "aios validate events.yaml": (_S3_TEST, _S3_SUBSTITUTION + "; events.yaml -> the YAML block above it on the page"),
    "aios run events.yaml": (_S3_TEST, _S3_SUBSTITUTION + "; events.yaml -> the YAML block above it on the page"),
})

_SUITE = "a plugin's whole test suite (minutes); scripts/test.sh runs every plugin's suite, and CI runs that (.ci/run)"
_INSTALLS = "installs into the user's environment (here: the environment every engineer shares)"
_CLUSTER = "needs a Kubernetes cluster with KServe, a Docker engine and an image registry (none here)"

# Not runnable here: command -> why, and what covers it.
NOT_RUN: dict[str, str] = {
    "bash scripts/run-default-stack.sh": (
        "scripts/setup.sh creates .venv and pip-installs the kernel, the six plugins and torch, TensorFlow and Ray "
        "(GBs, minutes; pip -e into the shared environment would repoint it at the copy); its run step, "
        "`.venv/bin/aios run`, is run from a fresh clone copy by "
        "test_a_finished_run_is_served_and_answers_the_documented_curl_calls"),
    "bash scripts/test.sh": "the whole test suite, this module included; CI runs it (.ci/run)",
    "aios run --set trainer.plugin=ray-train --set trainer.num_workers=2": (
        "run exactly as written (the aios command, a user's environment, an empty directory, the default runs/) by "
        "plugins/aios-ray-train/tests/test_stacks.py::documented_swap, in the plugin stage of the same CI run, which "
        "checks the same and more (the lock, checkpoints under the run, Ray silent on the console); "
        "a second run here would repeat that whole Ray training; "
        "test_the_ray_swap_the_pages_show_is_the_one_the_ray_train_suite_runs checks the text is the same"),
    'pip install "aios-kernel @ git+https://github.com/aios-ml/aios"': (
        f"network beyond the package registries (GitHub) and {_INSTALLS}; its form is checked by "
        "tests/test_registry_index.py::test_no_page_or_catalog_card_installs_a_first_party_name_without_its_source"),
    'pip install "aios-torch @ git+https://github.com/aios-ml/aios#subdirectory=plugins/aios-torch"': (
        f"network beyond the package registries (GitHub) and {_INSTALLS}; its form is checked by "
        "tests/test_registry_index.py::test_no_page_or_catalog_card_installs_a_first_party_name_without_its_source"),
    "aios plugins install aios-torch": (
        f"{_INSTALLS}; tests/test_plugin_index_commands.py::"
        "test_a_first_party_plugin_without_a_release_installs_from_its_source installs from a source into a sandbox"),
    "aios plugins install aios-data": (
        f"{_INSTALLS}; tests/test_plugin_index_commands.py::"
        "test_a_first_party_plugin_without_a_release_installs_from_its_source installs from a source into a sandbox"),
    "aios plugins install aios-onnx-quant": (
        f"{_INSTALLS}; tests/test_plugin_index_commands.py::"
        "test_a_first_party_plugin_without_a_release_installs_from_its_source installs from a source into a sandbox"),
    "aios plugins install aios-tf": (
        f"{_INSTALLS}; tests/test_plugin_index_commands.py::"
        "test_a_first_party_plugin_without_a_release_installs_from_its_source installs from a source into a sandbox"),
    "aios plugins install aios-ray-train": (
        f"{_INSTALLS}; tests/test_plugin_index_commands.py::"
        "test_a_first_party_plugin_without_a_release_installs_from_its_source installs from a source into a sandbox"),
    "aios plugins install aios-hello --yes": (
        f"{_INSTALLS}, from an index listing aios-hello with a reviewed wheel; tests/test_plugin_index_commands.py::"
        "test_install_checks_the_hash_shows_the_changes_and_verifies_the_plugin runs it against such an index"),
    "aios stack requirements my-stack.yaml > requirements.txt && pip install -r requirements.txt": (
        f"{_INSTALLS}, from GitHub (the requirements are git+https URLs); the first half's output is checked by "
        "test_stack_requirements_prints_the_lines_the_page_shows"),
    'pip install -e ".[test]"': (
        f"{_INSTALLS}; the tests here install the same project into a directory on PYTHONPATH instead "
        "(test_a_generated_plugin_builds_installs_and_runs_its_stack, test_the_worked_example_runs_its_stack_from_its_folder)"),
    "pip install dist/aios_hello-0.1.0-py3-none-any.whl": (
        f"{_INSTALLS}; test_a_generated_plugin_builds_installs_and_runs_its_stack installs that wheel into a directory "
        "on PYTHONPATH instead"),
    "pytest": (
        "a plugin's whole test suite (tens of seconds to minutes), run after `pip install -e` into the user's environment; "
        "tests/test_plugin_template.py::test_generated_tests_pass runs a generated plugin's, and "
        "tests/test_worked_example.py::test_the_plugin_passes_its_own_tests_and_the_contract_kit the worked example's"),
    ".venv/bin/python benchmarks/run.py": "a benchmark: long-running measurement (minutes) meant for an idle machine; tests never assert speed",
    ".venv/bin/python benchmarks/serve/run.py": "a benchmark: long-running measurement (minutes) meant for an idle machine; tests never assert speed",
    ".venv/bin/python benchmarks/serve/protocols.py": "a benchmark: long-running measurement (minutes) meant for an idle machine; tests never assert speed",
    ".venv/bin/python benchmarks/keras/run.py": "a benchmark: long-running measurement (minutes) meant for an idle machine; tests never assert speed",
    ".venv/bin/python benchmarks/ray/run.py": "a benchmark: long-running measurement (minutes) meant for an idle machine; tests never assert speed",
    ".venv/bin/python benchmarks/compression/run.py": "a benchmark: long-running measurement (minutes) meant for an idle machine; tests never assert speed",
    ".venv/bin/python benchmarks/kubeflow/run.py": "a benchmark: long-running measurement (minutes) meant for an idle machine; tests never assert speed",
    ".venv/bin/python benchmarks/data/run.py": "a benchmark: long-running measurement (minutes) meant for an idle machine; tests never assert speed",
    ".venv/bin/python benchmarks/data/whole_run.py": "a benchmark: long-running measurement (minutes: whole runs on millions of rows); tests never assert speed",
    "docker build -t registry.example.com/aios/digits-torch:1 . && docker push registry.example.com/aios/digits-torch:1": (
        "needs a Docker engine and an image registry (none here); the Dockerfile is written by "
        "test_the_default_stack_runs_as_a_kubeflow_pipeline_from_an_empty_directory"),
    "aios pipeline run --host https://kubeflow.example.com/pipeline --set orchestrator.image=registry.example.com/aios/digits-torch:1": (
        "needs a Kubeflow Pipelines endpoint (none here); the pipeline it submits is the one "
        "test_the_default_stack_runs_as_a_kubeflow_pipeline_from_an_empty_directory compiles and runs with kfp.local"),
    ".venv/bin/python benchmarks/monitoring/run.py": "a benchmark: long-running measurement (minutes) meant for an idle machine; tests never assert speed",
    ".venv/bin/python benchmarks/optuna/run.py": "a benchmark: long-running measurement (minutes) meant for an idle machine; tests never assert speed",
    "aios plugins install aios-optuna": (
        f"{_INSTALLS}; tests/test_plugin_index_commands.py::"
        "test_a_first_party_plugin_without_a_release_installs_from_its_source installs from a source into a sandbox"),
    "aios run examples/digits-automl.yaml": (
        "20 trials, each exporting, quantizing and timing its model (minutes on 2 busy cores); "
        "plugins/aios-optuna/tests/test_objectives.py runs the same file with 4 trials of 2 epochs and checks the "
        "front, the select rule and the int8 models each trial measured"),
    "ray get-auth-token --generate": "writes ~/.ray/auth_token into the user's home, for a cluster of several hosts",
    "ray start --head --node-ip-address=10.0.0.10 --port=6379 --disable-usage-stats": (
        "starts a Ray head on a network address of another host (10.0.0.10), for a cluster of several hosts; "
        "plugins/aios-ray-train/tests join a head started on 127.0.0.1"),
    "ray start --address=10.0.0.10:6379": "joins a Ray head on another host (10.0.0.10): needs a cluster of several hosts",
    "cd runs/<run>/artifacts/kserve": (
        f"enters the bundle for the docker and kubectl commands below, which {_CLUSTER}; the bundle is made and "
        "served as the container would by plugins/aios-serve/tests/test_kserve.py::test_bundle_serves_locally_as_the_container_would"),
    "docker build -t registry.example.com/aios/digits:1 . && docker push registry.example.com/aios/digits:1": (
        f"{_CLUSTER}; plugins/aios-serve/tests/test_kserve.py checks the Dockerfile"),
    "kubectl apply -f inferenceservice.yaml": f"{_CLUSTER}; plugins/aios-serve/tests/test_kserve.py checks the manifest",
    "kubectl get inferenceservice digits": _CLUSTER,
    "SERVICE_HOSTNAME=$(kubectl get inferenceservice digits -o jsonpath='{.status.url}' | cut -d/ -f3)": _CLUSTER,
    'curl -s -H "Host: $SERVICE_HOSTNAME" http://$INGRESS_HOST:$INGRESS_PORT/v2/models/digits-torch': (
        f"{_CLUSTER}: the address is the cluster's ingress"),
    "curl -s -H \"Host: $SERVICE_HOSTNAME\" -H 'Content-Type: application/json' "
    "http://$INGRESS_HOST:$INGRESS_PORT/v2/models/digits-torch/infer -d @request.json": (
        f"{_CLUSTER}: the address is the cluster's ingress"),
    ".venv/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0": _INSTALLS,
    ".venv/bin/pip install -e plugins/aios-tf": _INSTALLS,
    "pip install -e 'plugins/aios-tf[test]'": _INSTALLS,
    "pip install -e plugins/aios-torch": _INSTALLS,
    "python -m pytest plugins/aios-tf/tests -q -p no:cacheprovider": _SUITE,
    "python -m pytest plugins/aios-torch/tests -q --import-mode=importlib": _SUITE,
    "pytest plugins/aios-data/tests -q -p no:cacheprovider --import-mode=importlib": _SUITE,
    ".venv/bin/pytest -q -p no:cacheprovider plugins/aios-onnx-quant/tests": _SUITE,
    "aios plugins install aios-mlflow": (
        f"{_INSTALLS}; tests/test_plugin_index_commands.py::"
        "test_a_first_party_plugin_without_a_release_installs_from_its_source installs from a source into a sandbox"),
    "mlflow models serve -m models:/digits-classifier/1 --env-manager local --port 5001": (
        "a server that runs until stopped; plugins/aios-mlflow/tests/test_tracking.py::"
        "test_the_registered_model_predicts_as_the_runs_final_onnx_model loads the same registered version with "
        "mlflow.pyfunc, which this command serves"),
    "mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db": (
        "a server that runs until stopped; plugins/aios-mlflow/tests/conftest.py starts the same command "
        "(on a free port, with a local artifact root) for the plugin's tests"),
}

# Error output shown on its own, by its first line: where it is checked.
ERROR_EXAMPLES: dict[str, str] = {
    "error: stack.yaml:5: compressors.0: compressor 'torch-prune' supports classification only, but the data's task "
    "is regression; choose a compressor that declares regression (aios plugins info NAME shows its tasks)":
        "tests/test_regression.py::test_a_classification_only_component_is_refused_on_a_regression_stack",
    "error: stack.yaml:11: trainer.epochs: found 'ten', expected a valid integer, unable to parse string as an integer":
        "tests/test_stack_errors.py and tests/test_stack_overrides.py (each line of the list)",
    "error: kinds: 'monitr' is not a kind; did you mean 'monitor'? (kinds: framework, datastore, ...)":
        "tests/test_plugin_template.py::test_bad_answers_are_refused_before_anything_is_generated",
    "error: bad.json: plugins[0] (aios-x).status: found 'gone', expected one of active, deprecated, withdrawn":
        "tests/test_plugin_index_commands.py::test_update_index_refuses_a_file_that_is_not_an_index",
    "registry-index/plugins/aios-torch.toml: components.trainer: missing 'torch', which plugins/aios-torch/pyproject.toml "
    "declares under [project.entry-points.\"aios.trainers\"]":
        "test_the_registry_build_runs_from_a_clone_and_names_a_broken_entry (here)",
    "data.path: no such file: /home/me/data/y.csv": "plugins/aios-data/tests/test_errors.py (one test per line)",
    "error: stack.yaml:7: compressors.1.plugin: compressor 'torch-prune' works on the native torch model before export, "
    "so it cannot follow compressor 'onnx-quant', which works on the exported model; list 'torch-prune' before "
    "'onnx-quant'": "tests/test_compress_chain.py::test_an_order_that_cannot_work_is_refused_at_validate",
    "torch-prune: target_size_ratio 0.001 cannot be met: even with 1 unit or channel per hidden layer the model keeps "
    "0.009 of its 9610 parameters (the input and output layers stay); set target_size_ratio to at least 0.009, or "
    "train a smaller model (model.hidden_units, model.conv_channels)":
        "plugins/aios-torch/tests/test_torch_prune.py::test_a_size_target_that_cannot_be_met_says_what_can",
    "error: pipeline aios-digits-torch failed: evaluate: GateFailed: int8 test accuracy 0.7852 < min_accuracy 0.999 "
    "(run directory: runs/kfp-local/aios-digits-torch-2026-12-01-18-08-45-165525/aios-evaluate/run_dir)":
        "plugins/aios-kubeflow/tests/test_local_run.py::test_a_missed_gate_fails_the_pipeline_with_the_gates_message",
    "error: --set: orchestrator.memory: found '2GB', expected a Kubernetes quantity, e.g. 1, 500m (CPU) or 2Gi, "
    "512Mi (memory)": "plugins/aios-kubeflow/tests/test_compile.py::test_bad_options_are_one_line_errors",
    "error: phase 'data' failed: MemoryError: Unable to allocate 61.0 MiB for an array with shape (250000, 64) and "
    "data type float32; out of memory in the data phase: the data does not fit in memory as loaded: store the "
    "features as float32 (a float32 NPZ array or Parquet column is used as it is, any other type is held as loaded "
    "while its float32 copy is made), prefer Parquet or NPZ to CSV, or load fewer rows (run directory: runs/20261201-190049-oom) "
    "(details: runs/20261201-190049-oom/run.log)":
        "tests/test_progress_and_memory.py::test_a_run_out_of_memory_in_the_data_phase_fails_in_one_line",
    "error: stack.yaml:9: tuner.space.model.hiden_units: unknown parameter: framework 'torch' has no parameter "
    "'hiden_units'; expected model.<one of: architecture, hidden_units, conv_channels, kernel_size, activation, dropout, "
    "options>; did you mean 'model.hidden_units'?":
        "plugins/aios-optuna/tests/test_validate.py::test_each_mistake_in_the_space_is_one_line_naming_its_line",
}

COMMANDS = documented_commands()


def documented(key: str, test: str) -> list[DocCommand]:
    """The places the pages show ``key``, checked to be the ``test``'s to run."""
    decided = RUN.get(key) or SUBSTITUTED.get(key, ("",))[0]
    assert decided == test, f"{key!r} is decided for {decided or 'no test'}, not {test}"
    found = [command for command in COMMANDS if command.key == key]
    assert found, f"no page shows {key!r} any more; update the decision tables"
    return found


# --- running commands as a user does ------------------------------------------------------------

@dataclass
class Shell:
    """A user's terminal: a working directory, an environment, and a prefix (a network namespace) for commands."""

    cwd: Path
    env: dict[str, str]
    prefix: tuple[str, ...] = ()

    def run(self, command: DocCommand | str, *, substitutions: dict[str, str] | None = None, expect: int = 0,
            timeout: float = SHORT_TIMEOUT, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``command`` with bash, as written (after ``substitutions``); check its exit code and shown output."""
        text, where = _text(command, substitutions)
        result = subprocess.run([*self.prefix, "bash", "--noprofile", "--norc", "-c", text], check=False, cwd=self.cwd,
                                env=self.env, input=stdin, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == expect, (f"{where}: {text!r} exited {result.returncode}, expected {expect}\n"
                                             f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}")
        if isinstance(command, DocCommand) and command.output:
            shown = [_substitute(line, substitutions) for line in command.output]
            problems = output_differences(shown, result.stdout, result.stderr)
            assert not problems, (f"{where}: {text!r} printed other output than the page shows: {problems}\n"
                                  f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}")
        return result

    @contextmanager
    def background(self, command: DocCommand, *, substitutions: dict[str, str] | None = None,
                   ready: str = "serving", timeout: float = SHORT_TIMEOUT) -> Iterator[list[str]]:
        """Start a server command; yield its output lines once one contains ``ready``; stop it with SIGTERM after.

        On leaving, the server must exit 0 within 40 s of SIGTERM, as serving.md says.
        """
        text, where = _text(command, substitutions)
        process = subprocess.Popen([*self.prefix, "bash", "--noprofile", "--norc", "-c", text], cwd=self.cwd,
                                   env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        lines: list[str] = []
        arrived: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            for line in process.stdout:
                arrived.put(line)
            arrived.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + timeout
            while not any(ready in line for line in lines):
                try:
                    line = arrived.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise AssertionError(f"{where}: {text!r} printed no {ready!r} line in {timeout} s:\n"
                                         + "".join(lines)) from None
                assert line is not None, f"{where}: {text!r} ended ({process.wait()}) before serving:\n" + "".join(lines)
                lines.append(line)
            yield lines
            os.killpg(process.pid, signal.SIGTERM)
            assert process.wait(timeout=40) == 0, f"{where}: {text!r} exited {process.returncode} after SIGTERM"
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            reader.join(timeout=5)
            while (line := _next(arrived)) is not None:
                lines.append(line)


def _next(arrived: queue.Queue[str | None]) -> str | None:
    try:
        return arrived.get_nowait()
    except queue.Empty:
        return None


def _substitute(text: str, substitutions: dict[str, str] | None) -> str:
    for placeholder, value in (substitutions or {}).items():
        text = text.replace(placeholder, value)
    return text


def _text(command: DocCommand | str, substitutions: dict[str, str] | None) -> tuple[str, str]:
    if isinstance(command, DocCommand):
        return _substitute(command.text, substitutions), command.where
    return command, "setup"


@contextmanager
def private_network() -> Iterator[tuple[str, ...]]:
    """A command prefix that enters a new network namespace with only loopback up, or () where none can be made."""
    if not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip")):
        yield ()
        return
    holder = subprocess.Popen(["unshare", "--user", "--map-root-user", "--net", "sh", "-c",
                               "ip link set lo up && echo up && exec sleep 3600"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        up = holder.stdout.readline().strip() == "up"
        yield ("nsenter", f"--target={holder.pid}", "--user", "--net", "--preserve-credentials", "--") if up else ()
    finally:
        holder.kill()
        holder.wait()


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


# --- the decisions are complete -----------------------------------------------------------------

def test_the_pages_show_commands() -> None:
    files = {command.file for command in COMMANDS}
    assert {"README.md", "docs/serving.md", "docs/scaling-out.md", "docs/plugin-authors-guide.md"} <= files
    assert len(COMMANDS) > 50


def test_every_documented_command_has_one_decision() -> None:
    undecided = [f"{c.where}: {c.key}" for c in COMMANDS if c.key not in RUN | SUBSTITUTED | NOT_RUN]
    assert not undecided, ("documented commands with no decision; add each to RUN, SUBSTITUTED or NOT_RUN in "
                           "tests/test_documented_commands.py:\n" + "\n".join(undecided))
    twice = (RUN.keys() & SUBSTITUTED.keys()) | (RUN.keys() & NOT_RUN.keys()) | (SUBSTITUTED.keys() & NOT_RUN.keys())
    assert not twice


def test_every_decision_names_a_command_the_pages_show() -> None:
    shown = {command.key for command in COMMANDS}
    assert sorted((RUN | SUBSTITUTED | NOT_RUN).keys() - shown) == []


def test_every_test_a_decision_names_exists() -> None:
    named = set(RUN.values()) | {test for test, _ in SUBSTITUTED.values()}
    assert sorted(name for name in named if not callable(globals().get(name))) == []


def test_every_error_example_has_a_decision() -> None:
    examples = error_examples()
    assert sorted(f"{e.where}: {e.key}" for e in examples if e.key not in ERROR_EXAMPLES) == []
    assert sorted(ERROR_EXAMPLES.keys() - {e.key for e in examples}) == []


_BARE_NAME_KNOWN: dict[str, str] = {}
"""Pages known to install a first-party name by bare name (none now): each an expected failure until fixed."""


@pytest.mark.parametrize("page", [
    pytest.param(page, marks=pytest.mark.xfail(strict=True, reason=_BARE_NAME_KNOWN[page])) if page in _BARE_NAME_KNOWN
    else page for page in sorted({command.file for command in COMMANDS})])
def test_no_documented_command_installs_a_first_party_distribution_by_name(page: str) -> None:
    commands = [command.text for command in COMMANDS if command.file == page]
    assert bare_installs("\n".join(commands), first_party_names()) == []


def test_commands_are_read_with_their_continuations_output_and_comments(tmp_path: Path) -> None:
    from documented_commands import commands_in_block

    body = ["$ curl -s http://x/infer \\", "    -d '{", '  "a": 1}\'', '{"ok":true}', "$ aios serve runs/r   # note",
            "serving"]
    first, second = commands_in_block("page.md", 10, "console", body)
    assert (first.line, first.key, first.output) == (10, "curl -s http://x/infer -d '{ \"a\": 1}'", ('{"ok":true}',))
    assert (second.line, second.key, second.output) == (14, "aios serve runs/r", ("serving",))
    [plain] = commands_in_block("page.md", 3, "bash", ["# a comment", "aios run a.yaml \\", "  --set x=1  # b"])
    assert (plain.line, plain.key, plain.output) == (4, "aios run a.yaml --set x=1", ())


def test_shown_json_output_allows_elisions_and_other_numbers() -> None:
    shown = ['{"name":"m","versions":["1"],', ' "data":[0.99,3e-11,...],"shape":[1,10],"mean":[...]}']
    real = '{"name":"m","versions":["1"],"data":[0.5,0.1,0.4],"shape":[1,10],"mean":[1.0],"extra":2}'
    assert output_differences(shown, real) == []
    assert output_differences(shown, real.replace("[1,10]", "[1,9]")) == ["$.shape[1]: found 9, expected 10"]


# --- the groups ---------------------------------------------------------------------------------

RAY_SWAP_SUITE = REPO / "plugins" / "aios-ray-train" / "tests" / "test_stacks.py"


def test_the_ray_swap_the_pages_show_is_the_one_the_ray_train_suite_runs() -> None:
    """scaling-out.md's one-line swap (issue 9) runs, in an empty directory with the default runs/, in the plugin
    stage (plugins/aios-ray-train/tests/test_stacks.py runs ``aios`` + ``DOCUMENTED_SWAP``): every page shows exactly
    that command, and its decision says where it runs."""
    import ast
    import shlex

    key = "aios run --set trainer.plugin=ray-train --set trainer.num_workers=2"
    assert "plugins/aios-ray-train/tests/test_stacks.py::documented_swap" in NOT_RUN[key]
    tree = ast.parse(RAY_SWAP_SUITE.read_text(encoding="utf-8"))
    [swap] = [ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
              and [getattr(target, "id", None) for target in node.targets] == ["DOCUMENTED_SWAP"]]
    shown = [command for command in COMMANDS if command.key == key]
    assert {"README.md", "docs/scaling-out.md"} <= {command.file for command in shown}, shown
    for command in shown:
        assert shlex.split(command.text) == ["aios", *swap], command.where


@pytest.fixture(scope="module")
def served_clone(default_stack_run: CloneRun) -> tuple[Path, str, str]:
    """A fresh clone copy where run-default-stack.sh's run step ran: (its root, the run, a later copy of the run).

    The run is the session's ``default_stack_run`` (tests/conftest.py), which tests/test_run.py checks too.
    """
    clone, run = default_stack_run.clone, finished_run(default_stack_run.result)
    stamp = re.search(r"\d{8}-\d{6}", run).group()
    later = run.replace(stamp, f"{datetime.strptime(stamp, '%Y%m%d-%H%M%S') + timedelta(days=1):%Y%m%d-%H%M%S}")
    shutil.copytree(clone / run, clone / later)
    return clone, run, later


@pytest.mark.slow
def test_a_finished_run_is_served_and_answers_the_documented_curl_calls(served_clone: tuple[Path, str, str]) -> None:
    clone, run, later = served_clone
    test = "test_a_finished_run_is_served_and_answers_the_documented_curl_calls"
    version, later_version = (re.search(r"\d{8}-\d{6}", name).group() for name in (run, later))
    substitutions = {"20261129-150402": version, "20261130-091500": later_version}
    [serve] = documented("aios serve runs/20261129-150402-digits-torch", test)
    [serve_api] = documented("python -m aios_serve runs/20261129-150402-digits-torch --repository-api", test)
    clients = [documented(f"python {name}", test)[0] for name in ("client_http.py", "client_grpc.py")]
    for client in clients:
        (clone / client.key.split()[1]).write_text(block_before(client, "python"))
    calls = [command for command in COMMANDS if command.file == "docs/serving.md" and command.key.startswith("curl -s")
             and "127.0.0.1:8080" in command.key]
    assert len(calls) == 6, [c.key for c in calls]
    for call in calls:
        documented(call.key, test)
    repository = [call for call in calls if "/v2/repository/models/" in call.key]  # load and unload: one worker
    with private_network() as prefix:
        assert prefix or port_is_free(8080), "port 8080, which the documented `aios serve` binds, is taken"
        shell = Shell(clone, user_environment(), prefix)
        with shell.background(serve, substitutions=substitutions) as lines:
            assert not output_differences([line.replace("20261129-150402", version) for line in serve.output],
                                          "".join(lines)), lines  # its URL line
            for call in calls:
                if call not in repository:
                    shell.run(call, substitutions=substitutions)
            for client in clients:
                shell.run(client)
        assert any("Shutting down" in line or "Finished server process" in line for line in lines), lines
        with shell.background(serve_api, substitutions=substitutions) as lines:
            assert not output_differences(serve_api.output, "".join(lines)), lines
            for call in repository:
                shell.run(call, substitutions=substitutions)


@pytest.mark.slow
def test_several_runs_are_served_on_all_addresses_of_a_private_network(served_clone: tuple[Path, str, str]) -> None:
    clone, run, later = served_clone
    [serve] = documented("aios serve runs/A runs/B --host 0.0.0.0 --port 9000",
                         "test_several_runs_are_served_on_all_addresses_of_a_private_network")
    with private_network() as prefix:
        if not prefix:
            pytest.skip("no private network namespace here (unshare --user --net): --host 0.0.0.0 would expose the "
                        "server to the machine's networks")
        shell = Shell(clone, user_environment(), prefix)
        with shell.background(serve, substitutions={"runs/A": run, "runs/B": later}) as lines:
            assert any("serving 2 run(s) on http://0.0.0.0:9000/v2" in line for line in lines), lines
            index = shell.run("curl -s -X POST http://127.0.0.1:9000/v2/repository/index").stdout
            assert index.count('"state":"READY"') == 2, index


@pytest.mark.slow
def test_the_torch_or_keras_swap_runs_the_stack_the_page_shows(tmp_path: Path) -> None:
    test = "test_the_torch_or_keras_swap_runs_the_stack_the_page_shows"
    [torch_run] = documented("aios run digits.yaml", test)
    [keras_run] = documented("aios run digits.yaml --set model.framework=keras", test)
    (tmp_path / "digits.yaml").write_text(block_before(torch_run, "yaml"))
    shell = Shell(tmp_path, user_environment())
    runs = [finished_run(shell.run(command, timeout=RUN_TIMEOUT)) for command in (torch_run, keras_run)]
    assert "framework: torch" in (tmp_path / runs[0] / "stack.lock.yaml").read_text()
    assert "framework: keras" in (tmp_path / runs[1] / "stack.lock.yaml").read_text()


def _write_digits_as_idx(folder: Path) -> None:
    """scikit-learn's digits as MNIST-style gzipped IDX files (8-bit images, labels found beside them)."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    folder.mkdir(parents=True)
    count, height, width = images.shape
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(struct.pack(">HBBIII", 0, 0x08, 3, count, height, width) + images.tobytes())
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(struct.pack(">HBBI", 0, 0x08, 1, count) + digits.target.astype(np.uint8).tobytes())


@pytest.mark.slow
def test_the_keras_quickstart_runs_on_digits_and_on_idx_files(tmp_path: Path) -> None:
    test = "test_the_keras_quickstart_runs_on_digits_and_on_idx_files"
    [on_digits] = documented("aios run examples/mnist-keras.yaml", test)
    [on_files] = documented("aios run examples/mnist-keras.yaml --set data.plugin=files "
                            "--set data.path=data/mnist/train-images-idx3-ubyte.gz", test)
    clone = fresh_clone(tmp_path / "aios")
    _write_digits_as_idx(clone / "data" / "mnist")
    shell = Shell(clone, user_environment())
    finished_run(shell.run(on_digits, timeout=RUN_TIMEOUT))
    run = finished_run(shell.run(on_files, timeout=RUN_TIMEOUT))
    assert "train-images-idx3-ubyte.gz" in (clone / run / "stack.lock.yaml").read_text()


@pytest.mark.slow
def test_the_compression_example_runs_from_a_clone_and_shows_the_gain(compress_example_run: CloneRun) -> None:
    """The session's ``compress_example_run`` (tests/conftest.py); tests/test_compress_chain.py reads it too."""
    [command] = documented("aios run examples/digits-compress.yaml",
                           "test_the_compression_example_runs_from_a_clone_and_shows_the_gain")
    assert compress_example_run.command == command.text and not command.output, command
    clone, result = compress_example_run.clone, compress_example_run.result
    run = finished_run(result)
    for row in ("│ pruned      │ torch", "│ onnx        │ onnx", "│ pruned.onnx │ onnx"):
        assert row in result.stdout, result.stdout
    report = json.loads((clone / run / "report" / "evaluation.json").read_text())
    assert report["comparison"]["baseline"] == "onnx" and report["comparison"]["size_ratio"] < 0.35


@pytest.mark.slow
def test_the_regression_example_runs_from_a_clone_near_ridge(tmp_path: Path) -> None:
    """torch, then keras: int8 served and smoke-tested in the target's units, test RMSE within 10 % of Ridge's."""
    from test_regression import ridge_rmse

    test = "test_the_regression_example_runs_from_a_clone_near_ridge"
    commands = documented("aios run examples/diabetes-regression.yaml", test) + documented(
        "aios run examples/diabetes-regression.yaml --set model.framework=keras --set trainer.plugin=keras", test)
    clone = fresh_clone(tmp_path / "aios")
    shell = Shell(clone, user_environment())
    for command, framework in zip(commands, ("torch", "keras"), strict=True):
        result = shell.run(command, timeout=RUN_TIMEOUT)
        run = finished_run(result)
        assert "regression of target" in result.stdout and "smoke test passed" in result.stdout, result.stdout
        report = json.loads((clone / run / "report" / "evaluation.json").read_text())
        ridge = ridge_rmse(clone / run)
        print(f"\ndiabetes test RMSE: {framework} {report['final']} {report['test_rmse']:.2f}, "
              f"scikit-learn Ridge {ridge:.2f} (ratio {report['test_rmse'] / ridge:.3f})")
        assert report["final"] == "int8" and report["test_rmse"] <= 1.10 * ridge
        assert all(gate["passed"] for gate in report["gates"])


def _install_into(site: Path, project: Path, *, build: bool) -> None:
    """Install ``project`` (a wheel, or a folder to build) as pip would, but into ``site`` (put on PYTHONPATH)."""
    options = ["--no-build-isolation"] if build else []
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                             "--no-deps", "--no-index", *options, "--target", str(site), str(project)],
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_template_answers_its_questions_interactively(tmp_path: Path) -> None:
    """`aios new plugin` and plain cookiecutter, each in an empty directory, every question answered with Enter."""
    test = "test_the_template_answers_its_questions_interactively"
    [new] = documented("aios new plugin", test)
    [cookiecutter] = documented("cookiecutter path/to/aios/cookiecutter-plugin", test)
    clone = fresh_clone(tmp_path / "aios")
    for name, command, substitutions in (("new", new, None), ("cookiecutter", cookiecutter, {"path/to/aios": str(clone)})):
        directory = tmp_path / name
        directory.mkdir()
        Shell(directory, user_environment()).run(command, substitutions=substitutions, stdin="\n" * 20)
        assert (directory / "aios-hello" / "pyproject.toml").is_file(), name


@pytest.mark.slow
def test_a_generated_plugin_builds_installs_and_runs_its_stack(tmp_path: Path) -> None:
    """The authors' guide, sections 1, 5 and 6, in the project folder as its README's next steps say."""
    test = "test_a_generated_plugin_builds_installs_and_runs_its_stack"
    [generate] = documented('aios new plugin --no-input plugin_name=hello kinds=monitor author="Ada Lovelace"', test)
    Shell(tmp_path, user_environment()).run(generate)
    project, site = tmp_path / "aios-hello", tmp_path / "site"
    shell = Shell(project, user_environment())
    [build] = documented("hatch build -t wheel", test)
    shell.run(build, timeout=300)
    [wheel] = project.glob("dist/*.whl")
    assert wheel.name == "aios_hello-0.1.0-py3-none-any.whl"  # the file `pip install dist/...` names
    _install_into(site, wheel, build=False)
    shell = Shell(project, user_environment(PYTHONPATH=str(site)))
    [listing] = documented("aios plugins list", test)
    assert re.search(r"(?m)^monitor\s+hello\s+aios-hello\s+0\.1\.0\s+ok$", shell.run(listing).stdout)  # its comment
    for key in ("aios plugins doctor", "aios plugins info hello", "aios validate examples/stack.yaml"):
        [command] = documented(key, test)
        shell.run(command)
    [run_stack] = documented("aios run examples/stack.yaml", test)
    run = finished_run(shell.run(run_stack, timeout=RUN_TIMEOUT))
    assert (project / run / "events.log").is_file()
    [show] = documented("aios runs show <run>", test)
    assert "aios-hello" in shell.run(show, substitutions={"<run>": run}).stdout


@pytest.mark.slow
def test_the_worked_example_runs_its_stack_from_its_folder(tmp_path: Path) -> None:
    test = "test_the_worked_example_runs_its_stack_from_its_folder"
    [enter] = documented("cd examples/plugins/aios-nearest-centroid", test)
    clone = fresh_clone(tmp_path / "aios")
    Shell(clone, user_environment()).run(enter)
    folder = clone / enter.key.removeprefix("cd ")
    site = tmp_path / "site"
    _install_into(site, folder, build=True)  # `pip install -e ".[test]"`, into a folder of the test's
    [run_stack] = documented("aios run examples/digits.yaml", test)
    run = finished_run(Shell(folder, user_environment(PYTHONPATH=str(site))).run(run_stack, timeout=RUN_TIMEOUT))
    assert (folder / run / "artifacts" / "model.centroids-npz").is_file()


def test_aios_validate_names_the_data_problems_the_aios_data_readme_shows(tmp_path: Path) -> None:
    test = "test_aios_validate_names_the_data_problems_the_aios_data_readme_shows"
    first, second = documented("aios validate stack.yaml", test)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "animals.csv").write_text("weight,legs,color,labels\n10.5,4,red,cat\n3.2,2,blue,bird\n")
    stack = ("name: animals\n"
             "data:\n"
             "  plugin: files\n"
             "  path: data/animal.csv\n"
             "  target: label\n"
             "model: {framework: torch, architecture: mlp}\n")
    (tmp_path / "stack.yaml").write_text(stack)
    shell = Shell(tmp_path, user_environment())
    shell.run(first, expect=2, substitutions={"/home/me/project": str(tmp_path)})
    (tmp_path / "stack.yaml").write_text(stack.replace("data/animal.csv", "data/animals.csv"))  # "with path: ..."
    shell.run(second, expect=2)


def test_the_registry_build_runs_from_a_clone_and_names_a_broken_entry(tmp_path: Path) -> None:
    """registry.md's commands at the root of a clone, and the problem it shows for an entry missing a component."""
    test = "test_the_registry_build_runs_from_a_clone_and_names_a_broken_entry"
    clone = fresh_clone(tmp_path / "aios")
    shell = Shell(clone, user_environment())
    builds = documented(".venv/bin/python registry-index/build.py", test)
    [check] = documented(".venv/bin/python registry-index/build.py --check", test)
    for command in (*builds, check):
        shell.run(command)
    [add] = documented("git add registry-index/plugins/<name>.toml registry-index/index.json registry-index/catalog.html "
                       "aios_core/index.json", test)
    shell.run("git init --quiet .")
    shell.run(add, substitutions={"<name>": "aios-torch"})
    entry = clone / "registry-index" / "plugins" / "aios-torch.toml"
    entry.write_text(re.sub(r'(?m)^trainer = \["torch"\]\n', "", entry.read_text()))
    [example] = [e for e in error_examples() if e.file == "docs/registry.md"]
    result = shell.run(builds[0], expect=1)
    assert not output_differences(list(example.lines), result.stdout, result.stderr), result.stderr


def test_stack_requirements_prints_the_lines_the_page_shows(tmp_path: Path) -> None:
    [requirements] = documented("aios stack requirements examples/digits-torch.yaml",
                                "test_stack_requirements_prints_the_lines_the_page_shows")
    result = Shell(fresh_clone(tmp_path / "aios"), user_environment()).run(requirements)
    assert result.stdout.splitlines() == list(requirements.output)


@pytest.mark.slow
def test_the_default_stack_runs_as_a_kubeflow_pipeline_from_an_empty_directory(tmp_path: Path) -> None:
    """kubeflow.md: the README's set-up plus one command runs the default stack as a local Kubeflow pipeline."""
    from kfp.components import load_component_from_file

    test = "test_the_default_stack_runs_as_a_kubeflow_pipeline_from_an_empty_directory"
    shell = Shell(tmp_path, user_environment())
    # The page shows this command twice (once with a trailing comment), both times for an empty directory and
    # with no output shown: one run, exactly as first written, answers for both places.
    first, *same = documented("aios pipeline run --local", test)
    assert all((command.key, command.output) == (first.key, first.output) for command in same), same
    result = shell.run(first, timeout=RUN_TIMEOUT)
    [run] = re.findall(r"^kubeflow pipeline of digits-torch succeeded; run directory: (runs/\S+) ", result.stdout,
                       flags=re.MULTILINE)
    state = json.loads((tmp_path / run / "state.json").read_text())
    assert state["status"] == "completed" and state["phases"]["evaluate"]["test_accuracy"] >= 0.97
    [compile_default] = documented("aios pipeline compile -o pipeline.yaml", test)
    shell.run(compile_default)
    assert load_component_from_file(str(tmp_path / "pipeline.yaml")).name == "aios-digits-torch"
    [compile_image] = documented(
        "aios pipeline compile --set orchestrator.image=registry.example.com/aios/digits-torch:1 -o pipeline.yaml", test)
    shell.run(compile_image)
    assert "image: registry.example.com/aios/digits-torch:1" in (tmp_path / "pipeline.yaml").read_text()
    [dockerfile] = documented("aios pipeline dockerfile -o Dockerfile", test)
    shell.run(dockerfile)
    text = (tmp_path / "Dockerfile").read_text()
    assert text.count("FROM python:") == 1 and '"aios-kubeflow @ git+https://github.com/aios-ml/aios' in text
    assert '"aios-torch @ git+https://github.com/aios-ml/aios#subdirectory=plugins/aios-torch"' in text


@pytest.mark.slow
def test_the_phases_of_the_default_stack_run_one_command_at_a_time(tmp_path: Path) -> None:
    test = "test_the_phases_of_the_default_stack_run_one_command_at_a_time"
    shell = Shell(tmp_path, user_environment())
    [first] = documented("aios run --run-dir runs/steps --phases data,train", test)
    shell.run(first, timeout=RUN_TIMEOUT)
    state = json.loads((tmp_path / "runs/steps/state.json").read_text())
    assert (state["status"], list(state["phases"])) == ("partial", ["data", "train"])
    [rest] = documented("aios run --resume runs/steps --phases export,compress,evaluate,deploy", test)
    shell.run(rest, timeout=RUN_TIMEOUT)
    state = json.loads((tmp_path / "runs/steps/state.json").read_text())
    assert state["status"] == "completed" and list(state["phases"]) == [
        "data", "train", "export", "compress", "evaluate", "deploy"]
def test_the_mlflow_walkthrough_runs_from_a_clone(tmp_path: Path) -> None:
    """monitoring.md: the example stack logs to MLflow's local default store, and MLflow's CLI finds the run."""
    test = "test_the_mlflow_walkthrough_runs_from_a_clone"
    [run_command] = documented("aios run examples/digits-mlflow.yaml", test)
    [experiments] = documented("mlflow experiments search", test)
    [runs_list] = documented("mlflow runs list --experiment-id 1", test)
    clone = fresh_clone(tmp_path / "aios")
    shell = Shell(clone, user_environment())
    page_run_id, page_stamp = "f291c6dad1fd4dd9a50df5ac661b0d60", "20261201-182450"
    figures = {page_stamp: "...", page_run_id: "...", "/home/me/aios": "...", "0.8 s wall, 0.7 s CPU, peak RSS 309": "..."}
    run = finished_run(shell.run(run_command, substitutions=figures, timeout=RUN_TIMEOUT))
    pointer = yaml.safe_load((clone / run / "mlflow.json").read_text())  # JSON is YAML
    assert pointer["tracking_uri"] == f"sqlite:///{clone / 'mlflow.db'}" and pointer["model_version"] == 1
    real = {page_stamp: run.split("/")[1][:15], page_run_id: pointer["run_id"], "/home/me/aios": str(clone),
            "2026-12-01 18:24:56 UTC": "..."}
    shell.run(experiments, substitutions=real)
    shell.run(runs_list, substitutions=real)
    # the page's MlflowClient snippet, in the same directory: its printed lines are the comments it shows
    text = (REPO / "docs" / "monitoring.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(from mlflow import MlflowClient\n.*?)```", text, flags=re.DOTALL)
    assert snippet, "docs/monitoring.md: the MlflowClient snippet moved; update this test"
    shown = [line.removeprefix("# ").replace(page_run_id, pointer["run_id"])
             for line in snippet.group(1).splitlines() if line.startswith("# ")]
    printed = subprocess.run([str(BIN / "python"), "-c", snippet.group(1)], cwd=clone, env=user_environment(),
                             capture_output=True, text=True, timeout=SHORT_TIMEOUT, check=True).stdout.splitlines()
    assert printed[0].split()[0] == "FINISHED" and printed[0].endswith("[16, 32]"), printed
    assert printed[1].startswith("[(1, ") and printed[2] == shown[2], (printed, shown)


@pytest.mark.slow
def test_the_large_data_page_streams_from_s3_compatible_storage(tmp_path: Path) -> None:
    import numpy as np
    import pyarrow as pa
    from moto.server import ThreadedMotoServer
    from pyarrow import fs
    from sklearn.datasets import load_digits

    commands = [command for key in ("export AWS_ACCESS_KEY_ID=minio AWS_SECRET_ACCESS_KEY=minio-secret "
                                    "AWS_DEFAULT_REGION=us-east-1", "export AWS_ENDPOINT_URL=http://127.0.0.1:9000",
                                    "aios validate events.yaml", "aios run events.yaml")
                for command in documented(key, _S3_TEST)]
    assert len({command.file for command in commands}) == 1 and [c.line for c in commands] == sorted(
        c.line for c in commands), "the page's commands, in its order"
    (tmp_path / "events.yaml").write_text(block_before(commands[-1], "yaml"))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = fs.S3FileSystem(endpoint_override=f"http://{host}:{port}", allow_bucket_creation=True, region="us-east-1",
                             access_key="minio", secret_key="minio-secret")
        s3.create_dir("tables")
        x, y = load_digits(return_X_y=True)
        table = pa.table({f"p{i}": x[:, i].astype(np.float32) for i in range(x.shape[1])} | {"label": y})
        import pyarrow.parquet as pq

        for part, start in enumerate(range(0, len(y), 600)):
            pq.write_table(table.slice(start, 600), f"tables/events/part-{part}.parquet", filesystem=s3,
                           row_group_size=200)
        session = "set -e\n" + "\n".join(_substitute(c.text, {"127.0.0.1:9000": f"{host}:{port}"}) for c in commands)
        result = Shell(tmp_path, user_environment()).run(session, timeout=RUN_TIMEOUT)
    finally:
        server.stop()
    state = json.loads((tmp_path / finished_run(result) / "state.json").read_text())
    assert state["status"] == "completed"
    assert state["phases"]["data"]["streaming"] and sum(state["phases"]["data"]["sizes"].values()) == len(y)
    assert state["phases"]["data"]["preprocessing"]["streaming"]["files"] == 3
    assert state["phases"]["evaluate"]["test_accuracy"] > 0.8
