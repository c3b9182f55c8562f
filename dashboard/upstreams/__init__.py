"""The upstreams: one package per API, each a client (plain HTTP, no models) and the passes that mirror it.

`http` is the session every client shares (retries, timeouts, one error type). A sync module may
import models, its own client and the live path's seam (`dashboard.live.transitions`, and the
`detection` rules); it never imports pages, pushes or sockets: what changed leaves through transitions.
"""
