"""The contract kit checks what stack validation and plugin listing rely on: ``aios_validate`` answers as
``load_stack`` reads it, ``aios_describe_data`` tells the truth, entry-point modules import no heavy library.

As in test_contract_kit.py (contract_kit_support.py), the kit runs in a separate pytest process against installed
distributions built on ``aios-kit-demo`` (whose softmax framework validates and whose
blobs datastore describes its data: test_a_good_component_of_every_kind_passes).
"""

from __future__ import annotations

from pathlib import Path

from contract_kit_support import assert_only_failure, contract_class
from support import make_distribution

pytest_plugins = ["pytester", "contract_kit_support"]  # run_kit

VALIDATING_MONITORS = '''
    from pydantic import Field

    from aios_core import Params, hookimpl
    from aios_kit_demo import BlobsDatastore, LogMonitor


    class FileParams(Params):
        path: str = Field("events.log", min_length=1)


    class ProseMonitor(LogMonitor):
        """Returns its problems as sentences, not (field, message) pairs."""

        Params = FileParams

        @hookimpl
        def aios_validate(self, context):
            return [f"{self.params.path} will be written in the run directory"]


    class CuriousMonitor(LogMonitor):
        """Reads a field a DataDescription does not have."""

        Params = FileParams

        @hookimpl
        def aios_validate(self, context):
            return [("path", f"{name} is not logged") for name in context.data.feature_names]


    class MisplacedMonitor(LogMonitor):
        """Reports a problem at a field its section does not have."""

        Params = FileParams

        @hookimpl
        def aios_validate(self, context):
            if context.data is not None and context.data.num_classes > 3:
                return [("classes", f"found {context.data.num_classes} classes; the log shows at most 3")]
            return []


    class FourClassBlobs(BlobsDatastore):
        """Loads four classes, and still describes the three of its parent."""

        classes = 4
'''


def test_validators_that_answer_unlike_load_stack_reads_them_fail(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-validating", {"aios.monitors": {
        "prose": "aios_kit_validating:ProseMonitor", "curious": "aios_kit_validating:CuriousMonitor",
        "misplaced": "aios_kit_validating:MisplacedMonitor"}}, modules={"aios_kit_validating": VALIDATING_MONITORS})
    result = run_kit("".join(contract_class(f"Test{name.title()}Monitor(MonitorContract)", name)
                             for name in ("prose", "curious", "misplaced")))
    result.assert_outcomes(failed=3, passed=3 * 9)
    result.stdout.fnmatch_lines([
        ("*aios_validate of monitor 'prose' returned 'events.log will be written in the run directory' in its list; "
         "each problem is a (field, message) pair of strings*"),
        "FAILED test_plugin.py::TestProseMonitor::test_validate_returns_field_message_pairs*"])
    result.stdout.fnmatch_lines([
        ("*aios_validate of monitor 'curious' raised on a valid configuration (its component_params); a validator "
         "returns (field, message) pairs for what cannot work and never raises: AttributeError: 'DataDescription' "
         "object has no attribute 'feature_names'"),
        "FAILED test_plugin.py::TestCuriousMonitor::test_validate_returns_field_message_pairs*"])
    result.stdout.fnmatch_lines([
        ("*aios_validate of monitor 'misplaced' reported a problem at field 'classes', which is not one of its "
         "parameters (path, plugin); the field is a dotted path inside the component's own section, so the error "
         "points at the line to fix ('' for the section itself)"),
        "FAILED test_plugin.py::TestMisplacedMonitor::test_validate_returns_field_message_pairs*"])


def test_a_datastore_describing_other_data_than_it_loads_fails(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-validating", {"aios.datastores": {
        "four-blobs": "aios_kit_validating:FourClassBlobs"}}, modules={"aios_kit_validating": VALIDATING_MONITORS})
    result = run_kit(contract_class("TestFourClassBlobs(DatastoreContract)", "four-blobs"))
    assert_only_failure(
        result, "TestFourClassBlobs::test_described_data_is_the_loaded_data",
        ("*aios_describe_data of datastore 'four-blobs' said num_classes=3, but the loaded Dataset has 4. The other "
         "components' aios_validate judge the stack by this description (a cnn needs an image shape), so it must be "
         "what aios_load_dataset returns, or None for what is unknown before loading"),
        passed=9, skipped=1)


def test_a_plugin_importing_sklearn_at_module_top_fails_naming_sklearn(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-tabular", {"aios.monitors": {"tabular": "aios_kit_tabular:TabularMonitor"}},
                      modules={"aios_kit_tabular": '''
                          import sklearn
                          from aios_kit_demo import LogMonitor
                          class TabularMonitor(LogMonitor):
                              def score(self, labels, predictions):
                                  return sklearn.metrics.accuracy_score(labels, predictions)
                      ''',
                               # The check looks at sys.modules only; a stand-in spares a real scikit-learn import.
                               "sklearn": ""})
    result = run_kit(contract_class("TestTabularMonitor(MonitorContract)", "tabular"))
    assert_only_failure(
        result, "TestTabularMonitor::test_entry_point_module_imports_no_heavy_library",
        ("*importing aios_kit_tabular (the entry point of monitor 'tabular': aios_kit_tabular:TabularMonitor) imported "
         "sklearn; move `import sklearn` inside the hook methods that use it*"),
        passed=8, skipped=1)
