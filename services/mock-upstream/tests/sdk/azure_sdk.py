"""The official `openai` Python SDK's Azure client (and its plain client on
Azure's v1 path) against the mock upstream's Azure OpenAI dialect.

Run by the Rust test `sdk::official_openai_sdk_azure_client_reads_the_mock`,
which starts the mock with MOCK_API_KEY=KEY and passes MOCK_URL and KEY.
Exits non-zero on the first failure.
"""

import os

import openai
from openai import AzureOpenAI, OpenAI

import mockctl

BASE = os.environ["MOCK_URL"]
KEY = os.environ["KEY"]
DEPLOYMENT = "gpt-4o-prod"
API_VERSION = "2024-10-21"
MSGS = [{"role": "user", "content": "Say hello to the world"}]
TOOLS = [
    {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
]


def main():
    c = AzureOpenAI(azure_endpoint=BASE, api_key=KEY, api_version=API_VERSION, max_retries=0, timeout=20)

    # A deployment's answer, with Azure's content filter results.
    r = c.chat.completions.create(model=DEPLOYMENT, messages=MSGS)
    assert r.choices[0].message.content == "Hello from the mock upstream", r
    assert r.choices[0].finish_reason == "stop", r
    assert r.model == DEPLOYMENT, r.model
    assert r.usage.prompt_tokens == 5 and r.usage.completion_tokens == 5, r.usage
    d = r.to_dict()
    assert d["prompt_filter_results"][0]["content_filter_results"]["hate"] == {
        "filtered": False,
        "severity": "safe",
    }, d
    assert d["choices"][0]["content_filter_results"]["violence"]["filtered"] is False, d

    # What arrived: the deployment path, api-version and the api-key header.
    seen = mockctl.last("azure_openai")
    assert seen["path"] == f"/openai/deployments/{DEPLOYMENT}/chat/completions", seen
    assert seen["query"] == f"api-version={API_VERSION}", seen
    assert seen["headers"]["api-key"] == KEY and "authorization" not in seen["headers"], seen["headers"]

    # Token details when asked: cached and reasoning tokens.
    r = c.chat.completions.create(
        model=DEPLOYMENT,
        messages=MSGS,
        extra_body={"mock": {"chunks": 3, "cached_tokens": 40, "reasoning_tokens": 12}},
    )
    assert r.usage.prompt_tokens == 45, r.usage
    assert r.usage.prompt_tokens_details.cached_tokens == 40, r.usage
    assert r.usage.completion_tokens == 15, r.usage
    assert r.usage.completion_tokens_details.reasoning_tokens == 12, r.usage

    # A stream: the prompt filter chunk first (no choices), then the text,
    # then the usage chunk.
    chunks = list(
        c.chat.completions.create(
            model=DEPLOYMENT,
            messages=MSGS,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"mock": {"chunks": 4}},
        )
    )
    assert chunks[0].choices == [] and chunks[0].to_dict()["prompt_filter_results"], chunks[0]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Hello from the mock", text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4, chunks[-1]

    # Tool calls, whole and streamed.
    r = c.chat.completions.create(
        model=DEPLOYMENT, messages=MSGS, tools=TOOLS, extra_body={"mock": {"chunks": 0, "tool_call": True}}
    )
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and call.function.arguments == '{"location": "Paris"}', call
    assert r.choices[0].finish_reason == "tool_calls", r
    args = ""
    for ch in c.chat.completions.create(
        model=DEPLOYMENT,
        messages=MSGS,
        tools=TOOLS,
        stream=True,
        extra_body={"mock": {"chunks": 0, "tool_call": {"arguments": '{"a": 1, "b": 2}'}}},
    ):
        if ch.choices and ch.choices[0].delta.tool_calls:
            args += ch.choices[0].delta.tool_calls[0].function.arguments or ""
    assert args == '{"a": 1, "b": 2}', args

    # The output filter stops an answer.
    r = c.chat.completions.create(model=DEPLOYMENT, messages=MSGS, extra_body={"mock": {"filtered": True}})
    assert r.choices[0].finish_reason == "content_filter", r

    # Embeddings on a deployment.
    e = c.embeddings.create(model="embed-prod", input=["a b", "c"], dimensions=4)
    assert len(e.data) == 2 and len(e.data[0].embedding) == 4, e
    assert e.usage.prompt_tokens == 3, e.usage

    # Errors: rate limit (Azure's {"error":{"code":"429"}}), the prompt
    # filter's refusal, a wrong key.
    err = mockctl.expect(
        openai.RateLimitError,
        lambda: c.chat.completions.create(model=DEPLOYMENT, messages=MSGS, extra_body={"mock": {"status": 429}}),
    )
    assert err.code == "429", err.body
    err = mockctl.expect(
        openai.BadRequestError,
        lambda: c.chat.completions.create(
            model=DEPLOYMENT, messages=MSGS, extra_body={"mock": {"error": "content_filter"}}
        ),
    )
    assert err.code == "content_filter", err.body
    assert err.body["innererror"]["code"] == "ResponsibleAIPolicyViolation", err.body
    err = mockctl.expect(
        openai.AuthenticationError,
        lambda: AzureOpenAI(azure_endpoint=BASE, api_key="wrong", api_version=API_VERSION, max_retries=0)
        .chat.completions.create(model=DEPLOYMENT, messages=MSGS),
    )
    assert err.code == "401", err.body

    # The v1 path with the plain client: the model in the body, the key as a
    # bearer token.
    v1 = OpenAI(base_url=BASE + "/openai/v1", api_key=KEY, max_retries=0, timeout=20)
    r = v1.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert r.model == "gpt-4o" and r.choices[0].message.content == "Hello from the mock upstream", r
    seen = mockctl.last("azure_openai")
    assert seen["path"] == "/openai/v1/chat/completions", seen
    assert seen["headers"]["authorization"] == f"Bearer {KEY}", seen["headers"]
    assert [m.id for m in v1.models.list()], "models listed"

    print("OK")


if __name__ == "__main__":
    main()
