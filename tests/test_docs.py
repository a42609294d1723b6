"""The documentation's commands work, so that none goes stale.

Every command of the README and of ``docs/*.md`` is checked:

- **Run.** Each line of a ```` ```bash ```` block runs for real, in order, in a temporary folder of its page
  (with copies of ``examples/`` and ``scenes/``; ``python`` is this interpreter, ``predistort`` this checkout),
  at the small sizes the pages show. A command that another page already ran with the same inputs is not run
  twice: its outputs are copied over ("replayed").
- **Parsed only**, with the program's own argument parser (``predistort.cli.parser()``, a benchmark's own
  ``argparse`` parser), or for other programs against their ``--help``: commands that cannot run in a test
  (:data:`PARSE_ONLY` says why: they install, start a server, run a benchmark for minutes, upload to the Hub),
  commands that name the reader's own files in capitals (``PHOTO.jpg``, ``USER/NAME``), and commands written
  inline in the text. A flag that does not exist, a subcommand that does not exist, a missing required
  argument or a bad choice fails the test (:func:`test_a_flag_that_does_not_exist_fails` proves it).

``python -m pytest tests/test_docs.py -v`` lists each command's test as ``PAGE:LINE-run``, ``-parsed`` or
``-inline``; the full list, with why each was only parsed, is printed by :func:`test_what_ran_and_what_was_parsed`
and written to ``artifacts/docs_commands.txt``.

Beside the commands: Python blocks import what they name, JSON setup files load as scenes, the API table names
exactly ``app.py``'s endpoints, the module table every module, the settings table every ``PREDISTORT_*``
variable, the CLI table every subcommand, the benchmarks page every script; links lead to files and headings
that exist; and the checkout's ``git status`` is what it was.
"""
import argparse
import ast
import contextlib
import hashlib
import io
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
COPIED = ("examples", "scenes")                 # what a page's folder holds before its commands run
RUN_TIMEOUT_S = 600
PYTHONS = ("python", "python3", ".venv/bin/python")

# Why a command of a bash block is only parsed: (test on its words, reason). The first that matches wins.
PARSE_ONLY = [
    (lambda w: w[0] in ("./setup.sh", "setup.sh"), "installs Debian packages and a virtualenv"),
    (lambda w: w[0] in PYTHONS and w[1:2] == ["app.py"], "starts the web app, which serves until stopped"),
    (lambda w: w[0] in PYTHONS and w[1:3] == ["-m", "pytest"], "runs the test suite itself"),
    (lambda w: w[0] == "bash" and w[1:2] == [".ci/run"], "runs the whole suite in a fresh clone"),
    (lambda w: w[0] in PYTHONS and w[1:2] and w[1].startswith("bench/"), "a benchmark: minutes to hours"),
    (lambda w: w[0] in PYTHONS and w[1:4] == ["-m", "predistort", "push"], "uploads to the Hugging Face Hub"),
    (lambda w: w[0] == "hf", "talks to the Hugging Face Hub"),
    (lambda w: w[0] in ("git", "tar", "rm", "mkdir"), "copies the checkout's committed files for an upload"),
    (lambda w: w[0] in ("apt-get", "sudo"), "installs a Debian package"),
]
SUBCOMMANDS = ("train", "apply", "push", "advise", "print", "chart", "calibrate", "check")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")   # a path component in capitals: the reader's own file or name


# -- reading the pages ----------------------------------------------------------------------------------------
@dataclass
class Command:
    page: str                     # "README.md", "docs/cli.md"
    line: int
    text: str                     # the command line as written (continuations joined, comment dropped)
    words: list                   # the simple commands: lists of words, env assignments dropped
    mode: str                     # "run", "parsed" (a bash line that cannot run here) or "inline"
    reason: str = ""
    partial: bool = False         # only its flags are checked: a subcommand named in the text with "…" or alone
    result: dict = field(default_factory=dict)

    @property
    def id(self):
        return f"{self.page}:{self.line}-{self.mode}"


def fenced_blocks(text):
    """(language, first line number of the code, code lines) of each fenced block, indentation removed."""
    blocks, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if m:
            indent, lang, start, body = len(m.group(1)), m.group(2), i + 2, []
            i += 1
            while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
                body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
                i += 1
            blocks.append((lang, start, body))
        i += 1
    return blocks


def without_blocks(text):
    """The page's text with its fenced blocks blanked (line numbers kept): where inline code is looked for."""
    out, inside = [], False
    for line in text.split("\n"):
        if re.match(r"^\s*```", line):
            inside = not inside
            out.append("")
        else:
            out.append("" if inside else line)
    return "\n".join(out)


