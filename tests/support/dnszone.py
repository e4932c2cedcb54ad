"""A DNS server on loopback for handle TXT records (dnslib), for the tests' identity resolution."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSServer


@dataclass
class Zone(BaseResolver):
    """TXT records by name (without the trailing dot); every other name is NXDOMAIN. `queries` lists every name."""

    txt: dict[str, list[str]] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    address: str = ""

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        self.queries.append(name)
        if name in self.txt:
            if request.q.qtype == QTYPE.TXT:
                for text in self.txt[name]:
                    reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(text), ttl=60))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class _QuietLogger:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


@contextmanager
def serving_zone() -> Iterator[Zone]:
    """A zone served on a free loopback port; `zone.address` is "127.0.0.1:<port>"."""
    zone = Zone()
    server = DNSServer(zone, port=0, address="127.0.0.1", logger=_QuietLogger())
    server.start_thread()
    zone.address = f"127.0.0.1:{server.server.server_address[1]}"
    try:
        yield zone
    finally:
        server.stop()
