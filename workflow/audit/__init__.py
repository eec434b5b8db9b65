"""The audit report: collect the pipeline's trail from every source, find anomalies, alert, report.

    python -m workflow.audit report --since 7d [--json FILE] [--markdown FILE] [--stacks FILE] [--drift FILE] [--alert]

`sources` gathers (each source on its own; one that cannot be reached is reported missing, never
fatal), `anomalies` decides what is out of line (pure functions), `report` writes the Markdown (the
job summary) and the JSON (the artifact). Run by .github/workflows/audit.yml.
"""
