"""Traffic for the providers' end-to-end test, through the official OpenAI
and Anthropic Python SDKs.

Run by `tests/tests/providers_e2e.rs` with GATEWAY_URL (the gateway's root),
MOCK_URL (the mock's root, for its override rules), ANSWER (the mock's
answer text), PROVIDERS (JSON: name → {"provider", "model", "rule_model",
"key"}: the configured model, the model name the mock sees, the
namespace's key) and MESSAGES (the same for the `/v1/messages` traffic).

Each name's requests run one after another, the names in parallel. The
knobs of the mock's answers go through override rules scoped to the rule
model, each used up by exactly the requests it is meant for. Checks what
the client sees; prints {"ids": {name: {step: x-request-id}}, ...} — the
gateway's id of each request, which is its usage record's and ledger row's
id and reaches the upstream — or exits non-zero on the first failure.
"""

import json
import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
from openai import OpenAI

BASE = os.environ["GATEWAY_URL"]
MOCK = os.environ["MOCK_URL"]
ANSWER = os.environ["ANSWER"]
N = len(ANSWER.split())
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
# Cache reads, cache writes (Anthropic only reports them apart) and
# reasoning tokens the mock reports.
CACHED, WRITE, REASONING = 100, 30, 4


def rule(p, times, mock):
    """The next `times` requests for `p`'s model at the mock get `mock`."""
    body = {"provider": p["provider"], "model": p["rule_model"], "times": times, "mock": mock}
    req = urllib.request.Request(
        MOCK + "/mock/overrides",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    assert urllib.request.urlopen(req).status == 201


def call(ids, step, create, **kw):
    """`create(**kw)` (an SDK method's `with_raw_response`); keeps the
    request's id under `step` and returns the parsed answer."""
    raw = create(**kw)
    ids[step] = raw.headers["x-request-id"]
    return raw.parse()


def openai_traffic(name, p):
    ids = {}
    c = OpenAI(base_url=BASE + "/v1", api_key=p["key"], max_retries=0, timeout=30)
    create = c.chat.completions.with_raw_response.create
    model = p["model"]
    write = WRITE if p["provider"] == "anthropic" else 0
    prompt = 2 + CACHED + write

    # Usage with cache reads (and writes) and reasoning: whole and streamed.
    knobs = {"cached_tokens": CACHED, "reasoning_tokens": REASONING}
    if write:
        knobs["cache_write_tokens"] = write
    rule(p, 2, knobs)
    r = call(ids, "whole", create, model=model, messages=MSGS, max_tokens=50)
    assert r.object == "chat.completion", (name, r)
    assert r.choices[0].message.content == ANSWER, (name, r)
    assert r.choices[0].finish_reason == "stop", (name, r)
    u = r.usage
    completion = N + REASONING
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (prompt, completion, prompt + completion), (name, u)
    assert u.prompt_tokens_details.cached_tokens == CACHED, (name, u)
    assert u.completion_tokens_details.reasoning_tokens == REASONING, (name, u)
    if write:
        assert u.prompt_tokens_details.cache_write_tokens == write, (name, u)

    chunks = list(
        call(
            ids,
            "stream",
            create,
            model=model,
            messages=MSGS,
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
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
    assert [ch for ch in chunks if ch.usage is not None] == [last], (name, "one usage chunk")
    lu = last.usage
    assert (lu.prompt_tokens, lu.completion_tokens) == (prompt, completion), (name, lu)
    assert lu.prompt_tokens_details.cached_tokens == CACHED, (name, lu)
    assert lu.completion_tokens_details.reasoning_tokens == REASONING, (name, lu)

    # A tool call, whole and streamed (no usage asked for), then the turn
    # with the tool's answer.
    rule(p, 3, {"tool_call": True})
    r = call(ids, "tool", create, model=model, messages=MSGS, tools=TOOLS, tool_choice="auto")
    tool = r.choices[0].message.tool_calls[0]
    assert tool.type == "function" and tool.function.name == "get_weather", (name, r)
    assert json.loads(tool.function.arguments) == {"location": "Paris"}, (name, tool)
    assert r.choices[0].finish_reason == "tool_calls", (name, r)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (2, N + 2), (name, r.usage)
    args, names, finish, usage = "", [], None, []
    for ch in call(ids, "tool-stream", create, model=model, messages=MSGS, tools=TOOLS, stream=True):
        if ch.usage is not None:
            usage.append(ch.usage)
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
    assert usage == [], (name, "usage not asked for", usage)
    r = call(
        ids,
        "tool-answer",
        create,
        model=model,
        messages=MSGS
        + [
            {"role": "assistant", "tool_calls": [tool.model_dump()]},
            {"role": "tool", "tool_call_id": tool.id, "content": "sunny"},
        ],
        tools=TOOLS,
    )
    assert r.choices[0].finish_reason == "tool_calls", (name, r)

    # An upstream error on both instances: relayed in OpenAI's shape.
    rule(p, 2, {"status": 429})
    try:
        c.chat.completions.create(model=model, messages=MSGS)
        raise AssertionError(f"{name}: expected a rate limit error")
    except openai.RateLimitError as e:
        ids["error"] = e.response.headers["x-request-id"]
        assert e.status_code == 429, (name, e)
        assert e.type == "rate_limit_error", (name, e.body)
        assert e.message, (name, e.body)
        want = {"anthropic": "rate_limit_error", "gemini": "RESOURCE_EXHAUSTED", "azure_openai": "429"}
        if p["provider"] in want:
            assert e.code == want[p["provider"]], (name, e.body)

    # The first instance fails (Anthropic's 529 overloaded_error), the
    # other answers.
    rule(p, 1, {"status": 529 if p["provider"] == "anthropic" else 503})
    r = call(ids, "retry", create, model=model, messages=MSGS)
    assert r.choices[0].message.content == ANSWER, (name, r)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (2, N), (name, r.usage)

    # The upstream dies mid-stream, before its usage: the client gets the
    # text so far, then OpenAI's error event.
    rule(p, 1, {"abort_after_chunks": 2})
    text = ""
    try:
        usage = {"include_usage": True}
        stream = call(ids, "cut", create, model=model, messages=MSGS, stream=True, stream_options=usage)
        for ch in stream:
            assert ch.usage is None, (name, ch)
            if ch.choices:
                text += ch.choices[0].delta.content or ""
        raise AssertionError(f"{name}: the cut stream ended cleanly")
    except openai.APIError as e:
        assert e.code == "upstream_stream_error", (name, e.body)
    assert text == " ".join(ANSWER.split()[:2]), (name, text)
    return ids


def messages_traffic(name, p):
    """Anthropic's SDK on `/v1/messages`, to a non-Anthropic provider."""
    ids = {}
    c = anthropic.Anthropic(base_url=BASE, api_key=p["key"], max_retries=0, timeout=30)
    create = c.messages.with_raw_response.create
    model = p["model"]
    msgs = [{"role": "user", "content": "Say hello"}]
    rule(p, 2, {"cached_tokens": CACHED, "reasoning_tokens": REASONING})
    m = call(ids, "whole", create, model=model, max_tokens=50, system="Be brief", messages=msgs)
    text = "".join(b.text for b in m.content if b.type == "text")
    assert text == ANSWER, (name, m)
    assert m.stop_reason == "end_turn", (name, m)
    u = m.usage
    # Anthropic's meaning: input_tokens leaves the cache's tokens out.
    assert (u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens, u.output_tokens) == (
        4,
        CACHED,
        0,
        N + REASONING,
    ), (name, u)
    with c.messages.stream(model=model, max_tokens=50, system="Be brief", messages=msgs) as s:
        ids["stream"] = s.response.headers["x-request-id"]
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert streamed == ANSWER, (name, streamed)
    assert final.stop_reason == "end_turn", (name, final)
    fu = final.usage
    assert (fu.input_tokens, fu.cache_read_input_tokens, fu.output_tokens) == (4, CACHED, N + REASONING), (
        name,
        fu,
    )

    rule(p, 1, {"tool_call": True})
    function = TOOLS[0]["function"]
    tools = [{"name": function["name"], "description": function["description"], "input_schema": function["parameters"]}]
    m = call(ids, "tool", create, model=model, max_tokens=50, tools=tools, messages=msgs)
    use = [b for b in m.content if b.type == "tool_use"][0]
    assert use.name == "get_weather" and use.input == {"location": "Paris"}, (name, m)
    assert m.stop_reason == "tool_use", (name, m)
    assert (m.usage.input_tokens, m.usage.output_tokens) == (2, N + 2), (name, m.usage)
    return ids


def main():
    providers = json.loads(os.environ["PROVIDERS"])
    messages = json.loads(os.environ["MESSAGES"])
    with ThreadPoolExecutor(max_workers=len(providers) + 1) as pool:
        runs = {name: pool.submit(openai_traffic, name, p) for name, p in providers.items()}
        runs["messages"] = pool.submit(messages_traffic, "messages", messages)
        ids = {name: run.result() for name, run in runs.items()}
    print(json.dumps({"ids": ids, "openai": openai.__version__, "anthropic": anthropic.__version__}))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", repr(e), file=sys.stderr)
        raise
