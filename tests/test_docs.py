"""The docs keep their promises: every command line in the READMEs parses, and no tracked file names a
machine-specific absolute path."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "chem/README.md", "bio/README.md")
SCRIPT_RE = re.compile(r"(?:^|/)scripts/(\w+)\.py$")
# The project's hook pattern: a path into another machine's shared folder, root's or a user's home.
ABSOLUTE_PATH_RE = re.compile(r"(?:[^.A-Za-z0-9_]/[A-Za-z0-9_]+/shared/|/root/\.|/home/[a-z]+/)")


def _code_lines(doc: Path) -> list[str]:
    """Shell lines of the doc's code blocks, continuation lines joined."""
    lines, block, joined = [], False, ""
    for raw in doc.read_text().splitlines():
        if raw.strip().startswith("```"):
            block = not block
            continue
        if not block:
            continue
        line = raw.rstrip()
        if line.endswith("\\"):
            joined += line[:-1] + " "
            continue
        lines.append((joined + line).strip())
        joined = ""
    return lines


def _script_calls(line: str) -> list[tuple[str, list[str]]]:
    """``(script name, argv)`` of every ``scripts/<name>.py`` call on a shell line."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return []
    calls, current = [], None
    for tok in tokens:
        if tok in ("&&", "||", ";", "|") or tok.endswith(";"):
            current = None
            continue
        m = SCRIPT_RE.search(tok)
        if m:
            current = (m.group(1), [])
            calls.append(current)
        elif current is not None:
            current[1].append(tok)
    return calls


def _all_calls() -> list[tuple[str, str, list[str]]]:
    out = []
    for doc in DOCS:
        lines = _code_lines(REPO / doc)
        loops = {m.group(1): m.group(2).split()[0] for ln in lines for m in [re.match(r"for (\w+) in ([^;]+);", ln)] if m}
        for line in lines:
            for script, argv in _script_calls(line):
                out.append((doc, script, [_substitute(a, loops) for a in argv]))
    return out


def _substitute(arg: str, loops: dict[str, str]) -> str:
    """A loop variable (``$s`` of ``for s in contextpred ...``) becomes the loop's first value."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: loops.get(m.group(1), "x"), arg)


@lru_cache(maxsize=None)
def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_doc_script_{name}", REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _parser(name: str, argv: list[str]):
    mod = _script(name)
    if name == "finetune":  # its --dataset help depends on the domain
        domain = argv[argv.index("--domain") + 1] if "--domain" in argv else "chem"
        return mod.build_parser(domain)
    return mod.build_parser()


CALLS = _all_calls()


def test_the_readmes_have_the_main_job_and_test_lines():
    text = (REPO / "README.md").read_text()
    assert re.search(r"^.+# main job$", text, re.M) and re.search(r"^.+# tests$", text, re.M)
    assert len(CALLS) >= 10


@pytest.mark.parametrize("doc, script, argv", CALLS, ids=[f"{d}:{s}:{' '.join(a)[:40]}" for d, s, a in CALLS])
def test_readme_command_lines_parse(doc, script, argv, capsys):
    parser = _parser(script, argv)
    try:
        parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{doc}: `scripts/{script}.py {' '.join(argv)}` does not parse: {capsys.readouterr().err}")


@pytest.mark.parametrize("script", sorted({s for _, s, _ in CALLS}))
def test_help_of_every_script_the_readmes_use(script):
    text = _parser(script, []).format_help()
    assert "usage:" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    for action in _parser(script, [])._actions:  # every default shown once at most
        if action.help:
            assert action.help.lower().count("(default") <= 1, action.help


def _tracked_text_files() -> list[Path]:
    try:
        names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = []
    for name in names.splitlines():
        path = REPO / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        head = path.read_bytes()[:4096]
        if b"\0" in head:
            continue  # binary
        files.append(path)
    return files


def test_no_machine_specific_absolute_paths_in_tracked_files():
    hits = []
    for path in _tracked_text_files():
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if ABSOLUTE_PATH_RE.search(line):
                hits.append(f"{path.relative_to(REPO)}:{i}: {line.strip()[:120]}")
    assert not hits, "machine-specific absolute paths (write ../shared/..., an env var or the library lookup):\n" + \
        "\n".join(hits)


def test_the_path_pattern_catches_what_it_should():
    s = "/"  # built up here so that this file itself holds no such path
    for bad in (f'CKPT = Path("{s}x{s}shared{s}reference-checkpoints")', f"see `{s}srv{s}shared{s}data`",
                f"{s}root{s}.cache{s}x", f"{s}home{s}alice{s}data"):
        assert ABSOLUTE_PATH_RE.search(bad), bad
    for ok in ("../shared/data", "shared/data beside the checkout", "~/.cache/gnnpretrain", "$GNNPRETRAIN_DATA"):
        assert not ABSOLUTE_PATH_RE.search(ok), ok
