"""The deploy phases and their order: the one declaration the program, the plan, the plan report,
the run's timeline, the sandbox's progress and the tests read."""

PHASES = ("infrastructure", "dependencies", "database", "backend", "frontend", "checks")
# The component type of a phase (components/phase.py): a resource's phase is read from its parents.
PHASE_TYPE = "webstack:index:Phase"
