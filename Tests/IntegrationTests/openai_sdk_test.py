"""The official OpenAI Python SDK against a running Silverback gateway.

Usage: python3 openai_sdk_test.py <gateway base url, e.g. http://127.0.0.1:8000>

The gateway must route, each with ai-proxy in front of a mock provider (see
OpenAISDKTests.swift, whose mock answers with the texts, token counts and vectors below):

  <base>/openai/v1/...              chat, provider openai
  <base>/azure/v1/...               chat, provider azure
  <base>/mistral/v1/...             chat, provider mistral (mistral_format openai)
  <base>/anthropic/v1/...           chat, provider anthropic
  <base>/gemini/v1/...              chat, provider gemini (generateContent)
  <base>/gemini-stream/v1/...       chat, provider gemini (streamGenerateContent)
  <base>/bedrock/v1/...             chat, provider bedrock (converse)
  <base>/bedrock-stream/v1/...      chat, provider bedrock (converse-stream)
  <base>/openai-completions/v1/...  llm/v1/completions, provider openai
  <base>/openai-embeddings/v1/...   llm/v1/embeddings, provider openai
  <base>/gemini-embeddings/v1/...   llm/v1/embeddings, provider gemini
  <base>/bedrock-embeddings/v1/...  llm/v1/embeddings, provider bedrock (Amazon Titan)

Gemini and Bedrock have a second chat route for streams: with `upstream_url` the gateway sends
every request to that URL's path, and their stream operation is a different path.

Every SDK call is checked on its own: a failing call is reported and the next one still runs.
Exits 0 when every check passed; otherwise prints what failed and exits 1.
"""

import json
import sys
from dataclasses import dataclass, field

import openai
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk


@dataclass
class Provider:
    name: str
    chat_path: str
    stream_path: str
    model: str
    # The mock's answer, whole and (split in two deltas) streamed.
    text: str
    # (prompt, completion) of the mock's non-stream answer.
    usage: tuple
    # The stream's usage: prompt tokens, and the completion counts accepted.
    stream_prompt_tokens: int
    stream_completion_tokens: set
    # The tool call's id, for providers that give one.
    tool_call_id: str = None
    # Chunk `object` values accepted in streams.
    chunk_objects: set = field(default_factory=lambda: {"chat.completion.chunk"})


PROVIDERS = [
    # OpenAI-compatible streams are forwarded verbatim: the mock sends the usage chunk itself
    # when the request carries stream_options.include_usage.
    Provider("openai", "/openai", "/openai", "gpt-4o-mini", "Hello from the mock provider",
             (25, 12), 9, {4}, "call_mock_add"),
    Provider("azure", "/azure", "/azure", "gpt-4o", "Hello from the mock Azure deployment",
             (25, 12), 9, {4}, "call_mock_add"),
    Provider("mistral", "/mistral", "/mistral", "mistral-small-latest", "Bonjour from the mock Mistral",
             (25, 12), 9, {4}, "call_mock_add"),
    # Converted streams: the gateway must build the usage chunk from the provider's counts.
    # Anthropic: message_start says input 9 / output 1, message_delta output 5; the gateway adds
    # them as Kong's analytics do (6), and the usage chunk reports what the analytics count.
    Provider("anthropic", "/anthropic", "/anthropic", "claude-3-5-haiku", "Bonjour from the mock Claude",
             (11, 7), 9, {6}, "toolu_mock_add"),
    # Gemini: usageMetadata is cumulative, the last one says 4 / 6. Spec §2.8: Kong's Gemini
    # chunks carry no `object` (the SDK reads it as None); Gemini tool calls have no id.
    Provider("gemini", "/gemini", "/gemini-stream", "gemini-1.5-flash", "Hola from the mock Gemini",
             (5, 7), 4, {6}, None, {"chat.completion.chunk", None}),
    # Bedrock: the metadata event says 8 / 5.
    Provider("bedrock", "/bedrock", "/bedrock-stream", "anthropic.claude-3-haiku-20240307-v1:0",
             "Hallo from the mock Bedrock", (10, 6), 8, {5}, "tooluse_mock_add"),
]

COMPLETIONS_PATH = "/openai-completions"
COMPLETIONS_MODEL = "gpt-3.5-turbo-instruct"
COMPLETIONS_TEXT = "This is indeed a test"
COMPLETIONS_USAGE = (5, 6)

# The mock answers input i with EMBEDDING_VECTORS[i] (exact in float32, so base64 round-trips).
EMBEDDING_VECTORS = [[0.25, -0.5, 0.125, 1.0], [0.0625, 2.0, -0.75, 0.5]]
EMBEDDING_INPUTS = ["The food was delicious", "and the waiter was kind"]
# (route, model, inputs sent, prompt tokens the answer reports)
EMBEDDINGS = [
    ("/openai-embeddings", "text-embedding-3-small", EMBEDDING_INPUTS, 8),
    # Gemini's batchEmbedContents reports no token counts.
    ("/gemini-embeddings", "text-embedding-004", EMBEDDING_INPUTS, 0),
    # Amazon Titan embeds one text per request.
    ("/bedrock-embeddings", "amazon.titan-embed-text-v2:0", EMBEDDING_INPUTS[:1], 4),
]

