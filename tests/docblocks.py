"""The fenced blocks of README.md and docs/*.md, run as tests (tests/test_docs.py).

Sybil finds the blocks; this module says what each kind means (docs/contributing.md says
the same for authors):

- ```` ```python title="deathstar/tasks.py" ````: a file of the project (any path, any
  language). Its text replaces the file, which is then committed (a recorded run needs
  committed code); nothing runs. After ``<!-- existing file -->`` the block shows a file
  as it already is (written by ``smttask project init``): the file must hold that text.
- ```` ```python ````: statements run in the document's Python session (one namespace per
  document, like a notebook), in the session's folder. ``expr  # → text``, or ``expr``
  followed by a line ``# → text``, shows what ``expr`` evaluates to: its repr must match.
- ```` ```sh ````: commands, one a line (a trailing ``\\`` or an open quote continues it);
  each must exit 0. Their output is not shown, so it is not checked.
- ```` ```console ````: ``$ command`` lines, each followed by the output a terminal shows
  (stdout and stderr), which must match. A command may exit non-zero only when its
  output is shown (the output says what went wrong).
- ``<!-- illustration: why -->`` on the line before a block: the block does not run.
  Blocks in other languages (json, toml, text) never run; an unlabelled block that starts
  with ``$`` or ``>>>`` is refused (label it console, or mark it illustration).

Shown output matches when it is equal line by line, except that: runs of spaces match
any runs of spaces (table columns move with their contents); ``…`` matches any text
within a line, and a line holding only ``…`` matches any number of lines; dates, times
and durations (``0.01s``) match any of the same shape; a record label
(``20261130-113002_f65755``) matches any label ending in the same digest start, a
10-hex-digit commit matches any, and each is then *bound*: the same text later in the
document (in a command, in Python, in an output) stands for the real one.

Where blocks run: each document gets its own folder, which is HOME. README.md and
docs/index.md start there, empty (the story of a fresh machine); every other document
starts in ``~/deathstar``, a project just made by ``smttask project init --no-input
deathstar``. ``cd DIR`` changes the session's folder. ``smttask …`` lines without shell
syntax run in this process (click's runner, same environment); every other line runs in
bash. The environment: HOME, this Python's ``bin`` first on PATH, a git identity, no
PYTHONPATH and no COLUMNS (so tables are as wide as their contents).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import GIT_ENV
from sybil import Document, Example, Region, Sybil
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

REPO = Path(__file__).resolve().parents[1]
#: Documents whose story starts on a fresh machine: they begin in an empty HOME.
STARTS_EMPTY = {"README.md", "docs/index.md"}
RUNNABLE = {"python", "sh", "console"}

_ILLUSTRATION = re.compile(r"<!--\s*illustration:\s*(?P<why>\S.*?)\s*-->")
_EXISTING = "<!-- existing file -->"
_TITLE = re.compile(r'title="(?P<path>[^"]+)"')
_LEXER = RawFencedCodeBlockLexer(info_pattern=re.compile(r"(?P<info>[^\n]*)$\n", re.M))


@dataclass
class Block:
    """One fenced block: its document, line, language, options and text."""

    doc: str
    line: int
    language: str
    options: str
    source: str
    illustration: str | None = None
    existing: bool = False

    @property
    def title(self) -> str | None:
        m = _TITLE.search(self.options)
        return m["path"] if m else None

    @property
    def runs(self) -> bool:
        return self.illustration is None and (self.language in RUNNABLE or bool(self.title))


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def rel(path: str | Path) -> str:
    return Path(path).resolve().relative_to(REPO).as_posix()


def _blocks(document: Document) -> Iterator[tuple[Region, Block]]:
    end = -1
    for region in sorted(_LEXER(document), key=lambda r: r.start):
        if region.start < end:  # a block shown inside a longer fence: text, not a block
            continue
        end = region.end
        language, _, options = region.lexemes["info"].strip().partition(" ")
        before = document.text[:region.start].rstrip("\n").rsplit("\n", 1)[-1].strip()
        why = _ILLUSTRATION.fullmatch(before)
        line = document.text.count("\n", 0, region.start) + 1
        yield region, Block(rel(document.path), line, language, options.strip(),
                            str(region.lexemes["source"]), why["why"] if why else None,
                            before == _EXISTING)


def all_blocks(path: Path) -> list[Block]:
    """Every fenced block of a document, runnable or not."""
    document = Document(path.read_text(encoding="utf-8"), str(path))
    return [block for _, block in _blocks(document)]


def _parser(document: Document) -> Iterator[Region]:
    for region, block in _blocks(document):
        if block.runs:
            yield Region(region.start, region.end, block, evaluate)


SYBIL = Sybil(parsers=[_parser], path=str(REPO))


def examples(path: Path) -> list[Example]:
    """The blocks of a document that run, in order (Sybil examples)."""
    return list(SYBIL.parse(path).examples())


# --- matching shown output -------------------------------------------------------------

_LABEL = r"\d{8}-\d{6}_[0-9a-f]{6}(?:_\d+)?"
_COMMIT = r"(?<![0-9a-zA-Z])(?=[0-9]*[a-f])[0-9a-f]{10}(?![0-9a-zA-Z])"
_TOKENS = re.compile(
    rf"(?P<label>{_LABEL})|(?P<commit>{_COMMIT})|(?P<date>\d{{4}}-\d{{2}}-\d{{2}})"
    r"|(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)|(?P<duration>\b\d+\.\d+s\b)"
    r"|(?P<any>…)|(?P<space>[ \t]+)")
_SHAPES = {"date": r"\d{4}-\d{2}-\d{2}", "time": r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?",
           "duration": r"\d+(?:\.\d+)?s", "any": r".*?", "space": r"[ \t]+"}
_BOUND = {"label": _LABEL, "commit": r"[0-9a-f]{10}"}


def _line_pattern(line: str, bindings: dict[str, str], groups: dict[str, str]) -> str:
    out, pos = [], 0
    for m in _TOKENS.finditer(line):
        out.append(re.escape(line[pos:m.start()]))
        pos = m.end()
        kind, text = m.lastgroup or "", m.group()
        if kind in _BOUND:
            if text in bindings:
                out.append(re.escape(bindings[text]))
            elif text in groups:
                out.append(f"(?P={groups[text]})")
            else:
                groups[text] = f"g{len(groups)}"
                shape = _BOUND[kind]
                if kind == "label":  # the digest's start is no accident: it must match
                    shape = r"\d{8}-\d{6}_" + re.escape(text.split("_")[1]) + r"(?:_\d+)?"
                out.append(f"(?P<{groups[text]}>{shape})")
        else:
            out.append(_SHAPES[kind])
    out.append(re.escape(line[pos:]))
    return "".join(out)


def match(shown: str, actual: str, bindings: dict[str, str]) -> bool:
    """Does ``actual`` match the ``shown`` output? Binds the labels and commits it shows."""
    groups: dict[str, str] = {}
    parts = []
    for line in shown.rstrip().splitlines():
        if line.strip() == "…":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(_line_pattern(line.rstrip(), bindings, groups) + r"\n")
    text = "".join(f"{line.rstrip()}\n" for line in actual.rstrip().splitlines())
    m = re.fullmatch("".join(parts), text)
    if m:
        bindings.update({token: m[name] for token, name in groups.items()})
    return m is not None


def substitute(text: str, bindings: dict[str, str]) -> str:
    for shown, real in bindings.items():
        text = text.replace(shown, real)
    return text


# --- commands ----------------------------------------------------------------------------

def _complete(command: str) -> bool:
    if command.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # an open quote: the command goes on
        return False
    return True


def commands(block: Block) -> list[tuple[str, str | None]]:
    """``(command, shown output)`` pairs; output None in an sh block (not shown)."""
    prompt = block.language == "console"
    pairs: list[tuple[str, list[str] | None]] = []
    lines = block.source.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if prompt and not line.startswith("$ "):
            if not pairs:
                raise AssertionError(f"{block.doc}:{block.line}: a console block starts "
                                     f"with '$ '")
            out = pairs[-1][1]
            assert out is not None
            out.append(line)
            continue
        command = line[2:] if prompt else line
        if not prompt and not command.split("#", 1)[0].strip():
            continue
        while not _complete(command) and i < len(lines):
            command += "\n" + lines[i]
            i += 1
        pairs.append((command, [] if prompt else None))
    return [(c, None if out is None else "\n".join(out)) for c, out in pairs]


_SHELL = set("|&;<>()$`*?[]{}")


def _expand(word: str, home: Path) -> str:
    return str(home) + word[1:] if word == "~" or word.startswith("~/") else word


def _in_process(command: str, home: Path) -> list[str] | None:
    """The argv of a plain ``smttask …`` line (no shell syntax; a line continued with a
    backslash, as bash joins it outside quotes), else None."""
    if "'" not in command and '"' not in command:
        command = command.replace("\\\n", "")
    if "\n" in command.rstrip() or "$" in command or "`" in command:
        return None
    lex = shlex.shlex(command, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = "#"
    try:
        argv = list(lex)
    except ValueError:
        return None
    if not argv or argv[0] != "smttask" or any(set(t) <= _SHELL for t in argv):
        return None
    if any(c in t for t in argv for c in "*?["):
        return None
    return [_expand(t, home) for t in argv]


# --- a document's session ---------------------------------------------------------------

@dataclass
class Session:
    """A document's home folder, working folder, Python namespace and bound labels."""

    doc: str
    home: Path
    cwd: Path = field(init=False)
    namespace: dict[str, Any] = field(default_factory=dict)
    bindings: dict[str, str] = field(default_factory=dict)
    last_exit: int = 0
    next: int = 0
    #: The session's own imported modules while other tests run (see :meth:`entered`).
    modules: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cwd = self.home
        self.namespace.update(__name__="__main__", __builtins__=builtins)

    @property
    def env(self) -> dict[str, str | None]:
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**GIT_ENV, "HOME": str(self.home), "PATH": path, "PYTHONPATH": None,
                "COLUMNS": None, "LINES": None, "TERM": "dumb"}

    def start(self) -> None:
        if self.doc not in STARTS_EMPTY:
            shutil.copytree(fresh_project(self.home.parent), self.home / "deathstar",
                            symlinks=True)
            self.cwd = self.home / "deathstar"

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """This session's folder, environment and modules; other sessions' modules gone.
        On the way out the session's modules leave ``sys.modules`` with it (kept for its
        next block), so that other tests on this worker never import a document's
        ``deathstar``."""
        forget_modules(outside=self.home)
        sys.modules.update(self.modules)
        saved_env = {k: os.environ.get(k) for k in self.env}
        saved_cwd, saved_path = os.getcwd(), list(sys.path)
        for key, value in self.env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.chdir(self.cwd)
        try:
            yield
        finally:
            os.chdir(saved_cwd)
            sys.path[:] = saved_path
            self.modules = own_modules(self.home)
            for name in self.modules:
                del sys.modules[name]
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            from smttask import config

            config.activate(None)

    def smttask(self, argv: list[str]) -> tuple[int, str]:
        from click.testing import CliRunner

        from smttask.cli import main

        with self.entered():
            result = CliRunner().invoke(main, argv[1:], catch_exceptions=True,
                                        prog_name="smttask")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a traceback is a bug, never an expected output
        return result.exit_code, result.output

    def shell(self, command: str) -> tuple[int, str]:
        env = {k: v for k, v in {**os.environ, **self.env}.items() if v is not None}
        proc = subprocess.run(["bash", "-c", f"(exit {self.last_exit}); {command}"],
                              cwd=self.cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=600)
        return proc.returncode, proc.stdout

    def run_command(self, command: str) -> tuple[int, str]:
        command = substitute(command, self.bindings)
        argv = _in_process(command, self.home)
        words = shlex.split(command, comments=True) if _complete(command) else []
        if len(words) == 2 and words[0] == "cd" and not set(command) & _SHELL:
            target = (self.cwd / _expand(words[1], self.home)).resolve()
            assert target.is_dir(), f"cd {words[1]}: no such folder"
            assert target.is_relative_to(self.home), f"cd {words[1]}: outside the doc's HOME"
            self.cwd, code, out = target, 0, ""
        elif argv is not None:
            code, out = self.smttask(argv)
        else:
            code, out = self.shell(command)
        self.last_exit = code
        return code, out

    def write_file(self, block: Block) -> None:
        assert block.title is not None
        path = self.cwd / block.title
        if block.existing:
            text = path.read_text(encoding="utf-8") if path.is_file() else None
            assert text == block.source, (
                f"{block.doc}:{block.line}: {block.title} is not as the doc shows it:\n{text}")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.source, encoding="utf-8")
        forget_modules(files={path.resolve()})
        git = ["git", "-C", str(path.parent)]
        env = {**os.environ, **{k: v for k, v in self.env.items() if v is not None}}
        subprocess.run([*git, "add", path.name], check=True, env=env, capture_output=True)
        if subprocess.run([*git, "diff", "--cached", "--quiet"], env=env).returncode:
            subprocess.run([*git, "commit", "-q", "-m", f"docs: {block.title}"], check=True,
                           env=env, capture_output=True)

    def run_python(self, block: Block, path: str) -> None:
        source = substitute(block.source, self.bindings)
        lines = source.splitlines()
        tree = ast.parse(source, path)
        with self.entered():
            sys.path.insert(0, str(self.cwd))
            for stmt in tree.body:
                shown = _shown_value(stmt, lines)
                ast.increment_lineno(stmt, block.line)
                if shown is None:
                    code = compile(ast.Module([stmt], []), path, "exec")
                    exec(code, self.namespace)
                    continue
                assert isinstance(stmt, ast.Expr), (
                    f"{block.doc}:{stmt.lineno}: only an expression shows a value")
                value = eval(compile(ast.Expression(stmt.value), path, "eval"),
                             self.namespace)
                if not match(shown, repr(value), self.bindings):
                    raise AssertionError(f"{block.doc}:{stmt.lineno}: the doc shows\n  "
                                         f"{shown}\nbut the value is\n  {value!r}")


