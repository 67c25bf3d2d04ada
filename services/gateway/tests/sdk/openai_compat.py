"""The official OpenAI Python SDK against a running gateway.

Run by the Rust test `sdk::official_openai_python_sdk_works_against_the_gateway`,
which starts the gateway, a mock upstream and Redis, and passes:
GATEWAY_URL (base URL with /v1), MODEL, KEY (team-a), KEY_LIMITED (an RPM-1
namespace), KEY_DISABLED (a disabled namespace), KEY_DOWN (a namespace whose
only instance refuses connections), ANSWER (the mock's answer text, three
chunks) and EMBEDDING (the mock's vector for the first input, as JSON).
Exits non-zero on the first failure.
"""

import json
import os
import sys

import openai
from openai import OpenAI

BASE = os.environ["GATEWAY_URL"]
MODEL = os.environ["MODEL"]
ANSWER = os.environ["ANSWER"]
EMBEDDING = json.loads(os.environ["EMBEDDING"])
# The mock's usage: one prompt token per word ("Say hello"), one completion
# token per chunk.
TOTAL_TOKENS = 2 + 3


def client(key):
    # No SDK retries: every status must be seen as the gateway sent it.
    return OpenAI(base_url=BASE, api_key=key, max_retries=0, timeout=20)


def expect_error(cls, status, fn):
    try:
        fn()
    except cls as e:
        assert e.status_code == status, (cls.__name__, e.status_code)
        body = e.body if isinstance(e.body, dict) else {}
        assert "message" in body and "type" in body and "code" in body, e.body
        return e
    raise AssertionError(f"expected {cls.__name__}")


def main():
    c = client(os.environ["KEY"])
    msgs = [{"role": "user", "content": "Say hello"}]

    # Chat, whole answer.
    r = c.chat.completions.create(model=MODEL, messages=msgs)
    assert r.choices[0].message.content == ANSWER, r
    assert r.usage.total_tokens == TOTAL_TOKENS, r.usage

    # Chat, streamed; the usage chunk we did not ask for is not shown.
    chunks = list(c.chat.completions.create(model=MODEL, messages=msgs, stream=True))
    assert all(ch.choices for ch in chunks), chunks
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert text == ANSWER, text

    # Chat, streamed with usage asked for.
    chunks = list(
        c.chat.completions.create(
            model=MODEL, messages=msgs, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == TOTAL_TOKENS, chunks[-1]
    assert chunks[-1].choices == []

    # Raw response: x-request-id comes back.
    raw = c.chat.completions.with_raw_response.create(model=MODEL, messages=msgs)
    assert raw.headers.get("x-request-id"), dict(raw.headers)

    # Completions and embeddings.
    r = c.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert r.choices[0].text == ANSWER, r
    e = c.embeddings.create(model=MODEL, input="embed me")
    assert e.data[0].embedding == EMBEDDING, e
    assert e.usage.prompt_tokens == 2, e.usage

    # Models.
    ids = [m.id for m in c.models.list()]
    assert ids == [MODEL], ids
    assert c.models.retrieve(MODEL).id == MODEL

    # Errors as the SDK sees them.
    expect_error(
        openai.AuthenticationError,
        401,
        lambda: client("sk-aigw-not-a-key").chat.completions.create(model=MODEL, messages=msgs),
    )
    e = expect_error(
        openai.NotFoundError,
        404,
        lambda: c.chat.completions.create(model="no-such-model", messages=msgs),
    )
    assert e.code == "model_not_found", e.code
    expect_error(
        openai.BadRequestError,
        400,
        lambda: c.chat.completions.create(model="", messages=msgs),
    )
    expect_error(
        openai.PermissionDeniedError,
        403,
        lambda: client(os.environ["KEY_DISABLED"]).chat.completions.create(
            model=MODEL, messages=msgs
        ),
    )
    limited = client(os.environ["KEY_LIMITED"])
    limited.chat.completions.create(model=MODEL, messages=msgs)
    e = expect_error(
        openai.RateLimitError,
        429,
        lambda: limited.chat.completions.create(model=MODEL, messages=msgs),
    )
    assert int(e.response.headers["retry-after"]) >= 1
    expect_error(
        openai.InternalServerError,
        502,
        lambda: client(os.environ["KEY_DOWN"]).chat.completions.create(
            model=MODEL, messages=msgs
        ),
    )
    # Streaming errors surface before the stream starts.
    expect_error(
        openai.NotFoundError,
        404,
        lambda: list(c.chat.completions.create(model="nope", messages=msgs, stream=True)),
    )
    print("openai", openai.__version__, "OK")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", repr(e), file=sys.stderr)
        raise