def split_words(line):
    """A shell line -> its simple commands (lists of words), env assignments (NAME=value) dropped."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    commands, current = [], []
    for token in lex:
        if token in ("&&", "||", "|", ";"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    out = []
    for words in commands:
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]
        if words:
            out.append(words)
    return out


def placeholder(words):
    """The first word that names the reader's own file or name (a path component in capitals), or None."""
    for w in words[1:]:
        if w.startswith("-"):
            continue
        if any(PLACEHOLDER.match(part) for part in re.split(r"[/.=,:@]", w) if part):
            return w
    return None


def classify(words_list):
    """("run", "") or ("parsed", why) for a bash line's simple commands."""
    for words in words_list:
        for test, reason in PARSE_ONLY:
            if test(words):
                return "parsed", reason
    for words in words_list:
        own = placeholder(words)
        if own:
            return "parsed", f"names your own file or name: {own}"
    return "run", ""


def bash_lines(body, first):
    """(line number, command line) of a bash block: continuations joined, comments and blank lines dropped."""
    out, pending, start = [], "", None
    for k, raw in enumerate(body):
        if start is None:
            start = first + k
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        code, pending = (pending + raw).strip(), ""
        if code and not code.startswith("#"):
            out.append((start, re.split(r"\s+#", code, maxsplit=1)[0].strip()))
        start = None
    return out


def inline_commands(text):
    """(line number, command, partial) of inline code that is a command: ``python ...``, ``./setup.sh``, ``bash ...``,
    or a subcommand with its flags (``advise --material …``: its flags are checked)."""
    found = []
    for m in re.finditer(r"`([^`]+)`", without_blocks(text)):
        span = m.group(1)
        if "\n\n" in span:
            continue
        span = " ".join(span.split())
        try:
            words = split_words(span)
        except ValueError:                            # not shell: an unbalanced quote, ...
            continue
        first = words[0][0] if words else ""
        line = text.count("\n", 0, m.start()) + 1
        bare = words and words[0][1:] in (["-m", "predistort"], ["-m", "pytest"])   # the program named, no more
        if first in PYTHONS and len(words[0]) > 1 or first == "./setup.sh" or first == "bash" and len(words[0]) > 1:
            found.append((line, span, "…" in span or bare))
        elif first in SUBCOMMANDS and " --" in span:
            found.append((line, "python -m predistort " + span, True))
        elif re.match(r"^--[a-z][\w-]*$", first.split("=")[0]):     # a flag named on its own: some program has it
            found.append((line, span, True))
    return found


def collect():
    commands = []
    for path in PAGES:
        text, page = path.read_text(), str(path.relative_to(ROOT))
        for lang, first, body in fenced_blocks(text):
            if lang != "bash":
                continue
            for line, cmd in bash_lines(body, first):
                words = split_words(cmd)
                mode, reason = classify(words)
                commands.append(Command(page, line, cmd, words, mode, reason, partial="…" in cmd))
        for line, cmd, partial in inline_commands(text):
            why = "named inline in the text (its flags checked)" if partial else "written inline in the text"
            commands.append(Command(page, line, cmd, split_words(cmd), "inline", why, partial=partial))
    return commands


COMMANDS = collect()
CODE_BLOCKS = [(str(path.relative_to(ROOT)), first, lang, "\n".join(body)) for path in PAGES
               for lang, first, body in fenced_blocks(path.read_text()) if lang in ("python", "json")]


# -- parsing commands without running them (in a child process: benchmarks import a lot) ----------------------
class _Captured(Exception):
    pass


_PARSERS, _HELPS = {}, {}


def _script_parser(path):
    """The argparse parser a script builds before it parses sys.argv (the script is run up to that point)."""
    if path not in _PARSERS:
        _PARSERS[path] = _build_parser(path)
    return _PARSERS[path]


def _build_parser(path):
    originals = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args

    def caught(self, *args, **kwargs):
        raise _Captured(self)

    argparse.ArgumentParser.parse_args = argparse.ArgumentParser.parse_known_args = caught
    argv, sys.argv = sys.argv, [str(path)]
    sys.path.insert(0, str(path.parent))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(str(path), run_name="__main__")
    except _Captured as c:
        return c.args[0]
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = originals
        sys.argv = argv
    raise ValueError(f"{path.name} never parsed its arguments with argparse")


