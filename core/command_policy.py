"""The command gate, an allow-list (after OpenAI Codex's `is_known_safe_command`): a bash command runs without the
owner's code only when every simple command anywhere in it (lists, pipelines, bodies, substitutions, heredocs and
strings fed to shells, what wrappers such as env, xargs or find -exec run) is an allow-listed program called in a way
its rule accepts, and every redirection writes inside the project (or /tmp, with the sandbox). What the gate does not
know, cannot parse or cannot read asks. The OS sandbox (core/sandbox.py), not this gate, bounds what code run by
allowed tools does. docs/SECURITY.md is the long form: rule families, the always-ask list, inline code, owner rules.

Order of decision: ALWAYS ASK (_FLOOR, git push --force, git reset --hard, DROP/TRUNCATE: nothing changes it), the
owner's ask rules, the owner's allow rules (run even without the sandbox), the built-in rules. check() never raises
and does no I/O; `python main_tars.py check-command` is its public face.
"""

from __future__ import annotations

import ast
import importlib
import json
import posixpath
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import bashlex
import bashlex.state
import bashlex.tokenizer

__all__ = ["Decision", "Rules", "RulesError", "check", "load_rules"]


@dataclass(frozen=True)
class Decision:
    decision: str  # "run" | "ask"
    reason: str
    rule: str


class RulesError(ValueError):
    """The owner's rules file cannot be used; the message names the file and the problem."""


_RULE_RE = re.compile(r"Bash(?:\((.*)\))?\Z", re.S)


@dataclass(frozen=True)
class Rules:
    """The owner's allow and ask rules, as written (`Bash(npm run lint:*)`)."""

    allow: tuple[str, ...] = ()
    ask: tuple[str, ...] = ()
    source: str = ""

    def match(self, kind: str, text: str) -> str | None:
        for rule in getattr(self, kind):  # re caches the compiled patterns
            spec = " ".join((_RULE_RE.match(rule).group(1) or "*").split())
            pattern = re.escape(spec[:-2].rstrip()) + "(?: .*)?" if spec.endswith(":*") else ".*".join(
                map(re.escape, spec.split("*")))
            if re.fullmatch(pattern, text, re.S):
                return rule
        return None


