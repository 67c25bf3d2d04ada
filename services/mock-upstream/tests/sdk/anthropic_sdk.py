"""The official `anthropic` Python SDK against the mock upstream's Messages API.

Run by the Rust test `sdk::official_anthropic_sdk_reads_the_mock`, which
starts the mock with MOCK_API_KEY=KEY and passes MOCK_URL and KEY. Exits
non-zero on the first failure.
"""

import os

import anthropic
from anthropic import Anthropic

import mockctl

BASE = os.environ["MOCK_URL"]
KEY = os.environ["KEY"]
MODEL = "claude-sonnet-4-5"
MSGS = [{"role": "user", "content": "Say hello to the world"}]
TOOLS = [
    {
        "name": "lookup",
        "description": "Looks a city's weather up.",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
    }
]


def client(**kw):
    # No SDK retries unless a check asks: every status must be seen as sent.
    return Anthropic(base_url=BASE, api_key=KEY, max_retries=kw.pop("max_retries", 0), timeout=20, **kw)


def main():
    c = client()

    # A whole message: text block, stop reason, usage (5 words in, 5 out).
    m = c.messages.create(model=MODEL, max_tokens=100, messages=MSGS)
    assert m.type == "message" and m.role == "assistant", m
    assert [b.type for b in m.content] == ["text"], m.content
    assert m.content[0].text == "Hello from the mock upstream", m.content
    assert m.stop_reason == "end_turn", m.stop_reason
    assert m.usage.input_tokens == 5 and m.usage.output_tokens == 5, m.usage
    assert m.usage.cache_read_input_tokens == 0, m.usage
    assert m.usage.cache_creation_input_tokens == 0, m.usage

    # Cache read and write, thinking and a tool call, as SDK types.
    m = c.messages.create(
        model=MODEL,
        max_tokens=2000,
        system="be brief",
        messages=MSGS,
        tools=TOOLS,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body={
            "mock": {
                "chunks": 2,
                "cached_tokens": 100,
                "cache_write_tokens": 30,
                "reasoning_tokens": 4,
                "tool_call": True,
            }
        },
    )
    assert [b.type for b in m.content] == ["thinking", "text", "tool_use"], m.content
    assert m.content[0].thinking == "Let me think about", m.content[0]
    assert m.content[0].signature, m.content[0]
    assert m.content[1].text == "Hello from", m.content[1]
    tool = m.content[2]
    assert isinstance(tool, anthropic.types.ToolUseBlock), tool
    assert tool.name == "lookup" and tool.input == {"location": "Paris"}, tool
    assert tool.id.startswith("toolu_"), tool.id
    assert m.stop_reason == "tool_use", m.stop_reason
    # input_tokens excludes the cache; output_tokens includes the thinking.
    assert m.usage.input_tokens == 7, m.usage
    assert m.usage.cache_read_input_tokens == 100, m.usage
    assert m.usage.cache_creation_input_tokens == 30, m.usage
    assert m.usage.output_tokens == 2 + 2 + 4, m.usage

    # Streaming with the SDK's helper: text as it arrives, and a final
    # message whose usage is message_delta's cumulative count (not the
    # placeholder of message_start added to it).
    with c.messages.stream(
        model=MODEL, max_tokens=100, messages=MSGS, extra_body={"mock": {"chunks": 7, "cached_tokens": 3}}
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the mock upstream server and", text
    assert final.content[0].text == text, final.content
    assert final.stop_reason == "end_turn", final
    assert final.usage.output_tokens == 7, final.usage
    assert final.usage.input_tokens == 5, final.usage
    assert final.usage.cache_read_input_tokens == 3, final.usage

    # Raw events in order (the SDK drops `ping`).
    events = list(
        c.messages.create(
            model=MODEL, max_tokens=100, messages=MSGS, stream=True, extra_body={"mock": {"chunks": 2}}
        )
    )
    types = [e.type for e in events]
    assert types == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ], types

    # A streamed tool call and thinking, accumulated by the SDK.
    with c.messages.stream(
        model=MODEL,
        max_tokens=2000,
        messages=MSGS,
        tools=TOOLS,
        extra_body={
            "mock": {
                "chunks": 0,
                "reasoning_tokens": 3,
                "tool_call": {"name": "lookup", "arguments": '{"location": "Oslo", "days": 2}'},
            }
        },
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "tool_use"], final.content
    assert final.content[0].thinking == "Let me think", final.content[0]
    assert final.content[1].input == {"location": "Oslo", "days": 2}, final.content[1]
    assert final.stop_reason == "tool_use", final
    assert final.usage.output_tokens == 4 + 3, final.usage

    # Token counting.
    n = c.messages.count_tokens(model=MODEL, messages=MSGS, system="be brief")
    assert n.input_tokens == 7, n

    # Errors as the SDK raises them: 529 overloaded, 429 rate limited, a
    # wrong key, a mistake of the caller's.
    e = mockctl.expect(
        anthropic.OverloadedError,
        lambda: c.messages.create(model=MODEL, max_tokens=10, messages=MSGS, extra_body={"mock": {"status": 529}}),
    )
    assert e.status_code == 529 and e.body["error"]["type"] == "overloaded_error", e.body
    assert e.request_id and e.request_id.startswith("req_"), e.request_id
    e = mockctl.expect(
        anthropic.RateLimitError,
        lambda: c.messages.create(
            model=MODEL, max_tokens=10, messages=MSGS, extra_body={"mock": {"error": "rate_limit_error"}}
        ),
    )
    assert e.body["error"]["type"] == "rate_limit_error", e.body
    assert e.response.headers.get("retry-after") == "1", e.response.headers
    e = mockctl.expect(
        anthropic.AuthenticationError,
        lambda: Anthropic(base_url=BASE, api_key="wrong", max_retries=0).messages.create(
            model=MODEL, max_tokens=10, messages=MSGS
        ),
    )
    assert e.body["error"]["type"] == "authentication_error", e.body
    e = mockctl.expect(
        anthropic.BadRequestError,
        lambda: c.messages.create(model=MODEL, max_tokens=10, messages=MSGS, extra_body={"n": 2}),
    )
    assert e.body["error"]["message"] == "n: Extra inputs are not permitted", e.body

    # Overloaded midway: the SDK raises on the stream's `error` event.
    got = []

    def read_broken_stream():
        with c.messages.stream(
            model=MODEL, max_tokens=100, messages=MSGS, extra_body={"mock": {"chunks": 5, "error_after_chunks": 2}}
        ) as stream:
            for t in stream.text_stream:
                got.append(t)

    e = mockctl.expect(anthropic.APIStatusError, read_broken_stream)
    assert e.body["error"]["type"] == "overloaded_error", e.body
    assert "".join(got) == "Hello from", got

    # 529 is retryable: with retries on, one overloaded answer (an override
    # rule, as a gateway test would set it) is followed by a success.
    mockctl.clear_requests()
    mockctl.override({"status": 529}, provider="anthropic", times=1)
    m = client(max_retries=2).messages.create(model=MODEL, max_tokens=100, messages=MSGS)
    assert m.content[0].text == "Hello from the mock upstream", m
    seen = mockctl.requests("anthropic")
    assert [r["headers"].get("x-stainless-retry-count") for r in seen] == ["0", "1"], seen

    # What arrived: the SDK's headers as given, the body as sent. This SDK
    # sends its key as a bearer token; `x-api-key` works as well.
    r = seen[-1]
    assert r["path"] == "/v1/messages", r
    assert r["headers"]["authorization"] == f"Bearer {KEY}", r["headers"]
    assert r["headers"]["anthropic-version"], r["headers"]
    assert r["body"] == {"model": MODEL, "max_tokens": 100, "messages": MSGS}, r["body"]
    c2 = Anthropic(base_url=BASE, api_key=None, default_headers={"x-api-key": KEY}, max_retries=0)
    m = c2.messages.create(model=MODEL, max_tokens=100, messages=MSGS)
    assert m.usage.output_tokens == 5, m.usage
    r = mockctl.last("anthropic")
    assert r["headers"]["x-api-key"] == KEY and "authorization" not in r["headers"], r["headers"]

    print("OK")


if __name__ == "__main__":
    main()
