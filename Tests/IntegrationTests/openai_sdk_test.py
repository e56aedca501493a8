"""The official OpenAI Python SDK against a running Silverback gateway.

Usage: python3 openai_sdk_test.py <gateway base url, e.g. http://127.0.0.1:8000>

The gateway must route (see AIProxyTests.openAISDKTalksToTheGateway):
  <base>/openai/v1/...     ai-proxy, provider openai    (mock answers with MOCK_OPENAI_TEXT)
  <base>/anthropic/v1/...  ai-proxy, provider anthropic (mock answers with MOCK_ANTHROPIC_TEXT)
Both mocks stream their text as two deltas when asked to stream.

Exits 0 when every check passed; otherwise prints what failed and exits 1.
"""

import sys

import openai

MOCK_OPENAI_TEXT = "Hello from the mock provider"
MOCK_ANTHROPIC_TEXT = "Bonjour from the mock Claude"

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)


def chat(client, label, model_field, expected_text):
    completion = client.chat.completions.create(
        model=model_field,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello"},
        ],
    )
    check(isinstance(completion, openai.types.chat.ChatCompletion), f"{label}: a ChatCompletion object")
    check(len(completion.choices) == 1, f"{label}: one choice, got {completion.choices!r}")
    message = completion.choices[0].message
    check(message.role == "assistant", f"{label}: role assistant, got {message.role!r}")
    check(message.content == expected_text, f"{label}: content {expected_text!r}, got {message.content!r}")
    check(completion.usage is not None and completion.usage.total_tokens > 0, f"{label}: usage reported, got {completion.usage!r}")


def streamed_chat(client, label, model_field, expected_text):
    stream = client.chat.completions.create(
        model=model_field,
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
    )
    text = ""
    chunks = 0
    for chunk in stream:
        chunks += 1
        check(chunk.object == "chat.completion.chunk", f"{label}: chunk object, got {chunk.object!r}")
        if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    check(chunks >= 2, f"{label}: several chunks, got {chunks}")
    check(text == expected_text, f"{label}: streamed text {expected_text!r}, got {text!r}")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    base = sys.argv[1].rstrip("/")
    # The gateway replaces the client's key with the configured one.
    gpt = openai.OpenAI(base_url=base + "/openai/v1", api_key="x", max_retries=0, timeout=20)
    claude = openai.OpenAI(base_url=base + "/anthropic/v1", api_key="x", max_retries=0, timeout=20)

    chat(gpt, "openai chat", "gpt-4o-mini", MOCK_OPENAI_TEXT)
    streamed_chat(gpt, "openai stream", "gpt-4o-mini", MOCK_OPENAI_TEXT)
    chat(claude, "anthropic chat", "claude-3-5-haiku", MOCK_ANTHROPIC_TEXT)
    streamed_chat(claude, "anthropic stream", "claude-3-5-haiku", MOCK_ANTHROPIC_TEXT)

    # A model other than the configured one: the gateway's 400 surfaces as the SDK's error.
    try:
        gpt.chat.completions.create(model="not-configured", messages=[{"role": "user", "content": "x"}])
        check(False, "own model: an error was expected")
    except openai.BadRequestError as error:
        check(error.status_code == 400, f"own model: status 400, got {error.status_code}")
        check("cannot use own model - must be: gpt-4o-mini" in str(error), f"own model: message, got {error}")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("openai SDK checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
