"""The client's address behind the proxies we were told about, for the login throttle (django-axes).

Each proxy appends the address it saw to X-Forwarded-For (nginx: `$proxy_add_x_forwarded_for`), so with
N proxies in front of a node the client is the N-th entry from the right; whatever stands left of it
was written by the client and proves nothing. A client that forges entries only adds to the left, so
its failures still count against its own address, and never against the proxy's, which would lock
everyone out at once. With no proxy configured, the peer's own address is the client.

django-ipware (axes' `ipware` extra) counts proxies differently and, strictly, falls back to the
proxy's address when a client adds an entry: the few lines here say exactly what we trust.
"""

import ipaddress

from django.conf import settings


def client_address(request) -> str | None:
    peer = request.META.get("REMOTE_ADDR")
    proxies = settings.PROXY_COUNT
    if not proxies:
        return peer
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(hops) < proxies:
        return peer  # a request that did not come through every proxy (a monitor on the node itself)
    reported = hops[-proxies]
    try:
        return str(ipaddress.ip_address(reported))
    except ValueError:
        return peer
