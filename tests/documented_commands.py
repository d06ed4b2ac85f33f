"""The shell commands the README, docs/ and the plugins' READMEs show, as a user would copy them.

``documented_commands()`` reads every fenced code block and returns each command with its
file and line, the text as written (continuation lines included) and, in a console block,
the output lines the page shows after it. ``output_differences`` compares shown output with
real output, allowing for the parts that differ from run to run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the environment's bin, as `source .venv/bin/activate` puts it on PATH
RUN_TIMEOUT = 900                  # a training run on a busy 2-core machine

SHELL_LANGUAGES = {"bash", "sh", "console", "shell", "shell-session"}
# An unlabeled (or ``text``) block is a shell block when its lines start like a command.
COMMAND_STARTS = ("aios ", "$ ", ".venv/bin/", "curl ", "pip ", "python ", "python3 ", "pytest", "bash ", "cd ",
                  "git ", "hatch ", "cookiecutter ", "docker ", "kubectl ", "ray ")

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,})(?P<lang>[\w+-]*)\s*$")


@dataclass(frozen=True)
class DocCommand:
    """One command of a page: where it is, what it says, and the output the page shows after it."""

    file: str                     # relative to the repository, e.g. "docs/serving.md"
    line: int                     # 1-based line of the command's first line
    text: str                     # as written, continuation lines joined with newlines, no "$ "
    output: tuple[str, ...] = ()  # console blocks: the lines shown after the command
    block: tuple[str, ...] = field(default=(), compare=False)  # the whole block, for context

    @property
    def key(self) -> str:
        """The command without its trailing comment, whitespace collapsed: how the decision table names it."""
        return normalise_command(self.text)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def normalise_command(text: str) -> str:
    joined = re.sub(r"\\\n", " ", text)
    return " ".join(_strip_comment(joined).split())


def _strip_comment(text: str) -> str:
    """``text`` without a trailing ``# comment`` (a ``#`` outside quotes that starts a word)."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text


def _complete(text: str) -> bool:
    """Whether ``text`` is a whole command: no trailing backslash, no unclosed quote."""
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(_strip_comment(text))
    except ValueError:
        return False
    return True


def documented_pages(repo: Path = REPO) -> list[Path]:
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md")), *sorted((repo / "plugins").glob("*/README.md"))]