def _parse(parser, args):
    """'' if `parser` accepts `args` (or prints its help), else argparse's message."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit as e:
        return "" if e.code == 0 else err.getvalue().strip().splitlines()[-1]
    return ""


def _flags_of(parser, args):
    """The option strings `parser` knows for `args`' subcommand (the parser's own, then its subparser's)."""
    known = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and args and args[0] in action.choices:
            known |= set(action.choices[args[0]]._option_string_actions)
    return known


def _help_flags(argv):
    """The flags an external program's --help lists, trying its subcommand words from the longest."""
    subs = []
    for w in argv[1:4]:
        if not re.match(r"^[a-z][a-z-]*$", w):
            break
        subs.append(w)
    flag = "-h" if argv[0] == "git" else "--help"
    for n in range(len(subs), -1, -1):
        done = subprocess.run([argv[0], *subs[:n], flag], capture_output=True, text=True, timeout=60)
        text = done.stdout + done.stderr
        if done.returncode == 0 or (argv[0] == "git" and "usage:" in text):
            return set(re.findall(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*)", text))
    raise ValueError(f"`{' '.join([argv[0], *subs])} {flag}` failed")


def _check_flags(words, known):
    """Each flag of `words` must be one of `known` (a -rf is -r and -f)."""
    bad = []
    for w in words[1:]:
        if not w.startswith("-") or w in ("-", "--"):
            continue
        flag = w.split("=")[0]
        if flag in known:
            continue
        if re.match(r"^-[A-Za-z]{2,}$", flag) and all(f"-{c}" in known for c in flag[1:]):
            continue
        bad.append(flag)
    return f"no such flag: {', '.join(bad)}" if bad else ""


def check_words(words, partial=False, root=ROOT):
    """'' if the simple command `words` would be accepted as written, else why not."""
    prog, args = words[0], words[1:]
    if prog.startswith("--"):
        return "" if prog.split("=")[0] in _all_flags(root) else f"no program of the project has {prog.split('=')[0]}"
    if prog in PYTHONS:
        if args[:2] == ["-m", "predistort"]:
            from predistort.cli import parser
            return _check_flags(args[2:], _flags_of(parser(), args[2:])) if partial else _parse(parser(), args[2:])
        if args[:2] == ["-m", "pytest"]:
            missing = [a for a in args[2:] if not a.startswith("-") and a.startswith("tests/")
                       and not (root / a.split("::")[0]).exists()]
            if missing:
                return f"no such test file: {', '.join(missing)}"
            if "pytest" not in _HELPS:
                _HELPS["pytest"] = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True,
                                                  text=True, cwd=root, timeout=120).stdout
            return _check_flags(args[1:], set(re.findall(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*)", _HELPS["pytest"])))
        if args and args[0].endswith(".py"):
            script = root / args[0]
            if not script.is_file():
                return f"no such script: {args[0]}"
            if "argparse" not in script.read_text():
                return f"{args[0]} takes no arguments" if args[1:] else ""
            parser = _script_parser(script)
            return _check_flags(args, parser._option_string_actions) if partial else _parse(parser, args[1:])
        return f"not a command this test knows: {' '.join(words)}"
    if prog in ("./setup.sh", "setup.sh"):
        script = root / "setup.sh"
        if not os.access(script, os.X_OK):
            return "setup.sh is missing or not executable"
        text = script.read_text()
        bad = [a for a in args if f'"{a}"' not in text]
        return f"setup.sh does not take {', '.join(bad)}" if bad else ""
    if prog == "bash":
        return "" if (root / args[0]).is_file() and len(args) == 1 else f"no such script: {args[0]}"
    if shutil.which(prog) is None:
        return f"no such program: {prog}"
    return _check_flags(words, _help_flags(words))


def _parser_flags(parser):
    """Every option string of `parser` and of its subcommands."""
    flags = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= _parser_flags(sub)
    return flags


def _all_flags(root=ROOT):
    """The flags of the command line, of every benchmark and of setup.sh."""
    if "all" not in _HELPS:
        from predistort.cli import parser
        flags = _parser_flags(parser()) | set(re.findall(r'"(--[a-z-]+)"', (root / "setup.sh").read_text()))
        for script in sorted((root / "bench").glob("*.py")):
            if "parse_args" in script.read_text():
                flags |= _parser_flags(_script_parser(script))
        _HELPS["all"] = flags
    return _HELPS["all"]


def check_python_block(code):
    """'' if every `from predistort... import name` (and gradio_client's) of a Python block resolves."""
    import importlib
    bad = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] in ("predistort", "gradio_client"):
            module = importlib.import_module(node.module)
            bad += [f"{node.module}.{a.name}" for a in node.names if not hasattr(module, a.name)]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "predistort":
                    importlib.import_module(a.name)
    return f"not found: {', '.join(bad)}" if bad else ""


def check_json_block(code, folder):
    """'' if a JSON block parses and, when it is a setup file (has "units"), loads as a scene."""
    data = json.loads(code)
    if isinstance(data, dict) and "units" in data:
        from predistort.scene import SceneConfig
        path = Path(folder) / "setup.json"
        path.write_text(code)
        SceneConfig.load(path)
    return ""


def _child(jobs):
    """Run in a child process: every job's verdict ('' or why not)."""
    import tempfile
    out = []
    with tempfile.TemporaryDirectory() as folder:
        for job in jobs:
            try:
                if job["kind"] == "words":
                    out.append(check_words(job["words"], job.get("partial", False)))
                elif job["kind"] == "python":
                    out.append(check_python_block(job["code"]))
                else:
                    out.append(check_json_block(job["code"], folder))
            except Exception as e:                          # noqa: BLE001 - any failure is the verdict
                out.append(f"{type(e).__name__}: {e}")
    return out


def run_checks(jobs):
    """Verdicts for `jobs` from one child process (see :func:`_child`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
           f"{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, __file__], input=json.dumps(jobs), capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- running commands ------------------------------------------------------------------------------------------
def _snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


def _digest(words, folder):
    """What a command reads: the contents of the existing files its words name (the key of a replay)."""
    h = hashlib.sha1()
    for w in (w for ws in words for w in ws):
        for name in (w, w.split("=")[-1]):
            p = folder / name
            if p.is_file() and not p.is_symlink():
                h.update(name.encode() + p.read_bytes())
    return h.hexdigest()


def run_pages(commands, base, env):
    """Run every "run" command in order, each page in its own folder under `base`; fills ``result``."""
    folders, ran = {}, {}                         # page -> folder; (text, digest) -> (folder, outputs, where)
    for c in commands:
        if c.mode != "run":
            continue
        folder = folders.get(c.page)
        if folder is None:
            folder = folders[c.page] = base / re.sub(r"\W", "_", c.page)
            folder.mkdir(parents=True)
            for name in COPIED:
                shutil.copytree(ROOT / name, folder / name)
        key = (c.text, _digest(c.words, folder))
        if key in ran:                            # the same command on the same inputs: its outputs, copied
            source, outputs, where = ran[key]
            for p in outputs:
                target = folder / p.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, target)
            c.result = {"ok": True, "how": f"replayed (ran at {where})"}
            continue
        before, start = _snapshot(folder), time.monotonic()
        try:
            done = subprocess.run(["bash", "-c", f"set -euo pipefail\n{c.text}"], cwd=folder, env=env,
                                  capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
            ok, log = done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        except subprocess.TimeoutExpired:
            ok, log = False, f"timed out after {RUN_TIMEOUT_S} s"
        after = _snapshot(folder)
        outputs = [p for p, stamp in after.items() if before.get(p) != stamp]
        c.result = {"ok": ok, "how": f"ran ({time.monotonic() - start:.1f} s)", "log": log}
        if ok:
            ran[key] = (folder, outputs, f"{c.page}:{c.line}")
            if not outputs and "predistort" in c.text:
                c.result = {"ok": False, "how": "ran", "log": "it wrote nothing"}


def command_env(folder):
    """The environment of the pages' commands: `python` is this interpreter (a virtualenv's python must be
    called by its own path: a link elsewhere loses the virtualenv), `predistort` this checkout, a fresh probe
    cache under `folder`, no network to the Hub."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (bin_dir / name).chmod(0o755)
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "PYTHONPATH": str(ROOT), "PREDISTORT_CACHE": str(folder / "cache"),
            "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}


