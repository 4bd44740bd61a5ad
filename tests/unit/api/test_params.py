"""The query parameters a route reads one value of are those the
OneValueEach middleware refuses twice (api/params.py)."""
from __future__ import annotations

import re
from pathlib import Path

from computepods.api import params

API = Path(params.__file__).parent
READ = re.compile(r'(?:get_param(?:_as_[a-z]+)?\(|flag\(req, )"([a-z_]+)"')
LISTS = {"target"}


def test_every_scalar_parameter_a_route_reads_is_checked_for_repeats():
    read = {name for path in API.glob("*.py") for name in READ.findall(path.read_text())}
    assert read - LISTS <= params.SCALARS, read - LISTS - params.SCALARS
    for key in ("group", "state", "q"):          # read in a loop in resources.Steps
        assert key in params.SCALARS
