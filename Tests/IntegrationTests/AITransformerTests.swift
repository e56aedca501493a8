import AsyncHTTPClient
import Core
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// ai-request-transformer and ai-response-transformer (spec §3, §4) through a real gateway: the
/// mock provider serves both the LLM (under `/llm/…`) and the route's service (under `/svc/…`),
/// so every test sees exactly what each received.
@Suite(.serialized)
struct AITransformerTests {
    static let llmPath = "/llm/v1/chat/completions"

    /// A document with one service (at the mock, `/svc`) and one route `/t` carrying `plugins`
    /// (YAML flow mappings, no braces).
    static func document(_ plugins: [String], servicePath: String = "/svc") -> String {
        var text = "services:\n- name: backend\n  url: PROVIDER\(servicePath)\n  routes:\n"
        text += "  - name: t\n    paths: [\"/t\"]\n    plugins:\n"
        for plugin in plugins { text += "    - {\(plugin)}\n" }
        return text
    }

    /// The transformers' `llm` record for the OpenAI model the mock serves at `llmPath`.
    static func llm(logging: String = "{}", options: String = "", auth: String = "{header_name: Authorization, header_value: \"Bearer sk-llm\"}",
                    url: String = "PROVIDER\(llmPath)") -> String {
        let extra = options.isEmpty ? "" : ", " + options
        return "llm: {route_type: llm/v1/chat, auth: \(auth), logging: \(logging), "
            + "model: {provider: openai, name: gpt-4o-mini, options: {upstream_url: \"\(url)\"\(extra)}}}"
    }

    static func requestTransformer(prompt: String = "Uppercase it", more: String = "", llm: String = llm()) -> String {
        "name: ai-request-transformer, config: {prompt: \"\(prompt)\", \(llm)\(more.isEmpty ? "" : ", " + more)}"
    }

    static func responseTransformer(prompt: String = "Summarize it", more: String = "", llm: String = llm()) -> String {
        "name: ai-response-transformer, config: {prompt: \"\(prompt)\", \(llm)\(more.isEmpty ? "" : ", " + more)}"
    }

