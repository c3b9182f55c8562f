"""axe-core in the browser tests: the vendored, pinned copy (static/vendor/axe-core/), served by the server under test.

`serious_violations(page)` runs it on the page as it is and returns what it finds at the serious and critical
levels, one line each, so a failing assertion reads as a list of what to fix.
"""

AXE_URL = "/static/vendor/axe-core/axe.min.js"
AXE_VERSION = "4.14.1"
IMPACTS = ("serious", "critical")

RUN_AXE = """async () => {
    const results = await axe.run(document, {resultTypes: ['violations']});
    return results.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 4).map(node => node.target.join(' ') + ': ' + node.failureSummary.split('\\n').slice(0, 2).join(' ')),
    }));
}"""


def serious_violations(page) -> list[str]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=AXE_URL)  # our own origin: the pages' CSP allows it
    assert page.evaluate("axe.version") == AXE_VERSION
    found = page.evaluate(RUN_AXE)
    return [f"{v['impact']} {v['id']} ({v['help']}): {v['nodes']}" for v in found if v["impact"] in IMPACTS]