def _shown_value(stmt: ast.stmt, lines: list[str]) -> str | None:
    """The text after ``# →`` on the statement's last line or alone on the next line."""
    end = stmt.end_lineno or stmt.lineno
    candidates = [lines[end - 1]]
    if end < len(lines) and lines[end].lstrip().startswith("# →"):
        candidates.append(lines[end])
    for line in candidates:
        if "# → " in line:
            return line.split("# → ", 1)[1].strip()
    return None


def _prefixes(folder: Path) -> tuple[str, ...]:
    """Text prefixes of the files in ``folder`` (as given and resolved): comparing module
    paths as text, since resolving every imported module's path costs more than the
    command it surrounds."""
    return tuple({f"{folder}{os.sep}", f"{folder.resolve()}{os.sep}"})


def forget_modules(outside: Path | None = None, files: set[Path] | None = None) -> None:
    """Drop imported modules of the documents' projects: those under the docs' folders
    but outside ``outside``, or whose file is in ``files``."""
    if not SESSIONS_ROOT:
        return
    root = _prefixes(SESSIONS_ROOT[0])
    keep = _prefixes(outside) if outside is not None else None
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or not file.startswith(root):
            continue
        if files is not None and Path(file).resolve() in files:
            del sys.modules[name]
        elif keep is not None and not file.startswith(keep):
            del sys.modules[name]


