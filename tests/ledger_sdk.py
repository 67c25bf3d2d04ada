"""Traffic for the spend-ledger test, through the official OpenAI Python SDK.

Run by `tests/tests/ledger.rs` with GATEWAY_URL (base URL with /v1), MODEL,
KEY and KEY2 (two keys of one namespace). Prints one JSON object: every
request's id (`x-request-id`) by key, and the cached and reasoning tokens
the upstream reported.
"""

import json
import os

import openai
from openai import OpenAI

BASE = os.environ["GATEWAY_URL"]
MODEL = os.environ["MODEL"]
MSGS = [{"role": "user", "content": "count these four words"}]


def client(key):
    # No SDK retries: each call is exactly one request.
    return OpenAI(base_url=BASE, api_key=key, max_retries=0, timeout=20)


def main():
    ids = {"key": [], "key2": []}
    cached = reasoning = 0
    c1, c2 = client(os.environ["KEY"]), client(os.environ["KEY2"])

    # Whole answers, two with cache and reasoning tokens reported.
    for i in range(6):
        mock = {"cached_tokens": 3, "reasoning_tokens": 2} if i < 2 else None
        extra = {"mock": mock} if mock else None
        raw = c1.chat.completions.with_raw_response.create(
            model=MODEL, messages=MSGS, extra_body=extra
        )
        r = raw.parse()
        assert r.choices[0].message.content, r
        ids["key"].append(raw.headers["x-request-id"])
        if mock:
            assert r.usage.prompt_tokens_details.cached_tokens == 3, r.usage
            cached += 3
            reasoning += 2

    # Streams with usage asked for, on the second key.
    for _ in range(4):
        raw = c2.chat.completions.with_raw_response.create(
            model=MODEL, messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(raw.parse())
        assert chunks[-1].usage is not None, chunks[-1]
        ids["key2"].append(raw.headers["x-request-id"])

    # Streams without usage asked for, and answers without usage at all
    # (the token-service counts those: estimated).
    for i in range(4):
        kw = {"stream": True} if i % 2 == 0 else {}
        raw = c2.chat.completions.with_raw_response.create(
            model=MODEL, messages=MSGS, extra_body={"mock": {"no_usage": True}}, **kw
        )
        out = raw.parse()
        if kw:
            list(out)
        ids["key2"].append(raw.headers["x-request-id"])

    # Upstream errors: accounted too.
    for _ in range(2):
        try:
            c1.chat.completions.create(
                model=MODEL, messages=MSGS, extra_body={"mock": {"status": 500}}
            )
            raise AssertionError("expected a 500")
        except openai.InternalServerError as e:
            ids["key"].append(e.response.headers["x-request-id"])

    print(json.dumps({"ids": ids, "cached": cached, "reasoning": reasoning}))


if __name__ == "__main__":
    main()
