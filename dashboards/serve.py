"""`python -m dashboards.serve [STREAMLIT OPTIONS] -- [APP OPTIONS]`: Streamlit, warmed up.

Streamlit runs the app's scripts inside its own process, so the modules they import stay
imported. Importing them (pandas, pyarrow, the reader, the pages' helpers) and converting one
chart's data before the server starts moves that first-visit work to start-up, while the user
is still reading the URL that `hrm-doctor dashboard` printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "streamlit_app.py"


def warm_up() -> None:
    """Import what every page needs and run one chart's data through Arrow once."""
    import numpy as np
    from streamlit import dataframe_util

    # Not dashboards.data (nor ui, panels): its st.cache_data functions must be created inside
    # the running server, or they would be bound to a throwaway in-memory cache store.
    from dashboards import charts, transforms
    from dashboards.live import Series  # pandas and the telemetry reader

    x = np.arange(10, dtype=np.int64)
    s = Series("warm-up", x, x.astype(float), np.array([3]), np.array(["NaN"]))
    spec = charts.line_figure([transforms.downsample_series(s)], log_y=True)
    for d in spec["dataset"]:
        dataframe_util.convert_anything_to_arrow_bytes(d["source"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    warm_up()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *argv]
    return int(cli.main() or 0)  # click exits by itself: SystemExit carries the code


if __name__ == "__main__":
    sys.exit(main())
