"""What a failed tool said, in its own words: the lines of its output that name the cause.

Every step that runs a tool (npm, pnpm, yarn, esbuild, node scripts, drizzle-kit) ends a failure
with one line. That line quotes the tool's own text, found here, never "(no error message)" nor
"see the output above" when nothing was said there:

- esbuild:  `✘ [ERROR] Could not resolve "./x"` and the `file:line:col` under it;
- node:     the first `...Error: message` line and the first stack frame of the app's own code
            (not node's internals nor node_modules);
- npm:      `npm error ...` lines (the code line and the closing log/usage lines dropped);
- pnpm:     the ` ERR_PNPM_<CODE>  text` line, its `Failure reason:` and, for a 404, its verdict;
- yarn 1:   `error ...` lines (the closing "Command failed with exit code N." dropped when a
            cause was said before it);
- else:     the last lines that are not a package manager's closing words.

Pure functions over the captured output (ToolResult.output); tested on the real tools' output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from steps.console import shown

# How many cause lines a failure quotes, and how long each may be.
MAX_CAUSES = 3
CAUSE_LIMIT = 300

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ESBUILD_ERROR = re.compile(r"(?:✘ )?\[ERROR\] (?P<text>.+)")
_ESBUILD_WARNING = re.compile(r"(?:▲ )?\[WARNING\] (?P<text>.+)")
_ESBUILD_LOCATION = re.compile(r"\s+(?P<where>[^\s:][^\s]*:\d+:\d+):\s*")
_NODE_ERROR = re.compile(r"(?:Uncaught )?(?P<text>(?:[A-Z][A-Za-z]*)?(?:Error|Exception)(?: \[[A-Z0-9_]+\])?: .+)")
_NODE_FRAME = re.compile(r"\s+at (?:.*? \()?(?P<file>[^()\s]+?):(?P<line>\d+):(?P<column>\d+)\)?")
_PNPM_ERROR = re.compile(r"\s*(?P<code>ERR_PNPM_[A-Z0-9_]+)\s+(?P<text>.+)")
_PNPM_VERDICT = re.compile(r".+ is not in the npm registry, or you have no permission to fetch it\.")
_YARN_ERROR = re.compile(r"error (?P<text>.+)")
_NPM_ERROR = re.compile(r"npm (?:error|ERR!) ?(?P<text>.*)")
# A registry's 404 for a package (its metadata or its tarball), as npm, pnpm and yarn print the URL.
_REGISTRY_404 = re.compile(
    r"(?:404 Not Found - GET|ERR_PNPM_FETCH_404\s+GET|error (?:Error: )?|An unexpected error occurred: \")\s*"
    r"(?P<url>https?://\S+?)(?::? Not found|: Not Found - 404| - Not found|: Request failed \\?\"404)",
    re.IGNORECASE,
)
# What package managers print after any failure; it names no cause.
_CLOSING = re.compile(
    r"ELIFECYCLE\s+Command failed|^error Command failed with exit code|^info Visit https://yarnpkg|"
    r"^Node\.js v\d|A complete log of this run|For a full report see|/_logs/|^npm (?:error|ERR!) (?:code|path|command|"
    r"workspace|location|errno|syscall|Lifecycle script|A complete log|Clean install a project)\b|"
    r"^npm (?:error|ERR!)\s*$|^\s*\^+\s*$|^> |^\$ |^yarn run v|^yarn install v|^\[\d/\d\] |^info |^warning |"
    r"^\s*WARN\s|Note that in CI environments|^This error happened while installing|^No authorization header|"
    r"^npm (?:error|ERR!) 404 (?:Note that you can also install|tarball, folder, http url)"
)


def clean(output: str) -> list[str]:
    """The output's lines without colour codes, carriage-return redraws or trailing blanks."""
    return [line.rstrip() for line in _ANSI.sub("", output).replace("\r", "\n").splitlines()]


def _bounded(lines: Iterable[str]) -> list[str]:
    found: list[str] = []
    for line in lines:
        text = shown(line.strip(), CAUSE_LIMIT, quote=False)
        if text and text not in found:
            found.append(text)
    return found[:MAX_CAUSES]


