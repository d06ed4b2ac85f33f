"""Check the template's answers before anything is generated: one line per problem, then exit 1.

Runs with the interpreter that runs cookiecutter (``aios new plugin``, or plain
``cookiecutter`` where aios-kernel is installed), so the kinds, their entry-point groups
and the canonical-name rule come from ``aios_core.vocabulary``, as for the plugin loader.
"""

from __future__ import annotations

import difflib
import keyword
import re
import sys
from importlib import metadata

try:
    from aios_core import __version__ as KERNEL_VERSION
    from aios_core.vocabulary import CORE_DISTRIBUTION, FORMER_CORE_DISTRIBUTION, KIND_GROUPS, KINDS, canonical_name
except ImportError as error:  # plain cookiecutter in an environment without AIOS
    sys.exit(f"error: the template checks its answers with aios-kernel, which does not import in the Python "
             f"running cookiecutter ({error}); install it there: "
             'pip install "aios-kernel @ git+https://github.com/aios-ml/aios"')
from packaging.specifiers import InvalidSpecifier, SpecifierSet  # a dependency of aios-kernel

# AIOS's own distributions, and aios-core: on PyPI that name is an unrelated project
RESERVED_DISTRIBUTIONS = {CORE_DISTRIBUTION, FORMER_CORE_DISTRIBUTION, "aios-data", "aios-torch", "aios-tf",
                          "aios-onnx-quant", "aios-serve", "aios-ray-train"}
RESERVED_PACKAGES = {"aios_core", "aios_data", "aios_torch", "aios_tf", "aios_onnx_quant", "aios_serve",
                     "aios_ray_train", "tests", "test"}

ANSWERS = {
    "plugin_name": {{ cookiecutter.plugin_name | tojson }},
    "kinds": {{ cookiecutter.kinds | tojson }},
    "distribution": {{ cookiecutter.distribution | tojson }},
    "package": {{ cookiecutter.package | tojson }},
    "summary": {{ cookiecutter.summary | tojson }},
    "author": {{ cookiecutter.author | tojson }},
    "author_email": {{ cookiecutter.author_email | tojson }},
    "license": {{ cookiecutter.license | tojson }},
    "aios_core_range": {{ cookiecutter.aios_core_range | tojson }},
    "repository": {{ cookiecutter.repository | tojson }},
}


def check_plugin_name(name: str) -> list[str]:
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name) or len(name) > 40:
        return [f"plugin_name {name!r} is not a component name: use lowercase letters, digits and single '-' "
                f"between them, starting with a letter, at most 40 characters (e.g. hello, my-monitor)"]
    return []


def check_kinds(raw: str) -> list[str]:
    asked = [part.strip().lower() for part in raw.split(",") if part.strip()]
    if not asked:
        return [f"kinds {raw!r} names no kind; give one or more of: {', '.join(KINDS)} (e.g. kinds=monitor)"]
    problems = []
    for kind in asked:
        if kind not in KINDS:
            close = difflib.get_close_matches(kind, KINDS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"kinds: {kind!r} is not a kind{hint} (kinds: {', '.join(KINDS)})")
    repeated = sorted({kind for kind in asked if asked.count(kind) > 1})
    if repeated:
        problems.append(f"kinds: {', '.join(map(repr, repeated))} named more than once in {raw!r}")
    return problems


def check_distribution(name: str) -> list[str]:
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
        return [f"distribution {name!r} is not a valid distribution name: letters, digits, '-', '_' and '.', "
                f"starting and ending with a letter or digit (e.g. aios-hello)"]
    if name != canonical_name(name):
        return [f"distribution {name!r} is not in normal form; write it as {canonical_name(name)!r}"]
    if name in RESERVED_DISTRIBUTIONS:
        return [f"distribution {name!r} is AIOS's own; choose another name (e.g. aios-{ANSWERS['plugin_name']}-plugin)"]
    return []


def check_package(name: str) -> list[str]:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or keyword.iskeyword(name):
        return [f"package {name!r} is not a lowercase Python package name: letters, digits and '_', "
                f"not starting with a digit, not a keyword (e.g. aios_hello)"]
    if name in RESERVED_PACKAGES or name in sys.stdlib_module_names:
        return [f"package {name!r} would shadow an existing module; choose another (e.g. aios_{name})"]
    return []


def check_range(text: str) -> list[str]:
    try:
        specifier = SpecifierSet(text)
    except InvalidSpecifier:
        return [f"aios_core_range {text!r} is not a version range; write one like '>=0.1,<0.2' (PEP 440)"]
    if not str(specifier):
        return [f"aios_core_range is empty; write the {CORE_DISTRIBUTION} versions the plugin supports, "
                "e.g. '>=0.1,<0.2'"]
    if not specifier.contains(KERNEL_VERSION, prereleases=True):
        major, minor = KERNEL_VERSION.split(".")[:2]
        return [f"aios_core_range {text!r} excludes the installed {CORE_DISTRIBUTION} {KERNEL_VERSION}, so AIOS would "
                f"report the plugin incompatible; include it, e.g. '>={major}.{minor},<{major}.{int(minor) + 1}'"]
    return []


def check_license(text: str) -> list[str]:
    try:
        from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
    except ImportError:
        if re.fullmatch(r"[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*", text):
            return []
    else:
        try:
            if canonicalize_license_expression(text) == text:
                return []
            return [f"license {text!r}: write it as {canonicalize_license_expression(text)!r}"]
        except InvalidLicenseExpression:
            pass
    return [f"license {text!r} is not an SPDX license expression (e.g. Apache-2.0, MIT, BSD-3-Clause)"]


def check_text(answers: dict[str, str]) -> list[str]:
    problems = []
    for key in ("summary", "author"):
        if not answers[key].strip() or "\n" in answers[key]:
            problems.append(f"{key} must be one non-empty line")
    if len(answers["summary"]) > 200:
        problems.append(f"summary has {len(answers['summary'])} characters; the registry allows at most 200")
    email = answers["author_email"]
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        problems.append(f"author_email {email!r} is not an email address (leave it empty to omit it)")
    if not re.fullmatch(r"https://[^\s\"']+", answers["repository"]):
        problems.append(f"repository {answers['repository']!r} is not an https:// URL (the registry requires one)")
    return problems


def check_clashes(name: str, kinds: str, distribution: str) -> list[str]:
    """A component of the same kind and name from another installed distribution would shadow this one."""
    problems = []
    asked = {part.strip().lower() for part in kinds.split(",")}
    if asked & {"framework", "trainer"}:
        asked |= {"framework", "trainer"}
    for dist in metadata.distributions():
        owner = canonical_name(dist.metadata["Name"] or "")
        if owner == distribution:
            continue
        for entry_point in dist.entry_points:
            for kind in sorted(asked & set(KINDS)):
                if entry_point.group == KIND_GROUPS[kind] and entry_point.name == name:
                    problems.append(f"plugin_name {name!r}: the installed {owner} already provides a {kind} "
                                    f"named {name!r}; choose another name")
    return problems


def problems(answers: dict[str, str]) -> list[str]:
    found = check_plugin_name(answers["plugin_name"]) + check_kinds(answers["kinds"])
    found += check_distribution(answers["distribution"]) + check_package(answers["package"])
    found += check_range(answers["aios_core_range"]) + check_license(answers["license"]) + check_text(answers)
    if not found:
        found += check_clashes(answers["plugin_name"], answers["kinds"], answers["distribution"])
    return found


if __name__ == "__main__":
    found = problems(ANSWERS)
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    sys.exit(1 if found else 0)
