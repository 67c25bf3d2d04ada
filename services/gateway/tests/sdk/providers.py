"""The official OpenAI Python SDK against Anthropic, Gemini and Azure OpenAI
instances behind the gateway.

Run by the Rust test `sdk::official_openai_sdk_reaches_every_provider`, which
starts the gateway, the mock upstream (one server speaking every provider's
wire format) and Redis, and passes: GATEWAY_URL (base URL with /v1), MOCK_URL
(the mock's root, for its override rules), KEY, ANSWER (the mock's answer
text), MODELS (JSON: name → [provider, model with one instance, model with
two instances]). The Rust test then checks the usage records.
Exits non-zero on the first failure.
"""

import json
import os
import sys

import openai
from mock_rules import mock_clear, mock_rule
from openai import OpenAI

BASE = os.environ["GATEWAY_URL"]
ANSWER = os.environ["ANSWER"]
MODELS = json.loads(os.environ["MODELS"])
MSGS = [{"role": "user", "content": "Say hello"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather of a place",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]


def check(name, provider, model, pair, c):
    # Usage with cache reads (and cache writes at Anthropic) and reasoning.
    knobs = {"cached_tokens": 100, "reasoning_tokens": 4}
    write = 0
    if provider == "anthropic":
        knobs["cache_write_tokens"] = 30
        write = 30
    mock_rule(provider, knobs)
    prompt = 2 + 100 + write

    r = c.chat.completions.create(model=model, messages=MSGS, max_tokens=50)
    assert r.object == "chat.completion", r
    assert r.choices[0].message.content == ANSWER, (name, r)
    assert r.choices[0].finish_reason == "stop", (name, r)
    u = r.usage
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (prompt, 7, prompt + 7), (name, u)
    assert u.prompt_tokens_details.cached_tokens == 100, (name, u)
    assert u.completion_tokens_details.reasoning_tokens == 4, (name, u)
    if provider == "anthropic":
        assert u.prompt_tokens_details.cache_write_tokens == 30, u

    chunks = list(
        c.chat.completions.create(
            model=model, messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )
    # Azure opens with its prompt filter's chunk (no choices, no usage).
    body = [ch for ch in chunks if ch.choices]
    assert body[0].choices[0].delta.role == "assistant", (name, body[0])
    text = "".join(ch.choices[0].delta.content or "" for ch in body)
    assert text == ANSWER, (name, text)
    assert body[-1].choices[0].finish_reason == "stop", (name, body[-1])
    assert all(ch.choices[0].finish_reason is None for ch in body[:-1]), name
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None, (name, last)
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (prompt, 7), (name, last.usage)
    assert last.usage.prompt_tokens_details.cached_tokens == 100, name
    mock_clear()

    # Tool calls, whole and streamed.
    mock_rule(provider, {"tool_call": True})
    r = c.chat.completions.create(model=model, messages=MSGS, tools=TOOLS, tool_choice="auto")
    call = r.choices[0].message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather", (name, r)
    assert json.loads(call.function.arguments) == {"location": "Paris"}, (name, call)
    assert r.choices[0].finish_reason == "tool_calls", (name, r)
    args, names, finish = "", [], None
    for ch in c.chat.completions.create(model=model, messages=MSGS, tools=TOOLS, stream=True):
        if not ch.choices:
            continue
        for tc in ch.choices[0].delta.tool_calls or []:
            assert tc.index == 0, tc
            if tc.function.name:
                names.append(tc.function.name)
            args += tc.function.arguments or ""
        finish = ch.choices[0].finish_reason or finish
    assert names == ["get_weather"], (name, names)
    assert json.loads(args) == {"location": "Paris"}, (name, args)
    assert finish == "tool_calls", (name, finish)

    # The answer to the call goes back.
    r = c.chat.completions.create(
        model=model,
        messages=MSGS
        + [
            {"role": "assistant", "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert r.choices[0].finish_reason == "tool_calls", (name, r)
    mock_clear()

    # An upstream error, in OpenAI's shape as the SDK raises it.
    mock_rule(provider, {"status": 429}, times=5)
    try:
        c.chat.completions.create(model=model, messages=MSGS)
        raise AssertionError(f"{name}: expected a rate limit error")
    except openai.RateLimitError as e:
        assert e.status_code == 429, e
        assert e.type == "rate_limit_error", (name, e.body)
        assert e.message, e
    mock_clear()

    # A retry: the first instance is overloaded, the second answers.
    mock_rule(provider, {"status": 529 if provider == "anthropic" else 503}, times=1)
    r = c.chat.completions.create(model=pair, messages=MSGS)
    assert r.choices[0].message.content == ANSWER, (name, r)
    mock_clear()


def main():
    c = OpenAI(base_url=BASE, api_key=os.environ["KEY"], max_retries=0, timeout=20)
    for name, (provider, model, pair) in MODELS.items():
        check(name, provider, model, pair, c)
    # What a provider cannot honour is refused by name.
    try:
        c.chat.completions.create(model=MODELS["anthropic"][1], messages=MSGS, seed=1)
        raise AssertionError("expected a 400")
    except openai.BadRequestError as e:
        assert e.code == "unsupported_parameter" and e.param == "seed", e.body
    print("openai", openai.__version__, "OK")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", repr(e), file=sys.stderr)
        raise
