"""API operations for the no-room policies and their decisions (docs/overflow.md): thin
translations to ``services/no_room_policies.py``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from relay_ops.services import no_room_policies
from relay_ops.services.principal import Principal, Role
from relay_ops.web.api import ctx, endpoint
from relay_ops.web.api import responses as r
from relay_ops.web.api.openapi import Link
from relay_ops.web.api.schemas import Code, IsoDay, SizeClass, Strict, iso_day

OPERATOR = (Role.OPERATOR,)
OPERATOR_OR_CARRIER = (Role.OPERATOR, Role.CARRIER)
Step = Literal["storage", "hold", "home"]


class PolicyIn(Strict):
    """Whom and where (a carrier, or every carrier; one site, or an area, or everywhere), and
    the steps tried in order when no site within reach has room."""

    carrier: Code | None = None
    site: Code | None = None
    area: Literal["town", "countryside"] | None = None
    # Each step once (domain.no_room).
    steps: Annotated[list[Step], Field(min_length=1, max_length=3,
                                       json_schema_extra={"uniqueItems": True})]
    home_size_classes: Annotated[list[SizeClass],
                                 Field(max_length=20)] = []

    # home_size_classes narrows the home step: given only when that step is listed.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"properties": {"steps": {"contains": {"const": "home"}}}},
        {"properties": {"home_size_classes": {"maxItems": 0}}}]})


class DecisionsQuery(Strict):
    day: IsoDay | None = None
    site: Code | None = None
    step: Literal["storage", "hold", "home", "none"] | None = None
    carrier: Code | None = None


POLICY_DOC = (
    "What happens to a parcel when its site is expected full on its day and no site of its "
    "kind within reach has room: `steps` tried in order, the first that can take the parcel "
    "decides. `storage`: the nearest overflow storage site within reach, open and in season "
    "that day, with room; `hold`: the carrier keeps the parcel at its depot until the first "
    "day the site's forecast has room (the resident is told that day); `home`: the carrier "
    "delivers it home on its round, for the parcels its contract allows (`home_size_classes`, "
    "empty for all). The most specific policy applies: a carrier's own before every "
    "carrier's, then one `site` before an `area` (town or countryside) before everywhere (no "
    "site, no area). Sending the same carrier and territory again replaces its steps (200).")


@endpoint("/no-room-policies", "POST", summary="Set a no-room policy for a carrier and territory",
          tag="no room", roles=OPERATOR, body=PolicyIn, status=201, errors=(404, 409),
          extra_responses={200: "the policy of this carrier and territory, replaced"},
          description=POLICY_DOC,
          links={"Remove": Link("DELETE /no-room-policies/<id:policy_id>",
                                {"policy_id": "$response.body#/id"})},
          response=r.NoRoomPolicyOut)
def set_policy(principal: Principal, body: PolicyIn) -> Any:
    created, view = no_room_policies.set_policy(ctx(), principal, body.model_dump())
    return (201 if created else 200), view


@endpoint("/no-room-policies", summary="The no-room policies", tag="no room", roles=OPERATOR,
          response=r.NoRoomPolicyListOut)
def list_policies(principal: Principal) -> Any:
    return {"items": no_room_policies.list_policies(ctx(), principal)}


@endpoint("/no-room-policies/<id:policy_id>", "DELETE", summary="Remove a no-room policy",
          tag="no room", roles=OPERATOR, status=204, errors=(404,))
def delete_policy(principal: Principal, policy_id: int) -> Any:
    no_room_policies.delete_policy(ctx(), principal, policy_id)
    return 204, None


@endpoint("/no-room-decisions", summary="What became of parcels no site within reach had room for",
          tag="no room", roles=OPERATOR_OR_CARRIER, query=DecisionsQuery, errors=(404,),
          description="One decision per parcel: `step` storage (`to_site`), hold "
                      "(`hold_until`: the day the carrier brings it), home, or none (it stays "
                      "announced where it was; `tried` says why each step could not take it). "
                      "`day` is the day the parcel was expected at `site`. A carrier sees its "
                      "own parcels: `?step=hold&day=...` lists the parcels to keep at its depot "
                      "from that round, and until when. An operator sees every carrier's, "
                      "per site and day.",
          response=r.NoRoomDecisionListOut)
def list_decisions(principal: Principal, query: DecisionsQuery) -> Any:
    day = iso_day(query.day) if query.day else None
    return {"items": no_room_policies.list_decisions(
        ctx(), principal, day=day, site=query.site, step=query.step,
        carrier=query.carrier)}