    /// The mock answers the LLM path with `llm` and every other path with `upstream`.
    static func script(_ h: AIHarness, llm: ProviderReply, upstream: ProviderReply = .json(#"{"from":"upstream"}"#)) {
        h.provider.answer { request in request.path == llmPath ? llm : upstream }
    }

    static func llmRequests(_ h: AIHarness) -> [ProviderRequest] { h.provider.requests.filter { $0.path == llmPath } }
    static func upstreamRequests(_ h: AIHarness) -> [ProviderRequest] { h.provider.requests.filter { $0.path != llmPath } }

    // MARK: ai-request-transformer

    @Test func requestTransformerSendsTheBodyToTheLLMAndTheAnswerUpstream() async throws {
        let h = try await AIHarness.start(Self.document([Self.requestTransformer()]))
        defer { Task { await h.stop() } }
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: "HELLO WORLD")))

        let response = try await h.gateway.send("/t/items?x=1", method: .POST,
                                                headers: [("Content-Type", "text/plain")], body: "hello world")
        #expect(response.status == 200)
        #expect(response.json?["from"] == "upstream")

        let llm = try #require(Self.llmRequests(h).first)
        #expect(llm.method == .POST)
        #expect(llm.headers.first(name: "authorization") == "Bearer sk-llm")
        #expect(llm.headers.first(name: "accept") == "application/json")
        #expect(llm.headers.first(name: "content-type") == "application/json")
        let sent = try #require(llm.json)
        #expect(sent["messages"] == [["role": "system", "content": "Uppercase it"], ["role": "user", "content": "hello world"]])
        #expect(sent["stream"] == false)
        #expect(sent["model"] == "gpt-4o-mini")

        let upstream = try #require(Self.upstreamRequests(h).first)
        #expect(upstream.bodyText == "HELLO WORLD", "the LLM's answer replaces the body")
        #expect(upstream.uri == "/svc/items?x=1")
        #expect(upstream.headers.first(name: "content-type") == "text/plain", "Content-Type stays the client's")
        #expect(upstream.headers.first(name: "content-length") == "11")
        #expect(upstream.headers.first(name: "authorization") == nil, "the LLM key never reaches the service")
    }

    @Test func extractPatternKeepsTheFirstMatchCaseInsensitively() async throws {
        let h = try await AIHarness.start(Self.document([
            Self.requestTransformer(more: #"transformation_extract_pattern: "\\{.*\\}""#)]))
        defer { Task { await h.stop() } }
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: "Sure! Here it is: {\"a\": 1} and {\"b\": 2}\nThanks")))
        let response = try await h.gateway.send("/t", method: .POST, body: "x")
        #expect(response.status == 200)
        #expect(Self.upstreamRequests(h).first?.bodyText == #"{"a": 1} and {"b": 2}"#, "greedy, within one line")

        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: "no braces here")))
        let refused = try await h.gateway.send("/t", method: .POST, body: "x")
        #expect(refused.status == 400)
        #expect(refused.json?["error"]?["message"] == "AI response did not match specified regular expression")
    }

    @Test func anInvalidExtractPatternFailsEachRequestWithTheRegexPrefix() async throws {
        let h = try await AIHarness.start(Self.document([Self.requestTransformer(more: #"transformation_extract_pattern: "[""#)]))
        defer { Task { await h.stop() } }
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: "anything")))
        let response = try await h.gateway.send("/t", method: .POST, body: "x")
        #expect(response.status == 400)
        #expect(response.json?["error"]?["message"]?.stringValue?.hasPrefix("failed regex matching ai response: ") == true)
        #expect(Self.upstreamRequests(h).isEmpty)
    }

    @Test func llmErrorsAnswer400WithKongsTexts() async throws {
        let h = try await AIHarness.start(Self.document([Self.requestTransformer()]))
        defer { Task { await h.stop() } }

        Self.script(h, llm: .json(#"{"error":"boom"}"#, status: 500))
        var response = try await h.gateway.send("/t", method: .POST, body: "x")
        #expect(response.status == 400)
        #expect(response.json?["error"]?["message"] == "failed to introspect request with AI service: status code 500")

        Self.script(h, llm: .json(#"{"id":"x","object":"chat.completion"}"#))
        response = try await h.gateway.send("/t", method: .POST, body: "x")
        #expect(response.status == 400)
        #expect(response.json?["error"]?["message"]
                == "failed to convert AI response to Kong format: transformation failed from type openai://llm/v1/chat: 'choices' not in llm/v1/chat response")

        Self.script(h, llm: .json(#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant"}}]}"#))
        response = try await h.gateway.send("/t", method: .POST, body: "x")
        #expect(response.status == 400)
        #expect(response.json?["error"]?["message"] == "no 'choices' in upstream AI service response")

        Self.script(h, llm: .json("this is not json"))
        response = try await h.gateway.send("/t", method: .POST, body: "x")
        #expect(response.status == 400)
        #expect(response.json?["error"]?["message"]?.stringValue?.hasPrefix("failed to convert AI response to") == true)
        #expect(Self.upstreamRequests(h).isEmpty, "nothing reaches the service after a failed transformation")
    }

    @Test func anUnreachableOrSlowLLMFailsWithTheTransportText() async throws {
        let deadURL = "http://127.0.0.1:1" + Self.llmPath  // nothing listens on port 1
        let h = try await AIHarness.start(Self.document([
            Self.requestTransformer(llm: Self.llm(url: deadURL)),
        ]))
        defer { Task { await h.stop() } }
        let response = try await h.gateway.send("/t", method: .POST, body: "x")
        #expect(response.status == 400)
        let message = response.json?["error"]?["message"]?.stringValue ?? ""
        #expect(message.hasPrefix("failed to introspect request with AI service: request to ai service failed: request failed: "), "\(message)")

        let slow = try await AIHarness.start(Self.document([Self.requestTransformer(more: "http_timeout: 200")]))
        defer { Task { await slow.stop() } }
        Self.script(slow, llm: ProviderReply(status: 200, headers: [("Content-Type", "application/json")],
                                             chunks: [.init(text: ProviderFixtures.openAIChat(content: "late"), pauseBefore: .seconds(2))]))
        let timedOut = try await slow.gateway.send("/t", method: .POST, body: "x")
        #expect(timedOut.status == 400)
        #expect(timedOut.json?["error"]?["message"] == "failed to introspect request with AI service: request to ai service failed: request failed: timeout")
    }

    @Test func aFailingCloudIdentityAnswersPlainText500() async throws {
        // Bedrock without any AWS keys (config or environment): the signature cannot be made.
        let bedrock = "llm: {route_type: llm/v1/chat, auth: {allow_override: false}, logging: {}, "
            + "model: {provider: bedrock, name: \"anthropic.claude-3-haiku\", options: {upstream_url: \"PROVIDER\(Self.llmPath)\", "
            + "bedrock: {aws_region: us-east-1}}}}"
        let h = try await AIHarness.start(Self.document(["name: ai-request-transformer, config: {prompt: p, \(bedrock)}"]))
        defer { Task { await h.stop() } }
        let response = try await h.gateway.send("/t", method: .POST, body: "x")
        #expect(response.status == 500)
        #expect(response.body == "LLM request failed before proxying")
        #expect(response.headers.first(name: "content-type")?.hasPrefix("text/plain") == true)
        #expect(h.provider.requests.isEmpty)
    }

    @Test func theLLMCallGoesThroughTheConfiguredForwardProxy() async throws {
        let proxy = try await ForwardProxy.start()
        defer { Task { await proxy.stop() } }
        let h = try await AIHarness.start(Self.document([
            Self.requestTransformer(more: "http_proxy_host: 127.0.0.1, http_proxy_port: \(proxy.port)"),
        ]))
        defer { Task { await h.stop() } }
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: "via proxy")))
        let response = try await h.gateway.send("/t", method: .POST, body: "x")
        #expect(response.status == 200)
        #expect(proxy.connectTargets == ["127.0.0.1:\(h.provider.port)"], "one tunnel to the LLM, through the proxy")
        #expect(Self.upstreamRequests(h).first?.bodyText == "via proxy")
    }

    @Test func httpsVerifyDecidesWhetherASelfSignedLLMIsAccepted() async throws {
        // The TLS mock answers with an echo (no `choices`): reaching it is what is checked.
        let tls = try await MockUpstream.start(tls: true)
        defer { Task { await tls.stop() } }
        let url = "https://127.0.0.1:\(tls.port)/v1/chat/completions"
        let verified = try await AIHarness.start(Self.document([Self.requestTransformer(llm: Self.llm(url: url))]))
        defer { Task { await verified.stop() } }
        let refused = try await verified.gateway.send("/t", method: .POST, body: "x")
        #expect(refused.status == 400)
        #expect(refused.json?["error"]?["message"]
                == "failed to introspect request with AI service: request to ai service failed: request failed: handshake failed: certificate verify failed",
                "certificate refused, in words without the TLS library's internals: \(refused.body)")

        let unverified = try await AIHarness.start(Self.document([
            Self.requestTransformer(more: "https_verify: false", llm: Self.llm(url: url)),
        ]))
        defer { Task { await unverified.stop() } }
        let reached = try await unverified.gateway.send("/t", method: .POST, body: "x")
        #expect(reached.status == 400)
        #expect(reached.json?["error"]?["message"]?.stringValue?.hasPrefix("failed to convert AI response to Kong format: ") == true,
                "the echo was read: \(reached.body)")
    }

    @Test func requestTransformerAnalyticsAreLoggedUnderItsOwnKey() async throws {
        let directory = try TemporaryDirectory.make("transformer-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("t.log").path
        let pluginID = "0c7a3a52-7d55-4c8e-9f0e-3f1b2d4c5e6f"
        let plugin = "name: ai-request-transformer, id: \(pluginID), config: {prompt: p, "
            + Self.llm(logging: "{log_statistics: true, log_payloads: true}", options: "input_cost: 10, output_cost: 10") + "}"
        let h = try await AIHarness.start(Self.document([plugin, "name: file-log, config: {path: \"\(logPath)\"}"]))
        defer { Task { await h.stop() } }
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: "NEW", model: "gpt-3.5-turbo-0613", prompt: 25, completion: 12)))
        let response = try await h.gateway.send("/t", method: .POST, body: "original")
        #expect(response.status == 200)

        let lines = try await AIProxyTests.logLines(logPath, atLeast: 1)
        let entry = try JSONValue.parse(try #require(lines.first))
        let logged = try #require(entry["ai"]?["ai-request-transformer"])
        #expect(logged["meta"]?["plugin_id"] == .string(pluginID))
        #expect(logged["meta"]?["provider_name"] == "openai")
        #expect(logged["meta"]?["request_model"] == "UNSPECIFIED", "no ai-proxy ran before it")
        #expect(logged["meta"]?["response_model"] == "gpt-3.5-turbo-0613")
        #expect((logged["meta"]?["llm_latency"]?.numberValue ?? -1) >= 0)
        #expect(logged["usage"]?["prompt_tokens"] == 25)
        #expect(logged["usage"]?["completion_tokens"] == 12)
        #expect(logged["usage"]?["total_tokens"] == 37)
        let cost = try #require(logged["usage"]?["cost"]?.numberValue)
        #expect(abs(cost - 0.00037) < 1e-12)
        #expect(logged["cache"] == .object([:]))
        #expect(logged["payload"]?["request"] == "original")
        #expect(logged["payload"]?["response"]?.stringValue.flatMap { try? JSONValue.parse($0) }?["choices"]?[0]?["message"]?["content"] == "NEW")
        #expect(entry["ai"]?["proxy"] == nil)
        #expect(entry["request"]?["headers"]?["authorization"] == nil)
        #expect(!lines[0].contains("sk-llm"), "the LLM key is not logged")
    }

    @Test func requestTransformerInFrontOfAIProxyHandsItTheRewrittenBody() async throws {
        let chat = #"{\"messages\":[{\"role\":\"user\",\"content\":\"rewritten by the LLM\"}]}"#
        let yaml = Self.document([
            Self.requestTransformer(prompt: "Turn it into a chat request"),
            "name: ai-proxy, config: {route_type: llm/v1/chat, logging: {}, "
                + "model: {provider: openai, name: gpt-4o, options: {upstream_url: \"PROVIDER/proxy/v1/chat/completions\"}}}",
        ])
        let h = try await AIHarness.start(yaml)
        defer { Task { await h.stop() } }
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: chat.replacingOccurrences(of: "\\\"", with: "\""))),
                    upstream: .json(ProviderFixtures.openAIChat(content: "final answer", model: "gpt-4o")))
        let response = try await h.gateway.send("/t", method: .POST, headers: [("Content-Type", "application/json")],
                                                body: #"{"note":"free text the client sent"}"#)
        #expect(response.status == 200)
        #expect(response.json?["choices"]?[0]?["message"]?["content"] == "final answer")
        let proxied = try #require(h.provider.requests.first { $0.path == "/proxy/v1/chat/completions" })
        #expect(proxied.json?["messages"] == [["role": "user", "content": "rewritten by the LLM"]])
        #expect(proxied.json?["model"] == "gpt-4o")
        #expect(Self.llmRequests(h).first?.json?["messages"]?[1]?["content"] == #"{"note":"free text the client sent"}"#)
    }

    @Test func aGeminiLLMIsConvertedAndCountedLikeKongs() async throws {
        // Kong's own test values: costs 20/20, usage 2/11/13, cost 0.00026, response_model the
        // configured name.
        let directory = try TemporaryDirectory.make("gemini-transformer-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("t.log").path
        let gemini = "llm: {route_type: llm/v1/chat, auth: {header_name: x-goog-api-key, header_value: g-key}, "
            + "logging: {log_statistics: true}, model: {provider: gemini, name: gemini-1.5-flash, "
            + "options: {upstream_url: \"PROVIDER/gemini/generate\", input_cost: 20, output_cost: 20}}}"
        let h = try await AIHarness.start(Self.document([
            "name: ai-request-transformer, config: {prompt: \"Fix the grammar\", \(gemini)}",
            "name: file-log, config: {path: \"\(logPath)\"}",
        ]))
        defer { Task { await h.stop() } }
        @Sendable func answer(finish: String, text: String) -> ProviderReply {
            .json(#"{"candidates":[{"content":{"parts":[{"text":\#(ProviderFixtures.quoted(text))}],"role":"model"},"finishReason":"\#(finish)","index":0}],"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":11,"totalTokenCount":13}}"#)
        }
        h.provider.answer { request in
            request.path == "/gemini/generate" ? answer(finish: "STOP", text: "It is fixed.") : .json(#"{"from":"upstream"}"#)
        }
        let response = try await h.gateway.send("/t", method: .POST, body: "it fixed is")
        #expect(response.status == 200)
        let call = try #require(h.provider.requests.first { $0.path == "/gemini/generate" })
        #expect(call.headers.first(name: "x-goog-api-key") == "g-key")
        #expect(call.json?["contents"]?[0]?["parts"]?[0]?["text"] == "it fixed is", "Gemini's own request shape")
        #expect(h.provider.requests.first { $0.path == "/svc" }?.bodyText == "It is fixed.")

        let entry = try JSONValue.parse(try #require(try await AIProxyTests.logLines(logPath, atLeast: 1).first))
        let logged = try #require(entry["ai"]?["ai-request-transformer"])
        #expect(logged["usage"]?["prompt_tokens"] == 2)
        #expect(logged["usage"]?["completion_tokens"] == 11)
        #expect(logged["usage"]?["total_tokens"] == 13)
        #expect(abs((logged["usage"]?["cost"]?.numberValue ?? 0) - 0.00026) < 1e-12)
        #expect(logged["meta"]?["response_model"] == "gemini-1.5-flash")
        #expect(logged["meta"]?["provider_name"] == "gemini")

        h.provider.answer { request in
            request.path == "/gemini/generate" ? answer(finish: "SAFETY", text: "") : .json(#"{"from":"upstream"}"#)
        }
        let unsafe = try await h.gateway.send("/t", method: .POST, body: "something unsafe")
        #expect(unsafe.status == 400)
        let safety = "failed to convert AI response to Kong format: transformation failed from type "
            + "gemini://llm/v1/chat: transformation generation candidate breached Gemini content safety"
        #expect(unsafe.json?["error"]?["message"]?.stringValue == safety)
    }

    @Test func anHTTPSLLMIsReachedThroughTheHTTPSProxy() async throws {
        let proxy = try await ForwardProxy.start()
        defer { Task { await proxy.stop() } }
        let tls = try await MockUpstream.start(tls: true)
        defer { Task { await tls.stop() } }
        let url = "https://127.0.0.1:\(tls.port)/v1/chat/completions"
        // The plain-HTTP proxy setting must not be used for an https URL.
        let h = try await AIHarness.start(Self.document([
            Self.requestTransformer(more: "https_verify: false, https_proxy_host: 127.0.0.1, https_proxy_port: \(proxy.port), "
                                    + "http_proxy_host: 127.0.0.1, http_proxy_port: 9", llm: Self.llm(url: url)),
        ]))
        defer { Task { await h.stop() } }
        let response = try await h.gateway.send("/t", method: .POST, body: "x")
        // The TLS mock echoes (no `choices`): reaching it through the tunnel is what counts.
        #expect(response.json?["error"]?["message"]?.stringValue?.hasPrefix("failed to convert AI response to Kong format: ") == true,
                "\(response.body)")
        #expect(proxy.connectTargets == ["127.0.0.1:\(tls.port)"])
    }

    @Test func aBedrockModelWithoutSystemRoleGetsThePromptAsAConversation() async throws {
        let bedrock = "llm: {route_type: llm/v1/chat, auth: {aws_access_key_id: AKIDEXAMPLE, "
            + "aws_secret_access_key: wJalrXUtnFEMI, allow_override: false}, logging: {}, "
            + "model: {provider: bedrock, name: amazon.titan-text-express-v1, "
            + "options: {upstream_url: \"PROVIDER/bedrock\", bedrock: {aws_region: eu-west-1}}}}"
        let h = try await AIHarness.start(Self.document(["name: ai-request-transformer, config: {prompt: \"Be terse\", \(bedrock)}"]))
        defer { Task { await h.stop() } }
        h.provider.answer { request in
            request.path == "/bedrock"
                ? .json(#"{"output":{"message":{"role":"assistant","content":[{"text":"terse"}]}},"stopReason":"end_turn","usage":{"inputTokens":5,"outputTokens":2,"totalTokens":7}}"#)
                : .json(#"{"from":"upstream"}"#)
        }
        let response = try await h.gateway.send("/t", method: .POST, body: "a long text")
        #expect(response.status == 200, "\(response.body)")
        let call = try #require(h.provider.requests.first { $0.path == "/bedrock" })
        #expect(call.json?["messages"] == [
            ["role": "user", "content": [["text": "Be terse"]]],
            ["role": "assistant", "content": [["text": "What is the message?"]]],
            ["role": "user", "content": [["text": "a long text"]]],
        ])
        #expect(call.json?["system"] == nil)
        let authorization = call.headers.first(name: "authorization") ?? ""
        #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "signed with SigV4")
        #expect(authorization.contains("/eu-west-1/bedrock/aws4_request"))
        #expect(h.provider.requests.first { $0.path == "/svc" }?.bodyText == "terse")
    }

    // MARK: ai-response-transformer

    @Test func responseTransformerCallsTheUpstreamItselfAndAnswersWithTheLLMText() async throws {
        let h = try await AIHarness.start(Self.document([Self.responseTransformer()]))
        defer { Task { await h.stop() } }
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: "<summary/>")),
                    upstream: .json(#"{"long":"document"}"#, status: 201, headers: [("X-Upstream", "yes")]))
        let response = try await h.gateway.send("/t/doc?q=1", method: .PUT,
                                                headers: [("Content-Type", "application/json"), ("X-Client", "c")],
                                                body: #"{"in":1}"#)
        #expect(response.status == 201, "the upstream's status")
        #expect(response.body == "<summary/>")
        #expect(response.headers.first(name: "x-upstream") == "yes", "the upstream's headers")
        #expect(response.headers.first(name: "content-type") == "application/json")
        #expect(response.headers.first(name: "content-length") == "10")

        let upstream = try #require(Self.upstreamRequests(h).first)
        #expect(upstream.method == .PUT)
        #expect(upstream.uri == "/svc/doc?q=1")
        #expect(upstream.headers.first(name: "x-client") == "c")
        #expect(upstream.bodyText == #"{"in":1}"#)
        #expect(Self.upstreamRequests(h).count == 1, "the gateway does not proxy a second time")
        #expect(Self.llmRequests(h).first?.json?["messages"]?[1]?["content"] == #"{"long":"document"}"#)
        #expect(Self.llmRequests(h).first?.json?["messages"]?[0]?["content"] == "Summarize it")
    }

    @Test func responseTransformerInflatesAGzipUpstreamBeforeTheLLMReadsIt() async throws {
        let h = try await AIHarness.start(Self.document([Self.responseTransformer()]))
        defer { Task { await h.stop() } }
        let zipped = try Gzip.compress(#"{"zipped":true}"#)
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: "plain")),
                    upstream: ProviderReply(status: 200, headers: [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
                                            chunks: [.init(bytes: zipped)]))
        let response = try await h.gateway.send("/t", method: .GET)
        #expect(response.status == 200)
        #expect(response.body == "plain")
        #expect(response.headers.first(name: "content-encoding") == nil)
        #expect(Self.llmRequests(h).first?.json?["messages"]?[1]?["content"] == #"{"zipped":true}"#)
    }

    @Test func jsonInstructionsSetStatusHeadersAndBody() async throws {
        let h = try await AIHarness.start(Self.document([
            Self.responseTransformer(more: "parse_llm_response_json_instructions: true"),
        ]))
        defer { Task { await h.stop() } }
        // A raw newline inside the body string: LLM output Kong's decoder accepts.
        let instructions = "{\"status\":209,\"headers\":{\"content-type\":\"application/xml\"},\"body\":\"<persons>\n</persons>\"}"
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: instructions)),
                    upstream: .json(#"{"persons":[]}"#, headers: [("X-Kept", "1")]))
        let response = try await h.gateway.send("/t", method: .GET)
        #expect(response.status == 209)
        #expect(response.headers.first(name: "content-type") == "application/xml")
        #expect(response.headers.first(name: "x-kept") == "1")
        #expect(response.body == "<persons>\n</persons>")

        // No `body`: the whole instruction object; a non-string body is JSON-encoded; no status: 200.
        // An upstream answer without a type: a JSON-encoded body is typed as Kong's response.exit types it.
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: #"{"body":{"a":1}}"#)),
                    upstream: ProviderReply(status: 200, chunks: [.init(text: "untyped")]))
        let encoded = try await h.gateway.send("/t", method: .GET)
        #expect(encoded.status == 200)
        #expect(encoded.json == ["a": 1])
        #expect(encoded.headers.first(name: "content-type") == "application/json; charset=utf-8")
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: #"{"status":202}"#)))
        let whole = try await h.gateway.send("/t", method: .GET)
        #expect(whole.status == 202)
        #expect(whole.json == ["status": 202])
    }

    @Test func instructionsCannotBreakTheResponseFraming() async throws {
        let h = try await AIHarness.start(Self.document([
            Self.responseTransformer(more: "parse_llm_response_json_instructions: true"),
        ]))
        defer { Task { await h.stop() } }
        let instructions = #"{"status":201,"headers":{"Transfer-Encoding":"chunked","X-Bad":"a\r\nb","X-Good":"1"},"body":"made"}"#
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: instructions)),
                    upstream: .json(#"{"a":1}"#, headers: [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]))
        let response = try await h.gateway.send("/t", method: .GET)
        #expect(response.status == 201)
        #expect(response.body == "made")
        #expect(response.headers.first(name: "x-good") == "1")
        #expect(response.headers.first(name: "x-bad") == nil, "a value with CR/LF is not sent")
        #expect(response.headers.first(name: "transfer-encoding") == nil)
        #expect(response.headers.first(name: "content-length") == "4")
        #expect(response.headers[canonicalForm: "set-cookie"].map(String.init) == ["a=1", "b=2"], "every Set-Cookie relayed")

        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: #"{"status":42,"body":"x"}"#)))
        let invalid = try await h.gateway.send("/t", method: .GET)
        #expect(invalid.status == 500, "no such HTTP status")
        #expect(invalid.json?["message"] == "An unexpected error occurred")
    }

    @Test func unparsableInstructionsAnswer500() async throws {
        let h = try await AIHarness.start(Self.document([
            Self.responseTransformer(more: "parse_llm_response_json_instructions: true"),
        ]))
        defer { Task { await h.stop() } }
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: "Sure! {\"status\":200}")))
        let prose = try await h.gateway.send("/t", method: .GET)
        #expect(prose.status == 500)
        #expect(prose.json?["error"]?["message"]
                == "failed to parse JSON response instructions from AI backend: Expected value but found invalid token at character 1")
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: "[1, 2]")))
        let list = try await h.gateway.send("/t", method: .GET)
        #expect(list.status == 500)
        #expect(list.json?["error"]?["message"] == "failed to parse JSON response instructions from AI backend: input not table or string")
    }

    /// The response transformer's analytics log the client's body as `payload.request` (§3.4:
    /// the raw client input), not the upstream answer it transformed; `total_tokens` appears only
    /// when the LLM's answer has it.
    @Test func responseTransformerLogsTheClientsBody() async throws {
        let directory = try TemporaryDirectory.make("transformer-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("r.log").path
        let h = try await AIHarness.start(Self.document([
            Self.responseTransformer(llm: Self.llm(logging: "{log_statistics: true, log_payloads: true}")),
            "name: file-log, config: {path: \"\(logPath)\"}",
        ]))
        defer { Task { await h.stop() } }
        let answer = #"{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"short"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2}}"#
        Self.script(h, llm: .json(answer), upstream: .json(#"{"from":"upstream"}"#))
        let response = try await h.gateway.send("/t", method: .POST, body: #"{"persons":[1]}"#)
        #expect(response.status == 200)
        #expect(response.body == "short")

        let lines = try await AIProxyTests.logLines(logPath, atLeast: 1)
        let line = try #require(lines.first)
        let logged = try #require(try JSONValue.parse(line)["ai"]?["ai-response-transformer"])
        #expect(logged["payload"]?["request"] == #"{"persons":[1]}"#)
        #expect(logged["usage"]?["prompt_tokens"] == 9)
        #expect(logged["usage"]?["total_tokens"] == nil, "not computed: the answer has none")
        #expect(Self.llmRequests(h).first?.json?["messages"]?[1]?["content"] == #"{"from":"upstream"}"#,
                "the LLM still transforms the upstream's answer")
    }

    /// A client body over `max_request_body_size` (and the 8 KiB kept in memory) gets the request
    /// transformer's 400, which names the limit (docs/decisions.md); nothing is called.
    @Test func responseTransformerRefusesABodyOverTheLimit() async throws {
        let h = try await AIHarness.start(Self.document([Self.responseTransformer()]))
        defer { Task { await h.stop() } }
        let response = try await h.gateway.send("/t", method: .POST, body: String(repeating: "x", count: 9000))
        #expect(response.status == 400)
        #expect(response.json?["error"]?["message"] == "request body is larger than max_request_body_size (8192 bytes)")
        #expect(h.provider.requests.isEmpty)
    }

    /// A TLS upstream whose certificate is refused is a connect failure (lua-resty-http's
    /// `connect` does the handshake), told without the TLS library's internals.
    @Test func aRefusedUpstreamCertificateIsAConnectFailure() async throws {
        let tls = try await MockUpstream.start(tls: true)
        defer { Task { await tls.stop() } }
        let h = try await AIHarness.start(Self.document([Self.responseTransformer()])
            .replacingOccurrences(of: "url: PROVIDER/svc", with: "url: https://127.0.0.1:\(tls.port)/svc"))
        defer { Task { await h.stop() } }
        let response = try await h.gateway.send("/t", method: .GET)
        #expect(response.status == 500)
        #expect(response.json?["error"]?["message"] == "failed to connect to upstream: handshake failed: certificate verify failed",
                "\(response.body)")
        #expect(!response.body.contains(".build"), "no build paths")
    }

    @Test func anUnreachableUpstreamAnswers500FailedToConnect() async throws {
        // Port 1: nothing listens there. (A port freed by a stopped mock could be handed to the
        // next server started, such as this harness's own provider mock: seen once on CI.)
        let h = try await AIHarness.start(Self.document([Self.responseTransformer()])
            .replacingOccurrences(of: "url: PROVIDER/svc", with: "url: http://127.0.0.1:1/svc"))
        defer { Task { await h.stop() } }
        let response = try await h.gateway.send("/t", method: .GET)
        #expect(response.status == 500)
        #expect(response.json?["error"]?["message"]?.stringValue?.hasPrefix("failed to connect to upstream: ") == true)
        #expect(Self.llmRequests(h).isEmpty)
    }

    @Test func anUpstreamThatDropsTheRequestAnswers500SubrequestFailed() async throws {
        // The harness's service mock closes `/drop…` connections without answering.
        let h = try await AIHarness.start(Self.document([Self.responseTransformer()])
            .replacingOccurrences(of: "url: PROVIDER/svc", with: "url: UPSTREAM/drop"))
        defer { Task { await h.stop() } }
        let response = try await h.gateway.send("/t", method: .GET)
        #expect(response.status == 500)
        #expect(response.json?["error"]?["message"]?.stringValue?.hasPrefix("subrequest failed: ") == true, "\(response.body)")
        #expect(Self.llmRequests(h).isEmpty)
    }

    @Test func responseTransformerBehindAIProxyTransformsTheConvertedAnswer() async throws {
        let pluginID = "9d0b7c1e-2a3f-4b5c-8d6e-7f8091a2b3c4"
        let directory = try TemporaryDirectory.make("response-transformer-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("t.log").path
        let yaml = Self.document([
            "name: ai-proxy, config: {route_type: llm/v1/chat, logging: {}, "
                + "model: {provider: openai, name: gpt-4o, options: {upstream_url: \"PROVIDER/proxy/v1/chat/completions\"}}}",
            "name: ai-response-transformer, id: \(pluginID), config: {prompt: \"Translate\", "
                + Self.llm(logging: "{log_statistics: true, log_payloads: false}") + "}",
            "name: file-log, config: {path: \"\(logPath)\"}",
        ])
        let h = try await AIHarness.start(yaml)
        defer { Task { await h.stop() } }
        Self.script(h, llm: .json(ProviderFixtures.openAIChat(content: "bonjour")),
                    upstream: .json(ProviderFixtures.openAIChat(content: "hello", model: "gpt-4o")))
        let response = try await h.gateway.send("/t", method: .POST, headers: [("Content-Type", "application/json")],
                                                body: #"{"messages":[{"role":"user","content":"hi"}]}"#)
        #expect(response.status == 200)
        #expect(response.body == "bonjour")
        let proxied = try #require(h.provider.requests.first { $0.path == "/proxy/v1/chat/completions" })
        #expect(proxied.json?["model"] == "gpt-4o", "the request ai-proxy converted is what the transformer sent")
        #expect(Self.llmRequests(h).first?.json?["messages"]?[1]?["content"]?.stringValue?.contains("hello") == true)

        let entry = try JSONValue.parse(try #require(try await AIProxyTests.logLines(logPath, atLeast: 1).first))
        let meta = try #require(entry["ai"]?["ai-response-transformer"]?["meta"])
        #expect(meta["request_model"] == "gpt-4o", "ai-proxy's model")
        #expect(entry["ai"]?["ai-response-transformer"]?["payload"] == nil)
    }
}
