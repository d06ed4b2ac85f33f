"""The Dockerfile of the pipeline's steps: Python, the stack's plugin set (``aios stack requirements``) and
aios-kubeflow. Building and pushing it is the user's step; nothing here runs Docker."""

from __future__ import annotations

from typing import Any

__all__ = ["DISTRIBUTION", "dockerfile"]

DISTRIBUTION = "aios-kubeflow"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _own_requirement(index: Any) -> str:
    plugin = index.find(DISTRIBUTION)
    if plugin is not None and plugin.from_source:
        return plugin.source_requirement
    release = plugin.newest_release() if plugin is not None else None
    return f"{DISTRIBUTION}>={release.version}" if release else DISTRIBUTION


def dockerfile(stack_file: str, index: Any, image: str, python: str = "3.11") -> tuple[str, list[str]]:
    """The Dockerfile text for ``stack_file``'s steps, and the notes ``stack_requirements`` made.

    StackError (from ``aios_core.installer.stack_requirements``) when a component of the
    stack is neither installed nor in ``index``.
    """
    from aios_core.installer import stack_requirements

    lines, notes = stack_requirements(stack_file, index)
    requirements = [*lines, _own_requirement(index)]
    quoted = " \\\n      ".join(f'"{line}"' for line in requirements)
    text = f"""\
# The image of every step of the Kubeflow pipeline of {stack_file}
# (written by: aios pipeline dockerfile {stack_file}). Build and push it, then compile with it:
#   docker build -t {image} . && docker push {image}
#   aios pipeline compile {stack_file} --image {image} -o pipeline.yaml
# Torch comes from its CPU index; for a stack that trains on GPUs build with
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126
FROM python:{python}-slim
ARG TORCH_INDEX={TORCH_CPU_INDEX}
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# git: the first-party distributions install from the repository's source
RUN apt-get update && apt-get install -y --no-install-recommends git \\
    && rm -rf /var/lib/apt/lists/*
RUN pip install --extra-index-url "$TORCH_INDEX" \\
      {quoted}
# kfp's lightweight components run "python3 -m kfp.dsl.executor_main" with the step's code: kfp is
# installed (aios-kubeflow depends on it) and the steps run as this image's python3.
WORKDIR /tmp
"""
    return text, notes