def esbuild_messages(output: str, *, level: str = "error") -> list[str]:
    """esbuild's own `[ERROR]` (or `[WARNING]`) texts, each with the location line under it."""
    pattern = _ESBUILD_ERROR if level == "error" else _ESBUILD_WARNING
    lines = clean(output)
    found = []
    for index, line in enumerate(lines):
        match = pattern.search(line)
        if not match:
            continue
        where = next((m["where"] for text in lines[index + 1 : index + 4] if (m := _ESBUILD_LOCATION.fullmatch(text))), "")
        found.append(match["text"].strip() + (f" at {where}" if where else ""))
    return _bounded(found)


def node_error(output: str) -> str | None:
    """node's first error line, with the first frame of the app's own code (not node's, not a package's)."""
    lines = clean(output)
    for index, line in enumerate(lines):
        match = _NODE_ERROR.fullmatch(line.strip())
        if not match or line.startswith((" ", "\t")):
            continue
        frame = next(
            (
                m
                for text in lines[index + 1 : index + 30]
                if (m := _NODE_FRAME.fullmatch(text))
                and not m["file"].startswith(("node:", "internal/"))
                and "/node_modules/" not in m["file"]
            ),
            None,
        )
        where = f" (at {frame['file'].rsplit('/', 1)[-1]}:{frame['line']}:{frame['column']})" if frame else ""
        return _bounded([match["text"] + where])[0]
    return None


def pnpm_errors(output: str) -> list[str]:
    """pnpm's `ERR_PNPM_<CODE>  text` line, its `Failure reason:` and its registry verdict."""
    lines = clean(output)
    found = []
    for index, line in enumerate(lines):
        match = _PNPM_ERROR.fullmatch(line)
        if match:
            found.append(f"{match['code']}: {match['text'].strip()}")
            reason = next((i for i in range(index + 1, min(index + 12, len(lines))) if lines[i].strip() == "Failure reason:"), None)
            if reason is not None:
                found += [text for text in lines[reason + 1 : reason + 3] if text.strip()][:1]
        elif _PNPM_VERDICT.fullmatch(line.strip()):
            found.append(line)
    return _bounded(found)


def yarn_errors(output: str) -> list[str]:
    """yarn 1's `error ...` lines, its closing "Command failed" dropped when it said more."""
    said = [m["text"].strip().removeprefix("Error: ") for line in clean(output) if (m := _YARN_ERROR.fullmatch(line.strip()))]
    causes = [text for text in said if not text.startswith("Command failed with exit code")]
    return _bounded(causes or said)


def npm_errors(output: str) -> list[str]:
    """npm's `npm error ...` lines that say something (not its code line, log path or usage text)."""
    said = []
    for line in clean(output):
        match = _NPM_ERROR.fullmatch(line.strip())
        if match and not _CLOSING.search(line.strip()) and match["text"].strip() not in ("404", ""):
            said.append(match["text"].strip())
    return _bounded(said)


def last_words(output: str) -> list[str]:
    """The last lines of the output that are not a package manager's closing words or a stack frame."""
    said = [
        line
        for line in clean(output)
        if line.strip() and not _CLOSING.search(line.strip()) and not _NODE_FRAME.fullmatch(line)
        and line.strip() not in ("}", "{")
    ]
    return _bounded(said[-2:])


def missing_from_registry(output: str) -> tuple[str, str] | None:
    """(package, registry) when a package manager stopped on the registry's 404 for a package."""
    for line in clean(output):
        match = _REGISTRY_404.search(line)
        if not match:
            continue
        url = match["url"].rstrip('".')
        scheme, _, rest = url.partition("://")
        host, _, path = rest.partition("/")
        path = path.replace("%2f", "/").replace("%2F", "/").split("/-/", 1)[0]
        if path:
            return path, f"{scheme}://{host}/"
    return None


def causes(output: str, *, manager: str = "") -> list[str]:
    """The lines that name why a tool failed, best first: esbuild's errors, pnpm's ERR_PNPM line,
    node's error, the package manager's own error lines, else its last words. [] only when the
    tool printed nothing at all."""
    found = esbuild_messages(output)
    if not found:
        found = pnpm_errors(output)
    if not found and (error := node_error(output)):
        found = [error]
    if not found and manager in ("", "npm"):
        found = npm_errors(output)
    if not found and manager in ("", "yarn"):
        found = yarn_errors(output)
    return found or last_words(output)


def summary(output: str, *, manager: str = "") -> str:
    """`causes` joined into one line; says so when the tool printed nothing."""
    found = causes(output, manager=manager)
    return " | ".join(found) if found else "it printed nothing"
