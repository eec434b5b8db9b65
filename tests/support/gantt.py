"""A structural check of mermaid gantt charts (`gantt_problems`), for workflow.timeline's chart.

Mermaid is not installed here (its gantt parser is part of the mermaid bundle, which expects a
browser DOM), so the chart is held to the grammar by hand, for the statements it uses.
"""

from __future__ import annotations

import re

TASK = re.compile(r"    (?P<name>[^:;#]+?) :(?:(?P<tags>(?:done|active|crit|milestone), )*)(?P<id>[A-Za-z][\w-]*), (?P<start>\d+), (?P<end>\d+)")


def gantt_problems(chart: str) -> list[str]:
    """Mermaid's gantt grammar (the jison grammar of mermaid 10/11), for what this chart uses: the
    `gantt` keyword first, `title`/`dateFormat`/`axisFormat` statements, `section NAME`, and task
    lines `NAME :[tags, ]ID, START, END` with a name free of `:`, `;` and `#`, unique ids, every
    task inside a section; with `dateFormat X` START and END are Unix seconds, END after START."""
    problems, ids = [], set()
    lines = chart.splitlines()
    if not lines or lines[0] != "gantt":
        return ["the chart must start with `gantt`"]
    in_section = False
    for number, line in enumerate(lines[1:], 2):
        if re.fullmatch(r"    (title|axisFormat) .+", line) or line == "    dateFormat X":
            continue
        if re.fullmatch(r"    section [^:;#]+", line):
            in_section = True
            continue
        task = TASK.fullmatch(line)
        if not task:
            problems.append(f"line {number} is no gantt statement: {line!r}")
            continue
        if not in_section:
            problems.append(f"line {number}: a task before any section")
        if task["id"] in ids:
            problems.append(f"line {number}: task id {task['id']} used twice")
        ids.add(task["id"])
        if int(task["end"]) <= int(task["start"]):
            problems.append(f"line {number}: a task that ends before it starts")
    return problems
