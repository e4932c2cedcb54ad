"""Identity resolution pointed at the local reference PDS, for the tests and the benchmarks: DID documents from its
PLC directory, handles through its well-known endpoint (`*.test` names connect to 127.0.0.1) and a loopback DNS
server that knows only the TXT records a test adds (`zone.txt`)."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings

from integrations.security import outbound
from tests.support.dnszone import Zone, serving_zone
from tests.support.pds.server import LocalPds


def resolve_test_names_locally(patch: pytest.MonkeyPatch) -> None:
    """`*.test` and `*.example` host names connect to 127.0.0.1 (handles on the local PDS end in `.test`)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith((".test", ".example")):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    patch.setattr(socket, "getaddrinfo", getaddrinfo)


@contextmanager
def identities_on(server: LocalPds) -> Iterator[Zone]:
    """Resolve identities against `server` while the block runs (handles' well-known files on loopback: URLs users
    name reach loopback only, `outbound.loopback_only_for_tests`); yields the DNS zone."""
    with pytest.MonkeyPatch.context() as patch, serving_zone() as zone, outbound.loopback_only_for_tests():
        resolve_test_names_locally(patch)
        patch.setattr(settings, "INTEGRATIONS_PLC_URL", server.plc_url)
        patch.setattr(settings, "INTEGRATIONS_DNS_NAMESERVERS", [zone.address], raising=False)
        patch.setattr("integrations.bluesky.identity.resolution.WEB_BASE", f"http://{{host}}:{server.port}")
        yield zone
