"""What the program's start does for its speed, and that it changes nothing else (bench/noop_up.py).

- components/cloudflare.py: the program loads three of pulumi_cloudflare's modules, not its 779, and
  the package stays whole for anyone else in the process (the same classes, every other name).
- __main__.py: no cyclic GC while the program loads and declares; it leaves the collector as it found
  it, whether the program ends or raises (tests and tools.plan run it inside their own process).
"""

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import record

REPO = Path(__file__).resolve().parents[1]

# In a fresh interpreter: what the program's import loads, then what `import pulumi_cloudflare` gives.
PROBE = """
import gc, sys
gc.disable()  # only quicker: the whole package loads below
from components import cloudflare
loaded = sorted(m for m in sys.modules if m.startswith("pulumi_cloudflare."))
assert "pulumi_cloudflare.zone" not in loaded, loaded
assert len(loaded) < 10, loaded
import pulumi_cloudflare
from pulumi_cloudflare import outputs
assert pulumi_cloudflare.PagesProject is cloudflare.PagesProject
assert pulumi_cloudflare.DnsRecord is cloudflare.DnsRecord
assert pulumi_cloudflare.PagesDomain is cloudflare.PagesDomain
assert pulumi_cloudflare.Zone.__module__ == "pulumi_cloudflare.zone"
assert outputs.PagesProjectBuildConfig is not None
assert len([m for m in sys.modules if m.startswith("pulumi_cloudflare.")]) > 700
try:
    pulumi_cloudflare.NoSuchResource
except AttributeError as error:
    assert "NoSuchResource" in str(error)
else:
    raise AssertionError("an unknown name must still be an AttributeError")
print("ok")
"""


def test_the_program_loads_three_modules_and_the_package_stays_whole_for_others() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_an_already_imported_package_is_left_as_it_is() -> None:
    from components.cloudflare import lazy_package

    assert lazy_package("json") is sys.modules["json"]


@pytest.mark.parametrize("enabled", [True, False])
def test_the_program_leaves_the_collector_as_it_found_it(enabled: bool) -> None:
    from components.settings import SettingsError
    from tools.offline import config_for, run_program

    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        assert record("preview-pr-3").resources
        assert gc.isenabled() is enabled
        with pytest.raises(SettingsError):
            run_program("staging", config_for("staging", {}))
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
