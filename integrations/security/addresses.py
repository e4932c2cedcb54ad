"""Which addresses are one public host: the address policy of the outbound guard (`integrations.security.outbound`).

Every block of the IANA special-purpose address registries (IPv4 and IPv6) is refused in full, whether or not the
registry calls it "globally reachable": none of them is a web page. Pure functions on `ipaddress` values; nothing here
resolves a name or opens a socket.
"""

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the last 32 bits are the IPv4 address
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")  # the only IPv6 space IANA allocates for global unicast

# The IANA IPv4 Special-Purpose Address Registry, in full (whether or not an entry is "globally reachable": none is
# a web page), and multicast. https://www.iana.org/assignments/iana-ipv4-special-registry
_SPECIAL_IPV4 = tuple(
    ipaddress.ip_network(block)
    for block in (
        "0.0.0.0/8",  # "this network" (RFC 791), with 0.0.0.0/32
        "10.0.0.0/8",  # private use (RFC 1918)
        "100.64.0.0/10",  # shared address space, carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback (RFC 1122)
        "169.254.0.0/16",  # link-local, cloud metadata (RFC 3927)
        "172.16.0.0/12",  # private use (RFC 1918)
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890), with .0/29, .8, .9, .10, .170, .171
        "192.0.2.0/24",  # documentation, TEST-NET-1 (RFC 5737)
        "192.31.196.0/24",  # AS112-v4 (RFC 7535)
        "192.52.193.0/24",  # AMT (RFC 7450)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast (RFC 7526)
        "192.168.0.0/16",  # private use (RFC 1918)
        "192.175.48.0/24",  # direct delegation AS112 service (RFC 7534)
        "198.18.0.0/15",  # benchmarking (RFC 2544)
        "198.51.100.0/24",  # documentation, TEST-NET-2 (RFC 5737)
        "203.0.113.0/24",  # documentation, TEST-NET-3 (RFC 5737)
        "224.0.0.0/4",  # multicast (RFC 5771): not one host
        "240.0.0.0/4",  # reserved (RFC 1112), with 255.255.255.255/32 limited broadcast (RFC 919)
    )
)
# The IANA IPv6 Special-Purpose Address Registry, in full, and what else is not one public host: multicast, the
# deprecated site-local and IPv4-compatible forms. https://www.iana.org/assignments/iana-ipv6-special-registry
# (64:ff9b::/96, NAT64, is judged by the IPv4 address it carries.)
_SPECIAL_IPV6 = tuple(
    ipaddress.ip_network(block)
    for block in (
        "::/128",  # unspecified (RFC 4291)
        "::1/128",  # loopback (RFC 4291)
        "::/96",  # deprecated IPv4-compatible addresses (RFC 4291), routed to the IPv4 address by some stacks
        "::ffff:0:0/96",  # IPv4-mapped addresses (RFC 4291): never a DNS answer for a public host
        "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation (RFC 8215)
        "100::/64",  # discard-only (RFC 6666)
        "100:0:0:1::/64",  # dummy IPv6 prefix (RFC 9780)
        "2001::/23",  # IETF protocol assignments (RFC 2928): Teredo 2001::/32, 2001:1::1-3, benchmarking
        # 2001:2::/48, AMT 2001:3::/32, AS112 2001:4:112::/48, ORCHID 2001:10::/28, ORCHIDv2 2001:20::/28,
        # DRIP 2001:30::/28
        "2001:db8::/32",  # documentation (RFC 3849)
        "2002::/16",  # 6to4 (RFC 3056): tunnels to an IPv4 address of its own
        "2620:4f:8000::/48",  # direct delegation AS112 service (RFC 7534)
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # segment routing SIDs (RFC 9602)
        "fc00::/7",  # unique local (RFC 4193)
        "fe80::/10",  # link-local unicast (RFC 4291)
        "fec0::/10",  # deprecated site-local (RFC 3879)
        "ff00::/8",  # multicast (RFC 4291): not one host
    )
)
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def is_public_address(ip: IPAddress) -> bool:
    """Whether `ip` is one public unicast host: in no block of the IANA special-purpose registries (IPv4 and IPv6),
    not multicast, and for IPv6 in the global unicast space (2000::/3). A NAT64 address (64:ff9b::/96) is judged by
    the IPv4 address it carries."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        special, allocated = _SPECIAL_IPV6, ip in _GLOBAL_UNICAST
    else:
        special, allocated = _SPECIAL_IPV4, True
    # Python's own table (`is_global`) too: a block it knows and the registry list above misses is refused as well.
    return allocated and ip.is_global and not any(ip in block for block in special)


def is_loopback(ip: IPAddress) -> bool:
    """Whether `ip` is a loopback address (127.0.0.0/8, ::1): what tests serve their pages on."""
    return any(ip.version == block.version and ip in block for block in _LOOPBACK)
