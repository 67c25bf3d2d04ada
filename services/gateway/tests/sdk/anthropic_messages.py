"""The official Anthropic Python SDK against the gateway's Messages API
(`POST /v1/messages`), in front of an Anthropic, an OpenAI, a Gemini and an
Azure OpenAI instance.

Run by the Rust test `sdk::official_anthropic_sdk_reaches_every_provider`,
which passes: GATEWAY_URL (the gateway's root), MOCK_URL (the mock's root,
for its override rules), KEY, ANSWER (the mock's answer text) and MODELS
(JSON: name → [mock provider, model]). Exits non-zero on the first failure.
"""

import json
import os
import sys

import anthropic
from mock_rules import mock_clear, mock_rule

ANSWER = os.environ["ANSWER"]
MODELS = json.loads(os.environ["MODELS"])
MSGS = [{"role": "user", "content": "Say hello"}]
TOOLS = [
    {
        "name": "get_weather",
        "description": "The weather of a place",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
    }
]


def check(c, name, provider, model):
    write = 30 if provider == "anthropic" else 0
    mock_rule(provider, {"cached_tokens": 100, "cache_write_tokens": write})
    m = c.messages.create(model=model, max_tokens=50, system="Be brief", messages=MSGS)
    text = "".join(b.text for b in m.content if b.type == "text")
    assert text == ANSWER, (name, m)
    assert m.stop_reason == "end_turn", (name, m)
    u = m.usage
    assert (u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens, u.output_tokens) == (
        4,
        100,
        write,
        3,
    ), (name, u)

    with c.messages.stream(model=model, max_tokens=50, system="Be brief", messages=MSGS) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert streamed == ANSWER, (name, streamed)
    assert final.stop_reason == "end_turn", (name, final)
    assert final.usage.output_tokens == 3, (name, final.usage)
    mock_clear()

    # Tool use, whole and streamed, then the result goes back.
    mock_rule(provider, {"tool_call": True})
    m = c.messages.create(model=model, max_tokens=50, tools=TOOLS, messages=MSGS)
    use = [b for b in m.content if b.type == "tool_use"][0]
    assert use.name == "get_weather" and use.input == {"location": "Paris"}, (name, m)
    assert m.stop_reason == "tool_use", (name, m)
    with c.messages.stream(model=model, max_tokens=50, tools=TOOLS, messages=MSGS) as s:
        final = s.get_final_message()
    use = [b for b in final.content if b.type == "tool_use"][0]
    assert use.input == {"location": "Paris"}, (name, final)
    m = c.messages.create(
        model=model,
        max_tokens=50,
        tools=TOOLS,
        messages=MSGS
        + [
            {"role": "assistant", "content": [use.model_dump(include={"type", "id", "name", "input"})]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ],
    )
    assert m.stop_reason == "tool_use", (name, m)
    mock_clear()

    # An upstream error as the SDK raises it.
    mock_rule(provider, {"status": 429}, times=5)
    try:
        c.messages.create(model=model, max_tokens=50, messages=MSGS)
        raise AssertionError(f"{name}: expected a rate limit error")
    except anthropic.RateLimitError as e:
        assert e.status_code == 429, e
    mock_clear()


def main():
    base = os.environ["GATEWAY_URL"]
    # x-api-key, as the SDK sends it.
    c = anthropic.Anthropic(base_url=base, api_key=os.environ["KEY"], max_retries=0, timeout=20)
    for name, (provider, model) in MODELS.items():
        check(c, name, provider, model)
    # Bearer works too.
    bearer = anthropic.Anthropic(
        base_url=base, auth_token=os.environ["KEY"], api_key=None, max_retries=0, timeout=20
    )
    m = bearer.messages.create(model=MODELS["openai"][1], max_tokens=5, messages=MSGS)
    assert m.content[0].text == ANSWER, m
    print("anthropic", anthropic.__version__, "OK")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", repr(e), file=sys.stderr)
        raise