TOOLS = [{
    "type": "function",
    "function": {
        "name": "add",
        "description": "Adds two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}]
TOOL_ARGUMENTS = {"a": 2, "b": 3}

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)


def attempt(label, action):
    """Runs one SDK call's checks; an exception fails that call only."""
    try:
        action()
    except Exception as error:  # noqa: BLE001 - every SDK error is a failed check here
        check(False, f"{label}: {type(error).__name__}: {error}")


def client(base, path):
    # The gateway replaces the client's key with the configured one.
    return openai.OpenAI(base_url=base + path + "/v1", api_key="x", max_retries=0, timeout=20)


# MARK: Chat


def chat(gateway, provider):
    label = f"{provider.name} chat"
    completion = gateway.chat.completions.create(
        model=provider.model,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello"},
        ],
    )
    check(isinstance(completion, ChatCompletion), f"{label}: a ChatCompletion object, got {type(completion)}")
    check(len(completion.choices) == 1, f"{label}: one choice, got {completion.choices!r}")
    message = completion.choices[0].message
    check(message.role == "assistant", f"{label}: role assistant, got {message.role!r}")
    check(message.content == provider.text, f"{label}: content {provider.text!r}, got {message.content!r}")
    usage = completion.usage
    prompt, answer = provider.usage
    check(usage is not None, f"{label}: usage reported")
    if usage is not None:
        check((usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (prompt, answer, prompt + answer),
              f"{label}: usage {prompt}/{answer}/{prompt + answer}, got {usage!r}")


def streamed_chat(gateway, provider, include_usage):
    label = f"{provider.name} stream" + (" with include_usage" if include_usage else "")
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = gateway.chat.completions.create(
        model=provider.model,
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        **options,
    )
    chunks = []
    text = ""
    for chunk in stream:
        chunks.append(chunk)
        check(isinstance(chunk, ChatCompletionChunk), f"{label}: a ChatCompletionChunk, got {type(chunk)}")
        check(chunk.object in provider.chunk_objects, f"{label}: chunk object, got {chunk.object!r}")
        if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    with_text = [c for c in chunks if c.choices and c.choices[0].delta and c.choices[0].delta.content]
    check(len(with_text) >= 2, f"{label}: the text in several chunks, got {len(with_text)} of {len(chunks)}")
    check(text == provider.text, f"{label}: streamed text {provider.text!r}, got {text!r}")

    if not include_usage:
        check(all(c.usage is None for c in chunks), f"{label}: no usage chunk unless asked, got "
              f"{[c.usage for c in chunks if c.usage is not None]!r}")
        return
    # OpenAI: with include_usage one more chunk comes before [DONE], with empty `choices` and
    # the whole request's usage; every other chunk has none.
    check(len(chunks) > 0 and chunks[-1].usage is not None,
          f"{label}: the final chunk carries usage, got {chunks[-1] if chunks else None!r}")
    check(all(c.usage is None for c in chunks[:-1]), f"{label}: only the final chunk carries usage")
    if chunks and chunks[-1].usage is not None:
        final = chunks[-1]
        usage = final.usage
        check(final.choices == [], f"{label}: the usage chunk has empty choices, got {final.choices!r}")
        check(usage.prompt_tokens == provider.stream_prompt_tokens,
              f"{label}: prompt_tokens {provider.stream_prompt_tokens}, got {usage.prompt_tokens}")
        check(usage.completion_tokens in provider.stream_completion_tokens,
              f"{label}: completion_tokens in {sorted(provider.stream_completion_tokens)}, got {usage.completion_tokens}")
        check(usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
              f"{label}: total_tokens = prompt + completion, got {usage!r}")


def tool_call(gateway, provider):
    label = f"{provider.name} tool call"
    completion = gateway.chat.completions.create(
        model=provider.model,
        messages=[{"role": "user", "content": "What is 2 + 3?"}],
        tools=TOOLS,
    )
    check(isinstance(completion, ChatCompletion), f"{label}: a ChatCompletion object, got {type(completion)}")
    check(len(completion.choices) == 1, f"{label}: one choice, got {completion.choices!r}")
    calls = completion.choices[0].message.tool_calls if completion.choices else None
    check(bool(calls), f"{label}: tool_calls, got {completion.choices!r}")
    if not calls:
        return
    call = calls[0]
    check(call.function.name == "add", f"{label}: function name 'add', got {call.function.name!r}")
    try:
        arguments = json.loads(call.function.arguments)
    except (TypeError, ValueError):
        arguments = None
        check(False, f"{label}: arguments are JSON, got {call.function.arguments!r}")
    if arguments is not None:
        check(arguments == TOOL_ARGUMENTS, f"{label}: arguments {TOOL_ARGUMENTS}, got {arguments!r}")
    if provider.tool_call_id is not None:
        check(call.id == provider.tool_call_id, f"{label}: id {provider.tool_call_id!r}, got {call.id!r}")
        check(call.type == "function", f"{label}: type 'function', got {call.type!r}")


# MARK: Completions and embeddings


def completions(gateway):
    label = "openai completions"
    completion = gateway.completions.create(model=COMPLETIONS_MODEL, prompt="Say this is a test")
    check(isinstance(completion, Completion), f"{label}: a Completion object, got {type(completion)}")
    check(completion.object == "text_completion", f"{label}: object text_completion, got {completion.object!r}")
    check(len(completion.choices) == 1, f"{label}: one choice, got {completion.choices!r}")
    if completion.choices:
        check(completion.choices[0].text == COMPLETIONS_TEXT,
              f"{label}: text {COMPLETIONS_TEXT!r}, got {completion.choices[0].text!r}")
    prompt, answer = COMPLETIONS_USAGE
    check(completion.usage is not None and (completion.usage.prompt_tokens, completion.usage.completion_tokens,
                                            completion.usage.total_tokens) == (prompt, answer, prompt + answer),
          f"{label}: usage {prompt}/{answer}/{prompt + answer}, got {completion.usage!r}")


def embeddings(gateway, name, model, inputs, prompt_tokens, encoding_format):
    label = f"{name} embeddings ({encoding_format or 'SDK default: base64'})"
    expected = EMBEDDING_VECTORS[:len(inputs)]
    options = {"encoding_format": encoding_format} if encoding_format else {}
    raw = gateway.embeddings.with_raw_response.create(model=model, input=inputs, **options)
    wire = json.loads(raw.text)
    result = raw.parse()
    # What the gateway sent: base64 strings when the SDK asked for them (its default), else arrays.
    wire_type = str if encoding_format is None else list
    items = wire.get("data") if isinstance(wire, dict) else None
    check(isinstance(items, list) and all(isinstance(item.get("embedding"), wire_type) for item in items),
          f"{label}: embeddings sent as {wire_type.__name__}, got {raw.text[:200]!r}")
    check(isinstance(result, CreateEmbeddingResponse), f"{label}: a CreateEmbeddingResponse, got {type(result)}")
    check(result.object == "list", f"{label}: object list, got {result.object!r}")
    check([item.object for item in result.data] == ["embedding"] * len(inputs),
          f"{label}: one embedding object per input, got {[item.object for item in result.data]!r}")
    check([item.index for item in result.data] == list(range(len(inputs))),
          f"{label}: indexes 0..{len(inputs) - 1}, got {[item.index for item in result.data]!r}")
    vectors = [list(item.embedding) for item in result.data]
    check(vectors == expected, f"{label}: vectors {expected}, got {vectors!r}")
    check(result.usage is not None and result.usage.prompt_tokens == prompt_tokens,
          f"{label}: prompt_tokens {prompt_tokens}, got {result.usage!r}")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    base = sys.argv[1].rstrip("/")

    # The order of the calls is the order OpenAISDKTests expects them at the provider.
    for provider in PROVIDERS:
        gateway = client(base, provider.chat_path)
        streams = client(base, provider.stream_path)
        attempt(f"{provider.name} chat", lambda: chat(gateway, provider))
        attempt(f"{provider.name} stream", lambda: streamed_chat(streams, provider, include_usage=False))
        attempt(f"{provider.name} stream with include_usage", lambda: streamed_chat(streams, provider, include_usage=True))
        attempt(f"{provider.name} tool call", lambda: tool_call(gateway, provider))

    attempt("openai completions", lambda: completions(client(base, COMPLETIONS_PATH)))

    for path, model, inputs, tokens in EMBEDDINGS:
        name = path.strip("/").split("-")[0]
        for encoding_format in (None, "float"):
            attempt(f"{name} embeddings ({encoding_format or 'base64'})",
                    lambda: embeddings(client(base, path), name, model, inputs, tokens, encoding_format))

    # A model other than the configured one: the gateway's 400 surfaces as the SDK's error.
    def own_model():
        try:
            client(base, "/openai").chat.completions.create(model="not-configured",
                                                            messages=[{"role": "user", "content": "x"}])
            check(False, "own model: an error was expected")
        except openai.BadRequestError as error:
            check(error.status_code == 400, f"own model: status 400, got {error.status_code}")
            check("cannot use own model - must be: gpt-4o-mini" in str(error), f"own model: message, got {error}")

    attempt("own model", own_model)

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("openai SDK checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
