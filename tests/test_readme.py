"""The README tells the truth: its two opening commands and its config reference."""

import re
import tomllib

import yaml

from components.settings import PROJECT_ROOT, declared_keys

README = (PROJECT_ROOT / "README.md").read_text()


def test_the_first_lines_give_the_main_job_and_the_test_command():
    block = README.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert commands[0] == "bash .ci/setup && .venv/bin/python -m sandbox up"
    assert (PROJECT_ROOT / ".ci" / "setup").exists() and (PROJECT_ROOT / "sandbox" / "__main__.py").exists()
    assert commands[1] == "bash .ci/run"
    assert (PROJECT_ROOT / ".ci" / "run").exists()
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    # CI runs every tier: each marker the project declares is selected by its pytest command.
    selection = re.search(r'python -m pytest -m "([^"]+)"', ci)
    assert selection, "no pytest command with a marker selection in .ci/run"
    markers = [m.split(":")[0] for m in tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]]
    terms = selection[1].split(" or ")
    assert "not slow" in terms and all(marker in terms for marker in markers), (terms, markers)


def test_the_config_reference_lists_exactly_the_declared_keys():
    section = README.split("<!-- config-reference", 1)[1].split("\n\n", 1)[0]
    documented = re.findall(r"^\| `([A-Za-z]+)` \|", section, flags=re.MULTILINE)
    assert sorted(documented) == sorted(declared_keys())
    project = yaml.safe_load((PROJECT_ROOT / "Pulumi.yaml").read_text())
    for key, declaration in project["config"].items():
        row = next(line for line in section.splitlines() if line.startswith(f"| `{key.split(':')[1]}` |"))
        assert f"| {declaration['type']}" in row, row
