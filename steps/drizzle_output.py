"""What `drizzle-kit push` printed, classified: `steps.migrate` decides a push's success from its
output, never from its exit code alone (docs/facts.md: it exits 0 after an SQL error, after a prompt
it could not show and after refusing data loss, and 1 with no text when it cannot connect).

Pure functions of the text, tested on output recorded from drizzle-kit 0.31.11 (tests/test_migrate.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from steps.console import shown
from steps.retry import PermanentError

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_RESOLVER = re.compile(r"\bat (\w+?)Resolver\b")
_PROMPT_FN = re.compile(r"\bat (prompt\w+)\b")
_SQL_FIELD = re.compile(
    r"\s*(code|detail|hint|schema|table|column|constraint|severity"
    r"|schema_name|table_name|column_name|constraint_name): '(.*)',?"
)
# postgres.js names the fields of a PostgresError like this; pg (node-postgres) without the suffix.
_POSTGRES_JS_FIELDS = {"schema_name": "schema", "table_name": "table", "column_name": "column", "constraint_name": "constraint"}
# The SQL error's first line: pg prints `error: ...`, postgres.js `PostgresError: ...`.
_SQL_ERROR_LINE = re.compile(r"(?:error|PostgresError): (?P<message>.*)")
# The questions drizzle-kit asks (its hanji prompts), as printed without colours.
_RENAME_QUESTION = re.compile(
    r"Is (?P<name>\S+) (?:column in (?P<table>\S+) table|(?P<entity>\w+)) created or renamed from another (?P<kind>\w+)\?"
)
_DATA_LOSS_QUESTION = "Do you still want to push changes?"
_REACHED_DATABASE = ("driver for database querying", "Pulling schema from database")
_MISSING_MODULE = re.compile(r"Cannot find module '(?P<module>[^']+)'")
_NO_SCHEMA_FILES = re.compile(r"No schema files found for path config (?P<paths>.*)")


def missing_package(output: str) -> str | None:
    """The npm package whose module node could not find (`drizzle-orm` for `drizzle-orm/pg-core`)."""
    m = _MISSING_MODULE.search(output)
    if not m or m.group("module").startswith((".", "/")):
        return None
    parts = m.group("module").split("/")
    return "/".join(parts[:2]) if parts[0].startswith("@") else parts[0]


def missing_package_failure(package: str, what: str) -> PermanentError:
    return PermanentError(
        f"{what} cannot find the package {package} from the workspace root",
        hint=f"declare {package} in the devDependencies of the workspace root's package.json (not only in the schema "
        "package: npm may then nest it where drizzle-kit does not look), run npm install, commit package-lock.json",
    )


@dataclass(frozen=True)
class PushOutcome:
    kind: str
    """applied | no_changes | prompt | data_loss | sql_error | error | warning | silent_exit | unknown"""
    ok: bool
    message: str = ""
    prompt: str | None = None
    """What drizzle-kit wanted to ask about: columns, tables, enums, schemas, ..."""
    data_loss: tuple[str, ...] = ()
    sql: Mapping[str, str] = field(default_factory=dict)
    question: str | None = None
    """The prompt's own question, when drizzle-kit printed it (versions before 0.31.10)."""


def clean_output(output: str) -> str:
    """Drop the spinner's escape codes and carriage returns."""
    return _ANSI.sub("", output).replace("\r", "\n")


def _data_loss_statements(lines: Sequence[str]) -> tuple[str, ...]:
    found: list[str] = []
    inside = False
    for line in lines:
        stripped = line.strip()
        if "Found data-loss statements" in stripped:
            inside = True
            continue
        if inside:
            if stripped.startswith("·"):
                found.append(stripped.lstrip("·").strip())
            elif stripped:
                inside = False
    return tuple(found)


def prompt_question(line: str) -> str | None:
    """The question, if `line` is one of drizzle-kit's prompts (rename or data loss)."""
    text = clean_output(line).strip()
    m = _RENAME_QUESTION.search(text)
    if m:
        return m.group(0)
    return _DATA_LOSS_QUESTION if _DATA_LOSS_QUESTION in text else None