def _git_status():
    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """Every command checked: parsed (all of them), then the runnable ones run. Returns the git status before."""
    status = _git_status()
    jobs = []
    for c in COMMANDS:
        for words in c.words:
            jobs.append({"kind": "words", "words": words, "partial": c.partial})
    jobs += [{"kind": lang, "code": code} for _, _, lang, code in CODE_BLOCKS]
    verdicts = iter(run_checks(jobs))
    for c in COMMANDS:
        errors = [v for v in (next(verdicts) for _ in c.words) if v]
        c.result = {"parsed": "; ".join(errors)}
    blocks = {f"{page}:{line}": next(verdicts) for page, line, _, _ in CODE_BLOCKS}
    base = tmp_path_factory.mktemp("docs")
    env = command_env(base)
    parse_errors = {c.id: c.result["parsed"] for c in COMMANDS}
    run_pages([c for c in COMMANDS if not parse_errors[c.id]], base / "pages", env)
    for c in COMMANDS:
        c.result["parsed"] = parse_errors[c.id]
    return status, blocks


def test_code_blocks(checked):
    """Python blocks import what they name (from predistort, gradio_client); JSON setup files load as scenes."""
    blocks = checked[1]
    assert len(blocks) >= 5 and any(page == "docs/objects.md" and lang == "json" for page, _, lang, _ in CODE_BLOCKS)
    bad = {where: why for where, why in blocks.items() if why}
    assert not bad, bad


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_command(checked, command):
    c = command
    where = f"{c.page}, line {c.line}: {c.text}"
    assert not c.result.get("parsed"), f"{where}\n  does not parse: {c.result['parsed']}"
    if c.mode == "run":
        assert c.result.get("ok"), f"{where}\n  failed:\n{c.result.get('log', 'did not run')}"


