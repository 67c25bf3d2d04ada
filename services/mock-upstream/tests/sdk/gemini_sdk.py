"""The official `google-genai` Python SDK against the mock upstream's Gemini
API (no network: an API key, a base URL, no Google credentials).

Run by the Rust test `sdk::official_google_genai_sdk_reads_the_mock`, which
starts the mock with MOCK_API_KEY=KEY and passes MOCK_URL and KEY. Exits
non-zero on the first failure.
"""

import os

from google import genai
from google.genai import errors, types

import mockctl

BASE = os.environ["MOCK_URL"]
KEY = os.environ["KEY"]
MODEL = "gemini-2.5-flash"
PROMPT = "Say hello to the world"


def client(key=KEY, api_version="v1beta"):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=BASE, api_version=api_version))


def mock(knobs):
    """A per-request body field the SDK adds as is."""
    return types.HttpOptions(extra_body={"mock": knobs})


def main():
    c = client()

    # A whole answer: text, finish reason, usage metadata.
    r = c.models.generate_content(
        model=MODEL, contents=PROMPT, config=types.GenerateContentConfig(system_instruction="be brief")
    )
    assert r.text == "Hello from the mock upstream", r
    assert r.candidates[0].finish_reason == types.FinishReason.STOP, r.candidates[0]
    u = r.usage_metadata
    assert (u.prompt_token_count, u.candidates_token_count, u.total_token_count) == (7, 5, 12), u
    seen = mockctl.last("gemini")
    assert seen["path"] == f"/v1beta/models/{MODEL}:generateContent", seen
    assert seen["headers"]["x-goog-api-key"] == KEY, seen["headers"]
    assert seen["body"]["systemInstruction"]["parts"][0]["text"] == "be brief", seen["body"]

    # Cached tokens, thoughts shown, a function call.
    r = c.models.generate_content(
        model=MODEL,
        contents=PROMPT,
        config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="lookup")])],
            thinking_config=types.ThinkingConfig(include_thoughts=True),
            http_options=mock({"chunks": 2, "cached_tokens": 50, "reasoning_tokens": 6, "tool_call": True}),
        ),
    )
    parts = r.candidates[0].content.parts
    assert parts[0].thought is True and parts[0].text == "Let me think about the answer", parts[0]
    assert parts[1].text == "Hello from", parts[1]
    assert r.function_calls[0].name == "lookup" and r.function_calls[0].args == {"location": "Paris"}, r
    u = r.usage_metadata
    assert u.prompt_token_count == 55 and u.cached_content_token_count == 50, u
    assert u.candidates_token_count == 4 and u.thoughts_token_count == 6, u
    assert u.total_token_count == 65, u

    # A stream (alt=sse): the text in order, the last chunk's usage final.
    chunks = list(
        c.models.generate_content_stream(
            model=MODEL, contents=PROMPT, config=types.GenerateContentConfig(http_options=mock({"chunks": 4}))
        )
    )
    assert "".join(ch.text or "" for ch in chunks) == "Hello from the mock", chunks
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP, last
    assert last.usage_metadata.candidates_token_count == 4, last.usage_metadata
    assert mockctl.last("gemini")["query"] == "alt=sse", mockctl.last("gemini")

    # Embeddings (the SDK batches them).
    e = c.models.embed_content(
        model="gemini-embedding-001",
        contents=["a b", "c"],
        config=types.EmbedContentConfig(output_dimensionality=4),
    )
    assert len(e.embeddings) == 2 and len(e.embeddings[0].values) == 4, e
    assert mockctl.last("gemini")["endpoint"] == "batch_embed_contents", mockctl.last("gemini")

    # Errors in Google's shape: quota, overload, a wrong key.
    err = mockctl.expect(
        errors.ClientError,
        lambda: c.models.generate_content(
            model=MODEL, contents=PROMPT, config=types.GenerateContentConfig(http_options=mock({"status": 429}))
        ),
    )
    assert err.code == 429 and err.status == "RESOURCE_EXHAUSTED", err
    err = mockctl.expect(
        errors.ServerError,
        lambda: c.models.generate_content(
            model=MODEL, contents=PROMPT, config=types.GenerateContentConfig(http_options=mock({"status": 503}))
        ),
    )
    assert err.code == 503 and err.status == "UNAVAILABLE", err
    # (A client closes its connections when collected: keep it referenced.)
    wrong = client("wrong")
    err = mockctl.expect(errors.ClientError, lambda: wrong.models.generate_content(model=MODEL, contents=PROMPT))
    assert err.code == 400 and err.status == "INVALID_ARGUMENT", err
    assert "API key not valid" in err.message, err

    # An error inside the stream: raised while reading it.
    got = []

    def read_broken_stream():
        for ch in c.models.generate_content_stream(
            model=MODEL,
            contents=PROMPT,
            config=types.GenerateContentConfig(http_options=mock({"chunks": 5, "error_after_chunks": 2})),
        ):
            got.append(ch.text)

    err = mockctl.expect(errors.ServerError, read_broken_stream)
    assert err.code == 503, err
    assert "".join(got) == "Hello from", got

    # The v1 API version reaches the same endpoints.
    v1 = client(api_version="v1")
    r = v1.models.generate_content(model=MODEL, contents=PROMPT)
    assert r.text == "Hello from the mock upstream", r
    assert mockctl.last("gemini")["path"] == f"/v1/models/{MODEL}:generateContent"

    print("OK")


if __name__ == "__main__":
    main()
