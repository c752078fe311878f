"""API operations for the operator's figures: thin translations to ``services/stats.py``."""

from __future__ import annotations

from typing import Any

from relay_ops.services import stats
from relay_ops.services.principal import Principal, Role
from relay_ops.web.api import ctx, endpoint
from relay_ops.web.api import responses as r

OPERATOR = (Role.OPERATOR,)


@endpoint("/stats/flows", summary="Volumes per flow and site, today and the last 7 days",
          tag="stats", roles=OPERATOR,
          description="Per site, from the parcel events: parcels received (checked in) and "
                      "picked up; parcels sent (dropped off) and collected by their carrier; "
                      "producers' orders deposited, collected by their customer and taken "
                      "back by their producer; home deliveries asked for and delivered. "
                      "`today` runs from local midnight, `last_7_days` from local midnight "
                      "six days ago, both up to now; `totals` adds up the sites.",
          response=r.FlowVolumesOut)
def flow_volumes(principal: Principal) -> Any:
    return stats.flow_volumes(ctx(), principal)
