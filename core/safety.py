"""Destructive-command classifier for the background worker.

Before the worker runs a bash command that Claude asked for, it calls ``classify``.
If any part of the command is destructive, the worker stops and asks the owner for a
confirmation code.

Design rules (why the code below looks the way it does):

* Parse, don't grep.  bashlex builds the syntax tree; every simple command anywhere in
  it (lists, pipelines, subshells, groups, if/for/while bodies, function bodies,
  command and process substitutions, heredocs fed to shells) is resolved to the program
  that really runs, through wrappers (env, timeout, xargs, find -exec, ...) and through
  nested shell strings (bash -c, eval, trap, ...), recursively.
* Fail closed.  Whatever cannot be parsed or resolved -- a variable in command position,
  code piped into a shell, syntax bashlex does not support -- is reported as destructive
  with a "cannot be checked" reason, so the owner decides.
* Ordinary project work stays free.  Reading, building, testing, editing and creating
  files inside the project directory never needs a code.  Scripts that live inside the
  project may be run: the model wrote them with the editor, which the owner allows
  anyway, and the classifier cannot see inside files (it does no I/O).  The same goes
  for the project's Makefile (``make`` reads it from the working directory).
  ``rm`` is the exception: the owner's brief names it, so it asks even inside the project.
* Except files this same command writes.  A script written by ``echo``/``printf``/
  ``cat <<EOF`` and then run is checked as the text that was written; one that was
  downloaded, decoded, copied in from outside, extracted or cloned is run unseen, so it
  asks.  Standard input and ``<(...)`` given as a script are read like a pipe.
* Inline code is read only where the checker can read it: Python is parsed (and asks
  when it reaches functions by computed names: getattr with a built string, __dict__,
  ctypes, ...); node/perl/ruby/php are scanned for destructive APIs, shell-outs and
  dynamic dispatch; any other language's inline code (lua -e, pwsh -c, vim -c, ...)
  asks.
* A program name with characters no real name has (lookalike letters, invisible or
  control characters) asks: it is not the program it appears to be.

``classify`` is pure (no subprocesses, no file reads) and never raises.
"""

from __future__ import annotations

import ast as pyast
import os
import posixpath
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import bashlex
import bashlex.state
import bashlex.tokenizer

__all__ = ["Verdict", "classify"]


@dataclass(frozen=True)
class Verdict:
    destructive: bool
    reason: str  # short words for a person; "" when safe
    parts: tuple[str, ...] = ()  # the offending sub-commands, as text


# --------------------------------------------------------------------------- reasons

R_DELETE = "delete files"
R_FORCE_PUSH = "force-push to a remote"
R_REMOTE_DELETE = "delete branches on a remote"
R_DISCARD = "discard uncommitted git changes"
R_HISTORY = "rewrite or drop git history"
R_GIT_REF = "delete or force-move git branches or tags"
R_STASH = "drop git stashes"
R_PERMS = "change file permissions"
R_KILL = "stop processes"
R_SUDO = "run as another user"
R_OUTSIDE = "write outside the project"
R_DD = "raw disk copy (dd)"
R_FORMAT = "format or partition a disk"
R_TRUNCATE = "truncate files"
R_DB = "delete database data"
R_DB_SERVER = "change the database server"
R_POWER = "shut down or reboot the machine"
R_SERVICE = "change system services"
R_CRON = "change scheduled jobs"
R_CONTAINERS = "delete containers or their data"
R_CLOUD = "delete remote or cloud resources"
R_PACKAGES = "remove installed software"
R_FIREWALL = "change firewall rules"
R_USERS = "change user accounts"

R_UNPARSABLE = "cannot be checked (not valid bash, or syntax the checker does not support)"
R_VAR_CMD = "cannot be checked (variable in command position)"
R_PATTERN_CMD = "cannot be checked (pattern in command position)"
R_VAR_TARGET = "cannot be checked (variable in write target)"
R_VAR_CODE = "cannot be checked (variable in command string)"
R_VAR_ARGS = "cannot be checked (variable in arguments that decide what it does)"
R_PIPED_CODE = "cannot be checked (code piped in from another program)"
R_RUNTIME_CMD = "cannot be checked (command built at run time)"
R_SCRIPT_OUTSIDE = "cannot be checked (script outside the project)"
R_UNKNOWN_DIR = "cannot be checked (unknown working directory)"
R_ENV_CODE = "cannot be checked (environment variable that runs code)"
R_LOOKUP = "cannot be checked (changes how commands are found)"
R_TOO_DEEP = "cannot be checked (nested too deeply)"
R_TOO_LONG = "cannot be checked (command too long)"
R_INTERNAL = "cannot be checked"
R_FOREIGN_CODE = "cannot be checked (inline code in a language the checker does not read)"
R_DYNAMIC_CODE = "cannot be checked (code that picks what to call at run time)"
R_WRITTEN_SCRIPT = "cannot be checked (runs a file this command wrote or fetched)"
R_ODD_NAME = "cannot be checked (unusual characters in the command name)"

_MAX_DEPTH = 16  # nested shell strings (bash -c 'bash -c ...'); far beyond real use
_MAX_EXPANSIONS = 256  # brace expansion results per word
_MAX_LENGTH = 200_000  # bashlex gets slow beyond this; no real command is that long

# Without a project root, relative paths are taken relative to a stand-in directory that
# no real absolute path can be inside, so every absolute target counts as outside.
_VIRTUAL_ROOT = "/\x00project"

# Writing here is harmless wherever the project is.
_HARMLESS_DEVICES = {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero", "/dev/full"}
_HARMLESS_DEVICE_PREFIXES = ("/dev/fd/", "/proc/self/fd/")

# Programs installed here are ordinary tools, not unseen scripts.
_SYSTEM_PREFIXES = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/opt/", "/nix/", "/snap/")

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Program names are printable ASCII without spaces and quotes
_ORDINARY_NAME_RE = re.compile(r"[!#-&(-~]+\Z")


# --------------------------------------------------------------------------- words


@dataclass(frozen=True)
class _Arg:
    """One shell word after quote removal, plus what the checker knows about it."""

    text: str
    dynamic: bool = False  # value known only at run time ($x, $(..), `..`, found files)
    split: bool = False  # unquoted expansion: may become several words, even options
    tilde: bool = False  # leading ~ that the shell expands
    pattern: bool = False  # unquoted glob characters


def _lit(text: str) -> _Arg:
    return _Arg(text)


def _value_arg(text: str, of: _Arg) -> _Arg:
    """An option value cut out of a word (``--output=x``, ``-ox``)."""
    return _Arg(text, of.dynamic, of.split, text.startswith("~"), of.pattern)


@dataclass
class _Word:
    text: str  # after quote removal; expansions are kept as their source text
    dynamic: bool = False
    split: bool = False
    pattern: bool = False
    brace: bool = False
    tilde: bool = False
    procsub: bool = False  # the whole word is <(...) or >(...)
    subs: tuple[str, ...] = ()  # commands run while expanding: $(..), `..`, <(..)


_ANSI_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "e": "\x1b",
                "E": "\x1b", "\\": "\\", "'": "'", '"': '"', "?": "?"}


def _ansi_c(raw: str, i: int) -> tuple[str, int]:
    """Decode a $'...' body starting at i; returns (text, index after the closing ')."""
    out, n = [], len(raw)
    while i < n:
        c = raw[i]
        if c == "'":
            return "".join(out), i + 1
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = raw[i + 1]
        if e in _ANSI_SIMPLE:
            out.append(_ANSI_SIMPLE[e])
            i += 2
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            m = re.match(r"[0-9a-fA-F]{1,%d}" % width, raw[i + 2 :])
            if m:
                out.append(chr(min(int(m.group(0), 16), 0x10FFFF)))
                i += 2 + len(m.group(0))
            else:
                out.append("\\" + e)
                i += 2
        elif e in "01234567":
            m = re.match(r"[0-7]{1,3}", raw[i + 1 :])
            out.append(chr(int(m.group(0), 8) & 0xFF))
            i += 1 + len(m.group(0))
        elif e == "c" and i + 2 < n:
            out.append(chr(ord(raw[i + 2]) & 0x1F))
            i += 3
        else:
            out.append("\\" + e)
            i += 2
    return "".join(out), -1


def _match_close(text: str, start: int, opening: str, closing: str) -> int:
    """Index of the ``closing`` that balances an ``opening`` whose body starts at ``start``; -1 if none.
    Quotes are skipped; inside ${...} a $(...) is skipped whole (it may hold a lone '}')."""
    depth, i, n = 1, start, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                return -1
            i = j + 1
            continue
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if opening == "{" and text.startswith("$(", i):
            j = _match_paren(text, i + 2)
            if j < 0:
                return -1
            i = j + 1
            continue
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _match_brace(text: str, start: int) -> int:
    """Index of the '}' closing a '${' whose body starts at ``start``; -1 if none."""
    return _match_close(text, start, "{", "}")


def _match_paren(text: str, start: int) -> int:
    """Index of the ')' closing a '$(' whose body starts at ``start``; -1 if none."""
    return _match_close(text, start, "(", ")")


def _scan_word(raw: str) -> _Word | None:
    """Bash quote removal for one word, from its source text, noting every expansion.

    bashlex's own word expansion can't be trusted here: it reads any word that starts
    and ends with a single quote as one quoted string (so 'a'"$(rm x)"'b' hides the
    substitution) and drops backslashes inside double quotes.  None: unbalanced.
    """
    out: list[str] = []
    subs: list[str] = []
    w = _Word("", tilde=raw.startswith("~"))
    i, n, dq = 0, len(raw), False
    if (raw.startswith("<(") or raw.startswith(">(")) and _match_paren(raw, 2) == n - 1:
        return _Word("/dev/fd/63", procsub=True, subs=(raw[2:-1],))
    while i < n:
        c = raw[i]
        if not dq and raw.startswith("$'", i):
            text, j = _ansi_c(raw, i + 2)
            if j < 0:
                return None
            out.append(text)
            i = j
            continue
        if not dq and raw.startswith('$"', i):  # locale-translated string: a "..." string
            dq = True
            i += 2
            continue
        if c == "$" or c == "`":
            j = _expansion_end(raw, i, subs)
            if j < 0:
                return None
            if j == i + 1 and c == "$":  # a lone "$"
                out.append("$")
                i = j
                continue
            w.dynamic = True
            if not dq:
                w.split = True
            out.append(raw[i:j])
            i = j
            continue
        if dq:
            if c == '"':
                dq = False
            elif c == "\\" and i + 1 < n and raw[i + 1] in '$`"\\\n':
                if raw[i + 1] != "\n":
                    out.append(raw[i + 1])
                i += 2
                continue
            else:
                out.append(c)
            i += 1
            continue
        if c == "\\":
            if i + 1 < n and raw[i + 1] != "\n":
                out.append(raw[i + 1])
            i += 2
            continue
        if c == "'":
            j = raw.find("'", i + 1)
            if j < 0:
                return None
            out.append(raw[i + 1 : j])
            i = j + 1
            continue
        if c == '"':
            dq = True
        elif c in "<>" and raw.startswith("(", i + 1):
            j = _match_paren(raw, i + 2)
            if j < 0:
                return None
            subs.append(raw[i + 2 : j])
            w.dynamic = True
            out.append(raw[i : j + 1])
            i = j + 1
            continue
        else:
            if c in "*?" or (c == "[" and "]" in raw[i + 1 :]):
                w.pattern = True
            elif c == "{":
                w.brace = True
            out.append(c)
        i += 1
    if dq:
        return None
    w.text = "".join(out)
    w.subs = tuple(subs)
    return w


def _expansion_end(raw: str, i: int, subs: list[str]) -> int:
    """At a "$" or "`": index just after the expansion, collecting commands it runs."""
    n = len(raw)
    if raw[i] == "`":
        j = i + 1
        while j < n and raw[j] != "`":
            j += 2 if raw[j] == "\\" else 1
        if j >= n:
            return -1
        subs.append(re.sub(r"\\([`$\\])", r"\1", raw[i + 1 : j]))
        return j + 1
    if i + 1 >= n:
        return i + 1
    nxt = raw[i + 1]
    if raw.startswith("$((", i):
        j = _match_paren(raw, i + 2)
        if j < 0:
            return -1
        inner = _substitutions(raw[i + 3 : j])
        if inner is None:
            return -1
        subs.extend(inner)
        return j + 1
    if nxt == "(":
        j = _match_paren(raw, i + 2)
        if j < 0:
            return -1
        subs.append(raw[i + 2 : j])
        return j + 1
    if nxt == "{":
        j = _match_brace(raw, i + 2)
        if j < 0:
            return -1
        inner = _substitutions(raw[i + 2 : j])
        if inner is None:
            return -1
        subs.extend(inner)
        return j + 1
    if nxt == "[":
        j = raw.find("]", i + 2)
        if j < 0:
            return -1
        inner = _substitutions(raw[i + 2 : j])
        if inner is None:
            return -1
        subs.extend(inner)
        return j + 1
    if nxt in "'":
        return i + 1  # $'...' is handled by the caller
    if nxt.isalpha() or nxt == "_":
        j = i + 1
        while j < n and (raw[j].isalnum() or raw[j] == "_"):
            j += 1
        return j
    if nxt.isdigit() or nxt in "@*#?$!-":
        return i + 2
    return i + 1


_SEQ_RE = re.compile(r"(-?\d+|[A-Za-z])\.\.(-?\d+|[A-Za-z])(?:\.\.(-?\d+))?\Z")


def _brace_expand(s: str, limit: int = _MAX_EXPANSIONS) -> list[str] | None:
    """Bash brace expansion ({a,b}, {1..3}); None if it would explode."""
    i = s.find("{")
    while i >= 0:
        depth, j, commas = 0, i, []
        while j < len(s):
            c = s[j]
            if c == "\\":
                j += 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            elif c == "," and depth == 1:
                commas.append(j)
            j += 1
        if j >= len(s):
            return [s]
        inner = s[i + 1 : j]
        alts: list[str] | None = None
        if commas:
            cuts = [i] + commas + [j]
            alts = [s[a + 1 : b] for a, b in zip(cuts, cuts[1:])]
        else:
            m = _SEQ_RE.match(inner)
            if m:
                a, b, step = m.group(1), m.group(2), abs(int(m.group(3) or 1)) or 1
                if a.lstrip("-").isdigit() and b.lstrip("-").isdigit():
                    lo, hi = int(a), int(b)
                    if abs(hi - lo) // step > limit:
                        return None
                    rng = range(lo, hi + 1, step) if lo <= hi else range(lo, hi - 1, -step)
                    alts = [str(x) for x in rng]
                elif not a.lstrip("-").isdigit() and not b.lstrip("-").isdigit():
                    lo, hi = ord(a), ord(b)
                    rng = range(lo, hi + 1, step) if lo <= hi else range(lo, hi - 1, -step)
                    alts = [chr(x) for x in rng]
        if alts is None:
            i = s.find("{", i + 1)
            continue
        out: list[str] = []
        for alt in alts:
            sub = _brace_expand(s[:i] + alt + s[j + 1 :], limit)
            if sub is None:
                return None
            out.extend(sub)
            if len(out) > limit:
                return None
        return out
    return [s]


def _substitutions(text: str) -> list[str] | None:
    """Commands inside $(...) and `...` in text where quotes don't protect them
    (unquoted heredoc bodies, ${...} operands).  None when unbalanced."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if text.startswith("$((", i):  # arithmetic; any $( inside is still found
            i += 3
            continue
        if text.startswith("$(", i) or text.startswith("<(", i) or text.startswith(">(", i):
            end = _match_paren(text, i + 2)
            if end < 0:
                return None
            out.append(text[i + 2 : end])
            i = end + 1
            continue
        if c == "`":
            j = i + 1
            while j < n and text[j] != "`":
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                return None
            out.append(text[i + 1 : j].replace("\\`", "`"))
            i = j + 1
            continue
        i += 1
    return out


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Src:
    text: str
    literal_heredocs: frozenset[str]  # delimiters that were quoted: body is not expanded

    def of(self, node) -> str:
        return self.text[node.pos[0] : node.pos[1]]


class _Unparsable(Exception):
    pass


_DELIM_SAFE = r"[A-Za-z0-9_.+@%:/-]"
_HEREDOC_DELIM_RE = re.compile(
    r"(?<!<)<<(-?)([ \t]*)((?:%s|\\%s|'%s*'|\"%s*\")+)" % ((_DELIM_SAFE,) * 4)
)


def _unquote_heredoc_delims(text: str) -> tuple[str, frozenset[str]]:
    """bashlex compares a heredoc's end line with the delimiter *including* its quotes,
    so ``<<'EOF'`` never terminates.  Rewrite quoted delimiters to bare ones (only when
    they are made of word characters, so the rewrite can't change any other word's
    meaning) and remember them: a quoted delimiter means the body is literal."""
    literal: set[str] = set()
    bare: set[str] = set()
    out, last = [], 0
    for m in _HEREDOC_DELIM_RE.finditer(text):
        delim = m.group(3)
        name = re.sub(r"""['"\\]""", "", delim)
        if name == delim:
            bare.add(name)
            continue
        if not name:
            continue
        literal.add(name)
        out.append(text[last : m.start(3)])
        out.append(name)
        last = m.end(3)
    out.append(text[last:])
    # a name used both ways: assume expansion (the cautious reading)
    return "".join(out), frozenset(literal - bare)


def _tokens(text: str):
    tok = bashlex.tokenizer.tokenizer(text, parserstate=bashlex.state.parserstate())
    return list(tok)


def _rewrite_unsupported(text: str) -> str | None:
    """Second chance for syntax bashlex doesn't implement but that is common:
    ``time cmd`` and ``[[ ... ]]`` become plain words (``\\time``, ``'[['``), so their
    arguments are still checked as commands -- a cautious over-reading."""
    try:
        toks = _tokens(text)
    except Exception:
        return None
    edits: list[tuple[int, int, str]] = []
    for t in toks:
        if t.ttype.name == "TIME":
            edits.append((t.lexpos, t.lexpos, "\\"))
        elif t.ttype.name == "COND_START":
            edits.append((t.lexpos, t.endlexpos, "'[['"))
    if not edits:
        return None
    for start, end, repl in sorted(edits, reverse=True):
        text = text[:start] + repl + text[end:]
    return text


def _bashlex_parse(text: str) -> list:
    # expansionlimit=-1: bashlex only finds word boundaries; _scan_word does the
    # expansion (bashlex's own fails on "$(a && b)" and misreads some quoting).
    return bashlex.parse(text, expansionlimit=-1)


def _parse(text: str) -> tuple[list, _Src]:
    fixed, literal = _unquote_heredoc_delims(text)
    try:
        return _bashlex_parse(fixed), _Src(fixed, literal)
    except Exception:
        pass
    try:
        if all(t.ttype.name == "NEWLINE" for t in _tokens(fixed)):
            return [], _Src(fixed, literal)  # empty, blank or comments only
    except Exception:
        pass
    rewritten = _rewrite_unsupported(fixed)
    if rewritten is None:
        raise _Unparsable
    try:
        return _bashlex_parse(rewritten), _Src(rewritten, literal)
    except Exception:
        raise _Unparsable from None


# --------------------------------------------------------------------------- stdin


@dataclass(frozen=True)
class _Stdin:
    """What a command reads on standard input, as far as the checker can tell."""

    kind: str  # "none" | "text" | "files" | "paths" | "unknown"
    text: str = ""
    files: tuple[_Arg, ...] = ()
    inside: bool = False  # for "paths": every listed path is inside the project


_NO_INPUT = _Stdin("none")
_UNKNOWN_INPUT = _Stdin("unknown")


# --------------------------------------------------------------------------- options


@dataclass
class _Opts:
    opts: list[tuple[str, _Arg | None, _Arg]]  # (name, value, the word it came from)
    operands: list[_Arg]
    after_dd: list[_Arg]  # operands that came after "--"

    def has(self, *names: str) -> bool:
        return any(_opt_is(n, names) for n, _, _ in self.opts)

    def values(self, *names: str) -> list[_Arg]:
        return [v for n, v, _ in self.opts if v is not None and _opt_is(n, names)]


def _opt_is(name: str, names: tuple[str, ...]) -> bool:
    """GNU tools (and git) accept unambiguous prefixes of long options: --forc = --force."""
    for want in names:
        if name == want:
            return True
        if want.startswith("--") and name.startswith("--") and len(name) >= 5 and want.startswith(name):
            return True
    return False


def _getopt(args, with_arg: str = "", long_with_arg: tuple[str, ...] = (), stop: bool = False,
            attached: str = "") -> _Opts:
    """Split getopt-style options from operands.  ``with_arg``: short options taking a
    value (attached or the next word); ``attached``: taking only an attached value;
    ``stop``: options end at the first operand (for wrappers, whose operands are the
    wrapped command)."""
    res = _Opts([], [], [])
    i = 0
    while i < len(args):
        a = args[i]
        t = a.text
        if t == "--":
            rest = list(args[i + 1 :])
            res.operands.extend(rest)
            res.after_dd.extend(rest)
            break
        if t.startswith("--") and len(t) > 2:
            name, eq, val = t.partition("=")
            if eq:
                res.opts.append((name, _value_arg(val, a), a))
            elif _opt_is(name, long_with_arg) and i + 1 < len(args):
                res.opts.append((name, args[i + 1], a))
                i += 1
            else:
                res.opts.append((name, None, a))
        elif t.startswith("-") and len(t) > 1:
            j = 1
            while j < len(t):
                c = t[j]
                if c in attached:
                    res.opts.append(("-" + c, _value_arg(t[j + 1 :], a), a))
                    break
                if c in with_arg:
                    if j + 1 < len(t):
                        res.opts.append(("-" + c, _value_arg(t[j + 1 :], a), a))
                    elif i + 1 < len(args):
                        res.opts.append(("-" + c, args[i + 1], a))
                        i += 1
                    else:
                        res.opts.append(("-" + c, None, a))
                    break
                res.opts.append(("-" + c, None, a))
                j += 1
        else:
            if stop:
                res.operands.extend(args[i:])
                break
            res.operands.append(a)
        i += 1
    return res


# --------------------------------------------------------------------------- tables

_ALWAYS = {
    **dict.fromkeys(["rm", "rmdir", "unlink", "shred", "srm", "wipe", "rimraf", "trash", "trash-put", "trash-rm",
                     "trash-empty", "del-cli"], R_DELETE),
    **dict.fromkeys(["chmod", "chown", "chgrp", "setfacl", "chattr", "chcon", "setfattr"], R_PERMS),
    **dict.fromkeys(["pkill", "killall", "killall5", "xkill", "skill", "snice"], R_KILL),
    **dict.fromkeys(["sudo", "su", "doas", "pkexec", "runuser", "sg", "newgrp", "sudoedit", "setpriv", "capsh",
                     "calife", "ksu"], R_SUDO),
    **dict.fromkeys(["userdel", "deluser", "groupdel", "delgroup", "usermod", "useradd", "adduser", "groupadd",
                     "groupmod", "passwd", "chpasswd", "chsh", "chfn", "gpasswd", "vipw", "vigr", "visudo", "chage"],
                    R_USERS),
    "atrm": R_CRON,
    "dd": R_DD,
    **dict.fromkeys(
        ["fdisk", "sfdisk", "cfdisk", "gdisk", "sgdisk", "parted", "wipefs", "mkswap", "blkdiscard",
         "mke2fs", "mkdosfs", "mkntfs"],
        R_FORMAT,
    ),
    "truncate": R_TRUNCATE,
    **dict.fromkeys(["shutdown", "reboot", "halt", "poweroff"], R_POWER),
    **dict.fromkeys(["dropdb", "dropuser"], R_DB),
}

_SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "yash"}