def load_rules(path: str | Path) -> Rules:
    """Read the owner's rules file; a missing file is no rules. Raises RulesError for anything malformed."""
    p = Path(path).expanduser()
    if not p.exists():
        return Rules(source=str(p))
    shape = 'expected {"permissions": {"allow": ["Bash(...)"], "ask": ["Bash(...)"]}}'
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise RulesError(f"{p}: cannot be read: {e}") from None
    except json.JSONDecodeError as e:
        raise RulesError(f"{p}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("permissions"), dict):
        raise RulesError(f"{p}: {shape}")
    extra = sorted(set(data) - {"permissions", "comment"}) or sorted(set(data["permissions"]) - {"allow", "ask"})
    if extra:
        raise RulesError(f"{p}: {extra[0]!r} is not understood ({shape}; TARS never refuses outright, it asks)")
    lists = {}
    for kind in ("allow", "ask"):
        items = data["permissions"].get(kind, [])
        if not isinstance(items, list):
            raise RulesError(f"{p}: permissions.{kind} must be a list of rules like \"Bash(npm run lint:*)\"")
        for i, item in enumerate(items):
            m = _RULE_RE.match(item.strip()) if isinstance(item, str) else None
            if not m or (m.group(1) is not None and not m.group(1).strip()):
                raise RulesError(f"{p}: permissions.{kind}[{i}] is {item!r}, not a rule like \"Bash(npm run lint:*)\"")
        lists[kind] = tuple(item.strip() for item in items)
    return Rules(allow=lists["allow"], ask=lists["ask"], source=str(p))


# --- words
@dataclass
class _W:
    """One shell word: source, value after quote removal (None when an expansion makes it known only at run time), the
    commands its expansion runs, and what the shell still does to it."""

    raw: str
    text: str | None = None
    subs: list = field(default_factory=list)
    glob: bool = False
    brace: bool = False
    tilde: bool = False
    procsub: bool = False
    bad: str = ""

    @property
    def shown(self) -> str:
        return self.text if self.text is not None else self.raw


def _lit(text: str, like: _W | None = None) -> _W:
    return _W(text, None if like is not None and like.text is None else text, tilde=text.startswith("~"))


_DYN = _W("{}")  # a word known only at run time (what xargs or find -exec put in)


_QUOTED = re.compile(r"""\\.|'[^']*'|`[^`]*`|"(?:\\.|[^"\\])*"|['`"]""", re.S)  # a lone quote is unclosed
_BACKQUOTED = re.compile(r"`((?:\\.|[^`\\])*)`|\$'(?:\\.|[^'\\])*'", re.S)  # `...` and $'...', escapes inside


def _close(s: str, i: int, op: str = "(", cl: str = ")") -> int:
    """Index of the bracket that closes one opened just before s[i]; -1 if none. Quotes and escapes are skipped."""
    depth = 1
    while i < len(s):
        quoted = _QUOTED.match(s, i)
        if quoted and quoted.group() in ("'", "`", '"'):
            return -1
        if quoted:
            i = quoted.end()
        elif op == "{" and s.startswith("$(", i):
            i = _close(s, i + 2)
            if i < 0:
                return -1
            i += 1
        else:
            depth += (s[i] == op) - (s[i] == cl)
            if depth == 0:
                return i
            i += 1
    return -1


def _scan(raw: str, doc: bool = False) -> _W:
    """Quote removal for one word, noting every expansion. doc=True reads an unquoted heredoc body (or the inside of
    ${...}, $((...))): quotes are plain characters there, but $ and ` still expand."""
    w, out = _W(raw, tilde=not doc and raw.startswith("~")), []
    dyn, dq, i, n = False, doc, 0, len(raw)

    def fail(why: str) -> _W:
        w.bad = why
        return w

    while i < n:
        c, nxt = raw[i], raw[i + 1 : i + 2]
        if c == "\\":
            if dq and (nxt not in "$`\"\\\n" or doc and nxt == '"'):
                out.append(c)
                i += 1
            else:
                out.append(nxt if nxt != "\n" else "")
                i += 2
        elif c == "'" and not dq:
            j = raw.find("'", i + 1)
            if j < 0:
                return fail("an unclosed quote")
            out.append(raw[i + 1 : j])
            i = j + 1
        elif c == '"' and not doc:
            dq, i = not dq, i + 1
        elif c == "`" or c == "$" and nxt == "'" and not dq:  # $'...' is decoded by bash, not here: run-time value
            quoted = _BACKQUOTED.match(raw, i)
            if not quoted:
                return fail("an unclosed quote")
            if c == "`":
                w.subs.append(re.sub(r"\\([\\`$])", r"\1", quoted.group(1)))
            dyn, i = True, quoted.end()
        elif c == "$" and nxt == '"' and not dq:
            dq, i = True, i + 2
        elif c == "$" and nxt and nxt in "({":
            j = _close(raw, i + 2, nxt, ")" if nxt == "(" else "}")
            if j < 0:
                return fail("an unclosed $" + nxt)
            inner = raw[i + 2 : j]
            if nxt == "(" and not raw.startswith("$((", i):
                w.subs.append(inner)
            elif nxt == "{" and re.search(r"@P\s*\Z", inner):
                return fail("a ${...@P} prompt expansion, which runs code")
            else:
                found = _scan(inner, doc=True)
                if found.bad:
                    return fail(found.bad)
                w.subs += found.subs
            dyn, i = True, j + 1
        elif c == "$" and nxt and (nxt.isalnum() or nxt in "_@*#?$!-"):
            j = i + 2
            while (nxt.isalpha() or nxt == "_") and j < n and (raw[j].isalnum() or raw[j] == "_"):
                j += 1
            dyn, i = True, j
        elif not dq and c in "<>" and nxt == "(":
            j = _close(raw, i + 2)
            if j < 0:
                return fail("an unclosed process substitution")
            w.subs.append(raw[i + 2 : j])
            dyn, w.procsub, i = True, i == 0 and j == n - 1, j + 1
        else:
            if not dq:
                w.glob |= c in "*?" or c == "[" and "]" in raw[i + 1 :]
                w.brace |= c == "{"
            out.append(c)
            i += 1
    if dq and not doc:
        return fail("an unclosed quote")
    w.text = None if dyn else "".join(out)
    return w


def _braces(s: str, limit: int = 64) -> list[str] | None:
    """Bash brace expansion of a path, enough to check where it writes; None if it explodes."""
    m = re.search(r"\{([^{}]*,[^{}]*)\}", s)
    if not m:
        return [re.sub(r"\{(-?\d+\.\.-?\d+(\.\.-?\d+)?|[A-Za-z]\.\.[A-Za-z])\}", "0", s)]
    out: list[str] = []
    for alt in m.group(1).split(","):
        more = _braces(s[: m.start()] + alt + s[m.end() :], limit)
        if more is None or len(out) + len(more) > limit:
            return None
        out += more
    return out


def _opts(args: list[_W], valued=frozenset(), known=None, stop: bool = False, last=frozenset()):
    """Split arguments into [(option, value word or None)] and positionals. `valued` options take a value; given
    `known`, any other option makes the result None. stop=True: the first positional ends the options (wrappers), as
    do the options in `last` (python -c, -m)."""
    opts, pos, i = [], [], 0
    while i < len(args):
        w, t = args[i], args[i].text
        if t is None or t == "-" or not t.startswith("-"):
            if stop:
                return opts, args[i:]
            pos.append(w)
        elif t == "--":
            return (opts, args[i + 1 :]) if stop else (opts, pos + args[i + 1 :])
        elif t.startswith("--") or re.fullmatch(r"-\d+", t):
            name, eq, val = t.partition("=") if t.startswith("--") else ("-#", "=", t[1:])
            if known is not None and name not in known and name not in valued:
                return None
            if not eq and name in valued:
                i += 1
            opts.append((name, _lit(val) if eq else args[i] if name in valued and i < len(args) else None))
        else:
            for j in range(1, len(t)):
                name = "-" + t[j]
                if known is not None and name not in known and name not in valued:
                    return None
                if name in valued:
                    i += 0 if t[j + 1 :] else 1
                    opts.append((name, _lit(t[j + 1 :]) if t[j + 1 :] else args[i] if i < len(args) else None))
                    break
                opts.append((name, None))
        i += 1
        if opts and opts[-1][0] in last:
            return opts, args[i:]
    return opts, pos


def _names(opts) -> set[str]:
    return {n for n, _ in opts}


def _values(opts, *names) -> list[_W]:
    return [v for n, v in opts if n in names and v is not None]


# --- inline Python
_PY_PURE = frozenset("""json math cmath re textwrap datetime time calendar collections collections.abc itertools
functools statistics decimal fractions random hashlib hmac base64 binascii uuid pprint platform struct enum difflib
unicodedata keyword heapq bisect copy html urllib.parse shlex fnmatch glob zlib numbers array colorsys ipaddress
tomllib locale __future__ os os.path sys importlib.metadata""".split())
_PY_ONLY = {"os": frozenset("""getcwd listdir scandir walk environ getenv path sep linesep name cpu_count getpid getppid
getuid geteuid getgid getlogin uname stat lstat access get_terminal_size fspath fsencode fsdecode devnull curdir pardir
extsep pathsep altsep times urandom getloadavg strerror""".split()),
            "importlib.metadata": frozenset("version metadata requires files packages_distributions".split())}
_PY_SYS_NO = frozenset("""modules meta_path path_hooks path_importer_cache settrace setprofile addaudithook
remote_exec breakpointhook excepthook displayhook unraisablehook call_tracing""".split())
_PY_BAD = frozenset("exec eval compile __import__ getattr setattr delattr vars globals locals breakpoint help".split())
_PY_DUNDER_OK = frozenset("__name__ __file__ __doc__ __version__".split())
_PY_FRAMES = re.compile(r"(gi|cr|ag|tb|f|co)_")


def _py_attr(module: str, attr: str) -> str | None:
    if module in _PY_ONLY:
        return None if attr in _PY_ONLY[module] else f"uses {module}.{attr}"
    if module == "sys":
        return f"uses sys.{attr}" if attr in _PY_SYS_NO else None
    value = getattr(importlib.import_module(module), attr, None)
    if isinstance(value, types.ModuleType) and f"{module}.{attr}" not in _PY_PURE:
        return f"reaches the module {module}.{attr}"
    return None


def _py_module(node, aliases: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    base = _py_module(node.value, aliases) if isinstance(node, ast.Attribute) else None
    return f"{base}.{node.attr}" if base and f"{base}.{node.attr}" in _PY_PURE else None


def _project_module(name: str | None) -> bool:
    """A module of the project or its environment, not of Python's standard library: running it is project code."""
    return bool(name) and name.split(".")[0] not in sys.stdlib_module_names


def _python_problem(code: str, project_code: bool = False) -> str | None:
    """None when inline Python is plainly harmless (docs/SECURITY.md), else what it does; project_code (the sandbox):
    importing modules outside the standard library is running the project's code."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return "does not parse"
    aliases: dict[str, str] = {}
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if project_code and _project_module(a.name):
                    continue
                if a.name not in _PY_PURE:
                    return f"imports {a.name}"
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if project_code and not node.level and _project_module(node.module):
                continue
            if node.level or node.module not in _PY_PURE:
                return f"imports from {node.module or '.'}"
            for a in node.names:
                problem = (f"imports * from {node.module}" if node.module in ("os", "sys", "importlib.metadata")
                           else None) if a.name == "*" else _py_attr(node.module, a.name)
                if problem:
                    return problem
                if f"{node.module}.{a.name}" in _PY_PURE:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        parent = parents.get(node)
        if isinstance(node, ast.Name):
            if node.id in _PY_BAD or (node.id.startswith("__") and node.id not in _PY_DUNDER_OK):
                return f"uses {node.id}"
            if node.id == "open" and not (isinstance(parent, ast.Call) and parent.func is node):
                return "passes open around"
            if aliases.get(node.id) in ("os", "sys", "importlib.metadata") and not isinstance(parent, ast.Attribute):
                return f"uses the {aliases[node.id]} module as a value"
        elif isinstance(node, ast.Attribute):
            if (node.attr.startswith("_") and node.attr not in _PY_DUNDER_OK) or _PY_FRAMES.match(node.attr):
                return f"uses .{node.attr}"
            base = _py_module(node.value, aliases)
            if base and _py_attr(base, node.attr):
                return _py_attr(base, node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "__" in node.value:
            return "contains a string with '__'"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
            modes = node.args[1:2] + [k.value for k in node.keywords if k.arg == "mode"]
            if any(k.arg is None for k in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
                return "opens a file in a way TARS cannot read"
            if any(not (isinstance(m, ast.Constant) and isinstance(m.value, str)) or set(m.value) & set("wax+")
                   for m in modes):
                return "opens a file for writing"
    return None


# --- tables
def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _subs(spec: dict) -> dict:
    return {sub: (_subs(fam) if isinstance(fam, dict) else fam) for keys, fam in spec.items() for sub in keys.split()}


_FAMILY_TEXT = {"read": "reads or searches", "shell": "shell bookkeeping", "edit": "edits files inside the project",
                "git": "uses git on the task's branch", "build": "builds, tests or checks the project",
                "install": "installs packages into the project's environment",
                "inline-python": "runs inline Python that is plainly harmless",
                "project-code": "runs the project's own code inside the sandbox"}
_FLOOR = {"rm": "deletes files", "rmdir": "deletes directories", "unlink": "deletes files",
          "chmod": "changes file permissions", "chown": "changes file ownership", "chgrp": "changes file ownership",
          "kill": "stops processes", "pkill": "stops processes", "killall": "stops processes",
          "dropdb": "deletes a database", **dict.fromkeys("sudo su doas pkexec run0".split(), "runs as another user")}
_DANGER = {"dd": "writes raw data over files or disks", "shred": "destroys file contents", "truncate": "empties files",
           "ln": "makes links, and a write through a link can land outside the project",
           "eval": "runs a string as shell code", "trap": "stores shell code to run later",
           "alias": "makes a command name run other words", "hash": "changes where a command is found",
           "ssh": "runs commands on another machine", "scp": "copies files to or from another machine",
           "crontab": "changes scheduled jobs", "install": "copies files and sets their permissions",
           "enable": "loads or changes shell builtins",
           **dict.fromkeys("apt apt-get dnf yum pacman brew snap apk zypper dpkg rpm gem pipx conda".split(),
                           "installs or removes software outside the project's environment")}
_READ = _set("""cat head tail wc ls dir grep egrep fgrep cut tr paste nl rev tac seq basename dirname realpath readlink
file stat du df uname whoami id groups pwd echo printf true false test [ [[ ]] : sleep which whereis type diff cmp comm
md5sum sha1sum sha256sum sha512sum shasum cksum b2sum od hexdump strings column fold fmt expand unexpand jq printenv
locale nproc free uptime ps pgrep lsof cal expr getconf tty arch numfmt join look diff3 pr base32 ping dig nslookup host
netstat ss history help tput lscpu lsblk vmstat w who date hostname""")
_SHELL = _set("set unset shopt read mapfile readarray shift wait exit return break continue let getopts jobs times "
              "dirs disown bg fg ulimit umask")
_BUILD = _set("""pytest py.test tox nox mypy pyright pylint flake8 pyflakes pycodestyle pydocstyle black isort ruff
bandit autopep8 yapf coverage tsc eslint prettier jest vitest mocha ava biome stylelint webpack rollup vite esbuild next
jasmine karma playwright cypress rustfmt rustc gofmt goimports golangci-lint staticcheck shellcheck shfmt clang-format
clang-tidy gcc g++ cc c++ clang clang++ javac kotlinc ninja meson ctest zig hadolint yamllint markdownlint
pre-commit""")
_TASK_RUNNERS = _set("gradle gradlew mvn mvnw sbt ant")
_RUNNERS = _set("uvicorn gunicorn hypercorn daphne flask streamlit celery nodemon rails rake django-admin jupyter")
_DB_TASK = re.compile(r"(?i)(^|[\s:._/-])(db|database|migrat\w*|schema|seed\w*|flush|drop\w*|truncate|wipe|purge|"
                      r"reset_db|dbshell|sqlflush|loaddata)([:._-]|$)")
_SHIP_TASK = re.compile(r"(?i)(^|[\s:._/-])(deploy\w*|release|publish\w*|upload|ship|push)([:._-]|$)")
_BUILD_TASK = re.compile(r"(?i)(test\w*|check\w*|lint\w*|build\w*|compile|typecheck|type-check|types|format\w*|fmt|"
                         r"all|ci|cov\w*|bench\w*|docs?|html|dist|package|pack|prepare|install|deps|clean|verify|"
                         r"validate|audit|e2e|unit|integration|spec|style|vet)([:._-][\w.:-]*)?")
_RISKY_ENV = re.compile(r"(PATH|IFS|ENV|SHELL|MAKESHELL|MAKEFLAGS|BASH_ENV|BASHOPTS|SHELLOPTS|PROMPT_COMMAND|"
                        r"PS[0-4]|HOME|CDPATH|GLOBIGNORE|LD_\w+|DYLD_\w+|BASH_FUNC_\S*|GIT_(?!AUTHOR_|COMMITTER_)\w+|"
                        r"\w*PAGER|\w*EDITOR|VISUAL|\w*_COMMAND|NODE_OPTIONS|PYTHONSTARTUP|PYTHONHOME|PERL5OPT|"
                        r"PERL5LIB|RUBYOPT|RUBYLIB|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS)\Z")
_VAR_NAMES = _set("printf read test [ [[ declare typeset local export readonly unset let mapfile readarray getopts")
_NAME_RE = re.compile(r"[A-Za-z0-9_.+:\[\]/-]+\Z")
_DEVICES = _set("/dev/null /dev/stdout /dev/stderr /dev/tty")
_SYSTEM_DIRS = ("/usr/bin/", "/bin/", "/usr/local/bin/", "/usr/sbin/", "/sbin/", "/opt/homebrew/bin/")
_LOCAL_URL = re.compile(r"(https?://)?(localhost|127\.0\.0\.1|\[::1\]|0\.0\.0\.0)([:/]|\Z)")
_SED_ADDR = r"(?:\d+(?:~\d+)?|\$|/(?:[^/\\\n]|\\.)*/I?)"
_SED_PART = r"(?:(?!(?P={0}))[^\\\n]|\\.)*(?P={0})"
_SED_OK = re.compile(  # sed scripts without w, W, e, r/R-to-write or the s command's w and e flags
    r"(?>\s*(?:" + _SED_ADDR + r"(?:\s*,\s*(?:" + _SED_ADDR + r"|[+~]\d+))?)?\s*!?\s*(?>s(?P<d>[^\\\n\w\s])" +
    _SED_PART.format("d") * 2 + r"[gpiIm\d]*|y(?P<e>[^\\\n\w\s])" + _SED_PART.format("e") * 2 +
    r"|[pdDqQ=nNgGhHxlPz{}]|[aic]\\?[^\n]*|[bt:T][ \t]*\w*|#[^\n]*)\s*[;\n]?)*+\s*")
_WRAPPERS = {name: (_set(valued), _set(flags), skip) for name, (valued, flags, skip) in {
    # name: (options taking a value, options without one, arguments before the command)
    "timeout": ("-s --signal -k --kill-after", "--foreground --preserve-status -v --verbose", 1),
    "nice": ("-n --adjustment", "", 0), "nohup": ("", "", 0), "builtin": ("", "", 0), "command": ("", "-p -v -V", 0),
    "time": ("-f --format", "-p -v -q --verbose --portability", 0), "exec": ("-a", "-c -l", 0),
    "stdbuf": ("-i -o -e --input --output --error", "", 0), "env": ("-u --unset", "-i -0", 0),
    "xargs": ("-a --arg-file -d --delimiter -E -I -L -n --max-args -P --max-procs -s --max-chars",
              "-0 --null -r --no-run-if-empty -t --verbose -x --exit -p --interactive -o --open-tty", 0),
    "uv run": ("--with --with-editable --with-requirements --python -p --package --extra --group --env-file --index "
               "--index-url --extra-index-url", "--frozen --locked --no-sync --isolated --all-extras --no-dev --dev -q "
               "--quiet -v --verbose --no-project --active --offline --refresh --all-packages --no-cache --exact", 0),
}.items()}
_WRITERS = {  # program: (options taking a value, options naming what it writes, which positionals it writes)
    "touch": ("-d --date -r --reference -t", "", "all"), "mkdir": ("-m --mode", "", "all"), "tee": ("", "", "all"),
    "cp": ("-t --target-directory -S --suffix", "-t --target-directory", "last"),  # the last only without -t
    "mv": ("-t --target-directory -S --suffix", "-t --target-directory", "all"),  # sources too: they move away
    "sort": ("-o --output -k -t -S -T --parallel", "-o --output -T", ""), "shuf": ("-o --output -n", "-o --output", ""),
    "tree": ("-o -L -P -I", "-o", ""), "base64": ("-o --output -b -w --wrap", "-o --output", ""),
    "uniq": ("-f -s -w", "", "second"), "xxd": ("-c -g -l -s -o", "", "second"),
    "mktemp": ("-p --tmpdir --suffix", "-p --tmpdir", "all"), "venv": ("-p --python --prompt", "", "all")}
_WRITERS["virtualenv"] = _WRITERS["venv"]
_TAR_VALUED = _set("-f --file -C --directory -T --files-from -X --exclude-from --exclude --strip-components -b -H "
                   "--format --owner --group --mode --mtime --sort")
_TAR_FLAGS = _set("-c -x -t -z -j -J -a -v -p -k -h -O --create --extract --get --list --gzip --gunzip --bzip2 --xz "
                  "--zstd --auto-compress --verbose --keep-old-files --skip-old-files --no-same-owner "
                  "--no-same-permissions --to-stdout --wildcards --anchored --exclude-vcs --overwrite --totals "
                  "--numeric-owner --one-top-level --no-recursion")
_JS = {"install i in add ci uninstall remove rm un update up upgrade dedupe prune import": "install",
       "ls list ll la outdated view info show why explain doctor help search bin root prefix fund licenses audit":
       "read", "test t tst": "build", "run run-script rum urn start restart stop": "task", "exec": "wrap",
       "dlx x": "npx", "init pack": "edit", "publish unpublish config global link unlink npm cache set plugin version "
       "login logout self-update policies store setup patch-commit owner access token deprecate dist-tag": "ask"}
_PROGRAMS = {name: (_set(valued), _set(flags), _subs(subs), _set(asking)) for name, (valued, flags, subs, asking) in {
    # program: (global options taking a value, global flags, {subcommands: family or {subcommands: family}}, options
    # that ask). Families: read, build, install, edit (the path rule applies), project (the project's code), task (a
    # task name decides), npx (a package's program), wrap and uvrun (run the rest), pip.
    "npm": ("--prefix -w --workspace", "-s --silent -q --quiet -y --yes -ws", _JS | {"exec x": "npx"},
            "-g --global --location"),
    "yarn": ("--cwd", "-s --silent", _JS | {"*": "task"}, "-g --global"),
    "pip": ("--python --log --cache-dir --proxy --timeout --retries",
            "-q --quiet -v --verbose --isolated --require-virtualenv --no-cache-dir --disable-pip-version-check",
            {"install download wheel": "install", "list show freeze check help index inspect debug search hash": "read",
             "cache": {"dir list info": "read"}, "config": {"list get debug": "read"}},
            "--user --prefix --root --break-system-packages --system"),
    "uv": ("--directory --project --cache-dir", "-q --quiet -v --verbose --offline --no-cache --frozen",
           {"sync lock add remove tree export init venv": "install", "run": "uvrun", "pip": "pip", "version": "read",
            "tool": {"run": "npx", "list": "read"}, "python": {"list find dir": "read"}},
           "--system --break-system-packages --user --prefix --root"),
    "poetry": ("-C --directory -P --project", "-q --quiet -v -n --no-interaction",
               {"install add remove lock update show check build init new export version sync": "install",
                "run": "wrap", "env": {"info list": "read"}}, ""),
    "cargo": ("--color -Z -C --manifest-path", "-q --quiet -v --verbose --frozen --locked --offline",
              {"build b test t check c clippy fmt doc d bench tree metadata locate-project verify-project version "
               "search info fetch add remove rm update up generate-lockfile vendor package new init clean": "build",
               "run r": "project"}, "--config"),
    "go": ("", "", {"build test vet fmt list doc version": "build", "env": "read", "get mod work": "install",
                    "run generate tool": "project"}, "-w"),
    "docker": ("--context -c --host -H --log-level -l --config", "-D --debug", {
        "ps images logs inspect version info top port history diff stats events search": "read",
        "compose": {"ps logs config ls images top version port": "read"}, "image": {"ls inspect history": "read"},
        "container": {"ls inspect logs top port diff": "read"}, "volume network": {"ls inspect": "read"},
        "system": {"df info events": "read"}, "context": {"ls show inspect": "read"}}, ""),
    "kubectl": ("-n --namespace --context --cluster --kubeconfig --user -s --server", "",
                {"get describe logs explain version api-resources api-versions cluster-info top events diff": "read",
                 "config": {"view get-contexts current-context get-clusters": "read"},
                 "auth": {"can-i whoami": "read"}}, ""),
    "terraform": ("", "", {"validate show output version providers graph fmt": "read", "init": "install",
                           "plan": "project", "state workspace": {"list show": "read"}}, ""),
    "gh": ("-R --repo", "", {"pr": {"list view status diff checks": "read"}, "issue": {"list view status": "read"},
                            "status": "read", "repo": {"view list": "read"}, "run": {"list view watch": "read"},
                            "release workflow": {"list view": "read"}, "auth": {"status": "read"},
                            "search": {"repos issues prs code": "read"}}, ""),
}.items()}
_PROGRAMS["pnpm"] = _PROGRAMS["bun"] = _PROGRAMS["yarn"]
_PROGRAMS["podman"], _PROGRAMS["tofu"] = _PROGRAMS["docker"], _PROGRAMS["terraform"]
_GIT_READ = _set("""status log diff show blame annotate grep ls-files ls-tree ls-remote rev-parse rev-list describe
shortlog cat-file show-ref for-each-ref merge-base name-rev whatchanged count-objects check-ignore check-attr var
version help diff-tree diff-files diff-index cherry range-diff verify-commit verify-tag show-branch fsck""")
_GIT_RISKY = _set("--output --ext-diff --textconv --exec --upload-pack --receive-pack -O --open-files-in-pager "
                  "--template --separate-git-dir --unsafe-paths")
_GIT_ASK = {"rebase": "rewrites the task's commits", "filter-branch": "rewrites history", "filter-repo":
            "rewrites history", "update-ref": "moves or deletes refs directly", "symbolic-ref": "moves refs directly",
            "replace": "replaces objects in history", "gc": "can delete unreachable commits", "prune":
            "deletes unreachable objects", "clean": "deletes untracked files", "am": "applies mailed patches",
            "bisect": "checks out other commits", "worktree": "adds or removes checkouts", "submodule":
            "changes submodules", "notes": "changes notes refs", "reflog": "expires or deletes history",
            "push": "publishes to the remote; TARS pushes the task's branch itself when the owner asks (task push)"}
_GIT_CONFIG_OK = _set("user.name user.email core.autocrlf core.filemode core.ignorecase init.defaultbranch color.ui "
                      "advice.detachedhead merge.conflictstyle diff.renames core.quotepath")
_GIT_VALUED = _set("-m --message -F --file --author --date -n --max-count --since --until --grep --format --pretty "
                   "-S -G --trailer")


# --- parsing
_HEREDOC_QUOTED = re.compile(r"<<(-?)[ \t]*(?:(['\"])([\w.@%+:/-]+)\2|\\([\w.@%+:/-]+))")


def _parse(text: str):
    """bashlex trees, and the heredoc delimiters that were quoted (their bodies are literal). bashlex cannot end a
    heredoc whose delimiter is quoted, and has no `time` or `[[`: those are rewritten first (`[[` becomes a plain
    word, so what it tests is read as commands: a cautious over-reading)."""
    quoted: set[str] = set()

    def unquote(m):
        quoted.add(m.group(3) or m.group(4))
        return "<<" + m.group(1) + (m.group(3) or m.group(4))

    fixed = _HEREDOC_QUOTED.sub(unquote, text)
    literal = frozenset(quoted - set(re.findall(r"<<-?[ \t]*([\w.@%+:/-]+)", text)))
    try:
        return bashlex.parse(fixed, expansionlimit=-1), (fixed, literal)
    except Exception:
        toks = list(bashlex.tokenizer.tokenizer(fixed, parserstate=bashlex.state.parserstate()))
        if all(t.ttype.name == "NEWLINE" for t in toks):
            return [], (fixed, literal)  # blank, or comments only
        edits = [(t.lexpos, t.endlexpos, "\\time" if t.ttype.name == "TIME" else "'[['")
                 for t in toks if t.ttype.name in ("TIME", "COND_START")]
        if not edits:
            raise
        for start, end, new in reversed(edits):
            fixed = fixed[:start] + new + fixed[end:]
        return bashlex.parse(fixed, expansionlimit=-1), (fixed, literal)


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


# --- the gate
class _Gate:
    """One check: walks the parsed command, noting what asks and which families ran."""

    def __init__(self, root: str, sandboxed: bool, rules: Rules | None):
        self.root, self.sandboxed, self.rules = root, sandboxed, rules or Rules()
        self.cwds: tuple = (root,)  # every directory the shell may be in; None: unknown
        self.asks: list[tuple[int, str, str]] = []
        self.families: list[str] = []
        self.written: set[str] = set()
        self.funcs: dict = {}
        self.calling: set[str] = set()
        self.floor_only = 0  # inside an owner-allowed command only the always-ask list still counts
        self.next_op = ""

    def ask(self, rule: str, reason: str, floor: bool = False) -> None:
        item = (0 if floor else 1 if rule.startswith("owner:") else 2, rule, reason)
        if (floor or not self.floor_only) and item not in self.asks:
            self.asks.append(item)

    def ok(self, family: str) -> None:
        if family not in self.families:
            self.families.append(family)

    def decision(self) -> Decision:
        if self.asks:
            asks = sorted(self.asks, key=lambda a: a[0])
            more = list(dict.fromkeys(a[2] for a in asks[1:] if a[2] != asks[0][2]))[:2]
            return Decision("ask", asks[0][2] + ("; also: " + "; ".join(more) if more else ""), asks[0][1])
        owner = [f for f in self.families if f.startswith("owner:")]
        if owner:
            return Decision("run", "the owner's rules allow it", owner[0])
        fams = [f for f in _FAMILY_TEXT if f in self.families]
        if not fams:
            return Decision("run", "nothing to run", "allow:empty")
        return Decision("run", "; ".join(_FAMILY_TEXT[f] for f in fams), "allow:" + "+".join(fams))

    # -- structure
    def script(self, text: str, depth: int, scoped: bool = True) -> None:
        if depth > 12 or len(text) > 100_000:
            return self.ask("ask:too-complex", "is nested or long beyond what TARS checks")
        try:
            nodes, src = _parse(text)
        except Exception:
            return self.ask("ask:unparsable", "cannot be parsed as bash, or uses syntax TARS does not check "
                                              "(such as case or arrays)")
        saved = self.cwds, dict(self.funcs), self.next_op
        for n in nodes:
            self.node(n, src, depth)
        if scoped:
            self.cwds, self.funcs, self.next_op = saved

    def node(self, n, src, depth: int, stdin=None) -> None:
        kind, saved = n.kind, self.cwds
        if kind == "list":
            for i, p in enumerate(n.parts):
                self.next_op = getattr(n.parts[i + 1], "op", "") if i + 1 < len(n.parts) else ""
                if p.kind != "operator":
                    self.node(p, src, depth, stdin)
        elif kind == "pipeline":
            cmds = [p for p in n.parts if p.kind not in ("pipe", "reservedword")]
            for i, p in enumerate(cmds):
                self.next_op = "|"
                self.node(p, src, depth, stdin if i == 0 else ("pipe", self.echoed(cmds[i - 1], src)))
        elif kind in ("compound", "if", "for", "while", "until"):
            for p in n.list if kind == "compound" else n.parts:
                if p.kind == "word":
                    self.word(p, src, depth)
                elif p.kind not in ("reservedword", "operator"):
                    self.node(p, src, depth, stdin)
            if kind == "compound" and n.list and n.list[0].kind == "reservedword" and n.list[0].word == "(":
                self.cwds = saved  # a subshell's cd stays inside it
            for r in getattr(n, "redirects", []):
                self.redirect(r, src, depth)
        elif kind == "function":  # checked where defined, and again where called
            self.funcs[src[0][n.name.pos[0] : n.name.pos[1]]] = (n.body, src)
            self.node(n.body, src, depth)
            self.cwds = saved
            self.ok("shell")
        elif kind == "command":
            self.command(n, src, depth, stdin)
        elif kind not in ("reservedword", "operator", "pipe"):
            self.ask("ask:syntax", f"uses shell syntax TARS does not check ({kind})")

    def echoed(self, n, src) -> str | None:
        """The text an `echo`/`printf` of literal words writes into a pipe (None: unknown)."""
        if n.kind != "command" or any(p.kind != "word" for p in n.parts):
            return None
        texts = [_scan(src[0][p.pos[0] : p.pos[1]]).text for p in n.parts]
        if None in texts or texts[0] not in ("echo", "printf"):
            return None
        args = texts[1:]
        while texts[0] == "echo" and args and args[0] in ("-n", "-e", "-E"):
            args = args[1:]
        return " ".join(args) + "\n" if texts[0] == "echo" else "".join(args[:1])

    def word(self, node, src, depth: int) -> _W:
        w = _scan(src[0][node.pos[0] : node.pos[1]])
        if w.bad:
            self.ask("ask:unreadable", f"has a word TARS cannot read ({w.bad}): {w.raw}")
        for body in w.subs:
            self.script(body, depth + 1)
        return w

    def command(self, n, src, depth: int, stdin) -> None:
        words, truncated = [], []
        for p in n.parts:
            if p.kind == "assignment" and not words:
                self.assignment(self.word(p, src, depth))
            elif p.kind in ("word", "assignment"):
                words.append(self.word(p, src, depth))
            elif p.kind == "redirect":
                got = self.redirect(p, src, depth)
                if got and got[0] == "stdin":
                    stdin = got[1]
                elif got:
                    truncated.append(got[1])
        texts = [w.text for w in words]
        if not words or texts[0] in (":", "true", "false") or texts in (["cat", "/dev/null"], ["echo", "-n"],
                                                                          ["printf", ""]):
            for t in truncated:
                if t.text not in _DEVICES:
                    self.ask("ask:wipe", f"empties {t.shown}")
        if words:
            self.run(words, stdin, depth)
        elif not truncated:
            self.ok("shell")

    def assignment(self, w: _W) -> None:
        name, _, value = (w.text if w.text is not None else w.raw).partition("=")
        if _RISKY_ENV.match(name.rstrip("+")):
            self.ask("ask:env", f"sets {name.rstrip('+')}, which changes what programs run or where they look")
        elif w.text is not None and ("$(" in value.replace("$((", "") or "`" in value):
            self.ask("ask:stored-code", f"stores text bash may later run as code: {w.raw}")

    def redirect(self, r, src, depth: int):
        """("stdin", (kind, text or word)) for input, ("truncate", word) for `>`; checks where output goes."""
        if r.type in ("<<", "<<-"):
            body = "\n".join(r.heredoc.value.split("\n")[:-1])
            if r.output.word in src[1]:
                return "stdin", ("text", body)
            w = _scan(body, doc=True)
            for sub in w.subs:
                self.script(sub, depth + 1)
            return "stdin", ("text", w.text)
        if not hasattr(r.output, "pos"):
            return None  # 2>&1, >&-: file descriptors, not files
        w = self.word(r.output, src, depth)
        if r.type == "<<<":
            return "stdin", ("text", None if w.text is None else w.text + "\n")
        if r.type in ("<", "<&"):
            return "stdin", ("file", w)
        if self.write(w) and not (w.text or "").startswith("/dev/"):
            self.ok("edit")
        return ("truncate", w) if r.type in (">", ">|", "&>", ">&") else None

    # -- paths
    def place(self, full: str) -> str:
        if _inside(full, self.root):
            return "git" if "/.git/" in full[len(self.root) :] + "/" else "project"
        return "tmp" if self.sandboxed and _inside(full, "/tmp") else "outside"

    def paths(self, w: _W, what: str) -> list[str] | None:
        """Every absolute path the word can name from every directory the shell may be in; None after asking."""
        if w.text is None or w.bad:
            return self.ask("ask:dynamic-path", f"{what} a path known only at run time: {w.raw}")
        if w.tilde:
            return self.ask("ask:outside", f"{what.removesuffix(' to')} outside the project: {w.raw}")
        names = _braces(w.text) if w.brace else [w.text]
        if names is None or w.glob and any(re.match(r"[.\[].*[*?\[]", p) for n in names for p in n.split("/")):
            return self.ask("ask:dynamic-path", f"{what} a pattern TARS cannot resolve: {w.raw}")
        if None in self.cwds and not all(n.startswith("/") for n in names):
            return self.ask("ask:cwd", f"{what} {w.raw} from a directory known only at run time")
        return [posixpath.normpath(posixpath.join(cwd or "/", n)) for n in names for cwd in self.cwds]

    def write(self, w: _W, devices: bool = True, tmp: bool = True) -> bool:
        if w.procsub or devices and w.text is not None and (w.text in _DEVICES or w.text.startswith("/dev/fd/")):
            return True
        for full in self.paths(w, "writes to") or ():
            where = self.place(full)
            if where == "git":
                return self.ask("ask:git-internals", f"writes into git's own files: {w.shown}") or False
            if where == "outside" or where == "tmp" and not tmp:
                return self.ask("ask:outside", f"writes outside the project: {w.shown}") or False
            self.written.add(full)
        return True

    def outside_arg(self, w: _W) -> bool:
        """Whether a tool's argument points outside the project (build tools, read-only subcommands)."""
        t = w.text.split("=", 1)[-1] if w.text and w.text.startswith("-") else w.text
        if t is None or t in _DEVICES or not t.startswith(("/", "~", "..")):
            return False
        return t.startswith("~") or any(self.place(p) == "outside" for p in self.paths(_lit(t), "uses") or ["/"])

    # -- running things
    def run(self, words: list[_W], stdin, depth: int, funcs: bool = True) -> None:
        """One simple command: the always-ask list, the owner's rules, then the program's own rule."""
        head, args = words[0], words[1:]
        if head.text is None or head.glob or head.brace or head.bad:
            return self.ask("ask:dynamic-program", f"the program to run is known only at run time: {head.raw}")
        prog = head.text
        if not _NAME_RE.match(prog):
            return self.ask("ask:odd-name", f"the program name {prog!r} has characters no ordinary program has")
        if funcs and prog in self.funcs:
            if prog not in self.calling:  # a recursive call was checked by the first one
                self.calling.add(prog)
                self.node(self.funcs[prog][0], self.funcs[prog][1], depth + 1)
                self.calling.discard(prog)
            return
        name = posixpath.basename(prog) if prog.startswith(_SYSTEM_DIRS) else prog
        if "/" in name:  # a program of the project: its code, or a tool in a virtualenv or node_modules/.bin
            base, parent = posixpath.basename(name), posixpath.basename(posixpath.dirname(name))
            if parent not in ("bin", ".bin", "Scripts") or base in _READ or base in _SHELL or base in _TASK_RUNNERS \
                    or any(self.place(f) != "project" for f in self.paths(head, "runs") or ["/"]):
                return self.own_code(head, args, runner=base if base in _TASK_RUNNERS else "")
            name = base
        if name in _VAR_NAMES and any("$(" in (w.text or "") or "`" in (w.text or "") for w in args):
            return self.ask("ask:stored-code", f"`{name}` gets a variable name with a substitution, which bash runs")
        if name == "kill" and args and args[0].text in ("-0", "-l", "-L", "--list"):
            return self.ok("read")
        if name in _FLOOR:
            return self.ask(f"ask:{name}", f"`{name}` {_FLOOR[name]}", floor=True)
        text = " ".join([name] + [w.shown for w in args])
        rule = self.rules.match("ask", text)
        if rule:
            return self.ask(f"owner:ask {rule}", f"the owner's rules ask before `{text}`")
        rule = self.rules.match("allow", text)
        if rule:
            self.ok(f"owner:allow {rule}")
            self.floor_only += 1
        key = re.sub(r"^(python|pip)[23]?(\.\d+)?$", r"\1", name)
        if key in _HANDLERS:
            _HANDLERS[key](self, key, args, stdin, depth)
        elif name in _DANGER or name.startswith("mkfs"):
            self.ask(f"ask:{name}", f"`{name}` {_DANGER.get(name, 'formats disks')}")
        else:
            sub = args[0].text if args and re.match(r"[a-z][\w:.-]*\Z", args[0].text or "") else ""
            self.ask("ask:unknown-program", f"`{name}{' ' + sub if sub else ''}` is not a command TARS knows "
                                            "to be harmless")
        self.floor_only -= bool(rule)

    def own_code(self, w: _W, args: list[_W], what: str = "", runner: str = "") -> None:
        """A file of the project's own code: it must be in the project and not written by this command."""
        for full in self.paths(w, "runs") or ():
            if self.place(full) != "project":
                return self.ask("ask:outside-code", f"runs {w.shown}, which is outside the project")
            if any(_inside(full, x) for x in self.written):
                return self.ask("ask:written-and-run", f"runs {w.shown}, which this same command writes")
        if runner:
            return self.tasks(runner, args)
        if w.text is not None:
            self.project_code(what or f"`{w.text}`", [_lit(posixpath.splitext(posixpath.basename(w.text))[0])] + args)

    def project_code(self, what: str, args: list[_W]) -> None:
        task = " ".join([a.text for a in args if a.text and not a.text.startswith("-")][:2])
        kind = "database" if _DB_TASK.search(task) else "deploy" if _SHIP_TASK.search(task) else ""
        if kind:
            return self.ask(f"ask:{kind}", f"{what} looks like a {kind} task ({task}); its effects live outside "
                                           "the checkout and its checkpoints")
        if not self.sandboxed:
            return self.ask("ask:project-code", f"{what} runs the project's own code, and there is no sandbox")
        self.ok("project-code")

    def build(self, name: str, args: list[_W], family: str = "build") -> None:
        far = next((w for w in args if self.outside_arg(w)), None)
        if far:
            return self.ask("ask:outside", f"points {name} at a path outside the project: {far.shown}")
        self.ok(family)

    def tasks(self, runner: str, args: list[_W]) -> None:
        """A task runner: each task by its name (build/test names build; database or shipping names ask)."""
        for w in [w for w in args if not (w.text or "").startswith("-") and "=" not in (w.text or "")] or [_lit("")]:
            if w.text is None:
                return self.ask("ask:dynamic-task", f"`{runner}` runs a task named at run time: {w.raw}")
            if w.text and not _BUILD_TASK.fullmatch(w.text) or _DB_TASK.search(w.text) or _SHIP_TASK.search(w.text):
                return self.project_code(f"`{runner} {w.text}`", [w])
        self.build(runner, args)

    def stdin_code(self, lang: str, stdin, depth: int) -> None:
        """Code an interpreter reads from stdin (or -c): a file is the project's code; shell and Python are read."""
        if stdin and stdin[0] == "file":
            return self.own_code(stdin[1], [], what=f"{lang} < {stdin[1].shown}")
        if not stdin or stdin[0] == "pipe" and stdin[1] is None:
            how = "piped in from another program" if stdin else "typed at a prompt"
            return self.ask("ask:piped-code", f"{lang} runs code {how}; TARS cannot see it")
        if stdin[1] is None:
            return self.ask("ask:dynamic-code", f"{lang} runs code built at run time")
        if lang == "python":
            problem = _python_problem(stdin[1], project_code=self.sandboxed)
            return self.ask("ask:inline-code", f"inline Python {problem}") if problem else self.ok("inline-python")
        if lang != "shell":
            return self.ask("ask:inline-code", f"{lang} runs code TARS does not read (it reads only Python and shell)")
        self.script(stdin[1], depth + 1)


# --- handlers: (gate, name, args, stdin, depth)
def _h_cd(g: _Gate, name, args, stdin, depth):
    t = next((a for a in args if a.text is None or not a.text.startswith("-") or a.text == "-"), None)
    new = (None,) if name == "popd" or t is None or t.text in (None, "-") or t.tilde or t.glob else tuple(
        posixpath.normpath(posixpath.join(c, t.text)) if c or t.text.startswith("/") else None for c in g.cwds)
    g.cwds = new if g.next_op == "&&" else tuple(dict.fromkeys(g.cwds + new))  # cd may fail: both are possible
    g.ok("shell")


def _h_wrapper(g: _Gate, name, args, stdin, depth, spec=None):
    """env, timeout, nice, time, xargs, uv run...: the command they run is checked like any other."""
    valued, flags, skip = spec or _WRAPPERS[name]
    parsed = _opts(args, valued | {"-#"}, known=valued | flags | {"-#"}, stop=True)
    if parsed is None:
        return g.ask("ask:wrapper-option", f"`{name}` has an option TARS does not know, so what it runs is unclear")
    opts, rest = parsed
    while name == "env" and rest and re.match(r"[A-Za-z_]\w*=", rest[0].text or ""):
        g.assignment(rest.pop(0))
    rest = rest[skip:]
    if not rest or name == "command" and _names(opts) & {"-v", "-V"}:  # env, xargs, command -v: they print
        return g.ok("read")
    if name == "xargs":  # what xargs adds is known only at run time
        mark = next((v.text for n, v in opts if n == "-I" and v is not None), None)
        rest = [_DYN if mark and mark in (w.text or "") else w for w in rest] + ([] if mark else [_DYN])
    if (rest[0].text or "").endswith(".py"):
        return _h_python(g, "python", rest, stdin, depth)
    g.run(rest, stdin, depth, funcs=False)


def _h_shell(g: _Gate, name, args, stdin, depth):
    """bash, sh, source...: a -c string or code on stdin is checked as shell; a script is the project's own code."""
    parsed = ([], args) if name in ("source", ".") else _opts(args, {"-o"}, known=_set(
        "-a -b -c -e -f -h -i -k -l -m -n -p -s -t -u -v -x -B -C -E -H -P --norc --noprofile --login --posix "
        "--noediting --verbose --version --help"), stop=True)
    if parsed is None or parsed[1] and (parsed[1][0].text or "").startswith("+"):
        return g.ask("ask:shell-option", f"`{name}` has an option TARS does not know (or a startup file)")
    opts, rest = parsed
    if "-c" in _names(opts):
        return g.stdin_code("shell", ("text", rest[0].text if rest else None), depth)
    if not rest or "-s" in _names(opts) or rest[0].text in ("/dev/stdin", "-", "/proc/self/fd/0"):
        return g.stdin_code("shell", stdin, depth)
    if name in ("source", ".") and re.search(r"(^|/)(bin|Scripts)/activate\Z", rest[0].text or "") and all(
            g.place(p) == "project" and p not in g.written for p in g.paths(rest[0], "runs") or ["/"]):
        return g.ok("install")  # the project's virtualenv
    g.own_code(rest[0], rest[1:], f"`{name} {rest[0].shown}`")


def _h_python(g: _Gate, name, args, stdin, depth):
    """python: -c code is read (INLINE CODE); -m is a known tool or the project's module; a file is the project's."""
    parsed = _opts(args, _set("-c -m -W -X"), known=_set("-b -B -d -E -i -I -O -P -q -s -S -u -v -V --version -h "
                                                          "--help"), stop=True, last={"-c", "-m"})
    if parsed is None:
        return g.ask("ask:python-option", f"`{name}` has an option TARS does not know")
    opts, rest = parsed
    option, value = opts[-1] if opts else ("", None)
    if _names(opts) & _set("-V --version -h --help"):
        return g.ok("read")
    if option == "-c":
        return g.stdin_code("python", ("text", value and value.text), depth)
    if option != "-m":
        return g.own_code(rest[0], rest[1:], f"`{name} {rest[0].shown}`") if rest and rest[0].text != "-" else \
            g.stdin_code("python", stdin, depth)
    module, args = value and value.text, rest
    if module in ("pip", "venv"):
        return _HANDLERS[module](g, module, args, stdin, depth)
    if module in _BUILD or module in ("unittest", "doctest", "build", "compileall", "py_compile"):
        return g.build(module, args)
    if module in ("json.tool", "tokenize", "dis", "pydoc", "platform", "sysconfig", "calendar"):
        return g.ok("read") if all(map(g.write, [w for w in args if w.text != "-"][1:2])) else None
    if module is None or module.split(".")[0] in sys.stdlib_module_names and module != "http.server":
        return g.ask("ask:stdlib-tool", f"`{name} -m {module or '...'}` runs a standard-library tool TARS does not "
                                        "know, or a module named at run time")
    g.project_code(f"`{name} -m {module}`", args)


def _h_interpreter(g: _Gate, name, args, stdin, depth):
    """node, deno, ts-node, tsx, perl, ruby, php...: the project's files run; inline code asks."""
    words = [w for w in args if w.text is None or not w.text.startswith("-")]
    flags = [w.text for w in (args[: args.index(words[0])] if words else args)]
    js = name in ("node", "deno", "ts-node", "tsx")
    if any(f in ("--version", "-v", "-V", "--help", "-h") for f in flags):
        return g.ok("read")
    if name in ("node", "deno") and ("--test" in flags or words[:1] and words[0].text == "test"):
        return g.build(name, args)
    code = [f for f in flags if not js or not f.startswith("--") or f.startswith(("--eval", "--print", "--inter"))]
    if code or words and words[0].text in ("eval", "repl"):
        return g.ask("ask:inline-code", f"`{name} {(code or ['eval'])[0]}` runs inline code or takes options TARS does "
                                        "not read (it reads only Python inline code)")
    words = words[1:] if name == "deno" and words and words[0].text in ("run", "task") else words
    if not words:
        return g.stdin_code(name, stdin, depth)
    g.own_code(words[0], args[args.index(words[0]) + 1 :], f"`{name} {words[0].shown}`")


def _h_git(g: _Gate, name, args, stdin, depth):
    i, saved = 0, g.cwds
    while i < len(args) and (args[i].text or "-").startswith("-"):
        t = args[i].text
        if t == "-C" and i + 1 < len(args):
            fulls = g.paths(args[i + 1], "runs git in")
            if fulls is None or any(g.place(f) != "project" for f in fulls):
                return g.ask("ask:outside", f"runs git on a directory outside the project: {args[i + 1].shown}")
            g.cwds, i = tuple(fulls), i + 2
        elif t in ("--version", "--help", "-h", "-v"):
            return g.ok("read")
        elif t in ("--no-pager", "-P", "--no-optional-locks", "--literal-pathspecs", "--no-replace-objects"):
            i += 1
        else:
            return g.ask("ask:git-option", f"`git {args[i].shown}` changes how git runs (configuration, pager, "
                                           "repository or the programs it calls)")
    _git_sub(g, args[i:])  # (an exception ends the whole check: check() asks)
    g.cwds = saved


def _git_sub(g: _Gate, args):
    sub, rest = (args[0].text, args[1:]) if args else ("help", [])
    flags = {w.text.split("=")[0] for w in rest if w.text and w.text.startswith("-")}
    pos = [w for w in rest if not (w.text or "").startswith("-")]
    p0 = pos[0].text if pos else None
    risky = next((f for f in flags if f in _GIT_RISKY or sub == "clone" and f in ("-c", "--config")), None)
    if sub is None or risky:
        return g.ask("ask:git-option", f"`git {sub} {risky}` writes files, changes configuration or runs programs"
                     if risky else f"the git command is known only at run time: {args[0].raw}")
    if sub == "push":
        dyn = any(w.text is None for w in pos)
        if dyn or flags & {"-f", "--force-with-lease", "--force-if-includes", "--mirror"} or any(
                re.fullmatch(r"-[a-zA-Z]*f[a-zA-Z]*", f) or len(f) > 3 and ("--force".startswith(f) or
                "--mirror".startswith(f)) for f in flags) or any(
                (w.text or "").startswith("+") or ":+" in (w.text or "") for w in pos):
            return g.ask("ask:git-push-force", "git push --force rewrites history on the remote" +
                         (" (a refspec known only at run time may force)" if dyn else ""), floor=True)
        if flags & {"-d", "--delete", "--prune"} or any((w.text or "").startswith(":") for w in pos):
            return g.ask("ask:git-push-delete", "git push --delete deletes branches or tags on the remote")
    if sub == "reset" and "--hard" in flags:
        return g.ask("ask:git-reset-hard", "git reset --hard discards uncommitted changes", floor=True)
    if sub == "rm" and "--cached" not in flags:
        return g.ask("ask:rm", "`git rm` deletes files", floor=True)
    dyn = next((w for k, w in enumerate(rest) if w.text is None and sub != "add" and
                (k == 0 or rest[k - 1].text not in _GIT_VALUED)), None)
    if dyn:
        return g.ask("ask:git-dynamic", f"`git {sub}` gets arguments known only at run time: {dyn.raw}")
    if sub in ("mv", "init") and not all(g.write(w) for w in pos):
        return None
    if sub == "clone" and (not p0 or "::" in p0 or not g.write(
            pos[1] if len(pos) > 1 else _lit(posixpath.basename(p0.rstrip("/")).removesuffix(".git")))):
        return g.ask("ask:git-clone", f"`git clone {p0}` runs a transport program") if p0 and "::" in p0 else None
    if sub in _GIT_READ or sub == "reflog" and p0 in (None, "show", "list", "exists"):
        return g.build("git", rest, "git")
    key = (pos[1].text if p0 in ("set", "get") and len(pos) > 1 else p0 or "").lower()
    abort = "abandons work in progress" if flags & {"--abort", "--quit", "--skip"} else ""
    problem = {
        "add": "", "apply": "", "init": "", "mv": "", "clone": "", "rm": "", "merge": abort, "cherry-pick": abort,
        "revert": abort, "commit": "rewrites the last commit on the task's branch" if "--amend" in flags else "",
        "fetch": "updates local branches" if any(":" in (w.text or "") for w in pos[1:]) else "",
        "pull": "rewrites the task's commits or forces" if flags & {"-r", "--rebase", "-f", "--force"} and
                "--rebase=false" not in [w.text for w in rest] else "",
        "stash": "" if p0 in (None, "push", "save", "list", "show", "apply", "pop", "create") else
                 "deletes stashed changes",
        "tag": "deletes or moves tags" if flags & {"-d", "--delete", "-f", "--force"} else "",
        "branch": "deletes, moves or renames branches" if len(pos) > 2 or flags & _set(
            "-d -D --delete -f --force -m -M --move -c -C --copy -u --set-upstream-to --unset-upstream") else "",
        "switch": "" if flags & {"-c", "--create"} and not flags & _set(
                  "-C --force-create -f --force --discard-changes") else
                  "switches away from the task's branch or discards changes",
        "checkout": "" if "-b" in flags and flags <= _set("-b -q --quiet --track --no-track") and len(pos) <= 2 and
                    "--" not in [w.text for w in rest] else
                    "can discard uncommitted changes or leave the task's branch (git switch -c makes a new branch)",
        "restore": "" if flags & {"--staged", "-S"} and not flags & {"--worktree", "-W"} else
                   "discards uncommitted changes",
        "reset": "" if flags <= {"-q", "--quiet", "--mixed", "--"} and (p0 in (None, "HEAD") or rest[0].text == "--")
                 else "moves the task's branch or discards changes",
        "remote": "" if p0 in (None, "show", "get-url", "add") else "changes remotes",
        "config": "" if flags & _set("--get --get-all --get-regexp --list -l") or p0 in ("get", "list") or
                  len(pos) == 1 or key in _GIT_CONFIG_OK and not flags & _set("--global --system --file -f") else
                  f"changes git configuration ({key}), which can make git run programs or write elsewhere",
    }.get(sub, _GIT_ASK.get(sub))
    if problem is None:
        return g.ask("ask:unknown-git", f"`git {sub}` is not a git command TARS knows to be harmless")
    if problem:
        return g.ask(f"ask:git-{sub}", f"`git {sub}` {problem}")
    g.ok("git")


def _h_find(g: _Gate, name, args, stdin, depth):
    i = 0
    while i < len(args):
        t = args[i].text
        if t is None:
            return g.ask("ask:find", f"find gets arguments known only at run time: {args[i].raw}")
        if t in ("-exec", "-execdir", "-ok", "-okdir"):  # the command find runs, with {} known only at run time
            j = next((j for j in range(i + 1, len(args)) if args[j].text in (";", "+")), len(args))
            g.run([_DYN if "{}" in (w.text or "{}") else w for w in args[i + 1 : j]] or [_DYN], None, depth, False)
            i = j
        elif t == "-delete":
            g.ask("ask:rm", "`find -delete` deletes files", floor=True)
        elif t in ("-fprint", "-fprint0", "-fls", "-fprintf") and i + 1 < len(args):
            g.write(args[i + 1])
        i += 1
    g.ok("read")


def _h_text(g: _Gate, name, args, stdin, depth):
    """sed and awk: their scripts must neither write files nor run commands; sed -i edits files of the project."""
    if name == "sed":  # -i takes an optional suffix (-i.bak, -ni): such words are taken out first
        in_place = [w for w in args if re.fullmatch(r"-[nErsuzb]*i\S*|--in-place(=\S*)?", w.text or "")]
        parsed = _opts([w for w in args if w not in in_place], _set("-e --expression -l --line-length"), known=_set(
            "-n -E -r -s -u -z -b --quiet --silent --regexp-extended --separate --unbuffered --null-data --posix "
            "--debug --sandbox --follow-symlinks"))
        opts, pos = parsed or ([], [])
        if in_place and pos and pos[0].text == "":  # BSD sed: `-i ''` is the (empty) suffix, the script comes next
            pos = pos[1:]
        scripts = _values(opts, "-e", "--expression") or pos[:1]
        files = pos if _values(opts, "-e", "--expression") else pos[1:]
        if parsed is None or any(w.text is None for w in scripts + files) or not all(
                len(w.text) < 10_000 and _SED_OK.fullmatch(w.text) for w in scripts):
            return g.ask("ask:sed", "the sed script writes files or runs commands (w, W, e, the s command's w or e "
                                    "flag), or TARS cannot read it")
        if in_place:
            return g.ok("edit") if all(g.write(f, devices=False) for f in files) else None
        return g.ok("read")
    parsed = _opts(args, _set("-F -v -f --file -e --source -i --include -l --load"),
                   known=_set("-b -c -P -S -n -O --posix --sandbox --traditional"))
    opts, pos = parsed or ([("-f", None)], [])
    progs = _values(opts, "-e", "--source") or pos[:1]
    if _names(opts) & _set("-f --file -i --include -l --load") or not progs or progs[0].text is None:
        return g.ask("ask:awk", f"`{name}` runs a program TARS cannot read (from a file, or built at run time)")
    if re.search(r"\bsystem\s*\(|\||\bprintf?\b[^;{}\n]*>|@", progs[0].text.replace("||", "")):
        return g.ask("ask:awk", f"the {name} program runs commands or writes files (system, |, print >)")
    g.ok("read")


def _h_files(g: _Gate, name, args, stdin, depth):
    """Programs that write the files they are given (_WRITERS): every target inside the project."""
    valued, outputs, written = _WRITERS[name]
    opts, pos = _opts(args, _set(valued))
    if name in ("cp", "mv") and _names(opts) & _set("-s --symbolic-link -l --link"):
        return g.ask("ask:ln", f"`{name} -s` makes links, and a write through a link can land outside the project")
    if name in ("cp", "mv") and any((w.text or "").startswith("/dev/") for w in pos[:-1]):
        return g.ask("ask:wipe", f"`{name}` copies a device over files: {pos[0].shown}")
    outs = _values(opts, *outputs.split())
    targets = outs + {"all": pos, "second": pos[1:2], "last": [] if outs else pos[-1:]}.get(written, [])
    if name in ("venv", "virtualenv"):
        targets = targets or [_lit(".venv")]
    devices = name not in ("cp", "mv", "touch", "mkdir", "venv", "virtualenv")
    if all(g.write(w, devices=devices, tmp=name != "mv") for w in targets):
        g.ok("install" if name in ("venv", "virtualenv") else "edit" if targets else "read")


def _h_search(g: _Gate, name, args, stdin, depth):
    """rg and fd read, but some of their options run other programs; an argument known at run time could be one."""
    bad = _set("--pre --hostname-bin --search-zip -z" if name == "rg" else "--exec --exec-batch -x -X")
    hit = next((w.shown for w in args if w.text is None), None) or next(
        (n for n, _ in _opts(args)[0] if n.split("=")[0] in bad), None)
    if hit:
        return g.ask(f"ask:{name}", f"`{name} {hit}` runs other programs (or gets arguments known at run time)")
    g.ok("read")


def _h_archive(g: _Gate, name, args, stdin, depth):
    """tar, zip, unzip, gzip and friends: archives and extractions inside the project; originals are not deleted."""
    if name == "tar" and args and re.fullmatch(r"[A-Za-z]+", args[0].text or ""):
        args = [_lit("-" + args[0].text)] + args[1:]  # tar czf: the old bundled form
    parsed = _opts(args, _TAR_VALUED if name == "tar" else _set("-d -x -P -S"),
                   known=_TAR_FLAGS if name == "tar" else None)
    if parsed is None or name == "zip" and any(re.fullmatch(r"-[a-zA-Z]*[mT][a-zA-Z]*|--move|--test|-TT", w.text or "")
                                               for w in args):
        return g.ask(f"ask:{name}", f"`{name}` has an option that deletes the originals, runs a program or writes "
                                    "outside (or one TARS does not know)")
    opts, pos = parsed
    names = _names(opts)
    if name == "tar":
        archive = _values(opts, "-f", "--file")
        if any(":" in (w.text or ":") for w in archive):
            return g.ask("ask:tar", "`tar -f` names a remote archive or one known only at run time")
        creates, extracts = names & {"-c", "--create"}, names & {"-x", "--extract", "--get"}
        targets = [w for w in archive if w.text != "-"] if creates else (_values(opts, "-C", "--directory") or [
            _lit(".")]) if extracts and not names & {"-O", "--to-stdout"} else []
    elif name == "unzip":
        targets = [] if names & _set("-l -t -v -Z -p -c -z") else _values(opts, "-d") or [_lit(".")]
    else:
        targets = pos[:1] if name == "zip" else [] if names & _set("-c --stdout -t --test -l --list") else pos
    if all(g.write(w, devices=False) for w in targets):
        g.ok("edit" if targets else "read")


def _h_programs(g: _Gate, name, args, stdin, depth):
    """Programs with subcommands (_PROGRAMS): the subcommand's family decides."""
    valued, flags, subs, asking = _PROGRAMS[name]
    parsed = _opts(args, valued, known=valued | flags | _set("--version -V --help -h -v"), stop=True)
    if parsed is None:
        return g.ask("ask:option", f"`{name}` has an option before its command that TARS does not know")
    opts, rest = parsed
    if not rest:  # help or version; a bare yarn, pnpm, bun or poetry installs
        return g.ok("read") if opts or "*" not in subs and name != "poetry" else g.build(name, args, "install")
    asked = next((w.text for w in args if w.text and (w.text.split("=")[0] in asking or w.text == "global")), None)
    if asked:
        return g.ask("ask:install-outside", f"`{name} {asked}` works outside the project's environment")
    sub, more = rest[0].text, rest[1:]
    family = subs.get(sub)
    if isinstance(family, dict):
        family, more = family.get(more[0].text if more else None), more[1:]
    if family is None and "*" in subs and sub and not sub.startswith("-"):  # yarn/pnpm/bun SCRIPT (or bun FILE)
        family, more = "project" if name == "bun" and "." in sub else "task", rest
    if family in (None, "ask"):
        shown = " ".join(w.shown for w in rest[:2] if not (w.text or "").startswith("-"))
        return g.ask("ask:unknown-program", f"`{name} {shown}` is not a command TARS knows to be harmless")
    if family == "task" and sub not in ("run", "run-script", "rum", "urn"):  # npm start, yarn SCRIPT
        return g.tasks(name, rest[:1])
    if family == "task":  # a bare `npm run` lists the scripts
        more = [w for w in more if w.text != "--"]
        return g.tasks(f"{name} {sub}", more[:1]) if more else g.ok("read")
    if family == "project":
        return g.own_code(more[0], more[1:]) if name == "bun" else g.project_code(f"`{name} {sub}`", more)
    if family in ("wrap", "uvrun"):
        spec = _WRAPPERS["uv run"] if family == "uvrun" else (set(), set(), 0)
        return _h_wrapper(g, f"{name} {sub}", more, stdin, depth, spec)
    if family == "npx":
        return _h_npx(g, f"{name} {sub}", more, stdin, depth)
    if family == "pip":
        return _h_programs(g, "pip", more, stdin, depth)
    g.build(name, more, family)


def _h_npx(g: _Gate, name, args, stdin, depth):
    parsed = _opts(args, _set("-p --package --from --with --python -c --call"), stop=True)
    if parsed is None or not parsed[1] or _values(parsed[0], "-p", "--package", "--from", "-c", "--call"):
        return g.ask("ask:npx", f"`{name}` runs a package TARS cannot name")
    tool = re.sub(r"(?<=.)@[^/]*\Z", "", parsed[1][0].text or "?")
    if tool in _BUILD or tool in ("ts-node", "tsx", "node"):
        return g.run([_lit(tool)] + parsed[1][1:], stdin, depth, funcs=False)
    g.ask("ask:npx", f"`{name} {tool}` downloads or runs a package TARS does not know")


def _h_make(g: _Gate, name, args, stdin, depth):
    if name == "cmake":
        if any(w.text in ("-E", "-P", "--install") for w in args):
            return g.ask("ask:cmake", "`cmake -E/-P/--install` runs file commands or scripts, or installs")
        return g.build(name, args)
    parsed = _opts(args, _set("-f --file --makefile -C --directory -I --include-dir -o -W -l -j"), known=_set(
        "-k -s -n -B -e -i -q -r -R -w -d --no-print-directory --keep-going --silent --quiet --dry-run --always-make "
        "--jobs --trace --debug -O --output-sync"))
    if parsed is None:
        return g.ask("ask:make", "`make` has an option TARS does not know (such as --eval)")
    opts, pos = parsed
    for w in pos:
        if "=" in w.raw:
            g.assignment(w)
    dirs = _values(opts, "-f", "--file", "--makefile", "-C", "--directory")
    if not all(g.place(p) == "project" for w in dirs for p in g.paths(w, "uses") or ["/"]):
        return g.ask("ask:outside", "`make` uses a Makefile or directory outside the project")
    g.tasks(name, [w for w in pos if not re.fullmatch(r"\d+", w.text or "")])


def _h_http(g: _Gate, name, args, stdin, depth):
    """curl, wget: GET/HEAD anywhere, data or other methods only to this machine, files into the project; an unknown
    option asks (curl -K and wget -e read options from elsewhere)."""
    curl = name == "curl"
    outs = _set("-o --output -D --dump-header -c --cookie-jar --output-dir" if curl else
                "-O --output-document -o --output-file -P --directory-prefix")
    sends = _set("-d --data --data-raw --data-binary -F --form -T --upload-file --json" if curl else "--post-data")
    valued = outs | sends | _set("-X --request -H --header -u --user -A --user-agent -b --cookie -w --write-out -m "
                                 "--max-time --connect-timeout --retry -x --proxy -r --range --url" if curl else
                                 "-t --tries -T --timeout -U --user-agent --header --user --method")
    flags = _set("-s -S -L -f -i -I -v -k -g -N -O -J -G -4 -6 --silent --show-error --location --fail --include "
                 "--head --verbose --insecure --compressed --no-progress-meter --get --create-dirs --remote-name"
                 if curl else "-q --quiet -n --no-verbose -v -c --continue -N -r --recursive --spider -S -k "
                 "--no-check-certificate --show-progress")
    parsed = _opts(args, valued, known=valued | flags)
    if parsed is None:
        return g.ask(f"ask:{name}", f"`{name}` has an option TARS does not know (or reads options from a file)")
    opts, urls = parsed
    urls += _values(opts, "--url")
    method = [v.text for n, v in opts if n in ("-X", "--request", "--method")]
    if (_names(opts) & sends or any(m is None or m.upper() not in ("GET", "HEAD") for m in method)) and not all(
            u.text and _LOCAL_URL.match(u.text) for u in urls):
        return g.ask("ask:network-write", f"`{name}` sends data or a {(method or ['POST'])[0]} request to a server "
                                          "other than this machine")
    targets = [v for n, v in opts if n in outs and v is not None and v.text != "-"]
    if _names(opts) & {"-O", "--remote-name", "-J"} if curl else not _names(opts) & {"-O", "--output-document",
                                                                                     "--spider"}:
        targets += [_lit(posixpath.basename(re.sub(r"[?#].*", "", u.text or "")) or "index.html", u) for u in urls]
    if all(g.write(w) for w in targets):
        g.ok("read")


def _h_db(g: _Gate, name, args, stdin, depth):
    """Database clients ask (outside the checkout); DROP or TRUNCATE anywhere in their input is ALWAYS ASK."""
    texts = [w.shown for w in args] + [stdin[1] or "" if stdin and stdin[0] != "file" else ""]
    if any(re.search(r"(?i)\b(drop|truncate)\b", t) for t in texts):
        return g.ask("ask:database-drop", f"`{name}` is given DROP or TRUNCATE, which deletes database data",
                     floor=True)
    g.ask("ask:database", f"`{name}` works on a database, outside the checkout and its checkpoints")


def _h_declare(g: _Gate, name, args, stdin, depth):
    for w in args:
        if w.text == "-n":
            return g.ask(f"ask:{name}", f"`{name} -n` makes a name refer to another variable")
        if re.match(r"[A-Za-z_]\w*\+?=", w.raw):
            g.assignment(w)
    g.ok("shell")


def _family(family: str):
    return lambda g, name, args, stdin, depth: g.ok(family)


_HANDLERS = {
    **dict.fromkeys(_READ, _family("read")), **dict.fromkeys(_SHELL, _family("shell")),
    **dict.fromkeys(_BUILD, lambda g, name, args, stdin, depth: g.build(name, args)),
    **dict.fromkeys(_TASK_RUNNERS, lambda g, name, args, stdin, depth: g.tasks(name, args)),
    **dict.fromkeys(_RUNNERS, lambda g, name, args, stdin, depth: g.project_code(f"`{name}`", args)),
    "cd": _h_cd, "pushd": _h_cd, "popd": _h_cd, "git": _h_git, "find": _h_find, "python": _h_python,
    "make": _h_make, "gmake": _h_make, "cmake": _h_make, "curl": _h_http, "wget": _h_http,
    **dict.fromkeys("sed awk gawk mawk".split(), _h_text), **dict.fromkeys("rg fd fdfind".split(), _h_search),
    **dict.fromkeys("npx pnpx bunx uvx".split(), _h_npx), **dict.fromkeys(_WRITERS, _h_files),
    **dict.fromkeys(_WRAPPERS.keys() - {"uv run"}, _h_wrapper), **dict.fromkeys(_PROGRAMS, _h_programs),
    **dict.fromkeys("bash sh zsh dash ksh source .".split(), _h_shell),
    **dict.fromkeys("node deno ts-node tsx perl ruby php lua Rscript julia osascript pwsh tclsh expect java".split(),
                    _h_interpreter),
    **dict.fromkeys("tar zip unzip gzip gunzip bzip2 bunzip2 xz unxz zstd unzstd".split(), _h_archive),
    **dict.fromkeys("psql mysql mariadb sqlite3 redis-cli mongo mongosh".split(), _h_db),
    **dict.fromkeys("export declare typeset local readonly".split(), _h_declare)}


# --- API
def check(command: str, project_root, *, sandboxed: bool, rules: Rules | None = None) -> Decision:
    """Whether `command` runs without the owner's code ("run") or asks ("ask"), why, and which rule decided."""
    try:
        if not isinstance(command, str):
            return Decision("ask", "is not a command (not text)", "ask:unparsable")
        gate = _Gate(posixpath.normpath(str(Path(project_root).resolve())), sandboxed, rules)
        gate.script(command, 0, scoped=False)
        return gate.decision()
    except Exception as e:  # never raise: what the checker cannot follow asks
        return Decision("ask", f"cannot be checked ({type(e).__name__})", "ask:internal")
