{%- set P = cookiecutter.__class_prefix -%}
{%- set kinds = cookiecutter.__kinds.split(',') -%}
{%- macro import_line(module, names) -%}
{%- set line = 'from ' ~ module ~ ' import ' ~ names | join(', ') -%}
{%- if line | length <= 120 %}{{ line }}{% else %}from {{ module }} import (
{%- for name in names %}
    {{ name }},
{%- endfor %}
){% endif -%}
{%- endmacro -%}
{%- set bases = {'framework': 'FrameworkContract', 'datastore': 'DatastoreContract', 'trainer': 'TrainerContract', 'tuner': 'TunerContract', 'compressor': 'CompressorContract', 'deployer': 'DeployerContract', 'monitor': 'MonitorContract', 'orchestrator': 'OrchestratorContract'} -%}
"""AIOS's contract tests for each component of this plugin (the kit in ``aios_core.testing``).

They check what every component of a kind must do: its entry point, parameters, hooks,
a light entry-point module, its aios-kernel range and its behaviour in a run.
"""

from __future__ import annotations

import pytest
{% set names = [] %}{% for kind in kinds %}{% set _ = names.append(bases[kind]) %}{% endfor %}{{ import_line('aios_core.testing', names | sort) }}
{% for kind in kinds %}

class Test{{ P }}{{ kind | capitalize }}({{ bases[kind] }}):
    @pytest.fixture
    def component_name(self) -> str:
        return "{{ cookiecutter.plugin_name }}"
{%- if kind == 'trainer' %}

    @pytest.fixture
    def component_params(self) -> dict:
        return {"epochs": 3}
{%- elif kind == 'tuner' %}

    @pytest.fixture
    def tuner_params(self) -> dict:
        return {"space": {"trainer.learning_rate": [0.01, 0.05, 0.1]}, "trials": 2}
{%- endif %}
{%- endfor %}
