"""Tools around the program, run by people and tests, never by `pulumi up`: the offline plan and
the recording mocks it and the tests share, the generated docs, and the pgSchema codemod an app's
team runs once on its own schema files."""
