"""Steering and inspecting the mock upstream from the SDK scripts: override
rules (/mock/overrides) and the request journal (/mock/requests)."""

import json
import os
import urllib.request

BASE = os.environ["MOCK_URL"]


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as res:
        raw = res.read()
        return json.loads(raw) if raw else None


def override(mock, provider=None, model=None, times=None):
    rule = {"mock": mock}
    if provider:
        rule["provider"] = provider
    if model:
        rule["model"] = model
    if times:
        rule["times"] = times
    return call("POST", "/mock/overrides", rule)


def clear_overrides():
    call("DELETE", "/mock/overrides")


def requests(provider, limit=None):
    q = f"?provider={provider}" + (f"&limit={limit}" if limit else "")
    return call("GET", "/mock/requests" + q)["requests"]


def last(provider):
    return requests(provider, 1)[0]


def clear_requests():
    call("DELETE", "/mock/requests")


def expect(cls, fn):
    """Runs fn, which must raise cls; returns the exception."""
    try:
        fn()
    except cls as e:
        return e
    raise AssertionError(f"expected {cls.__name__}")