def test_what_ran_and_what_was_parsed(checked):
    """The list: which commands ran, which were only parsed and why. Some of each, and nothing else."""
    lines = []
    for c in COMMANDS:
        how = c.result.get("how", "") if c.mode == "run" else f"parsed only: {c.reason}"
        lines.append(f"{c.page}:{c.line}  {how}\n    {c.text}")
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / "docs_commands.txt").write_text(text)
    modes = {c.mode for c in COMMANDS}
    assert {"run", "parsed", "inline"} <= modes
    assert all(c.reason for c in COMMANDS if c.mode != "run")


def test_the_first_commands_are_the_two_commands():
    """The README opens with the set-up-and-run and set-up-and-test commands; .ci/run reads the latter."""
    text = (ROOT / "README.md").read_text()
    lines = text.split("\n")
    lang, first, body = fenced_blocks(text)[0]
    end_of_meta = lines.index("---", 1)
    between = [line for line in lines[end_of_meta + 1:first - 2] if line.strip()]
    assert lang == "bash" and between == ["# predistort"], f"the first block must follow the title: {between}"
    code = [line.split("#")[0].strip() for line in body]
    assert code[0] == "./setup.sh && .venv/bin/python app.py"
    assert [line for line in code if "pytest" in line] == ["./setup.sh --dev && .venv/bin/python -m pytest"]


def test_a_flag_that_does_not_exist_fails(tmp_path):
    """The checks above can fail: a made-up flag, subcommand, choice or script is refused, a true one is not."""
    wrong = [["python", "-m", "predistort", "apply", "--texture", "x.png", "--out-dir", "o", "--no-such-flag"],
             ["python", "-m", "predistort", "paint", "--out", "o"],
             ["python", "-m", "predistort", "advise", "--material", "diamond", "--out", "s.json"],
             ["python", "-m", "predistort", "print", "--texture", "t.png"],           # --out-dir is required
             ["python", "bench/quality.py", "--quickly"],
             ["python", "bench/no_such_bench.py"],
             ["./setup.sh", "--devel"],
             ["--max-prints-mm"],
             ["hf", "upload", "USER/NAME", ".", "--no-such-flag"]]
    right = [["python", "-m", "predistort", "apply", "--texture", "x.png", "--out-dir", "o", "--spp", "4"],
             ["python", "bench/quality.py", "--quick"], ["./setup.sh", "--dev"], ["--max-print-mm"],
             ["hf", "upload", "USER/NAME", ".", "--repo-type", "space"]]
    jobs = [{"kind": "words", "words": w} for w in wrong + right]
    jobs.append({"kind": "words", "words": ["python", "-m", "predistort", "print", "--papers", "a4"], "partial": True})
    jobs.append({"kind": "python", "code": "from predistort.tolerance import no_such_function\n"})
    verdicts = run_checks(jobs)
    assert all(verdicts[:len(wrong)]), dict(zip(map(" ".join, wrong), verdicts))
    assert not any(verdicts[len(wrong):len(wrong) + len(right)]), dict(zip(map(" ".join, right), verdicts[len(wrong):]))
    assert verdicts[-2] == "no such flag: --papers" and "no_such_function" in verdicts[-1]
    # ... and a command that parses but fails when run is caught too, as is a placeholder.
    c = Command("x.md", 1, "python -m predistort apply --texture examples/none.png --spp 4 --out-dir o",
                [], "run")
    c.words = split_words(c.text)
    run_pages([c], tmp_path / "pages", command_env(tmp_path))
    assert not c.result["ok"] and "none.png" in c.result["log"]
    assert classify(split_words("python -m predistort calibrate --scene s.json --photo PHOTO.jpg --out f.json"))[0] \
        == "parsed"


