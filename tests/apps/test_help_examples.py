"""Every `kcv ...` example, in each command's --help and in README.md, is a valid command.

An example is valid when click parses it (the command resolves and its options convert,
nothing runs), every `--model` it names is registered (or a .keras file / MLflow URI), every
`--recipe` exists, and every path inside the repository it names (a recipe YAML, a file under
kerascv_suite/ or benchmarks/) exists. Paths outside the repository (`photos/`,
`best.keras`) are the user's: they are created empty in a scratch folder, so `exists=True`
options parse.
"""

import re
import shlex
import warnings
from pathlib import Path

import click
import pytest

from kerascv_suite.apps.cli import main

ROOT = Path(__file__).resolve().parents[2]
REPO_PREFIXES = ("kerascv_suite/", "benchmarks/", "tests/", "apps/", "pipelines/")
FILE_SUFFIXES = (".keras", ".json", ".yaml", ".yml", ".jpg", ".png", ".onnx", ".tflite",
                 ".h5", ".csv", ".txt", ".pth")


def commands(group=main, prefix=("kcv",)):
    """`(path, command)` of every command under `group`, groups included."""
    yield prefix, group
    if isinstance(group, click.Group):
        for name, command in sorted(group.commands.items()):
            yield from commands(command, (*prefix, name))


def example_lines(text):
    """The `kcv ...` lines of a help text (a trailing backslash continues a line; comments
    after `#` dropped)."""
    lines, pending = [], ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        line = line.split("  #")[0].split(" # ")[0].strip()
        if line.startswith("kcv ") or line == "kcv":
            lines.append(line)
    return lines


def help_examples():
    found = []
    for path, command in commands():
        for line in example_lines(command.help or ""):
            found.append(line)
    return found


def readme_examples():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found, in_code = [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            for part in line.split("&&"):
                found += example_lines(part)
        else:
            # Inline commands with options (prose also names bare commands: `kcv evaluate`).
            found += [m for m in re.findall(r"`(kcv [^`]*)`", line)
                      if " -" in m and "<" not in m]
    return list(dict.fromkeys(found))


def resolve(argv):
    """Parses `argv` (after `kcv`) down to its command without running it: `(command,
    context)`; click errors propagate."""
    if not argv:
        return main, None  # `kcv` alone shows the help
    ctx = main.make_context("kcv", list(argv), resilient_parsing=False)
    command = main
    while isinstance(command, click.Group):
        with warnings.catch_warnings():  # protected_args is click's deprecated accessor
            warnings.simplefilter("ignore", DeprecationWarning)
            rest = [*ctx.protected_args, *ctx.args]
        if not rest:
            return command, ctx
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=False)
    return command, ctx


def user_paths(tokens):
    """Tokens that name the user's files or folders (not repository paths)."""
    for token in tokens:
        if token.startswith("-") or ":" in token or token.startswith(REPO_PREFIXES):
            continue
        if "/" in token or token.endswith(FILE_SUFFIXES):
            yield token


def check_example(line, scratch, monkeypatch):
    from kerascv_suite.models.registry import is_registered
    from kerascv_suite.tasks import list_recipes

    tokens = [t for t in shlex.split(line)[1:] if t not in ("--help", "-h")]
    monkeypatch.chdir(scratch)
    for token in user_paths(tokens):
        path = scratch / token
        if token.endswith("/") or Path(token).suffix == "":
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    command, ctx = resolve(tokens)
    params = ctx.params if ctx is not None else {}
    for token in tokens:
        if token.startswith(REPO_PREFIXES):
            assert (ROOT / token).exists(), f"{line}: {token} is not in the repository"
    for ref in params.get("models") or [params.get("model")]:
        # A bare name is a registry name; paths (.keras, exported .onnx/.tflite files,
        # SavedModel folders) and MLflow URIs are the user's.
        if isinstance(ref, str) and not any(c in ref for c in ":/."):
            assert is_registered(ref), f"{line}: no registered model {ref!r}"
    recipe = params.get("recipe")
    if recipe is not None:
        assert recipe in (*list_recipes(), "none"), f"{line}: no recipe {recipe!r}"
    return command


def failures(lines, tmp_path, monkeypatch):
    """`line: error` of each example that does not parse (one test for all of them: the
    per-test Keras teardown costs more than parsing every example)."""
    failed = []
    for i, line in enumerate(lines):
        scratch = tmp_path / str(i)
        scratch.mkdir()
        try:
            check_example(line, scratch, monkeypatch)
        except (AssertionError, click.ClickException) as error:
            message = error.format_message() if isinstance(error, click.ClickException) \
                else str(error)
            failed.append(message if message.startswith(line) else f"{line}: {message}")
    return failed


def test_help_examples_parse(tmp_path, monkeypatch):
    lines = help_examples()
    assert len(lines) >= 30
    assert not failures(lines, tmp_path, monkeypatch)


def test_readme_examples_parse(tmp_path, monkeypatch):
    assert not failures(readme_examples(), tmp_path, monkeypatch)


@pytest.mark.parametrize("line, message", [
    ("kcv train --model lenett5", "no registered model 'lenett5'"),
    ("kcv train --model lenet5 --recipe lenet5_digitz", "no recipe 'lenet5_digitz'"),
    ("kcv train --config kerascv_suite/recipes/nothing.yaml", "does not exist"),
    ("kcv train --epochs 0", "0 is not in the range"),
    ("kcv trian --model lenet5", "No such command 'trian'"),
])
def test_a_bad_example_is_caught(line, message, tmp_path, monkeypatch):
    assert message in " ".join(failures([line], tmp_path, monkeypatch))


def test_examples_are_found():
    # Every command with options shows at least one example (the test above is not vacuous).
    without = [" ".join(path) for path, command in commands()
               if not isinstance(command, click.Group) and not example_lines(command.help or "")
               and path[1] not in ("data", "models", "summary", "ui")]
    assert not without, f"commands without examples in --help: {without}"
    assert len(readme_examples()) >= 20
