"""API operations for season capacity (docs/forecast.md, "Season capacity"): a shop's
temporary shelves, the operator's recommended extra places, and the season's shape the
forecast follows (the demand index). Thin translations to ``services/season.py`` and
``services/demand_index.py``."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from relay_ops.domain import demand_index as index_rules
from relay_ops.domain.season import MAX_PLACES
from relay_ops.services import demand_index, season
from relay_ops.services.principal import Principal, Role
from relay_ops.web.api import ctx, endpoint
from relay_ops.web.api import responses as r
from relay_ops.web.api.schemas import IsoDay, SizeClass, Strict, iso_day

STAFF = (Role.OPERATOR, Role.SHOPKEEPER)
OPERATOR = (Role.OPERATOR,)


class TemporaryShelfIn(Strict):
    label: Annotated[str, Field(min_length=1, max_length=20)]
    size_class: SizeClass = "M"
    capacity: Annotated[int, Field(ge=1, le=MAX_PLACES)]
    valid_from: date
    valid_until: date
    refrigerated: bool = False


class RecommendationsQuery(Strict):
    site: Annotated[int | None, Field(ge=1, le=2**31 - 1)] = None


@endpoint("/sites/<id:site_id>/temporary-shelves", "POST", tag="sites", roles=STAFF,
          summary="Declare a temporary shelf for a period", body=TemporaryShelfIn,
          status=201, errors=(404, 409),
          description="A shelf location that takes parcels and counts in the forecast's "
                      "capacity only from `valid_from` to `valid_until` (both included, in "
                      "order, at most 120 days: 422 otherwise; not over already: 409 "
                      "`period-over`; at a shop or a storage site (a second room, a "
                      "container): 409 `site-has-no-shelves` at a locker). The site's "
                      "forecast is computed again at once.",
          response=r.TemporaryShelfOut)
def declare_temporary_shelf(principal: Principal, site_id: int, body: TemporaryShelfIn) -> Any:
    shelf = season.TemporaryShelf(**body.model_dump())
    return 201, season.declare_temporary_shelf(ctx(), principal, site_id, shelf)


@endpoint("/sites/<id:site_id>/temporary-shelves", tag="sites", roles=STAFF,
          summary="A shop's temporary shelves", errors=(404,),
          response=r.TemporaryShelfListOut)
def list_temporary_shelves(principal: Principal, site_id: int) -> Any:
    return {"items": season.temporary_shelves(ctx(), principal, site_id)}


@endpoint("/sites/<id:site_id>/temporary-shelves/<id:shelf_id>", "DELETE", tag="sites",
          roles=STAFF, summary="Withdraw an empty temporary shelf", status=204,
          errors=(404, 409))
def withdraw_temporary_shelf(principal: Principal, site_id: int, shelf_id: int) -> Any:
    season.withdraw_temporary_shelf(ctx(), principal, site_id, shelf_id)
    return 204, None


@endpoint("/season/recommendations", tag="sites", roles=OPERATOR,
          summary="Extra places per shop that would avoid the forecast overflow",
          query=RecommendationsQuery, errors=(404,),
          description="For each shop, the periods of consecutive days whose forecast upper "
                      "bound (`high`) exceeds its places, temporary shelves included, and "
                      "the places to add for each period (its worst day's shortfall); and "
                      "the parcels waiting under a shortened holding period, by rule.",
          response=r.RecommendationListOut)
def recommendations(principal: Principal, query: RecommendationsQuery) -> Any:
    return {"items": season.recommendations(ctx(), principal, query.site)}


@endpoint("/season/storage", tag="sites", roles=OPERATOR,
          summary="Extra places per storage site for the overflow of the shops within reach",
          description="When the whole area is full: each shop's forecast shortfall (the "
                      "tail of its forecast beyond its places, temporary shelves included: "
                      "mean and spread) is split evenly between the storage sites in season "
                      "within its reach; per storage site, that overflow per day, and the "
                      "periods and places to add beside the parcels already sent there, at "
                      "the band's quantile of the sum (`places`, `periods`) and at its mean "
                      "(`expected`). `unserved`: the shops whose overflow no storage site "
                      "reaches that day.",
          response=r.StorageRecommendationsOut)
def storage_recommendations(principal: Principal) -> Any:
    return season.storage_recommendations(ctx(), principal)


class PeriodQuery(Strict):
    from_: Annotated[IsoDay, Field(alias="from")]
    to: IsoDay

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def days(self) -> tuple[date, date]:
        return iso_day(self.from_), iso_day(self.to)


class DemandDayIn(Strict):
    day: date
    factor: Annotated[float, Field(ge=index_rules.MIN_FACTOR, le=index_rules.MAX_FACTOR)]


class DemandIndexIn(Strict):
    days: Annotated[list[DemandDayIn], Field(min_length=1, max_length=demand_index.MAX_DAYS)]
    source: Annotated[str | None, Field(min_length=1, max_length=200)] = None


class LastYearIn(Strict):
    from_: Annotated[date, Field(alias="from")]
    to: date

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


INDEX_DOC = ("How much demand each day brings against an ordinary day (1.0), network-wide: "
             "the forecast learns each site's rate on counts divided by their day's factor "
             "and multiplies each coming day's rate by its own (docs/forecast.md, \"The "
             "season's shape\"). Days never declared are ordinary.")


@endpoint("/demand-index", tag="sites", roles=OPERATOR, query=PeriodQuery,
          summary="The season's declared demand factors over a period",
          description=INDEX_DOC + " `from` and `to` both included, at most 400 days.",
          response=r.DemandIndexOut)
def list_demand_index(principal: Principal, query: PeriodQuery) -> Any:
    return {"items": demand_index.declared(ctx(), principal, *query.days())}


@endpoint("/demand-index", "PUT", tag="sites", roles=OPERATOR, body=DemandIndexIn,
          summary="Declare the season's demand factor of some days",
          description=INDEX_DOC + " Each day listed is declared (again), all or none: a "
                      "factor between 0.05 and 10, each day once, at most 400 days (422 "
                      "otherwise). The forecasts follow at their next run.",
          response=r.DemandIndexOut)
def declare_demand_index(principal: Principal, body: DemandIndexIn) -> Any:
    days = [(each.day, each.factor) for each in body.days]
    return {"items": demand_index.declare(ctx(), principal, days, body.source)}


@endpoint("/demand-index/from-last-year", "POST", tag="sites", roles=OPERATOR,
          body=LastYearIn, status=201,
          summary="Declare a period's demand factors from the network's own year before",
          description=INDEX_DOC + " Each day of the period gets the network's first attempts "
                      "52 weeks before (the mean of the three days centred on it) over "
                      "their mean of the eight weeks before the period, a year before. 422 "
                      "`no-history` without parcels then.",
          response=r.DemandIndexOut)
def demand_index_from_last_year(principal: Principal, body: LastYearIn) -> Any:
    return 201, {"items": demand_index.from_last_year(ctx(), principal, body.from_, body.to)}


@endpoint("/demand-index", "DELETE", tag="sites", roles=OPERATOR, query=PeriodQuery,
          status=204, summary="Withdraw the declared factors of a period (ordinary days again)")
def withdraw_demand_index(principal: Principal, query: PeriodQuery) -> Any:
    demand_index.withdraw(ctx(), principal, *query.days())
    return 204, None
