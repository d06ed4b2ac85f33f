"""The contract kit (aios_core.testing): ``aios pipeline`` is a command as the kernel's CLI loads them."""

from __future__ import annotations

import pytest

from aios_core.testing import CommandContract


class TestPipelineCommand(CommandContract):
    command_libraries = ("kfp", "kubernetes", "google.protobuf")

    @pytest.fixture
    def command_name(self) -> str:
        return "pipeline"
