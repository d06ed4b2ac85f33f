"""The registry index: every entry is checked, the build is reproducible, the catalog page searches and filters."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support import REPO, bare_installs, first_party_names

INDEX_DIR = REPO / "registry-index"
BUILD = INDEX_DIR / "build.py"
CHROMIUM = Path("/usr/bin/chromium")
FIRST_PARTY = {"aios-kernel", "aios-data", "aios-torch", "aios-onnx-quant"}
SHA = "0123456789abcdef" * 4


def run_build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BUILD), *args], cwd=REPO, capture_output=True, text=True, timeout=120)


# --- fixture indexes ------------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, dict):  # an inline table
        return "{" + ", ".join(f"{key} = {_toml_value(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)  # a JSON string or list of strings is also a TOML one


def toml_entry(entry: dict[str, Any]) -> str:
    lines = [f"{key} = {_toml_value(value)}" for key, value in entry.items() if key not in ("components", "releases")]
    if "components" in entry:
        lines += ["", "[components]"]
        lines += [f"{kind} = {_toml_value(names)}" for kind, names in entry["components"].items()]
    for release in entry.get("releases", []):
        lines += ["", "[[releases]]"] + [f"{key} = {_toml_value(value)}" for key, value in release.items()]
    return "\n".join(lines) + "\n"


def community(name: str, components: dict[str, list[str]], **fields: Any) -> dict[str, Any]:
    """A valid community entry; ``fields`` override or add to it."""
    entry = {"name": name, "distribution": name, "summary": f"{name} for the tests",
             "repository": f"https://example.org/{name}", "license": "MIT", "maintainers": ["Test Maintainer"],
             "tags": ["testing"], "status": "active", "tier": "community", "aios_core": ">=0.1,<0.2",
             "components": components}
    entry.update(fields)
    return entry


FAKE_PYPROJECT = """\
[project]
name = "aios-fake"
version = "0.3.0"
license = "MIT"
dependencies = ["aios-kernel>=0.1,<0.2", "numpy"]

[project.entry-points."aios.trainers"]
fake = "aios_fake:FakeTrainer"

