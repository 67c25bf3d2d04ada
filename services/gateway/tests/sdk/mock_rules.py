"""The mock upstream's override rules (`/mock/overrides`), for the SDK
scripts: a gateway builds translated bodies itself, so knobs for its
upstream requests go through rules. MOCK_URL is the mock's root."""

import json
import os
import urllib.request

MOCK = os.environ["MOCK_URL"]


def mock_rule(provider, mock, times=None):
    """The next requests to `provider` (all of them, or `times`) get `mock`."""
    rule = {"provider": provider, "mock": mock}
    if times is not None:
        rule["times"] = times
    req = urllib.request.Request(
        MOCK + "/mock/overrides",
        data=json.dumps(rule).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    assert urllib.request.urlopen(req).status == 201


def mock_clear():
    """Removes every rule."""
    urllib.request.urlopen(urllib.request.Request(MOCK + "/mock/overrides", method="DELETE"))
