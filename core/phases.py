"""The deploy phases and their order: the one declaration the program, the plan, the plan report,
the run's timeline, the sandbox's progress, the README's diagram and the tests read.

Every step that changes a live system waits for the phases before it; builds (install, bundle,
site build) change nothing outside the runner and start as soon as their inputs exist. A phase is
its entry here plus its function in components/pipeline.py (docs/extending.md).
"""

PHASES = ("infrastructure", "dependencies", "database", "backend", "frontend", "checks")
# What each phase does, in a line (the README's diagram: `python -m tools.docs`).
PHASE_SUMMARIES = {
    "infrastructure": "IAM, KMS, S3, DynamoDB, OIDC, CloudTrail, Pages project, custom domain + DNS",
    "dependencies": "the app's install (npm, pnpm or yarn) once, keyed by the lockfile",
    "database": "create the schema, drizzle-kit push (checked against the catalog)",
    "backend": "esbuild bundle, Lambda; prod: publish, pre-traffic check, (canary), alias stable, verify",
    "frontend": "site build with the stack's outputs, wrangler pages deploy",
    "checks": "DNS propagation, site and API health, old versions pruned",
}
# The component type of a phase (components/phase.py): a resource's phase is read from its parents.
PHASE_TYPE = "webstack:index:Phase"