def last_words(output: str) -> str:
    """`; its last line: ...` of a killed push: a question we do not know yet shows up there."""
    lines = [line.strip() for line in clean_output(output).splitlines() if line.strip()]
    return f"; its last line: {shown(lines[-1], 200, quote=False)}" if lines else "; it printed nothing"


def waits_for_an_answer(line: str) -> bool:
    """run_tool's stop condition: nobody will answer a prompt (no TTY), so waiting is pointless."""
    return prompt_question(line) is not None


def _config_failure(lines: Sequence[str]) -> str:
    """What drizzle-kit printed while loading its config (after `Reading config file`)."""
    start = next((i + 1 for i, line in enumerate(lines) if line.startswith("Reading config file")), 0)
    said = [line.strip() for line in lines[start:] if line.strip() and not line.lstrip().startswith("at ")]
    return " | ".join(said[:3]) or "(nothing)"


def classify_push(returncode: int, output: str) -> PushOutcome:
    """What a `drizzle-kit push` run did, from its exit code and combined output."""
    text = clean_output(output)
    lines = text.splitlines()
    data_loss = _data_loss_statements(lines)
    question = next((q for line in lines if (q := prompt_question(line))), None)
    if "Interactive prompts require a TTY" in text or question:
        if data_loss or question == _DATA_LOSS_QUESTION:
            return PushOutcome(
                "data_loss", False, "drizzle-kit refused data-loss statements", data_loss=data_loss, question=question
            )
        resolver = _RESOLVER.search(text)
        prompt_fn = _PROMPT_FN.search(text)
        asked = _RENAME_QUESTION.search(question or "")
        if resolver:
            prompt = resolver.group(1)
        elif asked:
            prompt = asked.group("kind") + "s"
        else:
            prompt = prompt_fn.group(1) if prompt_fn else "unknown"
        return PushOutcome(
            "prompt", False, f"drizzle-kit needs an answer about {prompt} (a possible rename)", prompt=prompt, question=question
        )
    no_files = next((m for line in lines if (m := _NO_SCHEMA_FILES.search(line))), None)
    if no_files:
        return PushOutcome("no_schema_files", False, f"drizzle-kit found no schema files for {no_files.group('paths').strip()}")
    package = missing_package(text)
    if package:
        return PushOutcome("missing_package", False, package)
    if not any(marker in text for marker in _REACHED_DATABASE) and "Reading config file" in text and returncode != 0:
        # It stopped while loading drizzle.config.ts: nothing reached the database, and a re-run
        # loads the same config again.
        return PushOutcome("config_error", False, f"drizzle-kit could not load its config: {_config_failure(lines)}")
    sql_error = next((m for line in lines if (m := _SQL_ERROR_LINE.fullmatch(line.strip()))), None)
    if sql_error:
        fields = {
            _POSTGRES_JS_FIELDS.get(m.group(1), m.group(1)): m.group(2) for line in lines if (m := _SQL_FIELD.fullmatch(line))
        }
        return PushOutcome("sql_error", False, sql_error.group("message").strip(), sql=fields)
    error = next((line.strip() for line in lines if re.search(r"\bError\b|\berror:", line)), None)
    if error:
        return PushOutcome("error", False, error)
    if returncode != 0:
        last = next((line.strip() for line in reversed(lines) if line.strip()), "(no output)")
        return PushOutcome("silent_exit", False, f"drizzle-kit push exited {returncode} with no error message (last line: {last})")
    warning = next((line.strip() for line in lines if "Warning" in line), None)
    if warning:
        return PushOutcome("warning", False, f"drizzle-kit push printed a warning: {warning}", data_loss=data_loss)
    if any("Changes applied" in line for line in lines):
        return PushOutcome("applied", True, "changes applied")
    if any("No changes detected" in line for line in lines):
        return PushOutcome("no_changes", True, "no changes detected")
    last = next((line.strip() for line in reversed(lines) if line.strip()), "(no output)")
    return PushOutcome("unknown", False, f"drizzle-kit push ended without saying it applied anything (last line: {last})")
