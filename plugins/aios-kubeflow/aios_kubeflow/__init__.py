"""aios-kubeflow: an AIOS stack as a Kubeflow Pipelines (KFP v2) pipeline, one step per phase.

``aios pipeline compile STACK -o pipeline.yaml`` writes it, ``aios pipeline run STACK --local``
runs it with kfp.local, ``--host URL`` submits it, ``aios pipeline dockerfile STACK`` writes
the steps' image. The command is registered in the ``aios.commands`` entry-point group
(``aios_kubeflow.cli:pipeline``); importing this package imports neither kfp nor any ML library.
"""

from __future__ import annotations

__version__ = "0.1.0"