# Simple wrappers: options taking a value, long options taking a value, and how many
# operands they consume before the wrapped command.
_WRAPPERS: dict[str, tuple[str, tuple[str, ...], int]] = {
    "nohup": ("", (), 0),
    "nice": ("n", ("--adjustment",), 0),
    "ionice": ("cnpPu", ("--class", "--classdata", "--pid", "--pgid", "--uid"), 0),
    "timeout": ("ks", ("--kill-after", "--signal"), 1),
    "stdbuf": ("ioe", ("--input", "--output", "--error"), 0),
    "setsid": ("", (), 0),
    "builtin": ("", (), 0),
    "exec": ("a", (), 0),
    "chroot": ("", ("--userspec", "--groups"), 1),
    "unbuffer": ("", (), 0),
    "nocache": ("", (), 0),
    "catchsegv": ("", (), 0),
    "xvfb-run": ("nsfe", ("--server-num", "--server-args", "--auth-file", "--error-file"), 0),
    "dbus-run-session": ("", (), 0),
    "systemd-run": ("pEu", ("--property", "--setenv", "--unit", "--description", "--slice"), 0),
    "torsocks": ("", (), 0),
    "proxychains": ("f", (), 0),
    "proxychains4": ("f", (), 0),
    "firejail": ("", (), 0),
    "npx": ("p", ("--package",), 0),
    "bunx": ("p", ("--package",), 0),
    "valgrind": ("", (), 0),
    "unshare": ("SGRw", ("--setuid", "--setgid", "--root", "--wd"), 0),
    "chrt": ("", (), 1),  # chrt [options] PRIORITY command
    "taskset": ("", (), 1),  # taskset [options] MASK command
    "numactl": ("CNmpiP", ("--physcpubind", "--cpunodebind", "--membind", "--preferred", "--interleave"), 0),
    "fakeroot": ("sil", ("--lib", "--faked"), 0),
    "faketime": ("f", (), 1),
    "systemd-inhibit": ("", ("--what", "--who", "--why", "--mode"), 0),
    "nsenter": ("tSG", ("--target", "--setuid", "--setgid"), 0),
    "cgexec": ("g", (), 0),
    "caffeinate": ("tw", (), 0),
    "setarch": ("", (), 1),
    "linux32": ("", (), 0),
    "linux64": ("", (), 0),
    "ssh-agent": ("aEPt", (), 0),
    "dbus-launch": ("", (), 0),
    "sem": ("j", ("--jobs", "--id"), 0),
}

# "tool subcommand ..." forms that run the rest as a command.
_SUB_WRAPPERS = {
    ("uv", "run"), ("poetry", "run"), ("pipenv", "run"), ("pdm", "run"), ("hatch", "run"),
    ("conda", "run"), ("mamba", "run"), ("micromamba", "run"), ("bundle", "exec"),
    ("pnpm", "dlx"), ("pnpm", "exec"), ("yarn", "dlx"), ("yarn", "exec"), ("npm", "exec"),
    ("opam", "exec"), ("rbenv", "exec"), ("pyenv", "exec"), ("nix", "shell"), ("direnv", "exec"),
    ("nix", "develop"), ("mise", "exec"), ("asdf", "exec"), ("rtx", "exec"), ("pixi", "run"), ("rye", "run"),
}
# ... and how many operands they take before the command (direnv exec DIR cmd)
_SUB_WRAPPER_LEADING = {("direnv", "exec"): 1}

# Environment variables whose value is run as a shell command by some program.
_CODE_ENV = {
    "PROMPT_COMMAND", "GIT_SSH_COMMAND", "GIT_SSH", "GIT_EDITOR", "GIT_PAGER", "GIT_SEQUENCE_EDITOR",
    "GIT_ASKPASS", "SSH_ASKPASS", "SUDO_ASKPASS", "GIT_EXTERNAL_DIFF", "GIT_PROXY_COMMAND", "EDITOR",
    "VISUAL", "PAGER", "MANPAGER", "LESSOPEN", "LESSCLOSE", "RSYNC_RSH", "BROWSER",
}
# ... and whose value names a file that gets sourced or loaded.
_FILE_ENV = {"BASH_ENV", "ENV", "LD_PRELOAD", "LD_AUDIT", "ZDOTDIR", "PYTHONSTARTUP", "NODE_OPTIONS", "PERL5OPT",
             "RUBYOPT", "GIT_EXEC_PATH", "GIT_TEMPLATE_DIR"}
_PROMPT_ENV = {"PS1", "PS2", "PS4"}

_GIT_EXEC_CONFIG = re.compile(
    r"(core\.(pager|editor|sshcommand|fsmonitor|askpass)|sequence\.editor|diff\.external"
    r"|diff\..+\.(textconv|command)|merge\..+\.driver|filter\..+\.(clean|smudge|process)"
    r"|gpg(\..+)?\.program|credential(\..+)?\.helper|pager\..+|interactive\.difffilter"
    r"|uploadpack\.packobjectshook|alias\..+|.+\.cmd|core\.hookspath)\Z"
)

# git subcommands whose effect depends on their arguments: a variable there could be
# "--force" or "+main".
_GIT_SENSITIVE = {
    "push", "reset", "checkout", "switch", "restore", "stash", "branch", "tag", "rm", "clean", "config",
    "worktree", "reflog", "update-ref", "clone", "init", "submodule", "rebase", "bisect", "gc",
}

_SQL_DESTRUCTIVE = re.compile(r"\b(drop|delete|truncate)\b", re.I)

_REDIS_DESTRUCTIVE = {
    "flushall", "flushdb", "del", "unlink", "getdel", "hdel", "srem", "zrem", "zremrangebyscore",
    "zremrangebyrank", "zremrangebylex", "lrem", "ltrim", "xdel", "xtrim", "expire", "pexpire",
    "expireat", "pexpireat", "swapdb", "rename", "move", "restore",
}
_REDIS_SERVER = {"shutdown", "config", "debug", "slaveof", "replicaof", "failover", "module", "acl"}
_REDIS_SCRIPT = {"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro", "function", "script"}
_REDIS_WORDS_RE = re.compile(
    r"\b(%s)\b" % "|".join(sorted(_REDIS_DESTRUCTIVE | _REDIS_SERVER | _REDIS_SCRIPT)),
    re.I,
)

_MONGO_DESTRUCTIVE = re.compile(
    r"\b(dropDatabase|drop|deleteMany|deleteOne|remove|findOneAndDelete|findAndModify|dropIndex|dropIndexes"
    r"|dropUser|dropAllUsers|dropRole|renameCollection|shutdownServer)\s*\(|\bdrop\s*:",
)

# Framework commands that wipe databases.
_FRAMEWORK_DB = {
    "manage.py": {"flush", "reset_db", "sqlflush"},
    "rails": {"db:drop", "db:reset", "db:purge", "db:schema:load", "db:migrate:reset"},
    "rake": {"db:drop", "db:reset", "db:purge", "db:schema:load", "db:migrate:reset"},
    "artisan": {"migrate:fresh", "migrate:reset", "migrate:refresh", "db:wipe"},
}

# --------------------------------------------------------------------------- analyzer