def code_blocks(path: Path) -> list[tuple[int, str, list[str]]]:
    """Each fenced block of ``path``: (line of its first content line, language, its lines, dedented)."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body, j = [], i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip("`") == ""):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        blocks.append((i + 2, opening["lang"].lower(), body))
        i = j + 1
    return blocks


def is_shell_block(language: str, body: list[str]) -> bool:
    if language in SHELL_LANGUAGES:
        return True
    if language in ("", "text"):
        starts = [line.lstrip() for line in body if line.strip()]
        if language == "text":  # a text block holds commands only when it shows a prompt
            return any(line.startswith("$ ") for line in starts)
        return any(line.startswith(COMMAND_STARTS) for line in starts)
    return False


def commands_in_block(file: str, first_line: int, language: str, body: list[str]) -> list[DocCommand]:
    """The commands of one shell block.

    With a ``$ `` prompt anywhere in the block (console style), only prompted lines are commands
    and the other lines are their output; otherwise every line is a command. A command goes on
    over lines ending in ``\\`` and over a quote left open; lines that are only a comment are skipped.
    """
    console = language == "console" or any(line.startswith("$ ") for line in body)
    found: list[DocCommand] = []
    i = 0
    while i < len(body):
        line = body[i]
        if console and not line.startswith("$ ") or not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        start, text = i, line[2:] if console else line
        while not _complete(text) and i + 1 < len(body):
            i += 1
            text += "\n" + body[i]
        i += 1
        output: list[str] = []
        if console:
            while i < len(body) and not body[i].startswith("$ "):
                output.append(body[i])
                i += 1
        found.append(DocCommand(file, first_line + start, text, tuple(line for line in output if line.strip()),
                                tuple(body)))
    return found


def documented_commands(repo: Path = REPO) -> list[DocCommand]:
    found = []
    for page in documented_pages(repo):
        relative = str(page.relative_to(repo))
        for first_line, language, body in code_blocks(page):
            if is_shell_block(language, body):
                found += commands_in_block(relative, first_line, language, body)
    return found


_ERROR_LINE = re.compile(r"^(error: |[A-Za-z_][\w./-]*(:\d+)?: )")


@dataclass(frozen=True)
class ErrorExample:
    """A text block that shows error output on its own (no command in it)."""

    file: str
    line: int
    lines: tuple[str, ...]

    @property
    def key(self) -> str:
        return " ".join(self.lines[0].split())

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def error_examples(repo: Path = REPO) -> list[ErrorExample]:
    """Every text or unlabeled block, not a shell block, whose lines start like an error message."""
    found = []
    for page in documented_pages(repo):
        for first_line, language, body in code_blocks(page):
            lines = tuple(line for line in body if line.strip())
            if (language in ("", "text") and not is_shell_block(language, body)
                    and any(_ERROR_LINE.match(line) for line in lines)):
                found.append(ErrorExample(str(page.relative_to(repo)), first_line, lines))
    return found


def block_before(command: DocCommand, language: str, repo: Path = REPO) -> str:
    """The text of the last ``language`` block above ``command`` on its page (the file a command uses)."""
    blocks = [body for first_line, lang, body in code_blocks(repo / command.file)
              if lang == language and first_line < command.line]
    assert blocks, f"{command.where}: no {language} block above {command.text!r}"
    return "\n".join(blocks[-1]) + "\n"


# --- comparing the output a page shows with real output -----------------------------------------

ELISION = "\u2026"  # what "..." in a page's JSON becomes: "and more"


def shown_json(text: str) -> object | None:
    """The JSON a page shows, with ``[...]`` and ``, ...]`` turned into a trailing marker; None if it is not JSON."""
    text = re.sub(r"\[\s*\.\.\.\s*\]", f'["{ELISION}"]', text)
    text = re.sub(r",\s*\.\.\.\s*\]", f',"{ELISION}"]', text)
    try:
        return json.loads(text)
    except ValueError:
        return None


def json_differences(shown: object, real: object, path: str = "$") -> list[str]:
    """How ``real`` departs from the JSON a page shows.

    Every key shown must be there with a matching value (keys not shown may be added); a list
    ending in the elision marker matches any list that starts with the items shown; a decimal
    number matches any number (probabilities and statistics change with training), integers and
    strings must be equal.
    """
    if isinstance(shown, dict):
        if not isinstance(real, dict):
            return [f"{path}: found {real!r}, expected an object"]
        problems = [f"{path}.{key}: missing" for key in shown if key not in real]
        return problems + [p for key in shown if key in real for p in json_differences(shown[key], real[key], f"{path}.{key}")]
    if isinstance(shown, list):
        elided = bool(shown) and shown[-1] == ELISION
        items = shown[:-1] if elided else shown
        if not isinstance(real, list) or len(real) < len(items) or (not elided and len(real) != len(items)):
            return [f"{path}: found {real!r}, expected {'at least ' if elided else ''}{len(items)} item(s)"]
        return [p for i, item in enumerate(items) for p in json_differences(item, real[i], f"{path}[{i}]")]
    if isinstance(shown, float):
        ok = isinstance(real, (int, float)) and not isinstance(real, bool)
        return [] if ok else [f"{path}: found {real!r}, expected a number"]
    if isinstance(shown, str) and "..." in shown:
        pattern = ".*".join(map(re.escape, shown.split("...")))
        return [] if isinstance(real, str) and re.fullmatch(pattern, real) else [f"{path}: found {real!r}, expected {shown!r}"]
    return [] if shown == real and type(shown) is type(real) else [f"{path}: found {real!r}, expected {shown!r}"]


def line_matches(shown: str, real_lines: list[str]) -> bool:
    """Whether one of ``real_lines`` is ``shown`` up to spacing, ``...`` standing for anything."""
    pattern = re.compile(".*?".join(re.escape(" ".join(part.split())) for part in shown.split("...")))
    return any(pattern.fullmatch(" ".join(line.split())) for line in real_lines)


def output_differences(shown_lines: tuple[str, ...] | list[str], stdout: str, stderr: str = "") -> list[str]:
    """How a command's output departs from what a page shows after it.

    JSON is compared with ``stdout`` as JSON (``json_differences``); other output line by line
    with both streams, since the pages show error lines and results alike.
    """
    shown = "\n".join(shown_lines)
    expected = shown_json(shown)
    if expected is not None:
        try:
            found = json.loads(stdout)
        except ValueError:
            return [f"found {stdout[:300]!r}, expected JSON like {shown[:300]!r}"]
        return json_differences(expected, found)
    lines = (stdout + "\n" + stderr).splitlines()
    return [f"missing line {line!r}" for line in shown_lines if not line_matches(line, lines)]


# --- running commands as a user does, in a fresh copy of the clone --------------------------------

def user_environment(**extra: str) -> dict[str, str]:
    """The environment of a user with the venv activated: no AIOS_* settings, so runs go to ./runs."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("AIOS_") and key not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    env.update(extra)
    return env


def fresh_clone(directory: Path) -> Path:
    """A copy of the clone's files (``git ls-files``: tracked and new, from the working tree) with ``.venv`` linked."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    directory.mkdir(parents=True)
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a tracked file another engineer deleted is not in a clone of the working tree
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, directory / name)
    (directory / ".venv").symlink_to(BIN.parent)
    return directory


def finished_run(result: subprocess.CompletedProcess[str]) -> str:
    """The run directory ``aios run`` printed (``completed runs/...``), as the user reads it."""
    found = re.findall(r"^completed (runs/\S+)$", result.stdout, flags=re.MULTILINE)
    assert len(found) == 1, result.stdout[-2000:]
    return found[0]


@dataclass(frozen=True)
class CloneRun:
    """A command run once with bash at the root of a fresh clone copy, as a user runs it; several tests read it."""

    command: str
    clone: Path
    result: subprocess.CompletedProcess[str]

    @property
    def run(self) -> Path:
        """The run directory the command printed, absolute."""
        return self.clone / finished_run(self.result)


def run_in_a_fresh_clone(directory: Path, command: str) -> CloneRun:
    """``command`` (a training run) at the root of a fresh clone copy made in ``directory``, checked to exit 0."""
    clone = fresh_clone(directory)
    result = subprocess.run(["bash", "--noprofile", "--norc", "-c", command], check=False, cwd=clone,
                            env=user_environment(), capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, (f"{command!r} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n"
                                    f"--- stderr\n{result.stderr[-4000:]}")
    return CloneRun(command, clone, result)