# -- the tables against the code ------------------------------------------------------------------------------
def _first_column(page, pattern):
    """Every match of `pattern` in the first cell of the page's table rows."""
    return {m.group(1) for line in (ROOT / page).read_text().splitlines() if line.startswith("| ")
            for m in re.finditer(pattern, line.split("|")[1])}


def test_the_api_tables_name_every_endpoint():
    app = (ROOT / "app.py").read_text()
    endpoints = {e for e in re.findall(r'api_name="([a-z_]+)"', app) if not e.startswith("page_")}  # page_: private
    assert {"predistort", "chart", "calibrate", "check", "world_setup", "predistort_world"} <= endpoints
    assert _first_column("docs/app.md", r"`/([a-z_]+)`") == endpoints
    assert _first_column("README.md", r"`/([a-z_]+)`") == endpoints
    used = set(re.findall(r'api_name="/([a-z_]+)"', "".join(p.read_text() for p in PAGES)))
    assert used <= endpoints, f"the pages call endpoints that do not exist: {used - endpoints}"


def test_the_module_table_lists_every_module():
    modules = {p.name for p in (ROOT / "predistort").glob("*.py")}
    assert _first_column("docs/development.md", r"`predistort/(\w+\.py)`") == modules


def test_the_cli_table_lists_every_subcommand():
    from predistort.cli import parser
    subcommands = {name for a in parser()._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices}
    assert subcommands == set(SUBCOMMANDS)
    assert _first_column("docs/cli.md", r"^ `(\w+)` $") == subcommands


def test_the_settings_table_lists_every_variable():
    import dataclasses
    from predistort.settings import Settings
    names = {f"PREDISTORT_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    for path in (ROOT / "predistort").glob("*.py"):
        names |= set(re.findall(r'"(PREDISTORT_[A-Z_]+)"', path.read_text()))
    assert _first_column("docs/app.md", r"`(PREDISTORT_[A-Z_]+)`") == names


def test_the_benchmarks_page_lists_every_script():
    scripts = {f"bench/{p.name}" for p in (ROOT / "bench").glob("*.py") if "parse_args" in p.read_text()}
    listed = _first_column("docs/benchmarks.md", r"`(bench/\w+\.py)`")
    assert listed == scripts
    helpers = {f"bench/{p.name}" for p in (ROOT / "bench").glob("*.py")} - scripts
    text = (ROOT / "docs/benchmarks.md").read_text()
    assert all(f"`{h}`" in text for h in helpers), [h for h in helpers if f"`{h}`" not in text]


def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return "".join(ch for ch in heading.strip().lower() if ch.isalnum() or ch in " -_").replace(" ", "-")


def test_links_lead_somewhere():
    bad = []
    for path in PAGES:
        text = without_blocks(path.read_text())
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                bad.append(f"{path.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md":
                slugs = {_slug(h) for h in re.findall(r"^#+ (.+)$", without_blocks(dest.read_text()), re.M)}
                if anchor not in slugs:
                    bad.append(f"{path.name}: {target} (no such heading)")
    assert not bad, "\n".join(bad)


def test_tables_have_the_same_cells_in_every_row():
    """A `|` inside a cell (unescaped) splits it: the row then has a cell too many and the table breaks."""
    bad = []
    for path in PAGES:
        rows = []
        for number, line in enumerate(without_blocks(path.read_text()).split("\n") + [""], 1):
            if line.strip().startswith("|"):
                rows.append((number, len(re.findall(r"(?<!\\)\|", line.strip()))))
                continue
            bad += [f"{path.name}:{n}" for n, cells in rows if cells != rows[0][1]]
            rows = []
    assert not bad, bad


def test_the_checkout_is_left_as_it_was(checked):
    if checked[0] is None:
        pytest.skip("not a git checkout")
    assert _git_status() == checked[0], "the documentation's commands changed the checkout"


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 230
    meta = text.split("---")[1]
    description = re.search(r"^short_description: (.+)$", meta, re.M).group(1)
    assert len(description) <= 60


if __name__ == "__main__":                           # the child of run_checks
    print(json.dumps(_child(json.loads(sys.stdin.read()))))
