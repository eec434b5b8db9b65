"""The facts the whole project shares, each defined once: names, stateful types, hash formats,
policy data, pinned tool and runtime versions.

The bottom of the import graph: nothing here imports pulumi, boto3 or any third-party package but
PyYAML (core/stack_files.py reads the stack files), or any other package of this repository
(tests/test_import_contract.py). The program, the steps, the
workflows' helpers, the tools and the sandbox import it; the policy pack, which runs in a
virtualenv of its own without the program, loads it by path (policy/rules.py).
"""