class _Analyzer:
    def __init__(self, project_root: str | Path | None):
        if project_root is None:
            self.root = _VIRTUAL_ROOT
        else:
            self.root = posixpath.normpath(os.path.abspath(os.fspath(project_root)))
        self.home = os.path.expanduser("~")
        # Every directory the shell may be in at this point.  ``cd`` only ever adds
        # possibilities (it may fail), so nothing is lost; None means "unknown".
        self.cwds: frozenset[str | None] = frozenset({self.root})
        self.findings: list[tuple[str, str]] = []
        self.functions: dict[str, tuple[object, _Src]] = {}
        self.calling: set[str] = set()
        # Files this command writes, with their content when it is known text (echo,
        # printf, cat <<EOF) and None when it is not (downloads, copies from outside,
        # decoded data).  Running such a file later in the same command is running code
        # the model never wrote with the editor.
        self.written: dict[str, str | None] = {}
        self.written_dirs: set[str] = set()  # directories filled with unseen files (tar x, git clone)
        self.recording = True  # False while re-reading a command for its output

    # ----------------------------------------------------------------- results

    def flag(self, reason: str, part: str) -> None:
        item = (reason, part.strip()[:300])
        if item not in self.findings:
            self.findings.append(item)

    def verdict(self) -> Verdict:
        if not self.findings:
            return Verdict(False, "")
        reasons: list[str] = []
        parts: list[str] = []
        # what the command would do first; what could not be checked after
        ordered = sorted(self.findings, key=lambda f: f[0].startswith("cannot be checked"))
        for reason, part in ordered:
            if reason not in reasons:
                reasons.append(reason)
            if part and part not in parts:
                parts.append(part)
        return Verdict(True, "; ".join(reasons), tuple(parts[:10]))

    # ----------------------------------------------------------------- scripts

    def script(self, text: str, depth: int, stdin: _Stdin = _NO_INPUT) -> None:
        """Check a piece of shell source (the whole command, a bash -c string, ...)."""
        if depth > _MAX_DEPTH:
            self.flag(R_TOO_DEEP, text)
            return
        try:
            trees, src = _parse(text)
        except _Unparsable:
            self.flag(R_UNPARSABLE, text)
            return
        for tree in trees:
            self.node(tree, src, depth, stdin)

    def node(self, n, src: _Src, depth: int, stdin: _Stdin) -> None:
        kind = n.kind
        if kind == "list":
            for p in n.parts:
                if p.kind != "operator":
                    self.node(p, src, depth, stdin)
        elif kind == "pipeline":
            self.pipeline(n, src, depth, stdin)
        elif kind == "compound":
            self.compound(n, src, depth, stdin)
        elif kind == "command":
            self.command(n, src, depth, stdin)
        elif kind == "function":
            self.functions[src.of(n.name)] = (n.body, src)
            # checked where defined as well as where called (with the caller's cwd)
            saved = self.cwds
            self.node(n.body, src, depth, _NO_INPUT)
            self.cwds = saved
        elif kind in ("if", "for", "while", "until"):
            for p in n.parts:
                if p.kind == "word":
                    self.word(p, src, depth)
                elif p.kind not in ("reservedword", "operator"):
                    self.node(p, src, depth, stdin)
        elif kind in ("reservedword", "operator", "pipe"):
            pass
        elif kind in ("word", "assignment"):
            self.word(n, src, depth)
        else:
            self.flag(R_UNPARSABLE, src.of(n))

    def pipeline(self, n, src: _Src, depth: int, stdin: _Stdin) -> None:
        elements = [p for p in n.parts if p.kind not in ("pipe", "reservedword")]
        feed = stdin
        for p in elements:
            saved = self.cwds
            self.node(p, src, depth, feed)
            self.cwds = saved  # each element runs in a subshell
            feed = self.output_of(p, src, feed)

    def compound(self, n, src: _Src, depth: int, stdin: _Stdin) -> None:
        text = src.of(n)
        subshell = bool(n.list) and n.list[0].kind == "reservedword" and n.list[0].word == "("
        saved = self.cwds
        stdin = self.redirects(n.redirects, src, depth, stdin, text)
        for p in n.list:
            if p.kind != "reservedword":
                self.node(p, src, depth, stdin)
        if subshell:
            self.cwds = saved

    def command(self, n, src: _Src, depth: int, stdin: _Stdin) -> None:
        text = src.of(n)
        args: list[_Arg] = []
        redirs = []
        for p in n.parts:
            if p.kind == "assignment":
                name = src.of(p).partition("=")[0].rstrip("+")
                for value in self.word(p, src, depth, assignment=True):
                    self.env_assignment(name, value, text, depth)
            elif p.kind == "word":
                args.extend(self.word(p, src, depth))
            elif p.kind == "redirect":
                redirs.append(p)
        output = None
        if any(r.type in (">", ">>", ">|", "&>", "&>>") for r in redirs):
            self.recording = False
            try:
                output = self.output_of(n, src, stdin)  # what the file will hold, if known
            finally:
                self.recording = True
        stdin = self.redirects(redirs, src, depth, stdin, text, output)
        if args:
            self.run(args, text, depth, stdin)

    def word(self, w, src: _Src, depth: int | None = None, assignment: bool = False) -> list[_Arg]:
        """The word's value(s) after expansion.  With ``depth``, also check the
        commands its expansion runs ($(..), `..`, <(..))."""
        raw = src.of(w)
        if assignment:
            raw = raw.partition("=")[2]
        sw = _scan_word(raw)
        if sw is None:
            if depth is not None:
                self.flag(R_UNPARSABLE, raw)
            return [_Arg(raw, dynamic=True, split=True)]
        if depth is not None:
            for code in sw.subs:
                saved = self.cwds
                self.script(code, depth + 1)
                self.cwds = saved
        if sw.procsub:
            return [_Arg(sw.text)]
        arg = _Arg(sw.text, sw.dynamic, sw.split or (sw.dynamic and sw.brace), sw.tilde, sw.pattern)
        if sw.brace and not sw.dynamic:
            expanded = _brace_expand(sw.text)
            if expanded is None:
                return [_Arg(sw.text, dynamic=True, split=True)]
            if len(expanded) > 1:
                return [_Arg(e, tilde=sw.tilde and e.startswith("~"), pattern=sw.pattern) for e in expanded]
        return [arg]

    def text_substitutions(self, body: str, text: str, depth: int) -> None:
        subs = _substitutions(body)
        if subs is None:
            self.flag(R_UNPARSABLE, text)
            return
        for code in subs:
            saved = self.cwds
            self.script(code, depth + 1)
            self.cwds = saved

    def redirects(self, redirs, src: _Src, depth: int, stdin: _Stdin, text: str,
                  output: _Stdin | None = None) -> _Stdin:
        for r in redirs:
            rtype, out = r.type, r.output
            if rtype in ("<<", "<<-"):
                delim = out.word if isinstance(out.word, str) else out.word.value
                body = r.heredoc.value if r.heredoc is not None else ""
                if body == delim:
                    body = ""
                elif body.endswith("\n" + delim):
                    body = body[: -len(delim) - 1]
                if delim not in src.literal_heredocs:
                    self.text_substitutions(body, text, depth)
                stdin = _Stdin("text", body)
                continue
            if not hasattr(out, "kind"):
                continue  # 2>&1, 3>&-: duplicating descriptors
            args = self.word(out, src, depth)
            if rtype == "<<<":
                stdin = _UNKNOWN_INPUT if args[0].dynamic else _Stdin("text", args[0].text + "\n")
            elif rtype == "<":
                stdin = _Stdin("files", files=tuple(args))
            elif rtype in (">", ">>", ">|", "&>", "&>>", "<>", ">&", "<&"):
                if rtype in (">&", "<&") and (src.of(out) == "-" or src.of(out).isdigit()):
                    continue
                if rtype == "<&":
                    continue
                content = output.text if output is not None and output.kind == "text" else None
                if getattr(r, "input", None) not in (None, 1) and rtype not in ("&>", "&>>"):
                    content = None  # 2> file: what lands there is not the known output
                for a in args:
                    self.check_write(a, text, content=content, append=rtype in (">>", "&>>"))
            else:
                self.flag(R_UNPARSABLE, text)
        return stdin

    def output_of(self, n, src: _Src, its_stdin: _Stdin) -> _Stdin:
        """What a pipeline element writes to the next one, when it can be known."""
        if n.kind != "command":
            return _UNKNOWN_INPUT
        words = [p for p in n.parts if p.kind == "word"]
        redirs = [p for p in n.parts if p.kind == "redirect"]
        args: list[_Arg] = []
        for w in words:
            args.extend(self.word(w, src))
        if not args or args[0].dynamic:
            return _UNKNOWN_INPUT
        name = posixpath.basename(args[0].text)
        rest = args[1:]
        if any(a.dynamic for a in rest):
            return _UNKNOWN_INPUT
        if name == "echo":
            newline, escapes = "\n", False
            while rest and re.fullmatch(r"-[neE]+", rest[0].text):
                newline = "" if "n" in rest[0].text else newline
                escapes = "e" in rest[0].text or (escapes and "E" not in rest[0].text)
                rest = rest[1:]
            out = " ".join(a.text for a in rest)
            if "\\" in out:
                if not escapes:
                    return _UNKNOWN_INPUT  # some echos (dash, xpg_echo) decode escapes, some don't
                out = _printf_escapes(out)
                if out is None:
                    return _UNKNOWN_INPUT
            return _Stdin("text", out + newline)
        if name == "printf":
            out = _printf(rest)
            return _UNKNOWN_INPUT if out is None else _Stdin("text", out)
        if name == "cat":
            heredocs = [r for r in redirs if r.type in ("<<", "<<-", "<<<")]
            operands = [a for a in rest if not a.text.startswith("-")]
            if heredocs and not operands:
                return self.redirects(heredocs, src, 0, _NO_INPUT, src.of(n))
            if not operands and not redirs:
                return its_stdin
            if operands:
                return _Stdin("files", files=tuple(operands))
            return _UNKNOWN_INPUT
        if name in ("find", "fd", "fdfind", "ls", "grep", "rg", "egrep", "fgrep") or (
            name == "git" and rest and rest[0].text == "ls-files"
        ):
            return _Stdin("paths", inside=self.lists_inside(name, rest))
        return _UNKNOWN_INPUT

    def lists_inside(self, name: str, rest: list[_Arg]) -> bool:
        """Whether a path-listing command only lists paths inside the project."""
        if name == "git":
            return self.all_inside([_lit(".")])
        if name in ("grep", "egrep", "fgrep", "rg"):
            operands = [a for a in rest if not a.text.startswith("-")]
            return self.all_inside(operands[1:] or [_lit(".")])
        starts = [a for a in rest if not a.text.startswith("-")]
        if name == "find":
            starts = []
            for a in rest:
                if a.text.startswith("-") or a.text in ("(", "!", ")", ","):
                    break
                starts.append(a)
        elif name in ("fd", "fdfind"):
            starts = starts[1:]
        return self.all_inside(starts or [_lit(".")])

    # ----------------------------------------------------------------- paths

    def resolve(self, arg: _Arg, cwds=None) -> list[str | None]:
        """Absolute, normalized candidates for a path word (one per possible cwd)."""
        p = arg.text
        if arg.tilde:
            p = os.path.expanduser(p)
        if arg.pattern:
            # a glob component starting with "." may match ".." in older shells
            p = "/".join(".." if (c.startswith(".") and any(x in c for x in "*?[")) else c for c in p.split("/"))
        if p.startswith("/"):
            return [posixpath.normpath(p)]
        return [None if c is None else posixpath.normpath(posixpath.join(c, p)) for c in (cwds or self.cwds)]

    def inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root.rstrip("/") + "/")

    def all_inside(self, args) -> bool:
        for a in args:
            if a.dynamic:
                return False
            for p in self.resolve(a):
                if p is None or not self.inside(p):
                    return False
        return True

    def check_write(self, arg: _Arg, text: str, cwds=None, devices_ok: bool = True, content: str | None = None,
                    record: bool = True, append: bool = False) -> None:
        if arg.dynamic:
            self.flag(R_VAR_TARGET, text)
            return
        if not arg.text:
            return
        for p in self.resolve(arg, cwds):
            if p is None:
                self.flag(R_UNKNOWN_DIR, text)
                return
            if record and self.recording:
                if append and p in self.written:
                    before = self.written[p]
                    self.written[p] = None if before is None or content is None else before + content
                else:
                    self.written[p] = content
            if devices_ok and (p in _HARMLESS_DEVICES or p.startswith(_HARMLESS_DEVICE_PREFIXES)):
                continue
            if not self.inside(p):
                self.flag(R_OUTSIDE, text)
                return

    def mark_dir(self, arg: _Arg, cwds=None) -> None:
        """A directory that now holds files the model has not seen (extracted, cloned)."""
        if arg.dynamic or not self.recording:
            return
        for p in self.resolve(arg, cwds):
            if p is not None:
                self.written_dirs.add(p)

    def check_script(self, arg: _Arg, text: str, lang: str = "shell", stdin: _Stdin | None = None,
                     depth: int = 0) -> None:
        """A script file that will be run or sourced: fine inside the project (the model
        wrote it with the editor) or among installed programs; unseen elsewhere.  A file
        this same command wrote is read from what was written, when that is known."""
        if arg.dynamic:
            self.flag(R_VAR_CODE, text)
            return
        for p in self.resolve(arg):
            if p is None:
                self.flag(R_UNKNOWN_DIR, text)
                return
            if p in ("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"):
                # the program comes from standard input
                self.stdin_code(lang, stdin if stdin is not None else _UNKNOWN_INPUT, text, depth)
                continue
            if p.startswith(("/dev/fd/", "/proc/self/fd/")):
                self.flag(R_PIPED_CODE, text)  # <(...): another program's output
                return
            if p in self.written or any(p == d or p.startswith(d.rstrip("/") + "/") for d in self.written_dirs):
                content = self.written.get(p)
                if content is None:
                    self.flag(R_WRITTEN_SCRIPT, text)
                    return
                self.written_code(lang, content, text, depth)
                continue
            if self.inside(p) or p.startswith(_SYSTEM_PREFIXES) or p in _HARMLESS_DEVICES:
                continue
            self.flag(R_SCRIPT_OUTSIDE, text)
            return

    def written_code(self, lang: str, content: str, text: str, depth: int) -> None:
        if content.startswith("#!"):
            line = content.partition("\n")[0]
            words = line[2:].split()
            prog = posixpath.basename(words[0]) if words else ""
            if prog == "env" and len(words) > 1:
                prog = posixpath.basename(words[-1])
            if _PYTHON_RE.match(prog):
                lang = "python"
            elif prog in _SHELLS:
                lang = "shell"
            elif prog in ("node", "nodejs", "perl", "ruby", "php"):
                lang = "node" if prog.startswith("node") else prog
            else:
                self.flag(R_WRITTEN_SCRIPT, text)
                return
        if lang in ("shell", "python", "sql", "redis", "mongo", "awk", "node", "perl", "ruby", "php"):
            self.code(lang, content, text, depth)
        else:
            self.flag(R_WRITTEN_SCRIPT, text)

    def dir_candidates(self, arg: _Arg) -> frozenset[str | None]:
        if arg.dynamic:
            return frozenset({None})
        if arg.text == "-":
            return frozenset({None})  # $OLDPWD from before this command
        return frozenset(self.resolve(arg))

    # ----------------------------------------------------------------- commands

    def run(self, args: list[_Arg], text: str, depth: int, stdin: _Stdin) -> None:
        """Check one simple command given as words (after wrappers are peeled off)."""
        if not args:
            return
        a0 = args[0]
        if a0.dynamic:
            self.flag(R_VAR_CMD, text)
            return
        if a0.pattern:
            self.flag(R_PATTERN_CMD, text)
            return
        name = a0.text
        if not _ORDINARY_NAME_RE.match(posixpath.basename(name.rstrip("/")) or "/"):
            # lookalike letters, invisible or control characters: not the program the
            # name appears to be, and not one the checker knows
            self.flag(R_ODD_NAME, text)
            return
        if "/" in name:
            self.check_script(a0, text, "shell", stdin, depth)
            name = posixpath.basename(name.rstrip("/"))
            if not name:
                return
        elif name in self.functions:
            if name in self.calling:
                return  # recursion: the body is being checked already
            body, fsrc = self.functions[name]
            self.calling.add(name)
            try:
                self.node(body, fsrc, depth, stdin)
            finally:
                self.calling.discard(name)
            return
        rest = args[1:]
        if len(rest) > 0 and (name, rest[0].text) in _SUB_WRAPPERS:
            return self.h_wrapper_generic(rest[1:], text, depth, stdin, "", (),
                                          _SUB_WRAPPER_LEADING.get((name, rest[0].text), 0))
        handler = _handler_for(name)
        if handler is not None:
            handler(self, name, rest, text, depth, stdin)

    # ---- always destructive, and simple special cases

    def h_always(self, name, args, text, depth, stdin):
        self.flag(_ALWAYS.get(name) or (R_FORMAT if name.startswith("mkfs") else R_INTERNAL), text)

    def h_kill(self, name, args, text, depth, stdin):
        # kill -0 delivers no signal: it only asks whether the process exists, which
        # scripts use to wait for servers.  kill -l only lists signal names.
        if args and not args[0].dynamic:
            t = args[0].text
            if t in ("-0", "-l", "-L", "--list") or t.startswith("--list="):
                return
            if t in ("-s", "-n", "--signal") and len(args) > 1 and args[1].text in ("0", "SIG0"):
                return
        self.flag(R_KILL, text)

    def h_systemctl(self, name, args, text, depth, stdin):
        ops = _getopt(args, "HMtpPn", ("--host", "--machine", "--type", "--property", "--lines", "--output"))
        safe = {"status", "show", "cat", "list-units", "list-unit-files", "list-timers", "list-sockets",
                "list-jobs", "list-dependencies", "is-active", "is-enabled", "is-failed", "is-system-running",
                "help", "show-environment", "get-default", "list-machines"}
        if not ops.operands:
            return
        verb = ops.operands[0].text
        if verb in safe and not ops.operands[0].dynamic:
            return
        self.flag(R_POWER if verb in ("poweroff", "reboot", "halt", "kexec", "suspend", "hibernate") else R_SERVICE,
                  text)

    def h_service(self, name, args, text, depth, stdin):
        if len(args) >= 2 and args[1].text == "status" or (args and args[0].text in ("--status-all", "--help")):
            return
        if args:
            self.flag(R_SERVICE, text)

    def h_init(self, name, args, text, depth, stdin):
        if args:
            self.flag(R_POWER, text)

    def h_crontab(self, name, args, text, depth, stdin):
        ops = _getopt(args, "u", ())
        if ops.has("-l") and not ops.has("-r", "-e") and not ops.operands:
            return
        self.flag(R_CRON, text)

    def h_hash(self, name, args, text, depth, stdin):
        if any(a.text.startswith("-") and "p" in a.text for a in args) or any(a.text == "-f" for a in args):
            self.flag(R_LOOKUP, text)

    # ---- directory changes

    def h_cd(self, name, args, text, depth, stdin):
        ops = _getopt(args, "", ())
        if name == "popd" or (name == "pushd" and ops.operands and ops.operands[0].text[:1] in "+-"):
            return  # back to a directory already in self.cwds, or a stack rotation
        if not ops.operands:
            new = frozenset({self.home}) if name == "cd" else frozenset()
        else:
            new = self.dir_candidates(ops.operands[0])
        self.cwds = self.cwds | new

    # ---- wrappers

    def h_wrapper(self, name, args, text, depth, stdin):
        with_arg, long_with_arg, leading = _WRAPPERS[name]
        return self.h_wrapper_generic(args, text, depth, stdin, with_arg, long_with_arg, leading)

    def h_wrapper_generic(self, args, text, depth, stdin, with_arg, long_with_arg, leading=0, outputs=()):
        ops = _getopt(args, with_arg, long_with_arg, stop=True)
        for opt_name, value, word in ops.opts:
            if word.split:
                self.flag(R_VAR_CMD, text)  # may expand to a command of its own
                return
            if value is not None and outputs and opt_name in outputs:
                self.check_write(value, text)
        rest = ops.operands
        for a in rest[:leading]:
            if a.split:
                self.flag(R_VAR_CMD, text)
                return
        self.run(rest[leading:], text, depth, stdin)
        if ops.opts and rest and not ops.after_dd:
            # "--with pkg rm x": if the last option takes a value we don't know about,
            # the command starts one word later.  Check that reading too.
            _, last_value, last_word = ops.opts[-1]
            if last_value is None and "=" not in last_word.text:
                self.run(rest[leading + 1 :], text, depth, stdin)

    def h_traced(self, name, args, text, depth, stdin):
        if name == "time":
            return self.h_wrapper_generic(args, text, depth, stdin, "fo", ("--format", "--output"),
                                          outputs=("-o", "--output"))
        return self.h_wrapper_generic(
            args, text, depth, stdin, "eopsuEPIbaXOSAn", ("--output", "--attach", "--user", "--env", "--trace"),
            outputs=("-o", "--output"),
        )

    def h_command(self, name, args, text, depth, stdin):
        ops = _getopt(args, "", (), stop=True)
        if ops.has("-v", "-V"):
            return  # only looks the name up
        self.run(ops.operands, text, depth, stdin)

    def h_env(self, name, args, text, depth, stdin):
        args = list(args)
        cwds = None
        i = 0
        while i < len(args):
            a = args[i]
            t = a.text
            if a.split:
                self.flag(R_VAR_CMD, text)
                return
            if t == "--" or t == "-":
                i += 1
                break
            if t in ("-u", "--unset"):
                i += 2
                continue
            if t in ("-C", "--chdir") or t.startswith("--chdir="):
                target = args[i + 1] if "=" not in t and i + 1 < len(args) else _value_arg(t.partition("=")[2], a)
                cwds = self.dir_candidates(target)
                i += 1 if "=" in t else 2
                continue
            if t in ("-S", "--split-string") or t.startswith(("--split-string=", "-S")):
                if t in ("-S", "--split-string"):
                    val = args[i + 1] if i + 1 < len(args) else _lit("")
                    consumed = 2
                else:
                    val = _value_arg(t.partition("=")[2] if t.startswith("--") else t[2:], a)
                    consumed = 1
                if val.dynamic:
                    self.flag(R_VAR_CMD, text)
                    return
                try:
                    words = shlex.split(val.text)
                except ValueError:
                    self.flag(R_UNPARSABLE, text)
                    return
                args[i : i + consumed] = [_Arg(w, dynamic="$" in w) for w in words]
                continue
            if t.startswith("-") and "=" not in t:
                if t.startswith("-u") and len(t) > 2:
                    i += 1
                    continue
                i += 1
                continue
            name_part, eq, value = t.partition("=")
            if eq and _NAME_RE.match(name_part):
                self.env_assignment(name_part, _value_arg(value, a), text, depth)
                i += 1
                continue
            break
        saved = self.cwds
        if cwds is not None:
            self.cwds = cwds
        try:
            self.run(args[i:], text, depth, stdin)
        finally:
            if cwds is not None:
                self.cwds = saved

    def env_assignment(self, name: str, value: _Arg, text: str, depth: int) -> None:
        if name == "PATH":
            for part in value.text.split(":"):
                if not part or part.startswith("$"):
                    continue  # the PATH that was already there
                a = _Arg(part, tilde=part.startswith("~"))
                for p in self.resolve(a):
                    if p is None or not (self.inside(p) or p.startswith(_SYSTEM_PREFIXES)):
                        self.flag(R_LOOKUP, text)
                        return
            return
        if name in _CODE_ENV:
            if value.dynamic:
                self.flag(R_VAR_CODE, text)
            elif value.text:
                self.script(value.text, depth + 1)
        elif name in _FILE_ENV:
            if value.text:
                self.flag(R_ENV_CODE, text)
        elif name in _PROMPT_ENV:
            self.text_substitutions(value.text, text, depth)

    def h_declare(self, name, args, text, depth, stdin):
        for a in args:
            var, eq, value = a.text.partition("=")
            if eq and _NAME_RE.match(var.rstrip("+")):
                self.env_assignment(var.rstrip("+"), _value_arg(value, a), text, depth)

    def h_busybox(self, name, args, text, depth, stdin):
        if args and not args[0].text.startswith("-"):
            self.run(args, text, depth, stdin)

    def h_flock(self, name, args, text, depth, stdin):
        # flock [options] FILE COMMAND... | flock [options] FILE -c CODE | flock [options] FD
        ops = _getopt(args, "wEc", ("--wait", "--timeout", "--conflict-exit-code", "--command"), stop=True)
        codes = ops.values("-c", "--command")
        rest = ops.operands[1:]
        if rest and not codes:
            later = _getopt(rest, "wEc", ("--wait", "--timeout", "--conflict-exit-code", "--command"), stop=True)
            codes = later.values("-c", "--command")
            if not codes:
                self.run(later.operands if later.opts else rest, text, depth, stdin)
        for code in codes:
            self.shell_code(code, text, depth)

    def h_entr(self, name, args, text, depth, stdin):
        ops = _getopt(args, "", (), stop=True)
        if ops.has("-s") and ops.operands:
            self.shell_code(ops.operands[0], text, depth)
        else:
            self.run(ops.operands, text, depth, _NO_INPUT)

    def h_xargs(self, name, args, text, depth, stdin):
        i, repl = 0, None
        while i < len(args):
            t = args[i].text
            if args[i].split:
                self.flag(R_VAR_CMD, text)
                return
            if t == "--":
                i += 1
                break
            if not t.startswith("-") or t == "-":
                break
            if t in ("-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "--arg-file", "--delimiter", "--max-args",
                     "--max-procs", "--max-chars", "--max-lines", "--process-slot-var", "--eof"):
                if t == "-I":
                    repl = args[i + 1].text if i + 1 < len(args) else "{}"
                if t in ("-a", "--arg-file"):
                    stdin = _UNKNOWN_INPUT
                i += 2
                continue
            if t.startswith(("-a", "--arg-file=")):
                stdin = _UNKNOWN_INPUT
            if t.startswith("-I"):
                repl = t[2:]
            elif t == "-i" or t == "--replace":
                repl = "{}"
            elif t.startswith("-i"):
                repl = t[2:]
            elif t.startswith("--replace="):
                repl = t.partition("=")[2]
            i += 1
        cmd = list(args[i:]) or [_lit("echo")]
        if stdin.kind == "text":
            items = [_lit(w) for w in stdin.text.split()]
        elif stdin.kind == "paths" and stdin.inside:
            items = [_lit("./{}")]  # a listed path, known to be inside the project
        else:
            items = [_Arg("{}", dynamic=True, split=True)]
        if repl:
            item = items[0] if items else _lit("")
            cmd = [
                (_Arg(a.text.replace(repl, item.text), item.dynamic or a.dynamic, item.split or a.split)
                 if repl in a.text else a)
                for a in cmd
            ]
        else:
            cmd = cmd + items
        self.run(cmd, text, depth, _UNKNOWN_INPUT)

    def h_parallel(self, name, args, text, depth, stdin):
        with_arg = "jNnSadEIC"
        ops = _getopt(
            args, with_arg,
            ("--jobs", "--sshlogin", "--arg-file", "--delimiter", "--colsep", "--joblog", "--results",
             "--tmpdir", "--timeout", "--halt", "--delay", "--retries", "--load", "--memfree", "--workdir",
             "--basefile", "--env", "--tagstring", "--max-args", "--max-replace-args"),
            stop=True,
        )
        rest = ops.operands
        cmd, i = [], 0
        while i < len(rest) and rest[i].text not in (":::", "::::", ":::+", "::::+"):
            cmd.append(rest[i])
            i += 1
        inputs = [a for a in rest[i:] if a.text not in (":::", "::::", ":::+", "::::+")]
        if cmd:
            if any(a.dynamic for a in cmd):
                self.flag(R_VAR_CODE, text)
                return
            template = " ".join(a.text for a in cmd)
            template = re.sub(r"\{[^{}\s]*\}", "x", template)
            self.script(template, depth + 1)
        elif inputs:
            for a in inputs:  # with no command, each input is a command line
                self.shell_code(a, text, depth)
        elif stdin.kind == "text":
            for line in stdin.text.splitlines():
                self.script(line, depth + 1)
        elif stdin.kind != "none":
            self.flag(R_PIPED_CODE, text)

    def h_watch(self, name, args, text, depth, stdin):
        ops = _getopt(args, "nq", ("--interval", "--equexit"), stop=True)
        if ops.has("-x", "--exec"):
            self.run(ops.operands, text, depth, _NO_INPUT)
        elif ops.operands:
            if any(a.dynamic for a in ops.operands):
                self.flag(R_VAR_CODE, text)
                return
            self.script(" ".join(a.text for a in ops.operands), depth + 1)

    def h_ssh(self, name, args, text, depth, stdin):
        ops = _getopt(args, "BbcDEeFIiJLlmOopQRSWw", (), stop=True)
        for opt, value, _ in ops.opts:
            if opt == "-o" and value is not None:
                key, _, val = value.text.replace("=", " ", 1).partition(" ")
                if key.lower() in ("proxycommand", "localcommand", "knownhostscommand", "remotecommand"):
                    self.shell_code(_value_arg(val.strip(), value), text, depth)
        remote = ops.operands[1:]
        if remote:
            if any(a.dynamic for a in remote):
                self.flag(R_VAR_CODE, text)
                return
            self.script(" ".join(a.text for a in remote), depth + 1)
        elif ops.operands:
            self.stdin_code("shell", stdin, text, depth)

    # ---- shells and shell strings

    def shell_code(self, code: _Arg, text: str, depth: int) -> None:
        if code.dynamic:
            self.flag(R_VAR_CODE, text)
        else:
            self.script(code.text, depth + 1)

    def h_shell(self, name, args, text, depth, stdin):
        cmd_mode = stdin_mode = False
        i = 0
        while i < len(args):
            a = args[i]
            t = a.text
            if t in ("--", "-"):
                i += 1
                break
            if t.startswith("--"):
                i += 2 if t in ("--rcfile", "--init-file") else 1
                continue
            if t[:1] in "-+" and len(t) > 1:
                if a.dynamic:
                    self.flag(R_VAR_CODE, text)
                    return
                letters = t[1:]
                if t[0] == "-" and "c" in letters:
                    cmd_mode = True
                if t[0] == "-" and "s" in letters:
                    stdin_mode = True
                i += 1
                if any(c in "oO" for c in letters) and i < len(args):
                    i += 1  # -o option / -O shopt take a value
                continue
            break
        operands = args[i:]
        if cmd_mode:
            if operands:
                self.shell_code(operands[0], text, depth)
        elif operands and not stdin_mode:
            self.check_script(operands[0], text, "shell", stdin, depth)
        else:
            self.stdin_code("shell", stdin, text, depth)

    def stdin_code(self, lang: str, stdin: _Stdin, text: str, depth: int) -> None:
        """An interpreter reads its program from stdin."""
        if stdin.kind == "none":
            return  # nothing is fed; the worker's own stdin is not the model's
        if stdin.kind == "text":
            self.code(lang, stdin.text, text, depth)
        elif stdin.kind == "files":
            for f in stdin.files:
                self.check_script(f, text, lang, _NO_INPUT, depth)
        else:
            self.flag(R_PIPED_CODE, text)

    def code(self, lang: str, code: str, text: str, depth: int) -> None:
        if lang == "shell":
            self.script(code, depth + 1)
        elif lang == "python":
            self.python(code, text, depth)
        elif lang == "sql":
            self.sql(code, text, depth)
        elif lang == "redis":
            self.redis_text(code, text)
        elif lang == "mongo":
            self.mongo(code, text)
        elif lang == "awk":
            self.awk(code, text, depth)
        elif lang in _CODE_RULES:
            self.other_code(lang, code, text, depth)
        else:
            self.flag(R_FOREIGN_CODE, text)

    def h_eval(self, name, args, text, depth, stdin):
        if any(a.dynamic for a in args):
            self.flag(R_VAR_CODE, text)
            return
        if args:
            self.script(" ".join(a.text for a in args), depth + 1)

    def h_source(self, name, args, text, depth, stdin):
        if args:
            self.check_script(args[0], text, "shell", stdin, depth)

    def h_trap(self, name, args, text, depth, stdin):
        if not args or args[0].text in ("-l", "-p", "-lp"):
            return
        code = args[1] if args[0].text == "--" and len(args) > 1 else args[0]
        if code.text == "-" or code.text.isdigit():
            return
        self.shell_code(code, text, depth)

    def h_alias(self, name, args, text, depth, stdin):
        for a in args:
            alias, eq, value = a.text.partition("=")
            if eq:
                self.shell_code(_value_arg(value, a), text, depth)

    # ---- interpreters with inline code

    def h_python(self, name, args, text, depth, stdin):
        i = 0
        while i < len(args):
            a = args[i]
            t = a.text
            if t == "-":
                break
            if t.startswith("--"):
                if t in ("--check-hash-based-pycs",):
                    i += 1
                i += 1
                continue
            if t.startswith("-") and len(t) > 1:
                for j, c in enumerate(t[1:], 1):
                    if c == "c":
                        code = _value_arg(t[j + 1 :], a) if t[j + 1 :] else (args[i + 1] if i + 1 < len(args) else None)
                        if code is not None:
                            self.inline_code("python", code, text, depth)
                        return
                    if c == "m":
                        module = t[j + 1 :] or (args[i + 1].text if i + 1 < len(args) else "")
                        rest = args[i + 1 :] if t[j + 1 :] else args[i + 2 :]
                        if module.endswith("manage") or module == "django":
                            self.framework_db("manage.py", rest, text)
                        if module == "pip":
                            self.h_packages("pip", rest, text, depth, stdin)
                        return  # an installed module (pytest, pip, ...)
                    if c in "WXQ":
                        if not t[j + 1 :]:
                            i += 1
                        break
                i += 1
                continue
            self.check_script(a, text, "python", stdin, depth)
            self.framework_db(posixpath.basename(t), args[i + 1 :], text)
            return
        self.stdin_code("python", stdin, text, depth)

    def framework_db(self, script: str, rest, text: str) -> None:
        verbs = _FRAMEWORK_DB.get(script)
        if verbs and any(a.text in verbs for a in rest):
            self.flag(R_DB, text)

    def h_framework(self, name, args, text, depth, stdin):
        self.framework_db(name, args, text)

    def h_prisma(self, name, args, text, depth, stdin):
        words = [a.text for a in args]
        if ("migrate" in words and "reset" in words) or ("db" in words and "--force-reset" in words):
            self.flag(R_DB, text)

    def h_script(self, name, args, text, depth, stdin):
        # util-linux script: runs -c CMD (or a shell) and records it to a file
        ops = _getopt(args, "cEIOTBm", ("--command", "--echo", "--log-in", "--log-out", "--log-timing",
                                        "--log-io", "--logging-format"))
        for code in ops.values("-c", "--command"):
            self.shell_code(code, text, depth)
        for out in ops.operands[:1] or [_lit("typescript")]:
            self.check_write(out, text)
        for out in ops.values("-I", "--log-in", "-O", "--log-out", "-T", "--log-timing", "-B", "--log-io"):
            self.check_write(out, text)

    def h_at(self, name, args, text, depth, stdin):
        # at/batch read the commands to schedule from stdin (or -f FILE)
        ops = _getopt(args, "qfMmt", ())
        if ops.has("-l", "-d", "-r", "-c"):
            if ops.has("-d", "-r"):
                self.flag(R_CRON, text)
            return
        for f in ops.values("-f"):
            self.check_script(f, text)
        if not ops.values("-f"):
            self.stdin_code("shell", stdin, text, depth)

    def h_php(self, name, args, text, depth, stdin):
        ops = _getopt(args, "rfdcn", ("--run", "--file", "--define"), stop=True)
        for code in ops.values("-r", "--run"):
            self.inline_code("php", code, text, depth)
        for f in ops.values("-f", "--file"):
            self.check_script(f, text, "php", stdin, depth)
        if ops.operands:
            self.check_script(ops.operands[0], text, "php", stdin, depth)
            self.framework_db(posixpath.basename(ops.operands[0].text), ops.operands[1:], text)
        elif not ops.values("-r", "--run", "-f", "--file") and not ops.has("-v", "--version", "-m", "-i", "-h"):
            self.stdin_code("php", stdin, text, depth)

    def h_node(self, name, args, text, depth, stdin):
        ops = _getopt(args, "epr", ("--eval", "--print", "--require", "--import", "--loader", "--input-type",
                                    "--env-file", "--conditions", "--experimental-loader"), stop=True)
        codes = ops.values("-e", "--eval", "-p", "--print")
        for code in codes:
            self.inline_code("node", code, text, depth)
        if ops.operands:
            if ops.operands[0].text != "-":
                self.check_script(ops.operands[0], text, "node", stdin, depth)
            else:
                self.stdin_code("node", stdin, text, depth)
        elif not codes and not ops.has("-v", "--version", "-h", "--help", "-i", "--interactive"):
            self.stdin_code("node", stdin, text, depth)

    def h_deno_bun(self, name, args, text, depth, stdin):
        if args and args[0].text == "eval" and len(args) > 1:
            self.inline_code("node", args[-1], text, depth)
        elif name == "bun":
            ops = _getopt(args, "ep", ("--eval", "--print"), stop=True)
            for code in ops.values("-e", "--eval", "-p", "--print"):
                self.inline_code("node", code, text, depth)
            if len(ops.operands) >= 2 and ops.operands[0].text in ("x",):
                self.run(ops.operands[1:], text, depth, stdin)

    # code options, options taking the rest of the word or the next one, and options
    # taking only the rest of the word
    _PERL_RUBY_OPTS = {"perl": ("eE", "I", "MmxFCdDl0i"), "ruby": ("e", "ICr", "xFEWTKl0i")}

    def h_perl_ruby(self, name, args, text, depth, stdin):
        lang = "ruby" if name.startswith("ruby") else "perl"
        code_opts, value_opts, attached_opts = self._PERL_RUBY_OPTS[lang]
        codes: list[_Arg] = []
        inplace = False
        i = 0
        while i < len(args):
            a = args[i]
            t = a.text
            if t == "--":
                i += 1
                break
            if not t.startswith("-") or t == "-":
                break
            j = 1
            while j < len(t):
                c = t[j]
                rest = t[j + 1 :]
                if c in "l0" or (lang == "ruby" and c in "W"):
                    j += 1 + len(re.match(r"[0-9a-fA-Fx]*" if c == "0" else r"[0-9]*", rest).group(0))
                    continue  # -l[octal], -0[digits]: the next letters are options again
                if c in code_opts or c in value_opts:
                    value = _value_arg(rest, a) if rest else (args[i + 1] if i + 1 < len(args) else None)
                    if not rest:
                        i += 1
                    if c in code_opts and value is not None:
                        codes.append(value)
                    break
                if c in attached_opts:
                    inplace = inplace or c == "i"  # -i[.bak]: edit the files in place
                    break
                j += 1
            i += 1
        operands = args[i:]
        for code in codes:
            self.inline_code(lang, code, text, depth)
        if not codes:
            if operands:
                self.check_script(operands[0], text, lang, stdin, depth)
                operands = operands[1:]
            else:
                self.stdin_code(lang, stdin, text, depth)
        if inplace:
            if self.targets_unknown(operands, text):
                return
            for f in operands:
                self.check_write(f, text)

    def inline_code(self, lang: str, code: _Arg, text: str, depth: int) -> None:
        if code.dynamic:
            self.flag(R_VAR_CODE, text)
        else:
            self.code(lang, code.text, text, depth)

    def python(self, code: str, text: str, depth: int) -> None:
        try:
            tree = pyast.parse(code)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            # Python would refuse to run it, but the text may differ from what python
            # gets (quoting); look for the dangerous names instead.
            if re.search(r"\b(os|shutil|subprocess|pty|signal|pathlib|Path)\b|\.(unlink|rmdir|rmtree|chmod)\b",
                         code):
                self.flag(R_RUNTIME_CMD, text)
            return
        _PythonChecker(self, text, depth).check(tree)

    def other_code(self, lang: str, code: str, text: str, depth: int) -> None:
        """Inline node/perl/ruby/php: look for well-known destructive APIs and for
        shell-outs, whose string argument is classified like any command."""
        rules = _CODE_RULES[lang]
        # obj['name'] is obj.name; anything else that picks a name at run time can't be followed
        code = re.sub(r"""\[\s*(['"])([A-Za-z_$][\w$]*)\1\s*\]""", r".\2", code)
        for pattern in rules.get("dynamic", ()):
            if pattern.search(code):
                self.flag(R_DYNAMIC_CODE, text)
                break
        for pattern, reason in rules["apis"]:
            if pattern.search(code):
                self.flag(reason, text)
        gate = rules.get("gate")
        shell_rules = rules["shell"] if gate is None or gate in code else []
        for pattern in shell_rules + rules.get("literal_shell", []):
            for m in pattern.finditer(code):
                groups = m.groupdict()
                literal = groups.get("lit")
                if literal is None or "${" in literal or "#{" in literal or (
                    lang in ("perl", "php") and re.search(r"\$\w", literal)
                ):
                    self.flag(R_RUNTIME_CMD, text)
                    continue
                words = [_unescape(literal)]
                if groups.get("argv") and groups.get("rest"):
                    # spawn("git", ["push", "--force"]) / system("rm", "-rf", "x")
                    words += [_unescape(x[1]) for x in _STRING_LIT.findall(groups["rest"])]
                self.script(words[0] if len(words) == 1 else shlex.join(words), depth + 1)
        for pattern in rules.get("writes", ()):
            for m in pattern.finditer(code):
                self.check_write(_lit(_unescape(m.group("path"))), text)

    # ---- databases

    def sql(self, sql: str, text: str, depth: int) -> None:
        # client meta-commands that run shell commands: psql/mysql "\!", sqlite ".shell"
        for m in re.finditer(r"(?m)^\s*\\!(.*)$", sql):
            self.script(m.group(1), depth + 1)
        for m in re.finditer(r"(?im)^\s*(?:\.shell|\.system|system)\s+(.*)$", sql):
            self.script(m.group(1), depth + 1)
        for m in re.finditer(r"(?im)^\s*(?:\.read|\\i|\\ir|\\include|source)\s+(\S+)", sql):
            self.check_script(_lit(m.group(1).strip("'\";")), text, "sql", _NO_INPUT, depth)  # runs a file
        for m in re.finditer(r"(?i)\bprogram\s+'((?:[^']|'')*)'", sql):  # COPY ... PROGRAM
            self.script(m.group(1).replace("''", "'"), depth + 1)
        for m in re.finditer(r"(?im)^\s*\.(?:output|once|save|backup)\s+(?:-\S+\s+)*([^\s-]\S*)", sql):
            if m.group(1) not in ("stdout", "stderr"):
                self.check_write(_lit(m.group(1).strip("'\"")), text)
        stripped = re.sub(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", " ", sql, flags=re.S)
        # "ON DELETE CASCADE", "AFTER DELETE ON t": schema rules, not deletions
        stripped = re.sub(r"(?i)\b(on|after|before|instead\s+of|for)\s+delete\b", " ", stripped)
        if _SQL_DESTRUCTIVE.search(stripped):
            self.flag(R_DB, text)

    def h_sql_client(self, name, args, text, depth, stdin):
        spec = _SQL_CLIENTS[name]
        ops = _getopt(args, spec["with_arg"], spec["long_with_arg"], attached=spec.get("attached", ""))
        codes = ops.values(*spec["code"])
        for code in codes:
            self.inline_code("sql", code, text, depth)
        files = ops.values(*spec.get("files", ()))
        for f in files:
            self.check_script(f, text, "sql", stdin, depth)
        for out in ops.values(*spec.get("outputs", ())):
            self.check_write(out, text)
        if not codes and not files and not ops.has("--version", "-V", "--help", "-l", "--list"):
            self.stdin_code("sql", stdin, text, depth)

    def h_sqlite(self, name, args, text, depth, stdin):
        with_value = {"-cmd", "-init", "-separator", "-newline", "-nullvalue", "-vfs", "-mmap", "-maxsize", "-heap",
                      "-lookaside", "-pagecache", "-A", "-c", "-s", "-f"}
        operands, codes, i = [], [], 0
        while i < len(args):
            t = args[i].text.replace("--", "-", 1) if args[i].text.startswith("--") else args[i].text
            if t in with_value:
                if i + 1 < len(args):
                    if t in ("-cmd", "-c", "-s"):
                        codes.append(args[i + 1])
                    elif t in ("-init", "-f"):
                        self.check_script(args[i + 1], text, "sql", stdin, depth)
                i += 2
                continue
            if t.startswith("-") and t != "-":
                i += 1
                continue
            operands.append(args[i])
            i += 1
        if operands:
            self.check_write(operands[0], text)  # the database file is written
        codes += operands[1:]
        for code in codes:
            self.inline_code("sql", code, text, depth)
        if not codes:
            self.stdin_code("sql", stdin, text, depth)

    def h_redis(self, name, args, text, depth, stdin):
        ops = _getopt(
            args, "hpsaunrDdi",
            ("--user", "--pass", "--cacert", "--cacertdir", "--cert", "--key", "--sni", "--rdb", "--functions-rdb",
             "--pipe-timeout", "--pattern", "--count", "--quoted-pattern", "--eval", "--memkeys-samples",
             "--tls-ciphers", "--tls-ciphersuites", "--intrinsic-latency"),
            stop=True,
        )
        for out in ops.values("--rdb", "--functions-rdb"):
            self.check_write(out, text)
        for f in ops.values("--eval"):
            self.check_script(f, text, "lua", stdin, depth)
        if ops.operands:
            if ops.operands[0].dynamic:
                self.flag(R_VAR_ARGS, text)
                return
            self.redis_words([a.text for a in ops.operands], text)
        elif not ops.has("--scan", "--bigkeys", "--memkeys", "--hotkeys", "--stat", "--latency", "--version",
                         "--help", "--eval"):
            if stdin.kind == "text":
                self.redis_text(stdin.text, text)
            elif stdin.kind not in ("none", "files"):
                self.flag(R_PIPED_CODE, text)
            else:
                for f in stdin.files:
                    self.check_script(f, text, "redis", stdin, depth)

    def redis_words(self, words: list[str], text: str) -> None:
        verb = words[0].lower() if words else ""
        if verb in _REDIS_DESTRUCTIVE:
            self.flag(R_DB, text)
        elif verb in _REDIS_SERVER:
            if not (verb == "config" and len(words) > 1 and words[1].lower() == "get"):
                self.flag(R_DB_SERVER, text)
        elif verb in _REDIS_SCRIPT:
            if not (verb in ("script", "function") and len(words) > 1 and words[1].lower() in ("exists", "list")):
                self.flag(R_RUNTIME_CMD, text)

    def redis_text(self, body: str, text: str) -> None:
        if not _REDIS_WORDS_RE.search(body):
            return
        before = len(self.findings)
        for line in body.splitlines():
            try:
                words = shlex.split(line)
            except ValueError:
                words = line.split()
            if words:
                self.redis_words(words, text)
        if len(self.findings) == before:
            self.flag(R_DB, text)  # protocol or odd text: a keyword is enough to ask

    def h_mongo(self, name, args, text, depth, stdin):
        ops = _getopt(args, "uphf", ("--eval", "--username", "--password", "--host", "--port", "--file",
                                     "--authenticationDatabase"))
        codes = ops.values("--eval")
        for code in codes:
            self.inline_code("mongo", code, text, depth)
        files = ops.values("-f", "--file") + [a for a in ops.operands if a.text.endswith(".js")]
        for f in files:
            self.check_script(f, text, "mongo", stdin, depth)
        if not codes and not files:
            self.stdin_code("mongo", stdin, text, depth)

    def mongo(self, code: str, text: str) -> None:
        if _MONGO_DESTRUCTIVE.search(code):
            self.flag(R_DB, text)

    # ---- git

    def h_git(self, name, args, text, depth, stdin):
        i = 0
        cwds = self.cwds
        while i < len(args):
            a = args[i]
            t = a.text
            if a.split:
                self.flag(R_VAR_ARGS, text)
                return
            if t == "-C" and i + 1 < len(args):
                saved, self.cwds = self.cwds, cwds
                cwds = self.dir_candidates(args[i + 1])
                self.cwds = saved
                i += 2
                continue
            if t == "-c" and i + 1 < len(args):
                self.git_config_value(args[i + 1].text.partition("=")[0], args[i + 1], text, depth, cut=True)
                i += 2
                continue
            if t.startswith("-c") and len(t) > 2 and not t.startswith("--"):
                v = _value_arg(t[2:], a)
                self.git_config_value(v.text.partition("=")[0], v, text, depth, cut=True)
                i += 1
                continue
            if t.startswith("--exec-path="):  # git runs its subcommands from there
                self.check_script(_value_arg(t.partition("=")[2], a), text)
                i += 1
                continue
            if t.startswith("--config-env="):
                key = t.partition("=")[2].partition("=")[0]
                if _GIT_EXEC_CONFIG.match(key.lower()):
                    self.flag(R_VAR_CODE, text)
                i += 1
                continue
            if t in ("--git-dir", "--work-tree", "--namespace", "--super-prefix", "--attr-source", "--config-env"):
                i += 2
                continue
            if t.startswith("-"):
                i += 1
                continue
            break
        if i >= len(args):
            return
        sub, rest = args[i], args[i + 1 :]
        if sub.dynamic:
            self.flag(R_VAR_CMD, text)
            return
        if sub.text in _GIT_SENSITIVE and any(a.dynamic for a in rest):
            self.flag(R_VAR_ARGS, text)
        method = getattr(self, "git_" + sub.text.replace("-", "_"), None)
        if method is not None:
            saved, self.cwds = self.cwds, cwds
            try:
                method(rest, text, depth)
            finally:
                self.cwds = saved

    def git_config_value(self, key: str, value: _Arg, text: str, depth: int, cut: bool = False) -> None:
        """Config that makes git run a command (aliases with "!", pagers, editors...)."""
        key = key.lower()
        if key == "core.hookspath":
            self.check_script(_value_arg(value.text.partition("=")[2] if cut else value.text, value), text)
            return
        if not _GIT_EXEC_CONFIG.match(key):
            return
        if value.dynamic:
            self.flag(R_VAR_CODE, text)
            return
        v = value.text.partition("=")[2] if cut else value.text
        if key.startswith("alias."):
            if v.startswith("!"):
                self.script(v[1:], depth + 1)
            else:
                self.script("git " + v, depth + 1)
        elif key.startswith("credential") and not v.startswith("!") and "/" not in v:
            return  # "store", "cache": git's own helpers
        elif v.lower() not in ("true", "false", "yes", "no", "on", "off", "1", "0", ""):
            self.script(v.lstrip("!"), depth + 1)

    def git_push(self, args, text, depth):
        ops = _getopt(args, "o", ("--repo", "--receive-pack", "--exec", "--push-option"))
        if ops.has("-f", "--force", "--force-with-lease", "--force-if-includes", "--mirror"):
            self.flag(R_FORCE_PUSH, text)
        if ops.has("-d", "--delete", "--prune"):
            self.flag(R_REMOTE_DELETE, text)
        for spec in ops.operands[1:] if len(ops.operands) > 1 else []:
            if spec.text.startswith("+"):
                self.flag(R_FORCE_PUSH, text)
            elif spec.text.startswith(":"):
                self.flag(R_REMOTE_DELETE, text)

    def git_reset(self, args, text, depth):
        if _getopt(args).has("--hard", "--merge", "--keep"):
            self.flag(R_DISCARD, text)

    def git_clean(self, args, text, depth):
        self.flag(R_DELETE, text)

    def git_checkout(self, args, text, depth):
        ops = _getopt(args, "bB", ("--orphan", "--conflict", "--pathspec-from-file"))
        if ops.has("-f", "--force", "-p", "--patch", "--pathspec-from-file"):
            self.flag(R_DISCARD, text)
        if ops.has("-B"):
            self.flag(R_GIT_REF, text)
        if ops.has("--ours", "--theirs", "-m", "--merge", "--conflict") and ops.operands:
            self.flag(R_DISCARD, text)
        before = [a for a in ops.operands if a not in ops.after_dd]
        if ops.after_dd:
            self.flag(R_DISCARD, text)  # "git checkout [tree] -- paths" overwrites files
        elif ops.has("-b", "-B", "--orphan"):
            if len(before) > 1:
                self.flag(R_DISCARD, text)
        elif len(before) >= 2 or (len(before) == 1 and _looks_like_path(before[0].text)):
            self.flag(R_DISCARD, text)

    def git_switch(self, args, text, depth):
        ops = _getopt(args, "cC", ("--create", "--force-create", "--orphan"))
        if ops.has("-f", "--force", "--discard-changes"):
            self.flag(R_DISCARD, text)
        if ops.has("-C", "--force-create"):
            self.flag(R_GIT_REF, text)

    def git_restore(self, args, text, depth):
        ops = _getopt(args, "s", ("--source", "--pathspec-from-file"))
        if not ops.has("-S", "--staged") or ops.has("-W", "--worktree"):
            self.flag(R_DISCARD, text)

    def git_stash(self, args, text, depth):
        ops = _getopt(args)
        if ops.operands and ops.operands[0].text in ("drop", "clear"):
            self.flag(R_STASH, text)

    def git_branch(self, args, text, depth):
        ops = _getopt(args, "u", ("--set-upstream-to", "--contains", "--no-contains", "--merged", "--no-merged",
                                  "--points-at", "--sort", "--format"))
        force = ops.has("-f", "--force")
        if ops.has("-D", "-M", "-C") or (force and (ops.has("-d", "--delete", "-m", "--move", "-c", "--copy")
                                                     or ops.operands)):
            self.flag(R_GIT_REF, text)

    def git_tag(self, args, text, depth):
        ops = _getopt(args, "mFu", ("--message", "--file", "--local-user", "--sort", "--format"))
        if ops.has("-d", "--delete", "-f", "--force"):
            self.flag(R_GIT_REF, text)

    def git_rm(self, args, text, depth):
        ops = _getopt(args, "", ("--pathspec-from-file",))
        if not ops.has("--cached", "-n", "--dry-run"):
            self.flag(R_DELETE, text)

    def git_filter_branch(self, args, text, depth):
        self.flag(R_HISTORY, text)

    git_filter_repo = git_filter_branch

    def git_reflog(self, args, text, depth):
        ops = _getopt(args)
        if ops.operands and ops.operands[0].text in ("expire", "delete"):
            self.flag(R_HISTORY, text)

    def git_gc(self, args, text, depth):
        for v in _getopt(args).values("--prune"):
            if v.text in ("now", "all"):
                self.flag(R_HISTORY, text)

    def git_update_ref(self, args, text, depth):
        if _getopt(args).has("-d"):
            self.flag(R_GIT_REF, text)

    def git_worktree(self, args, text, depth):
        ops = _getopt(args, "b", ("--reason",))
        verb = ops.operands[0].text if ops.operands else ""
        if verb == "remove" and ops.has("-f", "--force"):
            self.flag(R_DELETE, text)
        if verb == "add" and len(ops.operands) > 1:
            self.check_write(ops.operands[1], text)

    def git_clone(self, args, text, depth):
        ops = _getopt(args, "bocju", ("--branch", "--origin", "--config", "--depth", "--reference", "--template",
                                      "--separate-git-dir", "--filter", "--shallow-since", "--jobs", "--upload-pack"))
        for v in ops.values("-c", "--config"):
            self.git_config_value(v.text.partition("=")[0], v, text, depth, cut=True)
        if len(ops.operands) > 1:
            self.check_write(ops.operands[1], text)
            self.mark_dir(ops.operands[1])
        elif ops.operands and not ops.operands[0].dynamic:
            base = posixpath.basename(ops.operands[0].text.rstrip("/"))
            self.mark_dir(_lit(base[:-4] if base.endswith(".git") else base))
        for v in ops.values("--separate-git-dir"):
            self.check_write(v, text)

    def git_init(self, args, text, depth):
        ops = _getopt(args, "b", ("--template", "--separate-git-dir", "--initial-branch", "--object-format"))
        if ops.operands:
            self.check_write(ops.operands[0], text)

    def git_config(self, args, text, depth):
        ops = _getopt(args, "f", ("--file", "--blob", "--type", "--default"))
        verbs = {"set", "unset", "rename-section", "remove-section", "edit", "get", "list"}
        operands = ops.operands
        verb = operands[0].text if operands and operands[0].text in verbs else None
        kv = operands[1:] if verb else operands
        writing = (
            ops.has("--add", "--unset", "--unset-all", "--replace-all", "--rename-section", "--remove-section",
                    "-e", "--edit")
            or verb in ("set", "unset", "rename-section", "remove-section", "edit")
            or (verb is None and len(kv) >= 2 and not ops.has("--get", "--get-all", "--get-regexp", "-l", "--list"))
        )
        if writing:
            if ops.has("--global", "--system"):
                self.flag(R_OUTSIDE, text)
            for f in ops.values("-f", "--file"):
                self.check_write(f, text)
        if len(kv) >= 2:
            self.git_config_value(kv[0].text, kv[1], text, depth)

    def git_submodule(self, args, text, depth):
        ops = _getopt(args, "", (), stop=True)
        if not ops.operands:
            return
        verb = ops.operands[0].text
        if verb == "foreach":
            cmd = [a for a in ops.operands[1:] if a.text not in ("--recursive", "-q", "--quiet")]
            if any(a.dynamic for a in cmd):
                self.flag(R_VAR_CODE, text)
            elif cmd:
                self.script(" ".join(a.text for a in cmd), depth + 1)
        elif verb == "deinit" and any(a.text in ("-f", "--force", "--all") for a in ops.operands[1:]):
            self.flag(R_DISCARD, text)

    def git_rebase(self, args, text, depth):
        ops = _getopt(args, "xsX", ("--exec", "--onto", "--strategy", "--strategy-option"))
        for code in ops.values("-x", "--exec"):
            self.shell_code(code, text, depth)
        if not ops.has("--show-current-patch"):
            self.flag(R_HISTORY, text)  # rewrites commits (and --skip/--abort drop work)

    def git_prune(self, args, text, depth):
        if not _getopt(args).has("-n", "--dry-run"):
            self.flag(R_HISTORY, text)  # deletes unreachable commits for good

    def git_bisect(self, args, text, depth):
        if args and args[0].text == "run":
            self.run(list(args[1:]), text, depth, _NO_INPUT)

    def git_archive(self, args, text, depth):
        for out in _getopt(args, "o", ("--output", "--prefix", "--format", "--remote")).values("-o", "--output"):
            self.check_write(out, text)

    def git_format_patch(self, args, text, depth):
        for out in _getopt(args, "o", ("--output-directory", "--output")).values("-o", "--output-directory",
                                                                                  "--output"):
            self.check_write(out, text)

    # ---- file writers

    def targets_unknown(self, operands, text) -> bool:
        # an unquoted variable could expand to "-t /elsewhere"
        if any(a.split for a in operands):
            self.flag(R_VAR_TARGET, text)
            return True
        return False

    def h_copy(self, name, args, text, depth, stdin):
        with_arg = {"cp": "tS", "ln": "tS", "install": "tSgmo", "mv": "tS"}[name]
        ops = _getopt(args, with_arg, ("--target-directory", "--suffix", "--owner", "--group", "--mode"))
        if self.targets_unknown(ops.operands, text):
            return
        targets = ops.values("-t", "--target-directory")
        if name == "mv":
            targets += ops.operands  # moving a file away changes where it was, too
        elif name == "install" and ops.has("-d", "--directory"):
            targets += ops.operands
        elif not targets and len(ops.operands) >= 2:
            targets.append(ops.operands[-1])
        sources = ops.operands if ops.values("-t", "--target-directory") else ops.operands[:-1]
        unseen = not self.all_inside(sources)  # content the model has not written
        for t in targets:
            # writing into /dev/null is harmless; mv/ln/install over it replace the device
            self.check_write(t, text, devices_ok=(name == "cp"), record=unseen)
            if unseen:
                self.mark_dir(t)

    def h_rsync(self, name, args, text, depth, stdin):
        ops = _getopt(
            args, "efTBM@",
            ("--exclude", "--include", "--filter", "--files-from", "--exclude-from", "--include-from", "--log-file",
             "--temp-dir", "--backup-dir", "--partial-dir", "--compare-dest", "--copy-dest", "--link-dest",
             "--rsync-path", "--chmod", "--chown", "--password-file", "--port", "--timeout", "--bwlimit",
             "--max-size", "--min-size", "--suffix", "--out-format", "--rsh"),
        )
        if any(n.startswith("--del") or n == "--remove-source-files" for n, _, _ in ops.opts):
            self.flag(R_DELETE, text)
        for v in ops.values("-e", "--rsh"):
            self.shell_code(v, text, depth)
        if self.targets_unknown(ops.operands, text):
            return
        if len(ops.operands) >= 2:
            self.check_remote_or_local(ops.operands[-1], text)
        for v in ops.values("--log-file", "--backup-dir"):
            self.check_write(v, text)

    def check_remote_or_local(self, dest: _Arg, text: str) -> None:
        t = dest.text
        if not dest.dynamic and re.match(r"[^/]*:", t) and not t.startswith(("./", "/")):
            self.flag(R_OUTSIDE, text)  # another machine
        else:
            self.check_write(dest, text)

    def h_scp(self, name, args, text, depth, stdin):
        ops = _getopt(args, "cFiJloPSD", ())
        for v in ops.values("-S"):
            self.check_script(v, text)
        if self.targets_unknown(ops.operands, text):
            return
        if len(ops.operands) >= 2:
            self.check_remote_or_local(ops.operands[-1], text)

    def h_all_targets(self, name, args, text, depth, stdin):
        with_arg, long_with_arg = {
            "touch": ("drt", ("--date", "--reference", "--time")),
            "mkdir": ("mZ", ("--mode", "--context")),
            "tee": ("", ("--output-error",)),
            "mkfifo": ("mZ", ("--mode",)),
            "mknod": ("mZ", ("--mode",)),
        }[name]
        ops = _getopt(args, with_arg, long_with_arg)
        if name == "mknod":
            ops.operands = ops.operands[:1]
        if self.targets_unknown(ops.operands, text):
            return
        for t in ops.operands:
            self.check_write(t, text)

    def h_compressor(self, name, args, text, depth, stdin):
        # gzip & co. replace their file arguments in place
        ops = _getopt(args, "S", ("--suffix",))
        if ops.has("-c", "--stdout", "--to-stdout", "-l", "--list", "-t", "--test", "-h", "--help", "-V"):
            return
        if self.targets_unknown(ops.operands, text):
            return
        for t in ops.operands:
            self.check_write(t, text)

    def h_sort(self, name, args, text, depth, stdin):
        for out in _getopt(args, "okStT", ("--output", "--key", "--field-separator", "--buffer-size",
                                           "--temporary-directory")).values("-o", "--output"):
            self.check_write(out, text)

    def h_sed(self, name, args, text, depth, stdin):
        # GNU sed takes options anywhere ("sed 's/a/b/' -i f"), like most GNU tools
        scripts: list[_Arg] = []
        operands: list[_Arg] = []
        script_file = inplace = False
        i = 0
        while i < len(args):
            a = args[i]
            t = a.text
            if t == "--":
                operands.extend(args[i + 1 :])
                break
            if not t.startswith("-") or t == "-":
                operands.append(a)
                i += 1
                continue
            if t.startswith("--"):
                opt, eq, v = t.partition("=")
                if _opt_is(opt, ("--in-place",)):
                    inplace = True
                elif _opt_is(opt, ("--expression", "--file")):
                    if not eq:
                        i += 1
                    value = _value_arg(v, a) if eq else (args[i] if i < len(args) else _lit(""))
                    if _opt_is(opt, ("--expression",)):
                        scripts.append(value)
                    else:
                        script_file = True
                        self.check_script(value, text, "sed")
                i += 1
                continue
            for j, c in enumerate(t[1:], 1):
                rest = t[j + 1 :]
                if c == "i":
                    inplace = True
                    break  # the rest of the word is the backup suffix
                if c in "efl":
                    if not rest:
                        i += 1
                    value = _value_arg(rest, a) if rest else (args[i] if i < len(args) else _lit(""))
                    if c == "e":
                        scripts.append(value)
                    elif c == "f":
                        script_file = True
                        self.check_script(value, text, "sed")
                    break
            i += 1
        if not scripts and not script_file and operands:
            scripts.append(operands.pop(0))  # the first operand is the script
        for sc in scripts:
            if not sc.dynamic:
                self.sed_script(sc.text, text)
        if inplace:
            if self.targets_unknown(operands, text):
                return
            for f in operands:
                self.check_write(f, text)

    def sed_script(self, script: str, text: str) -> None:
        # s///e and the e command run shell commands; w writes a file
        for m in re.finditer(r"(?:^|[;\n{}])\s*[0-9,$!~+/\\^.*\[\]a-zA-Z]*?s(.)(?:\\.|(?!\1).)*\1(?:\\.|(?!\1).)*\1"
                             r"([gpiImMe0-9]*)(?:w\s*(\S+))?", script):
            if "e" in m.group(2):
                self.flag(R_RUNTIME_CMD, text)
            if m.group(3):
                self.check_write(_lit(m.group(3)), text)
        if re.search(r"(?:^|[;\n])\s*[0-9,$!]*\s*e(?:\s|;|$)", script):
            self.flag(R_RUNTIME_CMD, text)
        for m in re.finditer(r"(?:^|[;\n])\s*[0-9,$!]*\s*[wW]\s+(\S+)", script):
            self.check_write(_lit(m.group(1)), text)

    def h_tar(self, name, args, text, depth, stdin):
        args = list(args)
        if args and not args[0].text.startswith("-") and not args[0].dynamic:
            # old style "tar czf out.tgz src": the first word is a bundle of letters
            letters = args[0].text
            new, rest = [], args[1:]
            for c in letters:
                if c in "fCITXbgKLNVH" and rest:
                    new += [_lit("-" + c), rest.pop(0)]
                else:
                    new.append(_lit("-" + c))
            args = new + rest
        ops = _getopt(args, "fCITXbgKLNVH",
                      ("--file", "--directory", "--use-compress-program", "--files-from", "--exclude-from",
                       "--to-command", "--checkpoint-action", "--listed-incremental", "--info-script",
                       "--new-volume-script", "--rsh-command"))
        for code in ops.values("-I", "--use-compress-program", "--to-command", "--info-script",
                               "--new-volume-script", "--rsh-command"):
            self.shell_code(code, text, depth)
        for v in ops.values("--checkpoint-action"):
            if v.text.startswith("exec="):
                self.shell_code(_value_arg(v.text[5:], v), text, depth)
        if ops.has("--remove-files"):
            self.flag(R_DELETE, text)
        creating = ops.has("-c", "--create", "-r", "--append", "-u", "--update", "-A", "--catenate",
                           "--concatenate", "--delete")
        extracting = ops.has("-x", "--extract", "--get")
        if creating:
            for f in ops.values("-f", "--file"):
                if f.text != "-":
                    self.check_remote_or_local(f, text)
        for f in ops.values("-g", "--listed-incremental"):
            self.check_write(f, text)
        if extracting:
            if ops.has("-P", "--absolute-names"):
                self.flag(R_OUTSIDE, text)
            dirs = ops.values("-C", "--directory") or [_lit(".")]
            for d in dirs:
                self.check_write(d, text, record=False)
                self.mark_dir(d)

    def h_unzip(self, name, args, text, depth, stdin):
        ops = _getopt(args, "dxP", ())
        if ops.has("-l", "-t", "-v", "-Z", "-p", "-c"):
            return
        for d in ops.values("-d") or [_lit(".")]:
            self.check_write(d, text, record=False)
            self.mark_dir(d)

    def h_curl(self, name, args, text, depth, stdin):
        ops = _getopt(
            args, "AbCcDdEeFHKmoPQrTtUuwXxYyz",
            ("--output", "--cookie-jar", "--dump-header", "--output-dir", "--trace", "--trace-ascii", "--stderr",
             "--etag-save", "--libcurl", "--data", "--header", "--request", "--user", "--url", "--config",
             "--upload-file", "--write-out", "--proxy", "--max-time", "--connect-timeout", "--form", "--cookie",
             "--user-agent", "--referer", "--range", "--data-binary", "--data-raw", "--data-urlencode", "--json"),
        )
        for out in ops.values("-o", "--output", "-c", "--cookie-jar", "-D", "--dump-header", "--output-dir",
                              "--trace", "--trace-ascii", "--stderr", "--etag-save", "--libcurl"):
            if out.text != "-":
                self.check_write(out, text)
        if ops.has("-O", "--remote-name", "--remote-name-all", "-J"):
            self.check_write(_lit("."), text, record=False)
            for url in ops.operands + ops.values("--url"):
                self.record_download(url)
            if ops.has("-J", "--remote-header-name"):
                self.mark_dir(_lit("."))  # the server picks the name

    def record_download(self, url: _Arg, directory: str = ".") -> None:
        """The file a download tool names after the URL's last path segment."""
        if url.dynamic:
            self.mark_dir(_lit(directory))
            return
        path = re.sub(r"^[a-z][a-z0-9+.-]*://[^/]*", "", url.text).partition("?")[0].partition("#")[0]
        base = posixpath.basename(path) or "index.html"
        if self.recording:
            for p in self.resolve(_lit(posixpath.join(directory, base))):
                if p is not None:
                    self.written[p] = None

    def h_wget(self, name, args, text, depth, stdin):
        ops = _getopt(args, "OoaPeiBtTwQlUDIXAR",
                      ("--output-document", "--output-file", "--append-output", "--directory-prefix"))
        outs = ops.values("-O", "--output-document", "-o", "--output-file", "-a", "--append-output", "-P",
                          "--directory-prefix")
        for out in outs or [_lit(".")]:
            if out.text != "-":
                self.check_write(out, text, record=bool(outs))
        prefixes = ops.values("-P", "--directory-prefix")
        if not ops.values("-O", "--output-document"):
            if ops.has("-r", "--recursive", "-m", "--mirror", "-i", "--input-file", "--content-disposition"):
                self.mark_dir(prefixes[0] if prefixes else _lit("."))
            else:
                for url in ops.operands:
                    self.record_download(url, prefixes[0].text if prefixes and not prefixes[0].dynamic else ".")

    def h_find(self, name, args, text, depth, stdin):
        i = 0
        while i < len(args) and args[i].text in ("-H", "-L", "-P", "-D", "-O") or (
            i < len(args) and re.match(r"-O\d\Z", args[i].text)
        ):
            i += 2 if args[i].text == "-D" else 1
        starts = []
        while i < len(args) and not (args[i].text.startswith("-") or args[i].text in ("(", "!", ")", ",")):
            starts.append(args[i])
            i += 1
        expr = args[i:]
        if self.all_inside(starts or [_lit(".")]):
            base = (starts[0].text if starts else ".").rstrip("/") or "/"
            found = _lit(posixpath.join(base, "{}"))  # some path under the starting points
        else:
            found = _Arg("{}", dynamic=True)
        j = 0
        while j < len(expr):
            t = expr[j].text
            if t == "-delete":
                self.flag(R_DELETE, text)
            elif t in ("-exec", "-execdir", "-ok", "-okdir"):
                k, inner = j + 1, []
                while k < len(expr) and expr[k].text not in (";", "+"):
                    a = expr[k]
                    if "{}" in a.text:
                        a = _Arg(a.text.replace("{}", found.text), found.dynamic or a.dynamic, a.split)
                    inner.append(a)
                    k += 1
                saved = self.cwds
                if t in ("-execdir", "-okdir"):
                    self.cwds = frozenset(self.resolve(_lit(posixpath.dirname(found.text) or "."))) \
                        if not found.dynamic else frozenset({None})
                try:
                    self.run(inner, text, depth, _NO_INPUT)
                finally:
                    self.cwds = saved
                j = k
            elif t in ("-fprint", "-fprint0", "-fls", "-fprintf") and j + 1 < len(expr):
                self.check_write(expr[j + 1], text)
                j += 1
            j += 1

    def h_awk(self, name, args, text, depth, stdin):
        ops = _getopt(args, "Ffvei", ("--field-separator", "--file", "--assign", "--source", "--include"), stop=True)
        programs = ops.values("-e", "--source")
        files = ops.values("-f", "--file")
        for f in files:
            self.check_script(f, text, "awk", _NO_INPUT, depth)
        operands = ops.operands
        if not programs and not files and operands:
            programs = [operands[0]]
        for p in programs:
            self.inline_code("awk", p, text, depth)

    def awk(self, code: str, text: str, depth: int) -> None:
        lit = r'"(?P<lit>(?:\\.|[^"\\])*)"'
        calls = len(re.findall(r"\bsystem\s*\(", code))
        literal_calls = 0
        for m in re.finditer(r"\bsystem\s*\(\s*" + lit + r"\s*\)", code):
            literal_calls += 1
            self.script(_unescape(m.group("lit")), depth + 1)
        for m in re.finditer(r"(?<!\|)\|&?\s*" + lit, code):  # print | "cmd": cmd reads awk's output
            self.script(_unescape(m.group("lit")), depth + 1, _UNKNOWN_INPUT)
        for m in re.finditer(lit + r"\s*\|&?\s*getline", code):  # "cmd" | getline
            self.script(_unescape(m.group("lit")), depth + 1)
        if calls > literal_calls or re.search(r"(?<![|\"])\|&?\s*(?!getline\b)[A-Za-z_$(]", code) or \
                re.search(r"[A-Za-z_)\]]\s*\|&?\s*getline", code):
            self.flag(R_RUNTIME_CMD, text)
        for m in re.finditer(r"(?<![<>=!])>>?\s*" + lit, code):  # print > "file"
            self.check_write(_lit(_unescape(m.group("lit"))), text)

    # ---- container, cluster and cloud tools

    def h_docker(self, name, args, text, depth, stdin):
        if name in ("docker-compose", "podman-compose"):
            args = [_lit("compose")] + list(args)
        ops = _getopt(args, "Hcl", ("--context", "--host", "--config", "--log-level"), stop=True)
        words = [a.text for a in ops.operands]
        if not words:
            return
        sub, sub2 = words[0], (words[1] if len(words) > 1 else "")
        if sub in ("exec", "run") or (sub == "container" and sub2 in ("exec", "run")):
            self.docker_inner(ops.operands[1 if sub != "container" else 2 :], text, depth, stdin)
        elif sub == "compose" and any(w in ("exec", "run") for w in words):
            at = next(k for k, w in enumerate(words) if w in ("exec", "run"))
            self.docker_inner(ops.operands[at + 1 :], text, depth, stdin)
        removing = {"rm", "rmi", "remove", "prune", "delete"}
        groups = {"container", "image", "volume", "network", "system", "builder", "buildx", "pod", "secret",
                  "config", "context", "plugin", "manifest"}
        if sub in removing or (sub in groups and sub2 in removing):
            self.flag(R_CONTAINERS, text)
        elif sub in ("kill", "stop") or (sub in ("container", "pod") and sub2 in ("kill", "stop")):
            self.flag(R_KILL, text)
        elif sub == "compose" and ("rm" in words or ("down" in words and any(w in ("-v", "--volumes") for w in words))):
            self.flag(R_CONTAINERS, text)

    def h_kubectl(self, name, args, text, depth, stdin):
        if any(a.text in ("delete", "drain", "replace", "cordon", "taint") for a in args) or any(
            a.text.startswith("--force") for a in args
        ):
            self.flag(R_CLOUD, text)
        words = [a.text for a in args]
        if "exec" in words or "debug" in words:
            if "--" in words:
                saved = self.cwds
                self.cwds = frozenset({"/"})  # inside the pod
                try:
                    self.run(list(args[words.index("--") + 1 :]), text, depth, stdin)
                finally:
                    self.cwds = saved

    def h_terraform(self, name, args, text, depth, stdin):
        words = [a.text for a in args]
        if "destroy" in words or "-destroy" in words or ("state" in words and "rm" in words) or (
            "apply" in words and "-auto-approve" in words and "-replace" in " ".join(words)
        ):
            self.flag(R_CLOUD, text)

    def h_cloud_cli(self, name, args, text, depth, stdin):
        words = [a.text for a in args if not a.text.startswith("-")]
        verbs = {"rm", "rb", "delete", "destroy", "purge", "uninstall", "remove", "del", "deletefile", "rmdir",
                 "rmdirs", "cleanup", "prune"}
        if name == "rclone":
            verbs |= {"sync", "move", "moveto", "dedupe", "bisync"}  # sync deletes what the source lacks
        if name == "gsutil" and "rsync" in words and any(a.text == "-d" for a in args):
            self.flag(R_CLOUD, text)
        if any(w in verbs or w.startswith(("delete-", "terminate-", "remove-", "destroy-"))
               or w.endswith((":destroy", ":reset", ":delete", ":remove")) for w in words):
            self.flag(R_CLOUD, text)
        if any(a.text in ("--delete", "--delete-removed", "--force-delete") or a.text.startswith("--delete-")
               for a in args):
            self.flag(R_CLOUD, text)
        if any(a.dynamic for a in args):
            self.flag(R_VAR_ARGS, text)

    # ---- more tools (red-team round): deleting, stopping, removing, running code

    def h_gio(self, name, args, text, depth, stdin):
        if args and args[0].text in ("trash", "remove", "rm"):
            self.flag(R_DELETE, text)
        elif args and args[0].text in ("copy", "move", "save", "set", "rename") and len(args) > 1:
            self.check_write(args[-1], text)

    def h_fd(self, name, args, text, depth, stdin):
        i = 0
        while i < len(args):
            t = args[i].text
            if t in ("-x", "--exec", "-X", "--exec-batch") or t.startswith(("--exec=", "--exec-batch=")):
                inner = []
                if "=" in t:
                    inner.append(_value_arg(t.partition("=")[2], args[i]))
                i += 1
                while i < len(args) and args[i].text not in (";", "+"):
                    a = args[i]
                    if "{" in a.text:
                        a = _Arg(re.sub(r"\{[^{}]*\}", "./found", a.text), a.dynamic, a.split)
                    inner.append(a)
                    i += 1
                self.run(inner, text, depth, _NO_INPUT)
            i += 1

    def h_zip(self, name, args, text, depth, stdin):
        ops = _getopt(args, "bnOtxiP", ("--temp-path", "--suffixes", "--output-file", "--exclude", "--include",
                                         "--password"))
        if ops.has("-m", "--move"):
            self.flag(R_DELETE, text)  # removes the originals once archived
        if ops.has("-d", "--delete"):
            self.flag(R_DELETE, text)
        outs = ops.values("-O", "--output-file") or ops.operands[:1]
        for out in outs:
            if out.text != "-":
                self.check_write(out, text)

    def h_7z(self, name, args, text, depth, stdin):
        words = [a.text for a in args]
        if "-sdel" in words:
            self.flag(R_DELETE, text)
        operands = [a for a in args if not a.text.startswith("-")]
        verb = operands[0].text if operands else ""
        if verb == "d":
            self.flag(R_DELETE, text)
        if verb in ("a", "u", "d", "rn") and len(operands) > 1:
            self.check_write(operands[1], text)
        if verb in ("x", "e"):
            outs = [_value_arg(a.text[2:], a) for a in args if a.text.startswith("-o")] or [_lit(".")]
            for d in outs:
                self.check_write(d, text, record=False)
                self.mark_dir(d)

    def h_mysqladmin(self, name, args, text, depth, stdin):
        ops = _getopt(args, "hPSuOc", ("--host", "--port", "--socket", "--user", "--count", "--sleep"),
                      attached="p")
        safe = {"status", "extended-status", "ping", "processlist", "variables", "version"}
        for a in ops.operands:
            verb = a.text.lower()
            if a.dynamic:
                self.flag(R_VAR_ARGS, text)
            elif verb == "drop":
                self.flag(R_DB, text)
            elif verb not in safe and not verb.startswith("create"):
                self.flag(R_DB_SERVER, text)

    def h_fuser(self, name, args, text, depth, stdin):
        if any((a.text.startswith("-") and not a.text.startswith("--") and "k" in a.text) or a.text == "--kill"
               for a in args):
            self.flag(R_KILL, text)

    def h_proc_manager(self, name, args, text, depth, stdin):
        """pm2, supervisorctl, forever, circusctl: verbs that stop managed processes."""
        stopping = {"kill", "delete", "del", "stop", "restart", "reload", "shutdown", "remove", "signal", "stopall",
                    "quit", "flush", "reset"}
        words = [a.text.lower() for a in args if not a.text.startswith("-")]
        if words and words[0] in stopping:
            self.flag(R_KILL, text)
        elif any(a.dynamic for a in args):
            self.flag(R_VAR_ARGS, text)

    def h_tmux(self, name, args, text, depth, stdin):
        ops = _getopt(args, "cfLST", (), stop=True)
        for code in ops.values("-c"):
            self.shell_code(code, text, depth)  # tmux -c CMD runs it in the default shell
        rest = ops.operands
        # commands may be chained with ";" (a separate word)
        groups, cur = [], []
        for a in rest:
            if a.text in (";", "\\;"):
                groups.append(cur)
                cur = []
            elif a.text.endswith(";") and not a.text.endswith("\\;") and len(a.text) > 1:
                cur.append(_value_arg(a.text[:-1], a))
                groups.append(cur)
                cur = []
            else:
                cur.append(a)
        groups.append(cur)
        for g in groups:
            if not g:
                continue
            verb = g[0].text
            if verb.startswith("kill-") or verb in ("kill-server", "kill-session", "kill-window", "kill-pane",
                                                    "killp", "killw", "detach-client", "unlink-window"):
                self.flag(R_KILL, text)
            elif verb in ("new-session", "new", "new-window", "neww", "split-window", "splitw", "respawn-pane",
                          "respawnp", "respawn-window", "respawnw", "run-shell", "run", "if-shell", "if",
                          "pipe-pane", "pipep", "display-popup", "popup"):
                sub = _getopt(g[1:], "cefFnstxyl", (), stop=True)
                if sub.operands:
                    if any(a.dynamic for a in sub.operands):
                        self.flag(R_VAR_CODE, text)
                    else:
                        self.script(" ".join(a.text for a in sub.operands), depth + 1)
            elif verb in ("send-keys", "send", "send-prefix", "paste-buffer", "pasteb", "set-buffer", "setb",
                          "source-file", "source", "command-prompt", "load-buffer", "loadb"):
                self.flag(R_RUNTIME_CMD, text)  # typed into whatever runs in the pane

    def h_screen(self, name, args, text, depth, stdin):
        ops = _getopt(args, "SceThpt", ("-Logfile",), stop=True)
        if ops.has("-X", "-Q"):
            words = [a.text for a in ops.operands]
            if words and words[0] in ("quit", "kill", "pow_detach", "pow_break"):
                self.flag(R_KILL, text)
            elif words and words[0] in ("stuff", "exec", "screen", "eval", "source", "register", "paste"):
                self.flag(R_RUNTIME_CMD, text)
            return
        self.run(ops.operands, text, depth, _NO_INPUT)

    def h_loginctl(self, name, args, text, depth, stdin):
        words = [a.text for a in args if not a.text.startswith("-")]
        if words and (words[0].startswith(("terminate-", "kill-")) or words[0] in ("disable-linger",)):
            self.flag(R_KILL, text)
        elif words and words[0] in ("poweroff", "reboot", "halt", "suspend", "hibernate"):
            self.flag(R_POWER, text)

    def h_launchctl(self, name, args, text, depth, stdin):
        words = [a.text for a in args if not a.text.startswith("-")]
        if words and words[0] in ("unload", "remove", "stop", "kill", "bootout", "disable", "load", "bootstrap",
                                  "enable", "kickstart", "reboot", "submit", "setenv", "unsetenv"):
            self.flag(R_POWER if words[0] == "reboot" else R_SERVICE, text)

    # package managers: verbs (or options) that remove software
    _PKG_REMOVE = {
        "apt": {"remove", "purge", "autoremove", "autopurge"},
        "apt-get": {"remove", "purge", "autoremove", "autopurge", "clean"},
        "aptitude": {"remove", "purge"},
        "yum": {"remove", "erase", "autoremove", "history"},
        "dnf": {"remove", "erase", "autoremove", "history"},
        "microdnf": {"remove"},
        "zypper": {"remove", "rm"},
        "apk": {"del"},
        "snap": {"remove"},
        "flatpak": {"uninstall", "remove"},
        "brew": {"uninstall", "remove", "rm", "autoremove", "untap"},
        "port": {"uninstall"},
        "pip": {"uninstall"},
        "pipx": {"uninstall", "uninstall-all"},
        "uv": {"uninstall"},
        "gem": {"uninstall", "cleanup"},
        "cargo": {"uninstall"},
        "conda": {"remove", "uninstall"},
        "mamba": {"remove", "uninstall"},
        "micromamba": {"remove", "uninstall"},
        "nix-env": {"-e", "--uninstall"},
        "choco": {"uninstall"},
        "winget": {"uninstall"},
        "go": set(),
    }

    def h_packages(self, name, args, text, depth, stdin):
        base = "pip" if re.fullmatch(r"pip[0-9.]*", name) else name
        verbs = self._PKG_REMOVE.get(base, set())
        words = [a.text for a in args]
        operands = [w for w in words if not w.startswith("-")]
        if base == "dpkg":
            if any(w in ("-r", "--remove", "-P", "--purge") for w in words):
                self.flag(R_PACKAGES, text)
        elif base == "rpm":
            if any(w in ("-e", "--erase") or re.fullmatch(r"-[a-zA-Z]*e[a-zA-Z]*", w) for w in words):
                self.flag(R_PACKAGES, text)
        elif base == "pacman":
            if any(re.fullmatch(r"-R[a-zA-Z]*", w) or w == "--remove" for w in words):
                self.flag(R_PACKAGES, text)
        elif base in ("npm", "pnpm", "yarn", "bun"):
            removing = {"uninstall", "remove", "rm", "r", "un", "unlink", "prune"}
            global_ = any(w in ("-g", "--global", "--location=global") for w in words) or (
                operands and operands[0] == "global")
            ops = operands[1:] if operands and operands[0] == "global" else operands
            if global_ and ops and ops[0] in removing:
                self.flag(R_PACKAGES, text)
            elif name == "bun" and ops and ops[0] == "x":
                self.run(args[[a.text for a in args].index("x") + 1 :], text, depth, stdin)
        elif base in ("conda", "mamba", "micromamba") and operands[:2] == ["env", "remove"]:
            self.flag(R_PACKAGES, text)
        elif any(w in verbs for w in (operands[:1] if base not in ("nix-env",) else words)):
            self.flag(R_PACKAGES, text)
        if base == "uv" and operands[:2] == ["pip", "uninstall"]:
            self.flag(R_PACKAGES, text)
        if base in ("pip", "uv") and "install" in operands:
            ops = _getopt(args, "tr", ("--target", "--prefix", "--root", "--requirement", "--src"))
            for d in ops.values("-t", "--target", "--prefix", "--root", "--src"):
                self.check_write(d, text, record=False)
        if base in ("npm", "pnpm", "yarn") and any(w in ("-g", "--global", "--location=global") for w in words) \
                and operands[:1] in (["install"], ["i"], ["add"], ["link"], ["update"], ["up"]):
            self.flag(R_OUTSIDE, text)  # the global prefix is outside the project
        if base == "npm" and operands[:1] == ["exec"] or base in ("pnpm", "yarn") and operands[:1] in (["dlx"],
                                                                                                   ["exec"]):
            pass  # handled as sub-wrappers before this handler

    def h_firewall(self, name, args, text, depth, stdin):
        words = [a.text for a in args]
        if name.startswith(("iptables", "ip6tables", "ebtables", "arptables")):
            if name.endswith("-save"):
                return
            listing = {"-L", "--list", "-S", "--list-rules", "-n", "--numeric", "-v", "--verbose", "-t", "--table",
                       "-x", "--exact", "--line-numbers", "-w", "--wait", "-h", "--help", "-V", "--version"}
            flags = [w for w in words if w.startswith("-")]
            if flags and all(w in listing or re.fullmatch(r"-[Lnvxt]+", w) for w in flags) and any(
                w in ("-L", "--list", "-S", "--list-rules", "-h", "--help", "-V", "--version")
                or re.fullmatch(r"-[nvx]*L[nvx]*", w) for w in flags
            ):
                return
        elif name == "nft":
            operands = [w for w in words if not w.startswith("-")]
            if operands[:1] in (["list"], ["describe"]) or (not operands and any(w in ("-v", "--version", "-h",
                                                                                       "--help") for w in words)):
                return
        elif name == "ufw":
            operands = [w for w in words if not w.startswith("-")]
            if operands[:1] in (["status"], ["version"], ["show"]) or operands[:2] == ["app", "list"] or (
                    not operands):
                return
        elif name == "firewall-cmd":
            if words and all(w.startswith(("--list", "--get", "--query", "--state", "--info", "--zone",
                                           "--permanent", "--help", "--version", "-h", "-V")) for w in words):
                return
        self.flag(R_FIREWALL, text)

    def docker_inner(self, args, text, depth, stdin) -> None:
        """docker exec CONTAINER CMD... / docker run IMAGE CMD...: check CMD."""
        with_value = {"-e", "--env", "-v", "--volume", "-w", "--workdir", "-u", "--user", "--name", "-p", "--publish",
                      "--network", "--net", "--entrypoint", "-l", "--label", "--mount", "--env-file", "-h",
                      "--hostname", "--platform", "--cpus", "-m", "--memory", "--restart", "--add-host", "--device",
                      "--cap-add", "--cap-drop", "--security-opt", "--ulimit", "--pull", "--gpus", "--log-driver",
                      "--log-opt", "--tmpfs", "--shm-size", "--detach-keys", "-a", "--attach", "--cidfile", "--pid",
                      "--ipc", "--uts", "--userns", "--dns", "--expose", "--link", "--volumes-from", "--runtime",
                      "--stop-signal", "--stop-timeout", "--health-cmd", "--cgroupns", "--label-file", "-c",
                      "--cpu-shares", "--memory-swap", "--isolation", "--group-add", "--ip", "--mac-address"}
        i, entry = 0, None
        while i < len(args):
            t = args[i].text
            if args[i].split:
                self.flag(R_VAR_ARGS, text)
                return
            if t == "--":
                i += 1
                break
            if not t.startswith("-"):
                break
            opt = t.partition("=")[0]
            if opt == "--entrypoint":
                entry = _value_arg(t.partition("=")[2], args[i]) if "=" in t else (
                    args[i + 1] if i + 1 < len(args) else None)
            if opt == "--health-cmd":
                value = _value_arg(t.partition("=")[2], args[i]) if "=" in t else (
                    args[i + 1] if i + 1 < len(args) else _lit(""))
                self.shell_code(value, text, depth)
            i += 2 if (opt in with_value and "=" not in t) else 1
        cmd = list(args[i + 1 :])
        if entry is not None:
            cmd = [entry] + cmd
        saved = self.cwds
        self.cwds = frozenset({"/"})  # inside the container: nothing is the project
        try:
            self.run(cmd, text, depth, stdin)
        finally:
            self.cwds = saved

    def h_netcat(self, name, args, text, depth, stdin):
        for i, a in enumerate(args):
            t = a.text
            value = args[i + 1] if i + 1 < len(args) else _lit("")
            if t in ("-c", "--sh-exec") or t.startswith("--sh-exec="):
                self.shell_code(_value_arg(t.partition("=")[2], a) if "=" in t else value, text, depth)
                self.flag(R_PIPED_CODE, text)  # the network feeds it
            elif t in ("-e", "--exec", "--lua-exec") or t.startswith(("--exec=", "--lua-exec=")):
                self.flag(R_PIPED_CODE, text)

    def h_socat(self, name, args, text, depth, stdin):
        for a in args:
            if a.text.startswith("-"):
                continue
            kind, _, rest = a.text.partition(":")
            kind = kind.upper()
            if kind == "SYSTEM":
                code = rest.partition(",")[0] if not rest.startswith(("'", '"')) else rest
                self.shell_code(_value_arg(code, a), text, depth)
                self.flag(R_PIPED_CODE, text)
            elif kind == "EXEC":
                self.flag(R_PIPED_CODE, text)
            elif kind in ("CREATE", "OPEN", "GOPEN", "CREAT"):
                self.check_write(_value_arg(rest.partition(",")[0], a), text)

    def h_make(self, name, args, text, depth, stdin):
        """make runs the recipes of a Makefile: fine when it is the project's own (the
        model wrote it); unseen when it lives elsewhere or this command wrote it."""
        ops = _getopt(args, "fCIojlW", ("--file", "--makefile", "--directory", "--include-dir", "--old-file",
                                       "--jobs", "--load-average", "--what-if", "--eval"))
        if ops.values("--eval") or any(n.startswith("--eval") for n, _, _ in ops.opts):
            self.flag(R_RUNTIME_CMD, text)
        dirs = ops.values("-C", "--directory")
        saved = self.cwds
        for d in dirs:
            self.cwds = frozenset(c for c in self.dir_candidates(d))
        try:
            files = ops.values("-f", "--file", "--makefile")
            for f in files or [_lit("Makefile")]:
                if f.text != "-":
                    self.check_script(f, text, "make", _NO_INPUT, depth)
                else:
                    self.stdin_code("make", stdin, text, depth)
        finally:
            self.cwds = saved
        for a in ops.operands:
            var, eq, value = a.text.partition("=")
            if eq and var.strip() in ("SHELL", "MAKESHELL", ".SHELLFLAGS"):
                self.flag(R_LOOKUP, text)

    # interpreters whose language the checker does not read: (options whose value is
    # code, options whose value is a script file, whether a bare call reads stdin)
    _FOREIGN = {
        "lua": ({"-e"}, set(), True), "luajit": ({"-e"}, set(), True),
        "Rscript": ({"-e", "--expr"}, set(), False), "R": ({"-e"}, {"-f", "--file"}, True),
        "julia": ({"-e", "--eval", "-E", "--print"}, set(), False),
        "pwsh": ({"-c", "-command", "-Command", "-e", "-ec", "-EncodedCommand", "-encodedcommand"},
                 {"-f", "-File", "-file"}, True),
        "powershell": ({"-c", "-command", "-Command", "-e", "-ec", "-EncodedCommand", "-encodedcommand"},
                       {"-f", "-File", "-file"}, True),
        "osascript": ({"-e"}, set(), True),
        "expect": ({"-c"}, {"-f"}, True),
        "tclsh": (set(), set(), True), "wish": (set(), set(), True),
        "gdb": ({"-ex", "--ex", "-eval-command", "--eval-command", "-iex", "--init-eval-command"},
                {"-x", "--command", "-ix", "--init-command"}, False),
        "vim": ({"-c", "--cmd"}, {"-S", "-s", "-u"}, False), "vi": ({"-c", "--cmd"}, {"-S", "-s", "-u"}, False),
        "nvim": ({"-c", "--cmd"}, {"-S", "-s", "-u"}, False), "ex": ({"-c", "--cmd"}, {"-S", "-s", "-u"}, True),
        "view": ({"-c", "--cmd"}, {"-S", "-s", "-u"}, False), "gvim": ({"-c", "--cmd"}, {"-S", "-s", "-u"}, False),
        "emacs": ({"--eval", "-eval", "--execute", "-f", "--funcall"},
                  {"-l", "--load", "--script", "-script", "-x"}, False),
        "ed": (set(), set(), True), "dc": ({"-e", "--expression"}, {"-f", "--file"}, False),
        "scala": ({"-e"}, set(), False), "groovy": ({"-e"}, set(), False), "kotlinc": ({"-e"}, set(), False),
        "elixir": ({"-e", "--eval"}, set(), False), "erl": ({"-eval"}, set(), False),
        "guile": ({"-c"}, set(), False), "racket": ({"-e", "--eval"}, set(), False),
        "sbcl": ({"--eval"}, {"--load", "--script"}, False), "clojure": ({"-e", "--eval"}, set(), False),
        "ghc": ({"-e"}, set(), False), "runghc": (set(), set(), False), "swift": ({"-e"}, set(), False),
        "csi": ({"-e"}, set(), False), "nix-shell": ({"--run", "--command"}, set(), False),
        "busybox-sh": (set(), set(), True),
    }

    def h_foreign(self, name, args, text, depth, stdin):
        code_opts, file_opts, reads_stdin = self._FOREIGN[name]
        i, ran = 0, False
        while i < len(args):
            a = args[i]
            t = a.text
            opt, eq, val = t.partition("=")
            if t == "--":
                break
            if t in code_opts or (eq and opt in code_opts):
                ran = True
                if name == "nix-shell":
                    self.shell_code(_value_arg(val, a) if eq else (args[i + 1] if i + 1 < len(args) else _lit("")),
                                    text, depth)
                else:
                    self.flag(R_FOREIGN_CODE, text)
                i += 1 if eq else 2
                continue
            if name in ("vim", "vi", "nvim", "ex", "view", "gvim") and t.startswith("+") and not t[1:].isdigit() \
                    and len(t) > 1:
                ran = True
                self.flag(R_FOREIGN_CODE, text)  # +CMD runs an editor command
                i += 1
                continue
            if t in file_opts and i + 1 < len(args):
                ran = True
                self.check_script(args[i + 1], text, name, stdin, depth)
                i += 2
                continue
            if name in ("vim", "vi", "nvim", "view", "gvim", "ex") and t in ("-e", "-es", "-E", "-Es", "-s"):
                if stdin.kind != "none":
                    self.flag(R_FOREIGN_CODE, text)  # ex commands come from stdin
                i += 1
                continue
            if t.startswith("-") and t != "-":
                i += 1
                continue
            break
        operands = args[i:]
        if ran or name in ("vim", "vi", "nvim", "view", "gvim", "emacs", "gdb", "nix-shell"):
            return
        if operands and operands[0].text != "-" and name not in ("ed", "dc"):
            self.check_script(operands[0], text, name, stdin, depth)
        elif reads_stdin or (operands and operands[0].text == "-"):
            self.stdin_code(name, stdin, text, depth)


def _printf_escapes(s: str) -> str | None:
    """printf's backslash escapes (also echo -e); None for \\c and other odd forms."""
    out, i, n = [], 0, len(s)
    while i < n:
        c = s[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = s[i + 1]
        if e in _ANSI_SIMPLE and e != "?":
            out.append(_ANSI_SIMPLE[e])
            i += 2
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            m = re.match(r"[0-9a-fA-F]{1,%d}" % width, s[i + 2 :])
            if not m:
                return None
            out.append(chr(min(int(m.group(0), 16), 0x10FFFF)))
            i += 2 + len(m.group(0))
        elif e in "01234567":
            m = re.match(r"0?[0-7]{1,3}", s[i + 1 :])
            out.append(chr(int(m.group(0), 8) & 0xFF))
            i += 1 + len(m.group(0))
        else:
            return None
    return "".join(out)


def _printf(args) -> str | None:
    """What ``printf FORMAT ARGS`` prints, for %s/%b/%% formats; None otherwise."""
    if not args or args[0].text.startswith("-"):
        return None
    fmt = _printf_escapes(args[0].text)
    if fmt is None or re.search(r"%(?![sb%])", fmt):
        return None
    values = [a.text for a in args[1:]]
    if "%" not in fmt.replace("%%", ""):
        return fmt.replace("%%", "%") if not values else None
    slots = len(re.findall(r"%[sb]", fmt))
    out = []
    while True:
        chunk, take = [], values[:slots]
        values = values[slots:]
        pieces = re.split(r"(%[sb%])", fmt)
        k = 0
        for piece in pieces:
            if piece == "%%":
                chunk.append("%")
            elif piece in ("%s", "%b"):
                v = take[k] if k < len(take) else ""
                if piece == "%b":
                    v = _printf_escapes(v)
                    if v is None:
                        return None
                chunk.append(v)
                k += 1
            else:
                chunk.append(piece)
        out.append("".join(chunk))
        if not values:
            return "".join(out)


def _looks_like_path(t: str) -> bool:
    """For "git checkout X": a branch or a file?  Git decides by what exists; without
    I/O, treat X as a file when it looks like one (has an extension, a glob, is "." or
    a ./ path)."""
    if t in (".", "..", "*", ":/") or t.startswith(("./", "../", "/", ":/")) or t.endswith("/"):
        return True
    if any(c in t for c in "*?["):
        return True
    return bool(re.search(r"\.[A-Za-z][A-Za-z0-9]{0,5}\Z", t))


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


# --------------------------------------------------------------------------- inline python


class _PythonChecker(pyast.NodeVisitor):
    """Walks inline Python (python -c, python - <<EOF) for well-known destructive APIs."""

    DELETE = {"os.remove", "os.unlink", "os.rmdir", "os.removedirs", "shutil.rmtree", "os.unlinkat"}
    DELETE_METHODS = {"unlink", "rmdir", "rmtree"}
    PERMS = {"os.chmod", "os.lchmod", "os.fchmod", "os.chown", "os.lchown", "os.fchown", "shutil.chown",
             "os.chflags", "os.lchflags"}
    PERM_METHODS = {"chmod", "lchmod", "lchown"}
    KILL = {"os.kill", "os.killpg", "signal.pthread_kill"}
    TRUNCATE = {"os.truncate"}
    SHELL_STRING = {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
                    "asyncio.create_subprocess_shell", "commands.getoutput"}
    ARGV = {"subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
            "subprocess.Popen", "asyncio.create_subprocess_exec", "pty.spawn"}
    WRITE_ARGS = {"shutil.copy": (1,), "shutil.copy2": (1,), "shutil.copyfile": (1,), "shutil.copytree": (1,),
                  "shutil.move": (0, 1), "os.rename": (0, 1), "os.replace": (0, 1), "os.renames": (0, 1),
                  "os.makedirs": (0,), "os.mkdir": (0,), "os.symlink": (1,), "os.link": (1,)}
    PATH_WRITE_METHODS = {"write_text", "write_bytes", "touch", "mkdir", "symlink_to", "hardlink_to"}

    def __init__(self, analyzer: _Analyzer, text: str, depth: int):
        self.a = analyzer
        self.text = text
        self.depth = depth
        self.aliases: dict[str, str] = {}
        self.star: list[str] = []
        self.assigned: dict[str, pyast.expr | None] = {}

    def check(self, tree: pyast.AST) -> None:
        for n in pyast.walk(tree):  # imports and simple assignments first, wherever they are
            if isinstance(n, pyast.Import):
                for al in n.names:
                    self.aliases[al.asname or al.name.split(".")[0]] = al.name if al.asname else al.name.split(".")[0]
            elif isinstance(n, pyast.ImportFrom) and n.module:
                for al in n.names:
                    if al.name == "*":
                        self.star.append(n.module)
                    else:
                        self.aliases[al.asname or al.name] = n.module + "." + al.name
            elif isinstance(n, pyast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], pyast.Name):
                name = n.targets[0].id
                self.assigned[name] = None if name in self.assigned else n.value
        for name, value in list(self.assigned.items()):  # f = os.remove; f("x")
            if isinstance(value, (pyast.Attribute, pyast.Name, pyast.Call)):
                target = self.dotted(value)
                if target and target != name:
                    self.aliases[name] = target
        self.dynamic(tree)
        self.visit(tree)

    # Names that reach objects without spelling them: the checker cannot follow them.
    DYNAMIC_DUNDERS = {"__dict__", "__globals__", "__builtins__", "__subclasses__", "__getattribute__", "__code__",
                       "__bases__", "__mro__", "__base__", "__reduce__", "__reduce_ex__", "__loader__", "__closure__",
                       "__self__", "__func__", "__wrapped__", "__getattr__", "__class__"}
    DYNAMIC_MODULES = ("ctypes", "_ctypes", "cffi", "pickle", "_pickle", "marshal", "dill", "cloudpickle", "shelve",
                       "code", "codeop", "runpy", "importlib.machinery", "importlib.util", "_posixsubprocess",
                       "posix", "nt", "sh", "plumbum", "fabric", "invoke", "pexpect", "webbrowser")

    def dynamic(self, tree) -> None:
        a, text = self.a, self.text
        called = {id(n.func) for n in pyast.walk(tree) if isinstance(n, pyast.Call)}
        for n in pyast.walk(tree):
            if isinstance(n, (pyast.Import, pyast.ImportFrom)):
                mods = [al.name for al in n.names] if isinstance(n, pyast.Import) else [n.module or ""]
                if any(m == d or m.startswith(d + ".") for m in mods for d in self.DYNAMIC_MODULES):
                    a.flag(R_DYNAMIC_CODE, text)
            elif isinstance(n, pyast.Attribute) and n.attr in self.DYNAMIC_DUNDERS:
                a.flag(R_DYNAMIC_CODE, text)
            elif isinstance(n, pyast.Name) and n.id in self.DYNAMIC_DUNDERS:
                a.flag(R_DYNAMIC_CODE, text)
            elif isinstance(n, pyast.Call):
                f = self.dotted(n.func) or ""
                if f in ("getattr", "setattr", "delattr", "builtins.getattr", "operator.attrgetter",
                         "operator.methodcaller") and (len(n.args) < 2 or not isinstance(n.args[1], pyast.Constant)):
                    if f.startswith("operator.") and n.args and isinstance(n.args[0], pyast.Constant):
                        continue
                    a.flag(R_DYNAMIC_CODE, text)
                elif f in ("__import__", "importlib.import_module", "builtins.__import__", "importlib.__import__") \
                        and not (n.args and isinstance(n.args[0], pyast.Constant)):
                    a.flag(R_DYNAMIC_CODE, text)
            elif isinstance(n, pyast.Subscript):
                base = n.value
                f = self.dotted(base.func) if isinstance(base, pyast.Call) else self.dotted(base)
                if f in ("vars", "globals", "locals", "sys.modules", "builtins.vars", "os.__dict__"):
                    a.flag(R_DYNAMIC_CODE, text)
            if isinstance(n, (pyast.Attribute, pyast.Name)) and id(n) not in called:
                # a destructive function passed around (map(os.remove, ...), f = os.remove)
                d = self.dotted(n) or ""
                if d in self.DELETE:
                    a.flag(R_DELETE, text)
                elif d in self.PERMS:
                    a.flag(R_PERMS, text)
                elif d in self.KILL:
                    a.flag(R_KILL, text)
                elif d in self.TRUNCATE:
                    a.flag(R_TRUNCATE, text)
                elif d in self.SHELL_STRING or d in self.ARGV or d.startswith(("os.exec", "os.spawn", "os.posix_spawn")):
                    a.flag(R_RUNTIME_CMD, text)

    def dotted(self, n) -> str | None:
        if isinstance(n, pyast.Name):
            return self.aliases.get(n.id, n.id)
        if isinstance(n, pyast.Attribute):
            base = self.dotted(n.value)
            return base + "." + n.attr if base else None
        if isinstance(n, pyast.Call):
            f = self.dotted(n.func)
            if f in ("__import__", "importlib.import_module", "builtins.__import__", "__builtins__.__import__") \
                    and n.args and isinstance(n.args[0], pyast.Constant):
                return str(n.args[0].value)
            if f == "getattr" and len(n.args) >= 2 and isinstance(n.args[1], pyast.Constant):
                base = self.dotted(n.args[0])
                return base + "." + str(n.args[1].value) if base else None
        return None

    def names_for(self, func) -> set[str]:
        d = self.dotted(func)
        while d and d.endswith((".__call__", ".func")):
            d = d.rpartition(".")[0]  # os.remove.__call__(x), functools.partial(os.remove).func
        out = {d} if d else set()
        if isinstance(func, pyast.Name) and func.id not in self.aliases:
            out |= {m + "." + func.id for m in self.star}
        return out

    def literal(self, n) -> str | None:
        if isinstance(n, pyast.Constant) and isinstance(n.value, str):
            return n.value
        if isinstance(n, pyast.Name) and self.assigned.get(n.id) is not None:
            return self.literal(self.assigned[n.id])
        return None

    def path_of(self, n) -> str | None:
        s = self.literal(n)
        if s is not None:
            return s
        if isinstance(n, pyast.Name) and self.assigned.get(n.id) is not None:
            return self.path_of(self.assigned[n.id])
        if isinstance(n, pyast.Call) and self.names_for(n.func) & {"pathlib.Path", "Path", "pathlib.PurePath",
                                                                   "os.path.join", "PurePath"}:
            parts = [self.path_of(x) for x in n.args]
            if parts and all(p is not None for p in parts):
                return posixpath.join(*parts)
        if isinstance(n, pyast.BinOp) and isinstance(n.op, pyast.Div):
            left, right = self.path_of(n.left), self.path_of(n.right)
            if left is not None and right is not None:
                return posixpath.join(left, right)
        return None

    def argv(self, n) -> list[str] | None:
        if isinstance(n, (pyast.List, pyast.Tuple)):
            items = [self.literal(x) for x in n.elts]
            return items if all(x is not None for x in items) else None
        s = self.literal(n)
        return None if s is None else [s]

    def write(self, n) -> None:
        p = self.path_of(n)
        if p is not None:  # computed paths are not followed (documented gap)
            self.a.check_write(_lit(p), self.text)

    def visit_Call(self, node: pyast.Call) -> None:
        names = self.names_for(node.func)
        method = node.func.attr if isinstance(node.func, pyast.Attribute) else None
        first = node.args[0] if node.args else None
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        a = self.a
        if names & self.DELETE or (method in self.DELETE_METHODS and not names & {"os.path.rmdir"}):
            a.flag(R_DELETE, self.text)
        if names & self.PERMS or method in self.PERM_METHODS or (method == "chmod"):
            a.flag(R_PERMS, self.text)
        if names & self.KILL:
            a.flag(R_KILL, self.text)
        if names & self.TRUNCATE:
            a.flag(R_TRUNCATE, self.text)
        if method in ("flushall", "flushdb"):
            a.flag(R_DB, self.text)
        if names & self.SHELL_STRING:
            s = self.literal(first) if first is not None else self.literal(kw.get("cmd"))
            if s is None:
                a.flag(R_RUNTIME_CMD, self.text)
            else:
                a.script(s, self.depth + 1)
        elif names & self.ARGV or any(n.startswith(("os.exec", "os.spawn", "os.posix_spawn")) for n in names):
            target = first if first is not None else kw.get("args")
            if any(n.startswith(("os.exec", "os.spawn", "os.posix_spawn")) for n in names):
                lists = [x for x in node.args if isinstance(x, (pyast.List, pyast.Tuple))]
                target = lists[0] if lists else (pyast.List(elts=node.args[1:]) if len(node.args) > 1 else first)
                if any(n.startswith("os.spawn") for n in names) and not lists and len(node.args) > 2:
                    target = pyast.List(elts=node.args[2:])
            shell = kw.get("shell")
            words = self.argv(target) if target is not None else None
            if words is None:
                a.flag(R_RUNTIME_CMD, self.text)
            elif isinstance(shell, pyast.Constant) and shell.value and isinstance(target, pyast.Constant):
                a.script(words[0], self.depth + 1)
            elif len(words) == 1 and isinstance(target, pyast.Constant):
                a.script(words[0], self.depth + 1)  # a single string: be cautious, read it as shell
            else:
                a.script(shlex.join(words), self.depth + 1)
        if names & {"eval", "exec", "compile", "builtins.eval", "builtins.exec"}:
            s = self.literal(first) if first is not None else None
            if s is None:
                a.flag(R_RUNTIME_CMD, self.text)
            else:
                a.python(s, self.text, self.depth + 1)
        if method in ("execute", "executescript", "executemany") and first is not None:
            s = self.literal(first)
            if s is not None:
                a.sql(s, self.text, self.depth + 1)
        if names & {"open", "io.open", "builtins.open", "os.open"} and first is not None:
            mode = node.args[1] if len(node.args) > 1 else kw.get("mode")
            m = self.literal(mode) if mode is not None else "r"
            if names & {"os.open"} or m is None or any(c in m for c in "wax+"):
                self.write(first)
        for n in names:
            for idx in self.WRITE_ARGS.get(n, ()):
                if idx < len(node.args):
                    self.write(node.args[idx])
        if method in self.PATH_WRITE_METHODS and isinstance(node.func, pyast.Attribute):
            self.write(node.func.value)
        if method in ("open",) and isinstance(node.func, pyast.Attribute) and node.args:
            m = self.literal(node.args[0])
            if m and any(c in m for c in "wax+"):
                self.write(node.func.value)
        if method in ("rename", "replace") and isinstance(node.func, pyast.Attribute) and not names & {"os.rename",
                                                                                                       "os.replace"}:
            if self.path_of(node.func.value) is not None:
                self.write(node.func.value)
                if node.args:
                    self.write(node.args[0])
        self.generic_visit(node)


# --------------------------------------------------------------------------- other languages

_LIT = r"""(?P<q>['"`])(?P<lit>(?:\\.|(?!(?P=q)).)*)(?P=q)"""
_REST = r"(?P<rest>[^)\n;]*)"  # the other arguments, for argv-style calls
_STRING_LIT = re.compile(r"""(['"])((?:\\.|(?!\1).)*)\1""")


def _rx(p: str) -> re.Pattern:
    return re.compile(p, re.S)


_CODE_RULES: dict[str, dict[str, list]] = {
    "node": {
        "apis": [
            (_rx(r"\.(rm|rmSync|rmdir|rmdirSync|unlink|unlinkSync|remove|removeSync|emptyDir|emptyDirSync)\s*\(|"
                 r"\b(rmSync|rmdirSync|unlinkSync|rimraf)\b"), R_DELETE),
            (_rx(r"\.(chmod|chmodSync|lchmod|lchmodSync|fchmod|fchmodSync|chown|chownSync|lchown|lchownSync"
                 r"|fchown|fchownSync)\s*\("), R_PERMS),
            (_rx(r"\bprocess\.kill\s*\("), R_KILL),
            (_rx(r"\.(truncate|truncateSync|ftruncate|ftruncateSync)\s*\("), R_TRUNCATE),
        ],
        "gate": "child_process",  # exec() etc. are shell-outs only from this module (RegExp has .exec too)
        "dynamic": [
            _rx(r"\beval\s*\(|\bFunction\s*\(|\bimport\s*\(\s*[^'\"`\s]|\brequire\s*\(\s*[^'\"`\s)]"
                r"|\bvm\s*\.|\bprocess\s*\.\s*(binding|dlopen|_linkedBinding)|\bReflect\s*\.|\bProxy\b"),
            # a computed member (obj[x]) next to something that reaches the system
            _rx(r"(?=.*\b(require|import|process|globalThis|global|Deno|Bun|module)\b)"
                r".*[\w)\]$]\s*\[(?!\s*(\d+|'[^']*'|\"[^\"]*\")\s*\])"),
            # child_process functions renamed or passed around
            _rx(r"(?=.*child_process).*(\{[^}]*\b(exec|execSync|spawn|spawnSync|execFile|execFileSync|fork)\s*:"
                r"|\b(exec|execSync|spawn|spawnSync|execFile|execFileSync|fork)\b(?!\s*[(:]))"),
        ],
        "shell": [
            _rx(r"\b(?:execSync|exec)\s*\(\s*(?:" + _LIT + ")?"),
            _rx(r"\b(?P<argv>spawnSync|spawn|execFileSync|execFile|fork)\s*\(\s*(?:" + _LIT + _REST + ")?"),
        ],
        "literal_shell": [_rx(r"\$`(?P<lit>[^`]*)`")],  # zx / bun shell
        "writes": [
            _rx(r"\b(?:writeFile|writeFileSync|appendFile|appendFileSync|createWriteStream|mkdir|mkdirSync"
                r"|symlink|symlinkSync|open|openSync)\s*\(\s*(?P<q>['\"`])(?P<path>(?:\\.|(?!(?P=q)).)*)(?P=q)"),
            _rx(r"\b(?:copyFile|copyFileSync|rename|renameSync|cp|cpSync|link|linkSync)\s*\(\s*[^,]+,\s*"
                r"(?P<q>['\"`])(?P<path>(?:\\.|(?!(?P=q)).)*)(?P=q)"),
        ],
    },
    "perl": {
        "apis": [
            (_rx(r"\b(unlink|rmdir|rmtree|remove_tree)\b"), R_DELETE),
            (_rx(r"\b(chmod|chown)\b"), R_PERMS),
            (_rx(r"\bkill\b"), R_KILL),
            (_rx(r"\btruncate\b"), R_TRUNCATE),
        ],
        "dynamic": [
            _rx(r"&\s*[${]|->\s*\$|->\s*can\b|\beval\b(?!\s*\{)|\bdo\s+[$'\"]|\brequire\s+\$|\*\s*\{"
                r"|\bCORE::GLOBAL|\bsyscall\b|\b__PACKAGE__\s*->|\bUNIVERSAL::"),
        ],
        "shell": [
            _rx(r"\b(?P<argv>system|exec)(?:\s*\(\s*|\s+)(?:" + _LIT + _REST + ")?"),
        ],
        "literal_shell": [
            _rx(r"\bqx\s*(?P<q>[^\w\s])(?P<lit>.*?)[)}\]>/|!]"),
            _rx(r"(?<![\\\w])`(?P<lit>[^`]*)`"),
        ],
        "writes": [
            _rx(r"\bopen\s*\(?\s*[^,]+,\s*['\"](?:>|>>|\+<|\+>)['\"]\s*,\s*(?P<q>['\"])(?P<path>[^'\"]+)(?P=q)"),
            _rx(r"\bopen\s*\(?\s*[^,]+,\s*(?P<q>['\"])\s*(?:>>?|\+<)\s*(?P<path>[^'\"]+)(?P=q)"),
        ],
    },
    "ruby": {
        "apis": [
            (_rx(r"\bFileUtils\s*\.\s*(rm\w*|remove\w*)|\bFile\s*\.\s*(delete|unlink)\b|\bDir\s*\.\s*(rmdir|delete"
                 r"|unlink)\b|\.rmtree\b"), R_DELETE),
            (_rx(r"\bFileUtils\s*\.\s*(chmod|chown)\w*|\bFile\s*\.\s*(chmod|chown|lchmod|lchown)\b"), R_PERMS),
            (_rx(r"\bProcess\s*\.\s*kill\b"), R_KILL),
            (_rx(r"\bFile\s*\.\s*truncate\b"), R_TRUNCATE),
        ],
        "dynamic": [
            _rx(r"\b(send|public_send|__send__|instance_eval|class_eval|module_eval|instance_exec|class_exec"
                r"|eval|method|instance_method|const_get|define_method|binding|syscall|Fiddle|DL)\b"),
        ],
        "shell": [
            _rx(r"\b(?P<argv>system|exec|spawn|IO\.popen|Open3\.\w+)(?:\s*\(\s*|\s+)(?:" + _LIT + _REST + ")?"),
        ],
        "literal_shell": [
            _rx(r"%x\s*[({\[](?P<lit>[^)}\]]*)[)}\]]"),
            _rx(r"(?<![\\\w])`(?P<lit>[^`]*)`"),
        ],
        "writes": [
            _rx(r"\bFile\s*\.\s*(?:write|open|new)\s*\(\s*(?P<q>['\"])(?P<path>[^'\"]+)(?P=q)"
                r"\s*(?:\)|,\s*['\"]?[wa]|,\s*[^'\"])"),
            _rx(r"\bFileUtils\s*\.\s*(?:cp|mv|touch|mkdir_p|mkdir|ln_s|ln|copy|move)\w*\s*\(?\s*(?:[^,]+,\s*)?"
                r"(?P<q>['\"])(?P<path>[^'\"]+)(?P=q)\s*\)?\s*$"),
        ],
    },
    "php": {
        "apis": [
            (_rx(r"\b(unlink|rmdir)\s*\(|['\"](unlink|rmdir)['\"]"), R_DELETE),
            (_rx(r"\b(chmod|chown|chgrp|lchown|lchgrp)\s*\(|['\"](chmod|chown|chgrp|lchown|lchgrp)['\"]"), R_PERMS),
            (_rx(r"\bposix_kill\s*\(|['\"]posix_kill['\"]"), R_KILL),
            (_rx(r"\bftruncate\s*\("), R_TRUNCATE),
        ],
        "dynamic": [
            _rx(r"\$\w+\s*\(|\$\{|\b(eval|assert|create_function|call_user_func|call_user_func_array"
                r"|forward_static_call|ReflectionFunction|FFI|dl)\b|['\"](system|exec|shell_exec|passthru|popen"
                r"|proc_open|pcntl_exec)['\"]"),
        ],
        "shell": [
            _rx(r"\b(?:system|exec|shell_exec|passthru|popen|proc_open|pcntl_exec)\s*\(\s*(?:" + _LIT + ")?"),
        ],
        "literal_shell": [_rx(r"(?<![\\\w])`(?P<lit>[^`]*)`")],
        "writes": [
            _rx(r"\b(?:file_put_contents|fopen|mkdir|touch|symlink)\s*\(\s*(?P<q>['\"])(?P<path>[^'\"]+)(?P=q)"),
            _rx(r"\b(?:copy|rename)\s*\(\s*[^,]+,\s*(?P<q>['\"])(?P<path>[^'\"]+)(?P=q)"),
        ],
    },
}

# --------------------------------------------------------------------------- SQL clients

_SQL_CLIENTS = {
    "psql": {
        "with_arg": "cdfFhLoPpRTUv",
        "long_with_arg": ("--command", "--dbname", "--file", "--field-separator", "--host", "--log-file",
                          "--output", "--pset", "--port", "--record-separator", "--table-attr", "--username",
                          "--set", "--variable"),
        "code": ("-c", "--command"), "files": ("-f", "--file"), "outputs": ("-o", "--output", "-L", "--log-file"),
    },
    "mysql": {
        "with_arg": "eDhPSuoO",
        "attached": "p",  # -pSECRET; a bare -p prompts
        "long_with_arg": ("--execute", "--database", "--host", "--port", "--socket", "--user", "--init-command",
                          "--tee"),
        "code": ("-e", "--execute", "--init-command"), "outputs": ("--tee",),
    },
    "clickhouse-client": {
        "with_arg": "qhpudf",
        "long_with_arg": ("--query", "--host", "--port", "--user", "--password", "--database", "--format",
                          "--queries-file"),
        "code": ("-q", "--query"), "files": ("--queries-file",),
    },
    "sqlcmd": {"with_arg": "QqiSUPdo", "long_with_arg": (), "code": ("-Q", "-q"), "files": ("-i",),
               "outputs": ("-o",)},
    "cqlsh": {"with_arg": "eufkp", "long_with_arg": ("--execute", "--file", "--username", "--password",
                                                     "--keyspace"),
              "code": ("-e", "--execute"), "files": ("-f", "--file")},
}
_SQL_CLIENTS["mariadb"] = _SQL_CLIENTS["mysql"]

# --------------------------------------------------------------------------- dispatch

_HANDLERS: dict[str, str] = {
    **{n: "h_always" for n in _ALWAYS},
    "kill": "h_kill",
    "systemctl": "h_systemctl",
    "service": "h_service",
    "init": "h_init",
    "telinit": "h_init",
    "crontab": "h_crontab",
    "hash": "h_hash",
    "enable": "h_hash",
    "cd": "h_cd",
    "pushd": "h_cd",
    "popd": "h_cd",
    **{n: "h_wrapper" for n in _WRAPPERS},
    "time": "h_traced",
    "strace": "h_traced",
    "ltrace": "h_traced",
    "command": "h_command",
    "env": "h_env",
    "export": "h_declare",
    "declare": "h_declare",
    "typeset": "h_declare",
    "local": "h_declare",
    "readonly": "h_declare",
    "busybox": "h_busybox",
    "toybox": "h_busybox",
    "flock": "h_flock",
    "xargs": "h_xargs",
    "parallel": "h_parallel",
    "watch": "h_watch",
    "ssh": "h_ssh",
    **{n: "h_shell" for n in _SHELLS},
    "eval": "h_eval",
    "source": "h_source",
    ".": "h_source",
    "trap": "h_trap",
    "alias": "h_alias",
    "node": "h_node",
    "nodejs": "h_node",
    "deno": "h_deno_bun",
    "bun": "h_deno_bun",
    "perl": "h_perl_ruby",
    "ruby": "h_perl_ruby",
    "php": "h_php",
    "rails": "h_framework",
    "prisma": "h_prisma",
    "script": "h_script",
    "at": "h_at",
    "batch": "h_at",
    "rake": "h_framework",
    **{n: "h_sql_client" for n in _SQL_CLIENTS},
    "sqlite3": "h_sqlite",
    "sqlite": "h_sqlite",
    "duckdb": "h_sqlite",
    "redis-cli": "h_redis",
    "valkey-cli": "h_redis",
    "mysqladmin": "h_mysqladmin",
    "mariadb-admin": "h_mysqladmin",
    "gio": "h_gio",
    "fd": "h_fd",
    "fdfind": "h_fd",
    "zip": "h_zip",
    **{n: "h_7z" for n in ("7z", "7za", "7zz", "7zr")},
    "fuser": "h_fuser",
    **{n: "h_proc_manager" for n in ("pm2", "supervisorctl", "forever", "circusctl")},
    "tmux": "h_tmux",
    "screen": "h_screen",
    "loginctl": "h_loginctl",
    "launchctl": "h_launchctl",
    **{n: "h_packages" for n in ("apt", "apt-get", "aptitude", "yum", "dnf", "microdnf", "zypper", "apk", "snap",
                                 "flatpak", "brew", "port", "pip", "pipx", "gem", "cargo", "conda", "mamba",
                                 "micromamba", "nix-env", "choco", "winget", "dpkg", "rpm", "pacman", "npm",
                                 "pnpm", "yarn", "uv")},
    **{n: "h_firewall" for n in ("iptables", "ip6tables", "iptables-legacy", "ip6tables-legacy", "iptables-nft",
                                 "ebtables", "arptables", "nft", "ufw", "firewall-cmd", "iptables-restore",
                                 "ip6tables-restore")},
    "docker-compose": "h_docker",
    "podman-compose": "h_docker",
    **{n: "h_netcat" for n in ("nc", "ncat", "netcat", "nc.traditional", "nc.openbsd")},
    "socat": "h_socat",
    "make": "h_make",
    "gmake": "h_make",
    "entr": "h_entr",
    **{n: "h_foreign" for n in _Analyzer._FOREIGN},
    "mongo": "h_mongo",
    "mongosh": "h_mongo",
    "git": "h_git",
    "cp": "h_copy",
    "mv": "h_copy",
    "ln": "h_copy",
    "install": "h_copy",
    "rsync": "h_rsync",
    "scp": "h_scp",
    "touch": "h_all_targets",
    "mkdir": "h_all_targets",
    "tee": "h_all_targets",
    "mkfifo": "h_all_targets",
    "mknod": "h_all_targets",
    **{n: "h_compressor" for n in ("gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz", "lzma", "unlzma", "zstd",
                                   "unzstd", "compress", "uncompress")},
    "sort": "h_sort",
    "sed": "h_sed",
    "gsed": "h_sed",
    "tar": "h_tar",
    "gtar": "h_tar",
    "bsdtar": "h_tar",
    "unzip": "h_unzip",
    "curl": "h_curl",
    "wget": "h_wget",
    "find": "h_find",
    "gfind": "h_find",
    **{n: "h_awk" for n in ("awk", "gawk", "mawk", "nawk")},
    "docker": "h_docker",
    "podman": "h_docker",
    "nerdctl": "h_docker",
    "kubectl": "h_kubectl",
    "oc": "h_kubectl",
    "helm": "h_cloud_cli",
    "terraform": "h_terraform",
    "tofu": "h_terraform",
    "terragrunt": "h_terraform",
    **{n: "h_cloud_cli" for n in ("aws", "gcloud", "gsutil", "az", "gh", "heroku", "fly", "flyctl", "doctl",
                                  "vercel", "netlify", "firebase", "supabase", "pulumi", "rclone", "s3cmd", "mc",
                                  "gcutil", "linode-cli", "hcloud", "scw", "oci", "ibmcloud", "wrangler")},
}

_PYTHON_RE = re.compile(r"(python|pypy)[0-9.]*(-dbg)?\Z")
_VERSIONED_RE = re.compile(r"(perl|ruby|php|node|psql|mysql|bash|zsh|pip|lua|julia)[0-9.]+\Z")


def _handler_for(name: str):
    method = _HANDLERS.get(name)
    if method is None:
        if _PYTHON_RE.match(name):
            method = "h_python"
        elif name.startswith("mkfs"):
            method = "h_always"
        else:
            m = _VERSIONED_RE.match(name)
            if m:
                return _handler_for(m.group(1))
    return getattr(_Analyzer, method) if method else None


# --------------------------------------------------------------------------- entry point


def classify(command: str, project_root: str | Path | None = None) -> Verdict:
    """Classify a bash command line; destructive when any part needs the owner's OK."""
    try:
        if not isinstance(command, str):
            return Verdict(True, R_INTERNAL, (repr(command)[:300],))
        if len(command) > _MAX_LENGTH:
            return Verdict(True, R_TOO_LONG, (command[:300],))
        analyzer = _Analyzer(project_root)
        analyzer.script(command, 0)
        return analyzer.verdict()
    except Exception:  # never let a checker bug run a command unchecked
        return Verdict(True, R_INTERNAL, (str(command)[:300],))
