"""Stand-in `aws` and `cloudflare` provider plugins for the real Pulumi engine (the real ones cannot be
built here): `aws` is backed by moto_server, `cloudflare` by the Cloudflare API stand-in
(sandbox/cloudflare_api.py).

The engine finds them as ambient plugins: put `sandbox/bin` on PATH (after `bin/` with the engine
itself); `sandbox/bin/pulumi-resource-{aws,cloudflare}` run `python -P -m sandbox.providers.<name>`
with the repo root on PYTHONPATH and `$WEBSTACK_PYTHON` (default: the repo's .venv/bin/python).
What each covers, the replace-forcing properties and how to point it: the docstrings of aws.py and
cloudflare.py; the rules they share (state, diffs, previews, errors, elided assets): base.py.
"""