[project.entry-points."aios.tuners"]
grid = "aios_fake:GridTuner"
"""


FAKE_SOURCE = {"repository": "https://example.org/aios", "subdirectory": "plugins/aios-fake"}


def base_entries() -> dict[str, dict[str, Any]]:
    """File stem -> entry: a first-party plugin (built in the fixture repo) and a community one."""
    return {
        "aios-fake": community("aios-fake", {"trainer": ["fake"], "tuner": ["grid"]}, tier="first-party",
                               summary="Fake trainer and grid tuner", tags=["pytorch"], source=FAKE_SOURCE),
        "aios-thing": community("aios-thing", {"deployer": ["thing"]}),
    }


def write_index(tmp_path: Path, entries: dict[str, dict[str, Any] | str]) -> tuple[Path, Path]:
    """An index folder and a repository with plugins/aios-fake; returns (root, repo)."""
    root, repo = tmp_path / "index", tmp_path / "repo"
    (root / "plugins").mkdir(parents=True)
    (repo / "plugins" / "aios-fake").mkdir(parents=True)
    (repo / "plugins" / "aios-fake" / "pyproject.toml").write_text(FAKE_PYPROJECT)
    for stem, entry in entries.items():
        text = entry if isinstance(entry, str) else toml_entry(entry)
        (root / "plugins" / f"{stem}.toml").write_text(text)
    return root, repo


def build_fixture(root: Path, repo: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_build("--root", str(root), "--repo", str(repo), "--snapshot", str(root.parent / "snapshot.json"), *extra)


# --- the real index -------------------------------------------------------------------------------

def test_the_real_index_is_valid_and_its_outputs_are_up_to_date() -> None:
    result = run_build("--check")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_every_first_party_distribution_is_listed_as_first_party() -> None:
    plugins = {plugin["name"]: plugin for plugin in json.loads((INDEX_DIR / "index.json").read_text())["plugins"]}
    built_here = {path.parent.name for path in (REPO / "plugins").glob("*/pyproject.toml")} | {"aios-kernel"}
    assert FIRST_PARTY <= built_here
    assert {name for name, plugin in plugins.items() if plugin["tier"] == "first-party"} == built_here
    assert plugins["aios-kernel"]["components"] == {"monitor": ["console", "jsonl"]}


def test_every_first_party_entry_records_its_folder_of_the_kernels_repository_as_source() -> None:
    plugins = {plugin["name"]: plugin for plugin in json.loads((INDEX_DIR / "index.json").read_text())["plugins"]}
    repository = plugins["aios-kernel"]["repository"]
    assert plugins["aios-kernel"]["source"] == {"repository": repository}
    for name, plugin in plugins.items():
        if plugin["tier"] == "first-party" and name != "aios-kernel":
            assert plugin["source"] == {"repository": repository, "subdirectory": f"plugins/{name}"}
            assert (REPO / "plugins" / name / "pyproject.toml").is_file()


def test_no_page_or_catalog_card_installs_a_first_party_name_without_its_source() -> None:
    names = first_party_names()
    assert {"aios-kernel", "aios-torch", "aios-core"} <= names
    pages = {path: path.read_text() for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]}
    pages[INDEX_DIR / "catalog.html"] = html.unescape((INDEX_DIR / "catalog.html").read_text())
    # A quoted stack error is output, not an instruction; its install hint is checked where it is made.
    found = {str(path.relative_to(REPO)): bare_installs(re.sub(r"(?m)^error: .*$", "", text), names)
             for path, text in pages.items()}
    assert {path: commands for path, commands in found.items() if commands} == {}
    catalog = pages[INDEX_DIR / "catalog.html"]
    assert 'pip install "aios-kernel @ git+https://github.com/aios-ml/aios"' in catalog
    assert 'pip install "aios-torch @ git+https://github.com/aios-ml/aios#subdirectory=plugins/aios-torch"' in catalog
    readme = pages[REPO / "README.md"]
    assert 'pip install "aios-kernel @ git+https://github.com/aios-ml/aios"' in readme and "pip install -e ." in readme


def test_the_kernel_reads_the_bundled_snapshot_the_build_wrote() -> None:
    from aios_core.catalog import BUNDLED_INDEX, read_index

    assert BUNDLED_INDEX.read_bytes() == (INDEX_DIR / "index.json").read_bytes()
    index = read_index(str(BUNDLED_INDEX))
    assert [plugin.distribution for plugin in index.providing("trainer", "torch")] == ["aios-torch"]
    assert [plugin.distribution for plugin in index.providing("compressor", "onnx-quant")] == ["aios-onnx-quant"]


def test_the_schema_is_draft_2020_12_and_its_kinds_are_the_kernels() -> None:
    import jsonschema

    from aios_core import KINDS
    from aios_core.plugins import KIND_GROUPS

    schema = json.loads((INDEX_DIR / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    kinds = schema["properties"]["components"]["propertyNames"]["enum"]
    assert tuple(kinds) == tuple(KINDS)
    assert {kind: f"aios.{kind}s" for kind in kinds} == KIND_GROUPS


# --- the build on fixture indexes -----------------------------------------------------------------

def test_the_build_writes_the_same_bytes_every_time_and_the_snapshot_is_the_index(tmp_path: Path) -> None:
    entries = base_entries() | {"aios-edge": community("aios-edge", {"deployer": ["edge"]}, tier="reviewed",
                                                       releases=[{"version": "1.2.0", "sha256": SHA}])}
    root, repo = write_index(tmp_path, entries)
    assert build_fixture(root, repo).returncode == 0
    first = {name: (root / name).read_bytes() for name in ("index.json", "catalog.html")}
    assert build_fixture(root, repo).returncode == 0
    assert {name: (root / name).read_bytes() for name in first} == first
    assert (tmp_path / "snapshot.json").read_bytes() == first["index.json"]
    document = json.loads(first["index.json"])
    assert document["schema_version"] == 1 and "generated" not in document
    assert [plugin["name"] for plugin in document["plugins"]] == ["aios-edge", "aios-fake", "aios-thing"]
    edge = document["plugins"][0]
    assert list(edge)[:2] == ["name", "distribution"]
    assert edge["components"] == {"deployer": ["edge"]}
    assert edge["releases"] == [{"version": "1.2.0", "sha256": SHA}]


def test_check_fails_and_names_the_file_when_an_entry_changed_after_the_build(tmp_path: Path) -> None:
    root, repo = write_index(tmp_path, base_entries())
    assert build_fixture(root, repo).returncode == 0
    built = (root / "index.json").read_bytes()
    (root / "plugins" / "aios-thing.toml").write_text(toml_entry(community("aios-thing", {"deployer": ["thing"]},
                                                                           summary="A new summary")))
    result = build_fixture(root, repo, "--check")
    assert result.returncode == 1
    assert f"{root / 'index.json'}: out of date" in result.stderr
    assert "rebuild with: python registry-index/build.py --root" in result.stderr
    assert (root / "index.json").read_bytes() == built


def test_a_fixture_build_never_writes_the_repositorys_snapshot_unless_asked(tmp_path: Path) -> None:
    root, repo = write_index(tmp_path, base_entries())
    result = run_build("--root", str(root), "--repo", str(repo))
    assert result.returncode == 0, result.stderr
    assert (root / "index.json").is_file() and not (repo / "aios_core").exists()


Mutation = Callable[[dict[str, Any]], None]


def _set(stem: str, **fields: Any) -> Mutation:
    return lambda entries: entries[stem].update(fields)


def _drop(stem: str, field: str) -> Mutation:
    return lambda entries: entries[stem].pop(field)


def _rename(stem: str, new_stem: str, **fields: Any) -> Mutation:
    def mutate(entries: dict[str, Any]) -> None:
        entries[new_stem] = entries.pop(stem) | fields
    return mutate


def _add(stem: str, entry: dict[str, Any] | str) -> Mutation:
    return lambda entries: entries.update({stem: entry})


RULES: dict[str, tuple[Mutation, str]] = {
    "name is canonical": (_rename("aios-thing", "Aios_Thing", name="Aios_Thing"),
                          "Aios_Thing.toml: name: found 'Aios_Thing'; expected a canonical PEP 503 name"),
    "name is the file stem": (_set("aios-thing", name="aios-other"),
                              "aios-thing.toml: name: found 'aios-other', but the file is aios-thing.toml"),
    "distribution canonicalizes to the name": (
        _set("aios-thing", distribution="aios_other"),
        "aios-thing.toml: distribution: found 'aios_other', which canonicalizes to 'aios-other'"),
    "component names are unique per kind": (
        _set("aios-thing", components={"trainer": ["Fake"]}),
        "aios-thing.toml: components.trainer: 'Fake' is already a trainer of aios-fake (as 'fake'"),
    "aios_core is a specifier set": (_set("aios-thing", aios_core="^0.1"),
                                     "aios-thing.toml: aios_core: found '^0.1'; expected a PEP 440 specifier set"),
    "first-party lists every declared entry point": (
        _set("aios-fake", components={"trainer": ["fake"]}),
        "aios-fake.toml: components.tuner: missing 'grid', which "),
    "first-party lists only declared entry points": (
        _set("aios-fake", components={"trainer": ["fake"], "tuner": ["grid"], "deployer": ["ghost"]}),
        "aios-fake.toml: components.deployer: lists 'ghost', but "),
    "first-party is built in the repository": (
        _set("aios-thing", tier="first-party"),
        "aios-thing.toml: tier: found 'first-party', but no pyproject.toml of this repository"),
    "every first-party distribution has an entry": (
        lambda entries: entries.pop("aios-fake"),
        "aios-fake is built in this repository but has no registry entry; add registry-index/plugins/aios-fake.toml"),
    "a distribution built here is first-party": (
        _set("aios-fake", tier="community"), "aios-fake.toml: tier: found 'community'; expected 'first-party'"),
    "first-party range is the declared dependency": (
        _set("aios-fake", aios_core=">=0.1,<0.3"),
        "aios-fake.toml: aios_core: found '>=0.1,<0.3'; expected the range of the dependency 'aios-kernel>=0.1,<0.2'"),
    "first-party license is the declared one": (
        _set("aios-fake", license="Apache-2.0"), "aios-fake.toml: license: found 'Apache-2.0'; expected 'MIT'"),
    "withdrawn needs a reason": (_set("aios-thing", status="withdrawn"),
                                 "aios-thing.toml: withdrawn_reason: a withdrawn entry says why in withdrawn_reason"),
    "only non-active entries are deprecated_by": (
        _set("aios-thing", deprecated_by="aios-fake"),
        "aios-thing.toml: deprecated_by: only a deprecated or withdrawn entry has deprecated_by"),
    "deprecated_by names another entry": (
        _set("aios-thing", status="deprecated", deprecated_by="aios-nothing"),
        "aios-thing.toml: deprecated_by: found 'aios-nothing'; expected the name of another entry of this index"),
    "kinds are the kernel's": (_set("aios-thing", components={"trainers": ["thing"]}),
                               "aios-thing.toml: components: found 'trainers'; expected a kind: framework"),
    "status is known": (_set("aios-thing", status="retired"),
                        "aios-thing.toml: status: found 'retired'; expected one of: active, deprecated, withdrawn"),
    "tier is known": (_set("aios-thing", tier="official"),
                      "aios-thing.toml: tier: found 'official'; expected one of: first-party, reviewed, community"),
    "fields are known": (_set("aios-thing", summry="typo"),
                         "aios-thing.toml: summry: unknown field; did you mean 'summary'?"),
    "fields are required": (_drop("aios-thing", "license"), "aios-thing.toml: license: missing"),
    "reviewed entries list a release": (
        _set("aios-thing", tier="reviewed"),
        "aios-thing.toml: releases: a reviewed entry lists at least one reviewed release"),
    "sha256 is 64 hex digits": (
        _set("aios-thing", tier="reviewed", releases=[{"version": "1.0", "sha256": "ABC"}]),
        "aios-thing.toml: releases[0].sha256: found 'ABC'; expected the SHA-256 of the reviewed wheel"),
    "release versions are PEP 440": (
        _set("aios-thing", releases=[{"version": "one", "sha256": SHA}]),
        "aios-thing.toml: releases[0].version: found 'one'; expected a PEP 440 version"),
    "a release is listed once": (
        _set("aios-thing", releases=[{"version": "1.0", "sha256": SHA}, {"version": "1.0.0", "sha256": SHA}]),
        "aios-thing.toml: releases[1].version: '1.0.0' is also releases[0]"),
    "a release's wheel is of the entry and version": (
        _set("aios-thing", releases=[{"version": "1.0", "sha256": SHA, "wheel": "aios_other-1.0-py3-none-any.whl"}]),
        "aios-thing.toml: releases[0].wheel: found 'aios_other-1.0-py3-none-any.whl', a wheel of aios-other 1.0; "
        "expected a wheel of aios-thing 1.0"),
    "repository is an https URL": (
        _set("aios-thing", repository="git@example.org:thing.git"),
        "aios-thing.toml: repository: found 'git@example.org:thing.git'; expected an https://"),
    "first-party records its source": (
        _drop("aios-fake", "source"),
        "aios-fake.toml: source: missing; a first-party entry records where it is built, so that it is installed "
        "from there and never by name while it has no published release: source = {repository = "
        "\"https://<the git repository of this one>\", subdirectory = \"plugins/aios-fake\"}"),
    "a first-party source is the folder it is built in": (
        _set("aios-fake", source={"repository": "https://example.org/aios", "subdirectory": "plugins/fake"}),
        "aios-fake.toml: source.subdirectory: found 'plugins/fake'; expected 'plugins/aios-fake', the folder of "),
    "a source is an https git repository": (
        _set("aios-thing", source={"repository": "https://example.org/thing.git#main"}),
        "aios-thing.toml: source.repository: found 'https://example.org/thing.git#main'; expected an https:// URL "
        "of a git repository"),
    "a source's folder is relative": (
        _set("aios-thing", source={"repository": "https://example.org/thing", "subdirectory": "../elsewhere"}),
        "aios-thing.toml: source.subdirectory: found '../elsewhere'; expected a relative folder"),
    "source fields are known": (
        _set("aios-thing", source={"repository": "https://example.org/thing", "ref": "v1"}),
        "aios-thing.toml: source.ref: unknown field; known fields: repository, subdirectory"),
    "entries are TOML": (_add("aios-broken", 'name = "aios-broken'), "aios-broken.toml: not valid TOML: "),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_rejects_a_broken_entry_with_one_line_naming_file_and_field(tmp_path: Path, rule: str) -> None:
    mutate, expected = RULES[rule]
    entries: dict[str, Any] = base_entries()
    mutate(entries)
    root, repo = write_index(tmp_path, entries)
    result = build_fixture(root, repo)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert any(expected in line for line in lines), result.stderr
    assert lines[-1].endswith("in the registry index; nothing written")
    assert not (root / "index.json").exists() and not (tmp_path / "snapshot.json").exists()


def test_the_base_fixture_itself_is_valid(tmp_path: Path) -> None:
    root, repo = write_index(tmp_path, base_entries())
    result = build_fixture(root, repo)
    assert result.returncode == 0, result.stderr


def test_a_file_that_is_not_toml_is_reported(tmp_path: Path) -> None:
    root, repo = write_index(tmp_path, base_entries())
    (root / "plugins" / "aios-thing.yaml").write_text("name: aios-thing\n")
    result = build_fixture(root, repo)
    assert result.returncode == 1
    assert f"{root / 'plugins' / 'aios-thing.yaml'}: not an entry; entries are files named <name>.toml" in result.stderr


# --- the catalog page -----------------------------------------------------------------------------

EDGE_SUMMARY = "Serves models on <edge> devices & gateways </script>"


def catalog_entries() -> dict[str, dict[str, Any]]:
    return base_entries() | {
        "aios-edge": community("aios-edge", {"deployer": ["edge"]}, tier="reviewed", summary=EDGE_SUMMARY,
                               releases=[{"version": "1.0.0", "sha256": "f" * 64},
                                         {"version": "1.2.0", "sha256": SHA}]),
        "aios-sweeps": community("aios-sweeps", {"tuner": ["random-search"]}, tags=["hyperparameters"]),
        "aios-old-csv": community("aios-old-csv", {"datastore": ["old-csv"]}, status="deprecated",
                                  deprecated_by="aios-thing"),
        "aios-beacon": community("aios-beacon", {"monitor": ["beacon"]}, status="withdrawn",
                                 withdrawn_reason="it sent run metrics to a third-party server"),
    }


def test_a_card_without_releases_installs_from_the_source_and_a_reviewed_one_by_hash(tmp_path: Path) -> None:
    entries = catalog_entries()
    entries["aios-sweeps"]["source"] = {"repository": "https://example.org/sweeps"}
    root, repo = write_index(tmp_path, entries)
    assert build_fixture(root, repo).returncode == 0
    page = html.unescape((root / "catalog.html").read_text())
    cards = re.findall(r'<article class="card" id="plugin-([a-z-]+)"(.*?)</article>', page, re.S)
    installs = {name: re.findall(r'<p class="install"><code>([^<]*)</code>', card) for name, card in cards}
    assert installs.pop("aios-beacon") == []  # withdrawn
    installs = {name: lines[0] for name, lines in installs.items()}
    assert installs["aios-fake"] == ('pip install "aios-fake @ git+https://example.org/aios'
                                     '#subdirectory=plugins/aios-fake"')
    assert installs["aios-sweeps"] == 'pip install "aios-sweeps @ git+https://example.org/sweeps"'
    assert installs["aios-edge"] == "pip install aios-edge==1.2.0"  # with its hash-checked line below
    assert installs["aios-thing"] == "pip install aios-thing"  # a community plugin that names no source


def test_the_catalog_page_loads_nothing_from_outside(tmp_path: Path) -> None:
    root, repo = write_index(tmp_path, catalog_entries())
    assert build_fixture(root, repo).returncode == 0
    page = (root / "catalog.html").read_text()
    for external in (" src=", "<link", "url(", "@import", "<iframe"):
        assert external not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert EDGE_SUMMARY not in page  # escaped in the card and in the embedded JSON
    assert page.count('<article class="card"') == 6


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


def test_the_catalog_page_searches_and_filters_in_headless_chromium(tmp_path: Path, browser: Any) -> None:
    from playwright.sync_api import expect

    root, repo = write_index(tmp_path, catalog_entries())
    assert build_fixture(root, repo).returncode == 0
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((root / "catalog.html").as_uri())

    def shown() -> list[str]:
        return page.locator(".card:visible h2").all_inner_texts()

    count = page.locator("#count")
    assert count.inner_text() == "6 plugins"
    assert shown() == ["aios-beacon", "aios-edge", "aios-fake", "aios-old-csv", "aios-sweeps", "aios-thing"]

    search = page.get_by_role("searchbox", name="Search")
    search.fill("grid")  # a component name
    assert shown() == ["aios-fake"] and count.inner_text() == "1 plugin"
    search.fill("hyperparameters")  # a tag
    assert shown() == ["aios-sweeps"]
    search.fill("EDGE gateways")  # every word, any case, in the summary
    assert shown() == ["aios-edge"]
    edge = page.locator("#plugin-aios-edge")
    assert edge.locator(".summary").inner_text() == EDGE_SUMMARY
    assert edge.locator(".install").inner_text() == "pip install aios-edge==1.2.0"
    search.fill("no-such-plugin")
    assert shown() == [] and count.inner_text() == "0 plugins"
    assert page.locator("#no-match").is_visible()

    search.fill("")
    page.get_by_label("Kind", exact=True).select_option("tuner")
    assert shown() == ["aios-fake", "aios-sweeps"] and count.inner_text() == "2 plugins"
    page.get_by_label("Tier", exact=True).select_option("community")
    assert shown() == ["aios-sweeps"]
    page.get_by_role("button", name="Clear").click()
    expect(count).to_have_text("6 plugins")  # the page's CSP forbids eval, so no wait_for_function

    page.get_by_label("Status", exact=True).select_option("withdrawn")
    assert shown() == ["aios-beacon"]
    beacon = page.locator("#plugin-aios-beacon")
    assert "it sent run metrics to a third-party server" in beacon.locator(".note").inner_text()
    assert beacon.locator(".install").count() == 0
    page.get_by_label("Status", exact=True).select_option("deprecated")
    assert shown() == ["aios-old-csv"]
    assert page.locator("#plugin-aios-old-csv .note a").get_attribute("href") == "#plugin-aios-thing"

    page.get_by_label("Status", exact=True).select_option("")
    screenshot = tmp_path / "catalog.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert errors == []  # no script error and no Content-Security-Policy violation
