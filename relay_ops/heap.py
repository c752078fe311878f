"""The cyclic garbage collector of a long-running process (a web worker).

CPython's collector scans every object it tracks at each full collection. A web worker holds
about 170,000 of them once the app is loaded (modules, mappers, compiled statements, the
translations), all living as long as the process, and scanning them took ~90 ms here; a
manifest of 5,000 parcels allocates enough to set off three full collections, each of which
scanned them all again (docs/benchmarks.md, "Eleventh pass"). Frozen once the worker
is ready, they are left out of every later collection (``gc.freeze``, the Python
documentation's advice for servers); what requests allocate is collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Leave the objects alive now out of later collections (startup's garbage is collected
    first, not kept). Returns how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
