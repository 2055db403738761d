"""socialcredit: an executable laboratory for social credit systems.

Synthetic citizens only: a city, its social network, agencies that record
acts, a platform that turns records into points, grades and lists, and the
sanctions and privileges that follow. The public names:

>>> import socialcredit as sc
>>> scenario = sc.load_scenario("scenarios/reference.toml", ["population.size=50"])
>>> result = sc.run(scenario, out=None)
>>> result.metrics[-1]["step"]
51
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("socialcredit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from .api import Results, run
from .engine import Engine
from .errors import ResourceError, RunFolderError, ScenarioError, SocialCreditError
from .replay import standing_at
from .resources import estimate_memory
from .scenario import Scenario, load_scenario, scenario_schema

__all__ = [
    "Engine",
    "ResourceError",
    "Results",
    "RunFolderError",
    "Scenario",
    "ScenarioError",
    "SocialCreditError",
    "estimate_memory",
    "load_scenario",
    "run",
    "scenario_schema",
    "standing_at",
]
