"""Tools around the program, run by people and tests, never by `pulumi up`: the offline plan and
the recording mocks it and the tests share."""
