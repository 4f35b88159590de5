"""The broker bench measures a real local broker of its own and names every figure by partition length."""
import re

from deploy.bench_broker import TAIL_WAITS_MS, measure

FIGURE = re.compile(r"^(\d+(\.\d+)? (ms|MB|records/s)|stalled)$")


def test_every_figure_is_measured_for_every_length():
    figures = measure([0, 2_000])
    for length in (0, 2_000):
        names = {f"broker_fetch_ms_{length}", f"broker_catch_up_{length}_1kb", f"broker_catch_up_{length}_4mb",
                 f"broker_rss_{length}", *(f"broker_tail_p50_ms_{length}_wait_{w}" for w in TAIL_WAITS_MS)}
        assert names <= figures.keys()
        assert all(FIGURE.match(figures[name]) for name in names), {name: figures[name] for name in names}
        # A short partition is read at every wait, and read back at all.
        assert figures[f"broker_tail_p50_ms_{length}_wait_500"] != "stalled"
        assert float(figures[f"broker_catch_up_{length}_4mb"].split()[0]) > 0
