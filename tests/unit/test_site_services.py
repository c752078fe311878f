"""A site does what it declares: the rule every service check asks."""

import pytest

from relay_ops.domain.errors import ServiceNotOffered
from relay_ops.domain.site_services import SERVICES, require


def test_a_declared_service_passes() -> None:
    require(["receive", "send"], "send", "Tabac du Bourg", "bourg")


@pytest.mark.parametrize("service", SERVICES)
def test_an_undeclared_service_is_refused_naming_it_and_the_site(service: str) -> None:
    others = [s for s in SERVICES if s != service]
    with pytest.raises(ServiceNotOffered) as refused:
        require(others, service, "Tabac du Bourg", "bourg")
    assert refused.value.status == 409
    assert refused.value.slug == "service-not-offered"
    assert refused.value.extra == {"service": service, "site": "bourg"}
    assert f"Tabac du Bourg does not offer '{service}'" in refused.value.detail