def fresh_project(where: Path) -> Path:
    """A project just made by ``smttask project init --no-input deathstar``, made once per
    process and copied for each document (its ``.smt/project``, which names absolute
    paths, is rewritten by smttask at the copy's first command)."""
    made = where / "_fresh" / "deathstar"
    if not made.exists():
        session = Session("(fresh project)", made.parent)
        code, out = session.smttask(["smttask", "project", "init", "--no-input", "deathstar"])
        assert code == 0, out
    return made


def own_modules(home: Path) -> dict[str, Any]:
    """The imported modules whose file lies under ``home``."""
    prefixes = _prefixes(home)
    return {name: module for name, module in list(sys.modules.items())
            if (file := getattr(module, "__file__", None)) and file.startswith(prefixes)}


#: The folder holding every document's home (set by tests/test_docs.py).
SESSIONS_ROOT: list[Path] = []
SESSIONS: dict[str, Session] = {}


def evaluate(example: Example) -> str | None:
    """Sybil's evaluator: run one block in its document's session."""
    block: Block = example.parsed
    session = SESSIONS[block.doc]
    if block.title:
        session.write_file(block)
    elif block.language == "python":
        session.run_python(block, example.path)
    else:
        for command, shown in commands(block):
            code, out = session.run_command(command)
            where = f"{block.doc}:{block.line}: $ {command}"
            if shown is None or not shown.strip():
                if code != 0:
                    return f"{where}\nexited {code}:\n{out}"
                if shown is not None and out.strip() and block.language == "console":
                    return f"{where}\nthe doc shows no output, but it printed:\n{out}"
            elif not match(shown, out, session.bindings):
                return f"{where}\nthe doc shows:\n{shown}\nbut it printed (exit {code}):\n{out}"
    return None
