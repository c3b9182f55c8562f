"""The live path: what counts as live (`detection`), the one door changes leave by (`transitions`),
their rendering for each audience (`push`), and the /ws/live/ socket (`routing`, `consumers`, `access`,
`screens` for kiosk links).

It may import models and the web's read side (pages, feeds, filters) to render fragments; it never
imports an upstream: syncs reach it only by committing transitions.
"""
