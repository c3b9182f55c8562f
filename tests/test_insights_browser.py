"""/insights/ as people open it: on a phone the plots start at the newest week, on a laptop they fit."""

import pytest

from tests.test_browser import browser, log_in, new_page, ou_sim, server, staff  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PLOTS = """() => [...document.querySelectorAll('.plot-scroll')].map(scroller => {
  const box = scroller.getBoundingClientRect();
  const labels = [...scroller.querySelectorAll('.plot-label')].map(label => label.getBoundingClientRect());
  const inView = rect => rect.left >= box.left - 1 && rect.right <= box.right + 1;
  return {first: inView(labels[0]), last: inView(labels[labels.length - 1]), scrolls: scroller.scrollWidth > scroller.clientWidth,
          left: scroller.querySelector('svg').getBoundingClientRect().left - box.left};
})"""


def test_on_a_phone_each_plot_opens_on_its_newest_week_and_on_a_laptop_it_fits(browser, server, staff):  # noqa: F811
    phone = new_page(browser, width=390, height=844)
    log_in(phone, server)
    phone.goto(f"{server.url}/insights/")
    plots = phone.evaluate(PLOTS)
    assert len(plots) == 2
    for plot in plots:
        assert plot["scrolls"] and plot["last"] and not plot["first"], plot

    laptop = new_page(browser, width=1366, height=768)
    log_in(laptop, server)
    laptop.goto(f"{server.url}/insights/")
    for plot in laptop.evaluate(PLOTS):
        assert not plot["scrolls"] and plot["first"] and plot["last"] and plot["left"] == 0, plot
    laptop.goto(f"{server.url}/insights/?weeks=104")
    for plot in laptop.evaluate(PLOTS):
        assert plot["scrolls"] and plot["last"] and not plot["first"], plot
