"""The Cloudflare resource classes the program declares, from pulumi_cloudflare's own modules.

`import pulumi_cloudflare` runs the package's `__init__`, which imports every one of its 779
resource modules: about 3 s of a program's start (half of that SDK's import; `_inputs` and
`outputs`, which every resource module needs, are the rest), paid by each run of the program (a
`pulumi up` runs it twice: preview, then update). `pulumi_aws` is lazy by itself
(`_utilities.lazy_import`); this makes `pulumi_cloudflare` lazy the same way: the package module
is created without running its `__init__`, the submodules the program names are imported as usual,
and the first use of any other name of the package runs the real `__init__` in that same module,
so `pulumi_cloudflare.X` still works (and is the same class) for any other importer in the process.
The classes are the SDK's, unchanged: the same type tokens, inputs, defaults and errors.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any


def lazy_package(name: str) -> ModuleType:
    """`name` in sys.modules without its `__init__` run yet: submodules import on their own, and
    anything else first runs the `__init__` (once). Already imported: returned as it is."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not an installed package")
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def __getattr__(attribute: str) -> Any:  # noqa: N807 - PEP 562's module-level hook
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        if importlib.util.find_spec(f"{name}.{attribute}") is not None:
            return importlib.import_module(f"{name}.{attribute}")  # `from . import outputs`
        del module.__dict__["__getattr__"]
        loader.exec_module(module)  # the whole package, as `import pulumi_cloudflare` would
        try:
            return module.__dict__[attribute]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}") from None

    module.__dict__["__getattr__"] = __getattr__
    sys.modules[name] = module
    return module


lazy_package("pulumi_cloudflare")

from pulumi_cloudflare.dns_record import DnsRecord  # noqa: E402 - after the package is made lazy
from pulumi_cloudflare.pages_domain import PagesDomain  # noqa: E402
from pulumi_cloudflare.pages_project import PagesProject  # noqa: E402

__all__ = ["DnsRecord", "PagesDomain", "PagesProject", "lazy_package"]
