import AsyncHTTPClient
import CompressNIO
import Core
import Foundation
import NIOCore
import NIOHTTP1
import Plugins
import Testing

/// A gateway (`ProxyHarness`: every bundled plugin) and a mock LLM provider. The YAML may say
/// `PROVIDER` for the provider's `http://127.0.0.1:<port>` and `UPSTREAM` for the service mock
/// (which ai-proxy routes must never reach).
struct AIHarness {
    let gateway: ProxyHarness
    let provider: MockLLMProvider

    /// `environment` (given the provider) is laid over the process's for the gateway's plugins.
    static func start(_ yaml: String, options: ProxyOptions = ProxyOptions(),
                      environment: (MockLLMProvider) -> [String: String] = { _ in [:] }) async throws -> AIHarness {
        let provider = try await MockLLMProvider.start()
        do {
            let gateway = try await ProxyHarness.start(yaml.replacingOccurrences(of: "PROVIDER", with: provider.baseURL),
                                                       options: options, environment: environment(provider))
            return AIHarness(gateway: gateway, provider: provider)
        } catch {
            await provider.stop()
            throw error
        }
    }

    func stop() async {
        await gateway.stop()
        await provider.stop()
    }

    /// A POST with a JSON body, read whole.
    func post(_ path: String, _ body: String, headers: [(String, String)] = []) async throws -> ProxyHarness.Response {
        try await gateway.send(path, method: .POST, headers: [("Content-Type", "application/json")] + headers, body: body)
    }

    /// A POST with a JSON body, returned once the response head arrived (the body is the caller's
    /// to read, chunk by chunk).
    func openStream(_ path: String, _ body: String, headers: [(String, String)] = []) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(gateway.port)\(path)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        return try await gateway.client.execute(request, timeout: .seconds(20))
    }
}

/// A secret for `{vault://env/...}` references, given to the gateway's plugins as their
/// environment (never set in the test process's own).
enum TestSecrets {
    static let variable = "SILVERBACK_TEST_SECRET"
    static let value = "sb-vault-\(UUID().uuidString.lowercased())"
}

/// Declarative YAML for AI routes: one service (`llm`, pointing at the service mock) whose routes
/// each carry ai-proxy and maybe more plugins.
enum AIConfig {
    static func document(_ routes: String...) -> String {
        "services:\n- name: llm\n  url: UPSTREAM\n  routes:\n" + routes.joined()
    }

    /// `config` and each of `more` are YAML flow-mapping bodies (no braces).
    static func route(_ name: String, path: String, aiProxy config: String, pluginID: String? = nil,
                      more: [String] = []) -> String {
        let id = pluginID.map { "id: \($0), " } ?? ""
        var text = "  - name: \(name)\n    paths: [\"\(path)\"]\n    plugins:\n"
        text += "    - {name: ai-proxy, \(id)config: {\(config)}}\n"
        for plugin in more { text += "    - {\(plugin)}\n" }
        return text
    }

    /// `model: {…}` for an OpenAI model the mock serves at `path`; `name` nil leaves it unset.
    static func openAI(_ name: String? = "gpt-4o-mini", path: String = "/v1/chat/completions", options: String = "") -> String {
        let named = name.map { "name: \"\($0)\", " } ?? ""
        let extra = options.isEmpty ? "" : ", " + options
        return "model: {provider: openai, \(named)options: {upstream_url: \"PROVIDER\(path)\"\(extra)}}"
    }

    static func anthropic(_ name: String = "claude-3-5-haiku", path: String = "/v1/messages") -> String {
        "model: {provider: anthropic, name: \"\(name)\", options: {upstream_url: \"PROVIDER\(path)\", anthropic_version: \"2023-06-01\"}}"
    }

    static let chat = "route_type: llm/v1/chat, logging: {}"
}

/// SSE helpers: frames are separated by a blank line.
enum SSE {
    static func frames(_ text: String) -> [String] {
        text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
    }

    /// The JSON payloads of `data: {…}` frames, in order.
    static func payloads(_ text: String) -> [JSONValue] {
        frames(text).compactMap { frame in
            guard let data = frame.split(separator: "\n").last(where: { $0.hasPrefix("data: ") }) else { return nil }
            return try? JSONValue.parse(String(data.dropFirst("data: ".count)))
        }
    }

    /// Reads `body` into `received` until `done(received)` holds or the body ends.
    static func read(_ iterator: inout HTTPClientResponse.Body.AsyncIterator, into received: inout String,
                     until done: (String) -> Bool) async throws {
        while !done(received), let chunk = try await iterator.next() {
            received += String(buffer: chunk)
        }
    }
}

extension JSONValue {
    subscript(index: Int) -> JSONValue? {
        guard let array = arrayValue, array.indices.contains(index) else { return nil }
        return array[index]
    }
}

/// gzip for scripting providers and reading answers.
enum Gzip {
    static func compress(_ text: String) throws -> [UInt8] {
        var input = ByteBuffer(string: text)
        let output = try input.compress(with: .gzip)
        return Array(output.readableBytesView)
    }

    static func decompress(_ bytes: ByteBuffer) throws -> String {
        var input = bytes
        return String(buffer: try input.decompress(with: .gzip))
    }
}

/// `{"error":{"message":…}}` with Kong's content type and the given status.
func expectAIError(_ response: ProxyHarness.Response, _ message: String, status: Int = 400,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(response.status == status, "\(response.body)", sourceLocation: sourceLocation)
    #expect(response.headers.first(name: "Content-Type") == "application/json; charset=utf-8", sourceLocation: sourceLocation)
    #expect(response.json == ["error": ["message": .string(message)]], "\(response.body)", sourceLocation: sourceLocation)
    // Byte for byte as Kong's encoder (cjson) writes it: `/` escaped.
    let escaped = ProviderFixtures.quoted(message).replacingOccurrences(of: "/", with: "\\/")
    #expect(response.body == #"{"error":{"message":\#(escaped)}}"#, sourceLocation: sourceLocation)
}

/// ai-proxy end to end (spec ai-plugins §2): a real gateway, a mock provider, declarative YAML.
@Suite(.serialized)
struct AIProxyTests {
    static let hello = #"{"messages":[{"role":"user","content":"Hello there"}]}"#

    // MARK: Non-stream

    /// An OpenAI-format chat body for an OpenAI-format provider is skimmed: only what ai-proxy
    /// reads is built, the rest goes on as the client spelled it, unless the client spelled it in
    /// a way only a lenient reader takes (then it is written, as Kong's encoder writes it). An
    /// answer without usage is charged the prompt estimate, made from the body sent.
    @Test func skimmedChatBodiesGoOnAsTheClientSpelledThem() async throws {
        let directory = try TemporaryDirectory.make("skim-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("ai.log").path
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route(
            "chat", path: "/chat", aiProxy: "route_type: llm/v1/chat, logging: {log_statistics: true}, \(AIConfig.openAI())",
            more: ["name: file-log, config: {path: \"\(logPath)\"}"])))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .json(#"{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}]}"#))

        let messages = #"[ {"role":"user", "content":"caf\u00e9 \/ one two three"} ]"#
        let spelled = #"{"temperature" : 0.7, "messages": "# + messages + #", "metadata": {"a\/b": [1, 2.5]}}"#
        #expect(try await h.post("/chat", spelled).status == 200)
        let sent = try #require(h.provider.requests.last?.bodyText)
        #expect(sent.contains(#""messages":"# + messages), "copied as spelled: \(sent)")
        #expect(sent.contains(#""metadata":{"a\/b": [1, 2.5]}"#) && sent.contains(#""temperature":0.7"#), "\(sent)")
        #expect(try JSONValue.parse(sent)["model"] == "gpt-4o-mini")

        let lenient = "{\"messages\": [{\"role\":\"user\",\"content\":\"line one\nline two\"}], \"n\": 1.0}"
        #expect(try await h.post("/chat", lenient).status == 200)
        let rewritten = try #require(h.provider.requests.last?.bodyText)
        #expect(rewritten.contains(#""content":"line one\nline two""#) && rewritten.contains(#""n":1"#), "written: \(rewritten)")

        expectAIError(try await h.post("/chat", #"{"messages": [ ], "model": "gpt-4o-mini"}"#), "request body doesn't contain valid prompts")
        let lines = try await Self.logLines(logPath, atLeast: 3)
        let usage = lines.prefix(2).map { (try? JSONValue.parse($0))?["ai"]?["proxy"]?["usage"]?["prompt_tokens"] }
        #expect(usage == [5, 4], "the estimate: words of the messages sent (\(lines))")
    }

    @Test func openAIChatGoesToTheProviderAndComesBackByteForByte() async throws {
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route("chat", path: "/chat", aiProxy: """
            \(AIConfig.chat), auth: {header_name: Authorization, header_value: "Bearer sk-test"}, \(AIConfig.openAI())
            """)))
        defer { Task { await h.stop() } }
        let upstreamBody = ProviderFixtures.openAIChat(content: "Hi, how can I help?")
        // Sent chunked in two pieces: the gateway has to compute the client's Content-Length.
        let middle = upstreamBody.index(upstreamBody.startIndex, offsetBy: 40)
        h.provider.answer(path: "/v1/chat/completions", with: .chunkedJSON(
            [String(upstreamBody[..<middle]), String(upstreamBody[middle...])], headers: [("Set-Cookie", "session=provider")]))

        let response = try await h.post("/chat", #"{"messages":[{"role":"user","content":"Hello there"}],"temperature":0.5,"custom_field":"kept"}"#,
                                        headers: [("Authorization", "Bearer client-key")])

        #expect(response.status == 200)
        #expect(response.body == upstreamBody, "an OpenAI answer is forwarded byte for byte")
        #expect(response.headers.first(name: "X-Kong-LLM-Model") == "openai/gpt-4o-mini")
        #expect(response.headers.first(name: "Content-Length") == String(upstreamBody.utf8.count))
        #expect(response.headers.first(name: "Transfer-Encoding") == nil)
        #expect(response.headers.first(name: "Set-Cookie") == nil, "openai answers lose Set-Cookie (§2.7)")

        let sent = try #require(h.provider.requests.first)
        #expect(h.provider.requests.count == 1)
        #expect(sent.method == .POST)
        #expect(sent.uri == "/v1/chat/completions")
        #expect(sent.headers["Authorization"] == ["Bearer sk-test"], "the configured key replaces the client's")
        #expect(sent.headers["Host"] == [h.provider.hostHeader])
        #expect(sent.headers["Content-Type"] == ["application/json"])
        #expect(sent.headers["Content-Length"] == [String(sent.body.count)])
        let body = try #require(sent.json)
        #expect(body["model"] == "gpt-4o-mini")
        #expect(body["stream"] == false)
        #expect(body["temperature"] == 0.5)
        #expect(body["custom_field"] == "kept", "unknown fields pass through to OpenAI")
        #expect(body["messages"] == [["role": "user", "content": "Hello there"]])
        #expect(h.gateway.upstream.acceptedConnections == 0, "the service's own host is never called")
    }

    /// Members the conversion leaves as they were reach the provider in the client's own bytes
    /// (escapes, number spelling, spacing); the members it sets are written. A body a plugin
    /// before ai-proxy replaced is written whole.
    @Test func unchangedMembersReachTheProviderAsTheClientWroteThem() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("chat", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI(options: "max_tokens: 7"))"),
            AIConfig.route("decorated", path: "/decorated", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())",
                           more: [#"name: ai-prompt-decorator, config: {prompts: {append: [{role: user, content: "Thanks."}]}}"#])))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "Hi")))
        let messages = #"[ {"role":"user", "content":"caf\u00e9 1\/2 \"q\""} ]"#

        // `n` and `user` are spelled as only a lenient reader takes them (a number the encoder
        // writes otherwise, a raw line feed in a string): those are written anew.
        let response = try await h.post("/chat", #"{"messages": \#(messages), "temperature": 0.5, "n": 1.0, "max_tokens": 99, "user": "a"#
                                        + "\n" + #"b"}"#)
        #expect(response.status == 200, "\(response.body)")
        let sent = try #require(h.provider.requests.last)
        #expect(sent.bodyText.contains(#""messages":\#(messages)"#), "\(sent.bodyText)")
        #expect(sent.bodyText.contains(#""temperature":0.5"#), "\(sent.bodyText)")
        #expect(sent.bodyText.contains(#""n":1,"#) || sent.bodyText.contains(#""n":1}"#), "\(sent.bodyText)")
        #expect(sent.bodyText.contains(#""user":"a\nb""#), "\(sent.bodyText)")
        let body = try #require(sent.json)
        #expect(body["messages"] == [["role": "user", "content": "café 1/2 \"q\""]])
        #expect(body["max_tokens"] == 7, "the configured option replaces the client's")
        #expect(body["model"] == "gpt-4o-mini")
        #expect(body["stream"] == false)
        #expect(body["user"] == "a\nb")
        #expect(body.objectValue?.count == 7)

        let decorated = try await h.post("/decorated", #"{"messages": \#(messages)}"#)
        #expect(decorated.status == 200, "\(decorated.body)")
        let rewritten = try #require(h.provider.requests.last)
        #expect(!rewritten.bodyText.contains(#"\u00e9"#), "written anew: \(rewritten.bodyText)")
        #expect(rewritten.json?["messages"] == [["role": "user", "content": "café 1/2 \"q\""], ["role": "user", "content": "Thanks."]])
    }

    /// ai-proxy decides at once when the body came with the head; a body still arriving (here,
    /// half of it) is waited for, and the provider gets the whole of it converted.
    @Test func aChatBodyArrivingAfterItsHeadIsWaitedFor() async throws {
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route("chat", path: "/chat", aiProxy: """
            \(AIConfig.chat), \(AIConfig.openAI())
            """, more: ["name: tracer-last, config: {tag: now}"])))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "Hi")))
        let body = Self.hello
        // The body with its head, in one write (an HTTP client may write them apart): ai-proxy
        // decides at once (the tracer after it marks that).
        let whole = try await h.gateway.rawConnection().executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "POST /chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body))
            var text = ""
            for try await chunk in inbound { text += String(buffer: chunk) }
            return text
        }
        #expect(whole.hasPrefix("HTTP/1.1 200"), "\(whole.prefix(300))")
        #expect(h.provider.requests.first?.headers["X-Trace"] == ["tracer-last:now!"])
        let half = body.index(body.startIndex, offsetBy: body.count / 2)
        let answer = try await h.gateway.rawConnection().executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "POST /chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body[..<half]))
            // Long enough that the gateway reads the head alone even on a loaded machine.
            try await Task.sleep(for: .milliseconds(400))
            try await outbound.write(ByteBuffer(string: String(body[half...])))
            var text = ""
            for try await chunk in inbound { text += String(buffer: chunk) }
            return text
        }
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(300))")
        #expect(h.provider.requests.count == 2)
        let sent = try #require(h.provider.requests.last)
        #expect(sent.headers["X-Trace"] == ["tracer-last:now"], "ai-proxy waited, so the rest ran in its task")
        #expect(sent.json?["messages"] == [["role": "user", "content": "Hello there"]])
        #expect(sent.json?["model"] == "gpt-4o-mini")
    }

    @Test func anthropicChatIsConvertedBothWays() async throws {
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route("claude", path: "/claude", aiProxy: """
            \(AIConfig.chat), auth: {header_name: x-api-key, header_value: ak-test}, \(AIConfig.anthropic())
            """)))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/messages", with: .json(ProviderFixtures.anthropicMessage(texts: ["Bonjour", "le monde"])))

        let response = try await h.post("/claude", """
            {"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Hi"},\
            {"role":"assistant","content":"Hello"},{"role":"user","content":"Say it in French"}],"max_tokens":100,"top_p":0.3}
            """)

        #expect(response.status == 200, "\(response.body)")
        #expect(response.headers.first(name: "X-Kong-LLM-Model") == "anthropic/claude-3-5-haiku")
        #expect(response.headers.first(name: "Content-Length") == String(response.body.utf8.count))
        let answer = try #require(response.json)
        #expect(answer["object"] == "chat.completion")
        #expect(answer["model"] == "claude-3-5-haiku-20241022", "the model the provider reported")
        #expect(answer["choices"]?[0]?["message"] == ["role": "assistant", "content": "Bonjour\nle monde"])
        #expect(answer["choices"]?[0]?["finish_reason"] == "end_turn")
        #expect(answer["usage"] == ["prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18])

        let sent = try #require(h.provider.requests.first)
        #expect(sent.uri == "/v1/messages")
        #expect(sent.headers["x-api-key"] == ["ak-test"])
        #expect(sent.headers["Host"] == [h.provider.hostHeader])
        let body = try #require(sent.json)
        #expect(body["model"] == "claude-3-5-haiku")
        #expect(body["system"] == "You are terse.", "the system message is hoisted")
        #expect(body["messages"] == [["role": "user", "content": "Hi"], ["role": "assistant", "content": "Hello"],
                                     ["role": "user", "content": "Say it in French"]])
        #expect(body["max_tokens"] == 100)
        #expect(body["stream"] == false)
        #expect(body["top_p"] == nil, "Anthropic conversion drops what it does not map")
    }

    /// Spec §2.5: the anthropic driver sends `anthropic-version: <model.options.anthropic_version>`
    /// (the Messages API refuses requests without it).
    @Test func anthropicRequestsCarryTheAnthropicVersionHeader() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("claude", path: "/claude", aiProxy: "\(AIConfig.chat), \(AIConfig.anthropic())")))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/messages", with: .json(ProviderFixtures.anthropicMessage(texts: ["ok"])))
        #expect(try await h.post("/claude", Self.hello).status == 200)
        let sent = try #require(h.provider.requests.first)
        #expect(sent.headers["anthropic-version"] == ["2023-06-01"])
    }

    // MARK: Errors

    @Test func clientErrorsAreAnsweredWithoutCallingTheProvider() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("strict", path: "/strict", aiProxy: "\(AIConfig.chat), response_streaming: deny, \(AIConfig.openAI())"),
            AIConfig.route("any-model", path: "/any-model", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI(nil))"),
            AIConfig.route("completions", path: "/completions",
                           aiProxy: "route_type: llm/v1/completions, logging: {}, \(AIConfig.openAI("gpt-3.5-turbo-instruct", path: "/v1/completions"))")))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "ok")))

        let noPrompts = "request body doesn't contain valid prompts"
        expectAIError(try await h.post("/strict", "{}"), noPrompts)
        expectAIError(try await h.post("/strict", #"{"messages":[]}"#), noPrompts)
        expectAIError(try await h.post("/strict", "not json"), noPrompts)
        expectAIError(try await h.gateway.send("/strict", method: .POST, headers: [("Content-Type", "text/plain")], body: "hello"),
                      noPrompts)
        expectAIError(try await h.post("/strict", #"{"model":"gpt-4","messages":[{"role":"user","content":"x"}]}"#),
                      "cannot use own model - must be: gpt-4o-mini")
        expectAIError(try await h.post("/any-model", Self.hello),
                      "model parameter not found in request, nor in gateway configuration")
        expectAIError(try await h.post("/completions", Self.hello),
                      "[llm/v1/chat] message format is not compatible with [llm/v1/completions] route type")
        expectAIError(try await h.post("/strict", #"{"prompt":"Hello"}"#),
                      "[llm/v1/completions] message format is not compatible with [llm/v1/chat] route type")
        expectAIError(try await h.post("/strict", #"{"prompt":"Hello","messages":[{"role":"user","content":"x"}]}"#),
                      "request matches multiple LLM request formats")
        expectAIError(try await h.post("/strict", #"{"stream":true,"messages":[{"role":"user","content":"x"}]}"#),
                      "response streaming is not enabled for this LLM")
        #expect(h.provider.requests.isEmpty, "\(h.provider.requests.map(\.uri))")

        // The controls: the same routes do call the provider with acceptable bodies.
        #expect(try await h.post("/strict", #"{"model":"gpt-4o-mini","stream":false,"messages":[{"role":"user","content":"x"}]}"#).status == 200)
        #expect(try await h.post("/any-model", #"{"model":"from-the-body","messages":[{"role":"user","content":"x"}]}"#).status == 200)
        #expect(h.provider.requests.map { $0.json?["model"] } == ["gpt-4o-mini", "from-the-body"],
                "without a configured name the request's model is used")
    }

    /// Spec §2.3-2: a body beyond nginx's 8 KiB buffer is introspected only when within
    /// `max_request_body_size` (default 8192); otherwise it counts as no parsable body.
    @Test func bodiesBeyondMaxRequestBodySizeAreNotIntrospected() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("default-size", path: "/default-size", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())"),
            AIConfig.route("large", path: "/large", aiProxy: "\(AIConfig.chat), max_request_body_size: 65536, \(AIConfig.openAI())")))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "ok")))
        let words = String(repeating: "word ", count: 4000)  // about 20 KB of JSON
        let big = #"{"messages":[{"role":"user","content":"\#(words)"}]}"#

        #expect(try await h.post("/large", big).status == 200, "within max_request_body_size")
        #expect(h.provider.requests.count == 1)
        expectAIError(try await h.post("/default-size", big), "request body doesn't contain valid prompts")
        #expect(h.provider.requests.count == 1, "the over-size request never reached the provider")
    }

    @Test func providerErrorsPassThroughUnchanged() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("chat", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())"),
            AIConfig.route("claude", path: "/claude", aiProxy: "\(AIConfig.chat), \(AIConfig.anthropic())")))
        defer { Task { await h.stop() } }
        let rejected = #"{"error": {"message": "Incorrect API key provided: sk-***", "type": "invalid_request_error", "code": "invalid_api_key"}}"#
        h.provider.answer(path: "/v1/chat/completions", with: .json(rejected, status: 401, headers: [("X-Provider", "yes")]))
        let overloaded = #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
        h.provider.answer(path: "/v1/messages", with: .json(overloaded, status: 529))

        let unauthorized = try await h.post("/chat", Self.hello)
        #expect(unauthorized.status == 401)
        #expect(unauthorized.body == rejected)
        #expect(unauthorized.headers.first(name: "X-Provider") == "yes")
        #expect(unauthorized.headers.first(name: "X-Kong-LLM-Model") == nil, "the model header is for 200s only")

        let busy = try await h.post("/claude", Self.hello)
        #expect(busy.status == 529)
        #expect(busy.body == overloaded, "non-200 answers are not converted, whatever the provider")
    }

    @Test func unconvertibleProviderAnswersBecome500() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("claude", path: "/claude", aiProxy: "\(AIConfig.chat), \(AIConfig.anthropic())"),
            AIConfig.route("chat", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())")))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/messages", with: .json(#"{"id":"msg_1","type":"message","model":"claude","stop_reason":"end_turn"}"#))
        h.provider.answer(path: "/v1/chat/completions", with: .json(#"{"id":"chatcmpl-1","object":"chat.completion"}"#))

        let claude = try await h.post("/claude", Self.hello)
        expectAIError(claude, "transformation failed from type anthropic://llm/v1/chat: 'content' not in anthropic://llm/v1/chat response",
                      status: 500)
        #expect(claude.headers.first(name: "X-Kong-LLM-Model") == "anthropic/claude-3-5-haiku", "set even on this 500 (§10.8)")
        #expect(claude.headers.first(name: "Content-Length") == String(claude.body.utf8.count))

        let openAI = try await h.post("/chat", Self.hello)
        expectAIError(openAI, "transformation failed from type openai://llm/v1/chat: 'choices' not in llm/v1/chat response",
                      status: 500)
    }

    // MARK: Streaming

    @Test func openAIStreamReachesTheClientEventByEvent() async throws {
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route("chat", path: "/chat", aiProxy: """
            \(AIConfig.chat), auth: {header_name: Authorization, header_value: "Bearer sk-test"}, \(AIConfig.openAI())
            """)))
        defer { Task { await h.stop() } }
        let frames = ProviderFixtures.openAIStream(deltas: ["The answer", " is 42."])
        h.provider.answer(path: "/v1/chat/completions",
                          with: .events(frames, contentType: "text/event-stream; charset=utf-8", holdingLast: true))

        let response = try await h.openStream("/chat", #"{"stream":true,"messages":[{"role":"user","content":"Question?"}]}"#)
        #expect(response.status == .ok)
        #expect(response.headers.first(name: "Content-Type") == "text/event-stream")
        #expect(response.headers.first(name: "Content-Length") == nil)
        #expect(response.headers.first(name: "X-Kong-LLM-Model") == "openai/gpt-4o-mini")
        var iterator = response.body.makeAsyncIterator()
        var received = ""
        // The provider holds `[DONE]` until released: the events before it must arrive now.
        try await SSE.read(&iterator, into: &received) { $0.contains(" is 42.") && $0.hasSuffix("\n\n") }
        #expect(received.contains("The answer"))
        #expect(!received.contains("[DONE]"))
        h.provider.releaseGate()
        try await SSE.read(&iterator, into: &received) { _ in false }

        #expect(received == frames.dropLast().joined() + "data: [DONE]",
                "OpenAI events pass verbatim; the terminator has no trailing blank line")
        let sent = try #require(h.provider.requests.first?.json)
        #expect(sent["stream"] == true)
        #expect(sent["model"] == "gpt-4o-mini")
    }

    @Test func anthropicStreamBecomesOpenAIChunks() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("claude", path: "/claude", aiProxy: "\(AIConfig.chat), \(AIConfig.anthropic())")))
        defer { Task { await h.stop() } }
        // The events cut into 45-byte pieces sent 10 ms apart (events and lines straddle the
        // gateway's reads), but message_stop whole and last: it is the piece the provider holds.
        var events = ProviderFixtures.anthropicStream(deltas: ["Bonjour", " le", " monde"])
        let stop = events.removeLast()
        let bytes = Array(events.joined().utf8)
        let pieces = stride(from: 0, to: bytes.count, by: 45).map { start in
            String(decoding: bytes[start..<min(start + 45, bytes.count)], as: UTF8.self)
        } + [stop]
        h.provider.answer(path: "/v1/messages", with: .events(pieces, holdingLast: true, pause: .milliseconds(10)))

        let response = try await h.openStream("/claude", #"{"stream":true,"messages":[{"role":"user","content":"Salut"}]}"#)
        #expect(response.headers.first(name: "Content-Type") == "text/event-stream")
        #expect(response.headers.first(name: "X-Kong-LLM-Model") == "anthropic/claude-3-5-haiku")
        var iterator = response.body.makeAsyncIterator()
        var received = ""
        try await SSE.read(&iterator, into: &received) { $0.contains(#"" monde""#) && $0.hasSuffix("\n\n") }
        #expect(!received.contains("[DONE]"), "message_stop is still held by the provider")
        h.provider.releaseGate()
        try await SSE.read(&iterator, into: &received) { _ in false }

        #expect(SSE.frames(received).last == "data: [DONE]")
        #expect(received.hasSuffix("data: [DONE]"))
        let chunks = SSE.payloads(received)
        #expect(chunks.count == 5, "message_start, content_block_start and three deltas: \(received)")
        #expect(chunks.allSatisfy { $0["object"] == "chat.completion.chunk" && $0["id"] == "msg_stream" && $0["model"] == "claude-3-5-haiku" })
        #expect(chunks.first?["choices"]?[0]?["delta"] == ["role": "assistant", "content": ""])
        let text = chunks.compactMap { $0["choices"]?[0]?["delta"]?["content"]?.stringValue }.joined()
        #expect(text == "Bonjour le monde")
        let sent = try #require(h.provider.requests.first)
        #expect(sent.uri == "/v1/messages")
        #expect(sent.json?["stream"] == true)
    }

    // MARK: Model templating and auth

    @Test func modelNameFromTheRoutePathOrAHeader() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("by-path", path: "~/models/(?<model>[^/]+)/chat$",
                           aiProxy: "\(AIConfig.chat), \(AIConfig.openAI("$(uri_captures.model)"))"),
            AIConfig.route("no-capture", path: "~/fixed/chat$",
                           aiProxy: "\(AIConfig.chat), \(AIConfig.openAI("$(uri_captures.model)"))"),
            AIConfig.route("by-header", path: "/by-header",
                           aiProxy: "\(AIConfig.chat), \(AIConfig.openAI("$(headers.x-model)"))"),
            AIConfig.route("by-underscore", path: "/by-underscore",
                           aiProxy: "\(AIConfig.chat), \(AIConfig.openAI("$(headers.x_model)"))")))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "ok")))

        let byPath = try await h.post("/models/gpt-4.1-nano/chat", Self.hello)
        #expect(byPath.status == 200)
        #expect(byPath.headers.first(name: "X-Kong-LLM-Model") == "openai/gpt-4.1-nano")
        let byHeader = try await h.post("/by-header", Self.hello, headers: [("X-Model", "o4-mini")])
        #expect(byHeader.status == 200)
        #expect(h.provider.requests.map { $0.json?["model"] } == ["gpt-4.1-nano", "o4-mini"])
        // Kong reads the header with `get_header`: `$(headers.x_model)` finds `X-Model`.
        let underscored = try await h.post("/by-underscore", Self.hello, headers: [("x-MODEL", "o3")])
        #expect(underscored.status == 200, "\(underscored.body)")
        #expect(h.provider.requests.last?.json?["model"] == "o3")

        expectAIError(try await h.post("/by-header", Self.hello), "headers key x-model was not provided")
        expectAIError(try await h.post("/fixed/chat", Self.hello), "uri_captures key model was not provided")
        expectAIError(try await h.post("/models/gpt-4.1-nano/chat", #"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"#),
                      "cannot use own model - must be: gpt-4.1-nano")
        #expect(h.provider.requests.count == 3)
    }

    @Test func queryAndHeaderAuthWithAndWithoutOverride() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("query", path: "/query", aiProxy: """
                \(AIConfig.chat), auth: {param_name: key, param_value: secret, param_location: query}, \(AIConfig.openAI())
                """),
            AIConfig.route("override", path: "/override", aiProxy: """
                \(AIConfig.chat), auth: {param_name: key, param_value: secret, param_location: query, \
                header_name: x-api-key, header_value: server-key, allow_override: true}, \(AIConfig.openAI())
                """)))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "ok")))

        for path in ["/query?foo=1", "/query?key=client", "/override?key=client", "/override"] {
            #expect(try await h.post(path, Self.hello, headers: path == "/override?key=client" ? [("x-api-key", "client-key")] : []).status == 200)
        }
        let seen = h.provider.requests
        try #require(seen.count == 4)
        #expect(seen[0].uri == "/v1/chat/completions?foo=1&key=secret", "other arguments are kept")
        #expect(seen[1].uri == "/v1/chat/completions?key=secret", "without allow_override the configured value wins")
        #expect(seen[2].uri == "/v1/chat/completions?key=client", "with allow_override the client's value wins")
        #expect(seen[2].headers["x-api-key"] == ["client-key"])
        #expect(seen[3].uri == "/v1/chat/completions?key=secret")
        #expect(seen[3].headers["x-api-key"] == ["server-key"])
    }

    // MARK: file-log

    @Test func fileLogWritesTheAIAnalyticsOfEachRequest() async throws {
        let directory = try TemporaryDirectory.make("ai-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("ai.log").path
        let pluginID = "6f1c3bde-5f7e-4a41-9b6d-3f2a8c1e0d42"
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route(
            "logged-chat", path: "/chat", aiProxy: """
                route_type: llm/v1/chat, logging: {log_statistics: true, log_payloads: true}, \
                auth: {header_name: Authorization, header_value: "Bearer sk-secret"}, \
                \(AIConfig.openAI(options: "input_cost: 10, output_cost: 10"))
                """,
            pluginID: pluginID, more: ["name: file-log, config: {path: \"\(logPath)\"}"])))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "Logged", prompt: 25, completion: 12)))

        let before = Date().timeIntervalSince1970 * 1000
        let first = try await h.post("/chat", Self.hello, headers: [("Authorization", "Bearer client-secret")])
        #expect(first.status == 200)
        let lines = try await Self.logLines(logPath, atLeast: 1)
        let after = Date().timeIntervalSince1970 * 1000
        try #require(lines.count == 1, "one line per request: \(lines)")
        let entry = try JSONValue.parse(lines[0])

        let usage = try #require(entry["ai"]?["proxy"]?["usage"])
        #expect(usage["prompt_tokens"] == 25)
        #expect(usage["completion_tokens"] == 12)
        #expect(usage["total_tokens"] == 37)
        let cost = try #require(usage["cost"]?.numberValue)
        #expect(abs(cost - (25 * 10 + 12 * 10) / 1_000_000) < 1e-12, "cost \(cost)")
        let meta = try #require(entry["ai"]?["proxy"]?["meta"])
        #expect(meta["provider_name"] == "openai")
        #expect(meta["request_model"] == "gpt-4o-mini")
        #expect(meta["response_model"] == "gpt-4o-mini")
        #expect(meta["plugin_id"] == .string(pluginID))
        #expect((meta["llm_latency"]?.numberValue ?? -1) >= 0)
        let payload = try #require(entry["ai"]?["proxy"]?["payload"])
        #expect(payload["request"]?.stringValue == h.provider.requests.first?.bodyText, "the body as sent to the provider")
        #expect(payload["response"]?.stringValue.flatMap { try? JSONValue.parse($0) }?["choices"]?[0]?["message"]?["content"] == "Logged")

        #expect(entry["response"]?["status"] == 200)
        #expect(entry["route"]?["name"] == "logged-chat")
        #expect(entry["service"]?["name"] == "llm")
        #expect(entry["request"]?["headers"]?["authorization"] == "REDACTED")
        #expect(entry["upstream_uri"] == "/v1/chat/completions")
        #expect(!lines[0].contains("client-secret") && !lines[0].contains("sk-secret"), "no credential reaches the log")
        let startedAt = try #require(entry["started_at"]?.numberValue)
        #expect(startedAt >= before - 1000 && startedAt <= after, "started_at \(startedAt) within [\(before), \(after)] ms")

        #expect(try await h.post("/chat", Self.hello).status == 200)
        let both = try await Self.logLines(logPath, atLeast: 2)
        #expect(both.count == 2, "the second request appends a second line")
        let second = try JSONValue.parse(try #require(both.last))
        #expect(second["request"]?["id"] != entry["request"]?["id"])
        #expect(second["ai"]?["proxy"]?["usage"]?["total_tokens"] == 37)
    }

    @Test func fileLogRefusesLuaAndUnsafePaths() throws {
        let loader = DeclarativeLoader(registry: EntityRegistry(plugins: ProxyHarness.definitions))
        func refusal(_ config: String) -> String? {
            do {
                _ = try loader.load(text: "_format_version: \"3.0\"\nplugins:\n- {name: file-log, config: {\(config)}}\n", format: .yaml)
                return nil
            } catch {
                if case .invalid(let invalid) = error { return invalid.text }
                return "\(error)"
            }
        }
        #expect(refusal("path: /tmp/silverback.log") == nil, "the control: a plain path loads")
        #expect(refusal("path: /tmp/silverback.log, custom_fields_by_lua: {}") == nil, "an empty map holds no Lua")
        let lua = try #require(refusal(#"path: /tmp/silverback.log, custom_fields_by_lua: {route_id: "return nil"}"#))
        #expect(lua.contains("custom_fields_by_lua"))
        #expect(lua.contains("not supported"), "\(lua)")
        let star = try #require(refusal("path: \"/tmp/a*b\""))
        #expect(star.contains("not a valid filename"), "\(star)")
    }

    /// The file's complete lines once there are `atLeast` of them (or after 5 s: the log phase is
    /// asynchronous).
    static func logLines(_ path: String, atLeast count: Int) async throws -> [String] {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
            if lines.count >= count || ContinuousClock.now >= deadline { return lines }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    // MARK: Headers, modes and plugins around ai-proxy

    /// Spec §2.9: `model_name_header: false` drops `X-Kong-LLM-Model`, unless the request carries
    /// `Kong-Debug`.
    @Test func modelNameHeaderOffUnlessKongDebug() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("quiet", path: "/quiet", aiProxy: "\(AIConfig.chat), model_name_header: false, \(AIConfig.openAI())")))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "ok")))

        let quiet = try await h.post("/quiet", Self.hello)
        #expect(quiet.status == 200, "\(quiet.body)")
        #expect(quiet.headers.first(name: "X-Kong-LLM-Model") == nil)
        let debug = try await h.post("/quiet", Self.hello, headers: [("Kong-Debug", "1")])
        #expect(debug.status == 200, "\(debug.body)")
        #expect(debug.headers.first(name: "X-Kong-LLM-Model") == "openai/gpt-4o-mini")
        #expect(h.provider.requests.count == 2)
    }

    /// Spec §2.3-4.8: `response_streaming: always` streams a request that did not ask for it.
    @Test func responseStreamingAlwaysStreamsANonStreamRequest() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("always", path: "/always", aiProxy: "\(AIConfig.chat), response_streaming: always, \(AIConfig.openAI())")))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .events(ProviderFixtures.openAIStream(deltas: ["Streamed", " anyway"])))

        for body in [Self.hello, #"{"stream":false,"messages":[{"role":"user","content":"Hello there"}]}"#] {
            let response = try await h.post("/always", body)
            #expect(response.status == 200, "\(response.body)")
            #expect(response.headers.first(name: "Content-Type") == "text/event-stream")
            #expect(response.headers.first(name: "Content-Length") == nil)
            #expect(response.body.hasSuffix("data: [DONE]"), "\(response.body)")
            let text = SSE.payloads(response.body).compactMap { $0["choices"]?[0]?["delta"]?["content"]?.stringValue }.joined()
            #expect(text == "Streamed anyway")
        }
        try #require(h.provider.requests.count == 2)
        for sent in h.provider.requests {
            #expect(sent.json?["stream"] == true, "\(sent.bodyText)")
        }
    }

    /// Spec §2.5/§2.9 preserve: the client's body and original path (before strip_path) go to the
    /// provider's host untouched; the answer comes back untouched, with the model header when a
    /// model name is known.
    @Test func preserveForwardsBodyAndPathUnchanged() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("embeddings", path: "/embed", aiProxy: """
                route_type: preserve, logging: {}, \
                model: {provider: openai, name: text-embedding-3-large, options: {upstream_url: "PROVIDER/not/this/path"}}
                """),
            AIConfig.route("anonymous", path: "/raw", aiProxy: """
                route_type: preserve, logging: {}, model: {provider: openai, options: {upstream_url: "PROVIDER"}}
                """)))
        defer { Task { await h.stop() } }
        let embedding = #"{"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.0023, -0.0093]}], "model": "text-embedding-3-large", "usage": {"prompt_tokens": 4, "total_tokens": 4}}"#
        h.provider.answer(path: "/embed/v1/embeddings", with: .json(embedding, headers: [("X-Provider", "yes")]))
        let plain = "not JSON, \u{1} kept as is\n"
        h.provider.answer(path: "/raw/v1/files", with: ProviderReply(headers: [("Content-Type", "text/plain")],
                                                                       chunks: [.init(text: plain)]))

        // Spacing and key order a re-encoding gateway would change.
        let clientBody = "{\"input\":  \"The food was delicious\",\n  \"encoding_format\" : \"float\", \"a\":1.50}"
        let response = try await h.post("/embed/v1/embeddings", clientBody)
        #expect(response.status == 200, "\(response.body)")
        #expect(response.body == embedding)
        #expect(response.headers.first(name: "X-Provider") == "yes")
        #expect(response.headers.first(name: "X-Kong-LLM-Model") == "openai/text-embedding-3-large")
        let sent = try #require(h.provider.requests.first)
        #expect(sent.path == "/embed/v1/embeddings", "the client's path, neither stripped (/v1/embeddings) nor upstream_url's")
        #expect(sent.body == Array(clientBody.utf8), "byte for byte: \(sent.bodyText)")
        #expect(sent.headers["Host"] == [h.provider.hostHeader])

        // §2.3-4.5 holds for preserve too: the configured model cannot be swapped by the body.
        expectAIError(try await h.post("/embed/v1/embeddings", #"{"model":"text-embedding-3-small","input":"x"}"#),
                      "cannot use own model - must be: text-embedding-3-large")
        #expect(h.provider.requests.count == 1, "the refused request never reached the provider")
        #expect(try await h.post("/embed/v1/embeddings", #"{"model":"text-embedding-3-large","input":"x"}"#).status == 200)
        #expect(try await h.post("/embed/v1/embeddings", #"{"model":"","input":"x"}"#).status == 200, "an empty model is no model")

        let raw = try await h.post("/raw/v1/files", #"{"purpose":"fine-tune"}"#)
        #expect(raw.status == 200)
        #expect(raw.body == plain, "a non-JSON preserve answer is forwarded too")
        #expect(raw.headers.first(name: "X-Kong-LLM-Model") == nil, "no model name configured nor sent")
        #expect(h.provider.requests.last?.path == "/raw/v1/files")
        #expect(h.provider.requests.last?.bodyText == #"{"purpose":"fine-tune"}"#)
        let named = try await h.post("/raw/v1/files", #"{"model":"whisper-1","purpose":"x"}"#)
        #expect(named.headers.first(name: "X-Kong-LLM-Model") == "openai/whisper-1", "without a configured name the body's is taken")
        #expect(h.gateway.upstream.acceptedConnections == 0)
    }

    /// §2.11 for preserve: `payload.request` is the body as sent upstream, which is the client's.
    @Test func preserveLogsTheClientsBodyAsTheRequestPayload() async throws {
        let directory = try TemporaryDirectory.make("preserve-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("preserve.log").path
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route(
            "preserved", path: "/p", aiProxy: """
                route_type: preserve, logging: {log_statistics: true, log_payloads: true}, \
                model: {provider: openai, name: text-embedding-3-large, options: {upstream_url: "PROVIDER"}}
                """,
            more: ["name: file-log, config: {path: \"\(logPath)\"}"])))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/p/v1/embeddings", with: .json(#"{"object":"list","data":[],"usage":{"prompt_tokens":2,"total_tokens":2}}"#))
        let body = #"{"input": "kept as sent",  "model":"text-embedding-3-large"}"#
        #expect(try await h.post("/p/v1/embeddings", body).status == 200)
        let entry = try JSONValue.parse(try #require(try await Self.logLines(logPath, atLeast: 1).first))
        #expect(entry["ai"]?["proxy"]?["payload"]?["request"] == .string(body))
        #expect(entry["ai"]?["proxy"]?["meta"]?["request_model"] == "text-embedding-3-large")
    }

    /// §2.11 "once per request, when the body is complete": a provider's error answer is logged
    /// too (meta and latency, no tokens, the error body as the response payload).
    @Test func aProviderErrorIsStillLoggedWithoutTokens() async throws {
        let directory = try TemporaryDirectory.make("error-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("error.log").path
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route(
            "failing", path: "/chat", aiProxy: """
                route_type: llm/v1/chat, logging: {log_statistics: true, log_payloads: true}, \
                \(AIConfig.openAI(options: "input_cost: 10, output_cost: 10"))
                """,
            more: ["name: file-log, config: {path: \"\(logPath)\"}"])))
        defer { Task { await h.stop() } }
        let limited = #"{"error": {"message": "Rate limit reached", "type": "requests"}}"#
        h.provider.answer(path: "/v1/chat/completions", with: .json(limited, status: 429))
        let response = try await h.post("/chat", Self.hello)
        #expect(response.status == 429)
        #expect(response.body == limited, "the provider's error passes through")
        let entry = try JSONValue.parse(try #require(try await Self.logLines(logPath, atLeast: 1).first))
        let proxy = try #require(entry["ai"]?["proxy"], "\(entry)")
        #expect(proxy["meta"]?["provider_name"] == "openai")
        #expect(proxy["meta"]?["response_model"] == proxy["meta"]?["request_model"])
        #expect(proxy["usage"] == ["prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "time_per_token": 0, "cost": 0])
        #expect(proxy["payload"]?["response"] == .string(limited))
        #expect(entry["response"]?["status"] == 429)
    }

    /// §2.10: a preserve route to Hugging Face with neither a model name nor `upstream_url` has no
    /// URL to build: Kong's plain-text 400, the provider never called.
    @Test func huggingFaceWithoutAnEndpointIsAPlainTextRefusal() async throws {
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route(
            "hf", path: "/hf", aiProxy: "route_type: preserve, logging: {}, model: {provider: huggingface}")))
        defer { Task { await h.stop() } }
        let response = try await h.post("/hf", #"{"inputs":"x"}"#)
        #expect(response.status == 400)
        #expect(response.body == "Could not parse the Hugging Face model endponit")
        #expect(response.headers.first(name: "Content-Type")?.hasPrefix("text/plain") == true)
        #expect(h.provider.requests.isEmpty)
    }

    // MARK: Native formats

    /// Spec §2.12 (`llm_format: gemini`): the client's Gemini body and the provider's answer go
    /// unchanged; the model comes from the route's `model` capture and analytics read the native usage.
    @Test func nativeGeminiRequestsPassThroughAndAreCounted() async throws {
        let directory = try TemporaryDirectory.make("native")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("native.log").path
        let h = try await AIHarness.start("""
            services:
            - name: llm
              url: UPSTREAM
              routes:
              - name: native
                paths: ["~/v1beta/models/(?<model>[a-z0-9.-]+):(?<operation>[A-Za-z]+)$"]
                plugins:
                - {name: ai-proxy, config: {route_type: llm/v1/chat, llm_format: gemini, \
            logging: {log_statistics: true}, auth: {header_name: x-goog-api-key, header_value: gk}, \
            model: {provider: gemini, options: {upstream_url: "PROVIDER/native", input_cost: 1, output_cost: 1}}}}
                - {name: file-log, config: {path: "\(logPath)"}}
            """)
        defer { Task { await h.stop() } }
        let answer = #"{"candidates": [{"content": {"role": "model", "parts": [{"text": "Native!"}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6}}"#
        h.provider.answer(path: "/native", with: .json(answer))
        let native = #"{"contents": [{"role": "user", "parts": [{"text": "Hi"}]}], "generationConfig": {"temperature": 0.1}}"#

        let response = try await h.post("/v1beta/models/gemini-1.5-flash:generateContent", native)
        #expect(response.status == 200, "\(response.body)")
        #expect(response.body == answer, "the native answer, unchanged")
        #expect(response.headers.first(name: "X-Kong-LLM-Model") == "gemini/gemini-1.5-flash")
        let sent = try #require(h.provider.requests.first)
        #expect(sent.bodyText == native, "the native body, unchanged")
        #expect(sent.headers["x-goog-api-key"] == ["gk"])

        // §2.3-4.2 on the body's OpenAI shape: a native body without messages is refused here.
        for empty in ["{}", #"{"contents": []}"#, #"{"generationConfig": {"temperature": 0.1}}"#] {
            expectAIError(try await h.post("/v1beta/models/gemini-1.5-flash:generateContent", empty),
                          "request body doesn't contain valid prompts")
        }
        #expect(h.provider.requests.count == 1)

        let lines = try await Self.logLines(logPath, atLeast: 1)
        let entry = try JSONValue.parse(try #require(lines.first))
        #expect(entry["ai"]?["proxy"]?["usage"]?["prompt_tokens"] == 4)
        #expect(entry["ai"]?["proxy"]?["usage"]?["completion_tokens"] == 2)
        #expect(entry["ai"]?["proxy"]?["meta"]?["request_model"] == "gemini-1.5-flash")
    }

    // MARK: Embeddings

    /// `llm/v1/embeddings`: OpenAI-format providers get the body as sent and answer byte for byte;
    /// Gemini is converted both ways, honouring the SDK's default `encoding_format: base64`;
    /// Anthropic has no embeddings API (400, the provider is never called).
    @Test func embeddingsAreForwardedOrConverted() async throws {
        let embeddings = "route_type: llm/v1/embeddings, logging: {log_statistics: true}"
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("openai", path: "/embed", aiProxy: """
                \(embeddings), \(AIConfig.openAI("text-embedding-3-small", path: "/v1/embeddings"))
                """),
            AIConfig.route("gemini", path: "/gembed", aiProxy: """
                \(embeddings), auth: {header_name: x-goog-api-key, header_value: gk}, \
                model: {provider: gemini, name: text-embedding-004, options: {upstream_url: "PROVIDER/gemini-embed"}}
                """),
            AIConfig.route("claude", path: "/cembed", aiProxy: "\(embeddings), \(AIConfig.anthropic())")))
        defer { Task { await h.stop() } }
        let openAIAnswer = #"{"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -1.25]}], "model": "text-embedding-3-small", "usage": {"prompt_tokens": 3, "total_tokens": 3}}"#
        h.provider.answer(path: "/v1/embeddings", with: .json(openAIAnswer))
        h.provider.answer(path: "/gemini-embed", with: .json(#"{"embeddings":[{"values":[0.5,-1.25]},{"values":[2,0]}]}"#))

        let forwarded = try await h.post("/embed", #"{"input":"hello world","encoding_format":"float"}"#)
        #expect(forwarded.status == 200, "\(forwarded.body)")
        #expect(forwarded.body == openAIAnswer)
        let sentOpenAI = try #require(h.provider.requests.first)
        #expect(sentOpenAI.json == ["input": "hello world", "encoding_format": "float", "model": "text-embedding-3-small"])
        #expect(sentOpenAI.json?["stream"] == nil, "embeddings never stream")

        let converted = try await h.post("/gembed", #"{"input":["a","b"],"encoding_format":"base64"}"#)
        #expect(converted.status == 200, "\(converted.body)")
        let sentGemini = try #require(h.provider.requests.last)
        #expect(sentGemini.path == "/gemini-embed")
        #expect(sentGemini.json?["requests"]?[1]?["content"]?["parts"]?[0]?["text"] == "b")
        #expect(converted.json?["object"] == "list")
        #expect(converted.json?["model"] == "text-embedding-004")
        let vector = try #require(converted.json?["data"]?[0]?["embedding"]?.stringValue)
        let floats = try #require(Data(base64Encoded: vector)).withUnsafeBytes { Array($0.bindMemory(to: Float32.self)) }
        #expect(floats == [0.5, -1.25], "little-endian float32, as the OpenAI SDK decodes base64")

        let before = h.provider.requests.count
        let refused = try await h.post("/cembed", #"{"input":"x"}"#)
        expectAIError(refused, "anthropic does not support the llm/v1/embeddings route type")
        let invalid = try await h.post("/embed", #"{"messages":[{"role":"user","content":"x"}]}"#)
        expectAIError(invalid, "request body doesn't contain valid input for embeddings")
        #expect(h.provider.requests.count == before)
    }

    /// Spec §2.3-4.9 / docs/decisions.md: Gemini is asked for identity, every other provider for
    /// `gzip, identity`, whatever the client sent (never an encoding the gateway cannot read).
    @Test func providerRequestsAskForEncodingsTheGatewayReads() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("chat", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())"),
            AIConfig.route("claude", path: "/claude", aiProxy: "\(AIConfig.chat), \(AIConfig.anthropic())"),
            AIConfig.route("gemini", path: "/gemini", aiProxy: """
                \(AIConfig.chat), auth: {header_name: x-goog-api-key, header_value: k}, \
                model: {provider: gemini, name: gemini-1.5-flash, options: {upstream_url: "PROVIDER/gemini"}}
                """)))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "ok")))
        h.provider.answer(path: "/v1/messages", with: .json(ProviderFixtures.anthropicMessage(texts: ["ok"])))
        h.provider.answer(path: "/gemini", with: .json(
            #"{"candidates":[{"content":{"role":"model","parts":[{"text":"ok"}]},"finishReason":"STOP"}]}"#))

        #expect(try await h.post("/chat", Self.hello, headers: [("Accept-Encoding", "br")]).status == 200)
        #expect(try await h.post("/claude", Self.hello).status == 200)
        #expect(try await h.post("/gemini", Self.hello, headers: [("Accept-Encoding", "gzip")]).status == 200)
        let sent = Dictionary(uniqueKeysWithValues: h.provider.requests.map { ($0.path, $0.headers["Accept-Encoding"]) })
        #expect(sent["/v1/chat/completions"] == ["gzip, identity"])
        #expect(sent["/v1/messages"] == ["gzip, identity"])
        #expect(sent["/gemini"] == ["identity"])
    }

    /// Spec §2.8: a gzip answer is inflated to be read; a client that accepts gzip gets gzip
    /// (the provider's own bytes when they are forwarded unchanged), any other client plain text.
    @Test func gzipAnswersReachEachClientInAnEncodingItAccepts() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("chat", path: "/chat", aiProxy: """
                route_type: llm/v1/chat, logging: {log_statistics: true}, \(AIConfig.openAI())
                """),
            AIConfig.route("claude", path: "/claude", aiProxy: "\(AIConfig.chat), \(AIConfig.anthropic())")))
        defer { Task { await h.stop() } }
        let openAIText = ProviderFixtures.openAIChat(content: "squeezed")
        let openAIGzip = try Gzip.compress(openAIText)
        h.provider.answer(path: "/v1/chat/completions", with: ProviderReply(
            headers: [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
            chunks: [.init(bytes: openAIGzip)]))
        h.provider.answer(path: "/v1/messages", with: ProviderReply(
            headers: [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
            chunks: [.init(bytes: try Gzip.compress(ProviderFixtures.anthropicMessage(texts: ["unzipped"])))]))

        let plain = try await h.post("/chat", Self.hello)
        #expect(plain.status == 200)
        #expect(plain.headers["Content-Encoding"].isEmpty)
        #expect(plain.body == openAIText, "inflated, byte for byte")
        #expect(plain.headers.first(name: "Content-Length") == String(openAIText.utf8.count))

        let zipped = try await h.post("/chat", Self.hello, headers: [("Accept-Encoding", "gzip, deflate")])
        #expect(zipped.status == 200)
        #expect(zipped.headers["Content-Encoding"] == ["gzip"])
        #expect(Array(zipped.bytes.readableBytesView) == openAIGzip, "the provider's gzip bytes, not compressed again")

        let converted = try await h.post("/claude", Self.hello, headers: [("Accept-Encoding", "gzip")])
        #expect(converted.status == 200)
        #expect(converted.headers["Content-Encoding"] == ["gzip"])
        let document = try JSONValue.parse(try Gzip.decompress(converted.bytes))
        #expect(document["object"] == "chat.completion")
        #expect(document["choices"]?[0]?["message"]?["content"] == "unzipped")

        let convertedPlain = try await h.post("/claude", Self.hello)
        #expect(convertedPlain.headers["Content-Encoding"].isEmpty)
        #expect(convertedPlain.json?["choices"]?[0]?["message"]?["content"] == "unzipped")
    }

    /// A provider error in gzip reaches a client that does not accept gzip inflated.
    @Test func gzipErrorsAreInflatedForClientsWithoutGzip() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("chat", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())")))
        defer { Task { await h.stop() } }
        let error = #"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#
        h.provider.answer(path: "/v1/chat/completions", with: ProviderReply(
            status: 401, headers: [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
            chunks: [.init(bytes: try Gzip.compress(error))]))

        let response = try await h.post("/chat", Self.hello)
        #expect(response.status == 401)
        #expect(response.headers["Content-Encoding"].isEmpty)
        #expect(response.body == error)
    }

    /// Spec §2.9: a plain provider error and the gateway's own 500 reach a gzip client gzip-encoded
    /// ("re-gzipped if the client accepts gzip"), any other client plain.
    @Test func plainErrorsAreGzippedForGzipClients() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("chat", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())"),
            AIConfig.route("claude", path: "/claude", aiProxy: "\(AIConfig.chat), \(AIConfig.anthropic())")))
        defer { Task { await h.stop() } }
        let error = #"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#
        h.provider.answer(path: "/v1/chat/completions", with: .json(error, status: 401))
        h.provider.answer(path: "/v1/messages", with: .json("not JSON at all"))

        let zipped = try await h.post("/chat", Self.hello, headers: [("Accept-Encoding", "gzip")])
        #expect(zipped.status == 401)
        #expect(zipped.headers["Content-Encoding"] == ["gzip"])
        #expect(try Gzip.decompress(zipped.bytes) == error)
        let plain = try await h.post("/chat", Self.hello)
        #expect(plain.headers["Content-Encoding"].isEmpty)
        #expect(plain.body == error)

        let failed = try await h.post("/claude", Self.hello, headers: [("Accept-Encoding", "gzip")])
        #expect(failed.status == 500)
        #expect(failed.headers["Content-Encoding"] == ["gzip"])
        let document = try JSONValue.parse(try Gzip.decompress(failed.bytes))
        #expect(document["error"]?["message"]?.stringValue?.hasPrefix("transformation failed from type anthropic://llm/v1/chat") == true,
                "\(document)")
    }

    /// A 200 marked gzip that does not inflate: a converting route fails as an undecodable
    /// answer does (§2.7, the driver's words); a preserve route forwards it as received.
    @Test func answersMarkedGzipThatDoNotInflate() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("chat", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())"),
            AIConfig.route("raw", path: "/raw", aiProxy: """
                route_type: preserve, logging: {}, model: {provider: openai, options: {upstream_url: "PROVIDER"}}
                """)))
        defer { Task { await h.stop() } }
        let notGzip = ProviderFixtures.openAIChat(content: "plain after all")
        for path in ["/v1/chat/completions", "/raw"] {
            h.provider.answer(path: path, with: ProviderReply(
                headers: [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
                chunks: [.init(bytes: Array(notGzip.utf8))]))
        }

        let failed = try await h.post("/chat", Self.hello)
        #expect(failed.status == 500)
        #expect(failed.headers["Content-Encoding"].isEmpty)
        #expect(failed.body == #"{"error":{"message":"transformation failed from type openai:\/\/llm\/v1\/chat: failed to decode llm\/v1\/chat response"}}"#)

        let preserved = try await h.post("/raw", Self.hello)
        #expect(preserved.status == 200)
        #expect(preserved.headers["Content-Encoding"] == ["gzip"], "forwarded as the provider marked it")
        #expect(preserved.body == notGzip)
    }

    /// Spec §2.8: a gzip stream is inflated chunk by chunk (the compressed stream split anywhere)
    /// and reaches the client as plain events, without `Content-Encoding`.
    @Test func gzipStreamsReachTheClientInflated() async throws {
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route("claude", path: "/claude", aiProxy: """
            \(AIConfig.chat), \(AIConfig.anthropic())
            """)))
        defer { Task { await h.stop() } }
        let compressed = try Gzip.compress(ProviderFixtures.anthropicStream(deltas: ["Hello", " from", " gzip"]).joined())
        // Cut the compressed bytes into pieces of 7 bytes, each written on its own; the last one
        // (inside gzip's 8-byte trailer) waits for the gate.
        let pieces = stride(from: 0, to: compressed.count, by: 7).map {
            ProviderReply.Chunk(bytes: Array(compressed[$0..<min($0 + 7, compressed.count)]))
        }
        h.provider.answer(path: "/v1/messages", with: ProviderReply(
            headers: [("Content-Type", "text/event-stream"), ("Content-Encoding", "gzip")],
            chunks: pieces, declaresLength: false, holdsLastChunk: true))

        let response = try await h.openStream("/claude", #"{"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
                                              headers: [("Accept-Encoding", "gzip")])
        #expect(response.status == .ok)
        #expect(response.headers["Content-Encoding"].isEmpty)
        #expect(response.headers.first(name: "Content-Type") == "text/event-stream")
        var iterator = response.body.makeAsyncIterator()
        var received = ""
        try await SSE.read(&iterator, into: &received) { $0.contains("[DONE]") }
        let text = SSE.payloads(received).compactMap { $0["choices"]?[0]?["delta"]?["content"]?.stringValue }.joined()
        #expect(text == "Hello from gzip", "inflated as it came, before the gzip trailer: \(received)")
        h.provider.releaseGate()
        try await SSE.read(&iterator, into: &received) { _ in false }
        #expect(SSE.frames(received).last == "data: [DONE]")
    }

    /// Spec §2.8: a stream of a content type the gateway does not parse gets one error frame,
    /// which also ends the response (Kong's `ngx.arg[2] = true`): the client does not wait for the
    /// upstream's end, and the upstream connection, its body unread, is not reused.
    @Test func anUnsupportedStreamEndsWithItsErrorFrame() async throws {
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route("chat", path: "/chat", aiProxy: """
            \(AIConfig.chat), auth: {header_name: Authorization, header_value: "Bearer sk-test"}, \(AIConfig.openAI())
            """)))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions",
                          with: .events(["plain text, ", "more of it, ", "and the end"], contentType: "text/plain", holdingLast: true))
        let response = try await h.openStream("/chat", #"{"stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        #expect(response.status == .ok)
        var iterator = response.body.makeAsyncIterator()
        var received = ""
        // The provider holds its last chunk until released below: without the early end, this read
        // waits for it and times out.
        try await SSE.read(&iterator, into: &received) { _ in false }
        #expect(received == #"data: {"error": true, "message": "empty or unsupported transformer response"}"#)
        h.provider.releaseGate()

        // The next request gets a fresh upstream connection and a whole answer.
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "fine")))
        let next = try await h.openStream("/chat", #"{"messages":[{"role":"user","content":"hi"}]}"#)
        #expect(next.status == .ok)
        let answer = try JSONValue.parse(String(buffer: try await next.body.collect(upTo: 1 << 20)))
        #expect(answer["choices"]?[0]?["message"]?["content"] == "fine")
    }

    /// Spec §2.7: Set-Cookie is removed for openai, azure, mistral, gemini and bedrock only.
    @Test func anthropicAnswersKeepSetCookie() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("claude", path: "/claude", aiProxy: "\(AIConfig.chat), \(AIConfig.anthropic())"),
            AIConfig.route("chat", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())")))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/messages", with: .json(ProviderFixtures.anthropicMessage(texts: ["ok"]),
                                                            headers: [("Set-Cookie", "session=anthropic")]))
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "ok"),
                                                                    headers: [("Set-Cookie", "session=openai")]))

        let claude = try await h.post("/claude", Self.hello)
        #expect(claude.status == 200, "\(claude.body)")
        #expect(claude.json?["object"] == "chat.completion", "converted")
        #expect(claude.headers.first(name: "Set-Cookie") == "session=anthropic")
        let openAI = try await h.post("/chat", Self.hello)
        #expect(openAI.status == 200)
        #expect(openAI.headers.first(name: "Set-Cookie") == nil, "the control: openai loses it")
    }

    /// `{vault://env/<name>}` in `auth.header_value` is resolved from the process environment; the
    /// secret reaches the provider and never the log.
    @Test func authSecretFromTheEnvVault() async throws {
        let directory = try TemporaryDirectory.make("vault-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("vault.log").path
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route(
            "vaulted", path: "/vaulted", aiProxy: """
                route_type: llm/v1/chat, logging: {log_statistics: true, log_payloads: true}, \
                auth: {header_name: Authorization, header_value: "{vault://env/\(TestSecrets.variable)}"}, \(AIConfig.openAI())
                """,
            more: ["name: file-log, config: {path: \"\(logPath)\"}"]))) { _ in [TestSecrets.variable: TestSecrets.value] }
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "ok")))

        let response = try await h.post("/vaulted", Self.hello)
        #expect(response.status == 200, "\(response.body)")
        let sent = try #require(h.provider.requests.first)
        #expect(sent.headers["Authorization"] == [TestSecrets.value], "the resolved secret, not the reference")

        let lines = try await Self.logLines(logPath, atLeast: 1)
        try #require(lines.count == 1, "\(lines)")
        #expect(!lines[0].contains(TestSecrets.value), "the secret is in the log line: \(lines[0])")
        #expect(!response.body.contains(TestSecrets.value))
        let entry = try JSONValue.parse(lines[0])
        #expect(entry["request"]?["headers"]?["authorization"] == "REDACTED", "the header was set, and is redacted")
        #expect(entry["ai"]?["proxy"]?["payload"]?["request"] != nil, "payload logging was on")
    }

    /// Provider keys set by ai-proxy — header, query argument, body field — never reach the log:
    /// the serializer shows them as `REDACTED` (as Kong does for `authorization`).
    @Test func providerKeysAreRedactedInTheLog() async throws {
        let directory = try TemporaryDirectory.make("redacted-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        func log(_ name: String) -> String { directory.appendingPathComponent("\(name).log").path }
        let logging = "logging: {log_statistics: true, log_payloads: true}"
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("header", path: "/header", aiProxy: """
                route_type: llm/v1/chat, \(logging), auth: {header_name: x-api-key, header_value: sk-header-secret}, \(AIConfig.openAI())
                """, more: ["name: file-log, config: {path: \"\(log("header"))\"}"]),
            AIConfig.route("query", path: "/query", aiProxy: """
                route_type: llm/v1/chat, \(logging), auth: {param_name: key, param_value: sk-query-secret, param_location: query}, \
                \(AIConfig.openAI())
                """, more: ["name: file-log, config: {path: \"\(log("query"))\"}"]),
            AIConfig.route("body", path: "/body", aiProxy: """
                route_type: llm/v1/chat, \(logging), auth: {param_name: api_key, param_value: sk-body-secret, param_location: body}, \
                \(AIConfig.openAI())
                """, more: ["name: file-log, config: {path: \"\(log("body"))\"}"])))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/chat/completions", with: .json(ProviderFixtures.openAIChat(content: "ok")))

        for (route, secret) in [("header", "sk-header-secret"), ("query", "sk-query-secret"), ("body", "sk-body-secret")] {
            let response = try await h.post("/\(route)?trace=on", Self.hello)
            #expect(response.status == 200, "\(route): \(response.body)")
            #expect(h.provider.requests.last.map { $0.uri.contains(secret) || $0.headers.description.contains(secret)
                || $0.bodyText.contains(secret) } == true, "\(route): the provider got the key")
            let lines = try await Self.logLines(log(route), atLeast: 1)
            try #require(lines.count == 1)
            #expect(!lines[0].contains(secret), "\(route): the key is in the log: \(lines[0])")
            #expect(lines[0].contains("REDACTED"), "\(route)")
            #expect(lines[0].contains("trace"), "\(route): the rest of the query is still logged")
        }
    }

    /// Spec §2.8/§2.11 on a stream: the prompt estimate (5 words × 1.8 = 9), and the completion
    /// count from the stream's own usage, else estimated from the accumulated text (only with
    /// log_payloads: ceil(17 bytes / 4) = 5 for "The answer is 42."; 0 without it).
    @Test func streamedRequestsLogTheirUsage() async throws {
        let directory = try TemporaryDirectory.make("stream-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        func log(_ name: String) -> String { directory.appendingPathComponent("\(name).log").path }
        func fileLog(_ name: String) -> [String] { ["name: file-log, config: {path: \"\(log(name))\"}"] }
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("estimated", path: "/estimated", aiProxy: """
                route_type: llm/v1/chat, logging: {log_statistics: true, log_payloads: true}, \(AIConfig.openAI())
                """, more: fileLog("estimated")),
            AIConfig.route("reported", path: "/reported", aiProxy: """
                route_type: llm/v1/chat, logging: {log_statistics: true}, \(AIConfig.openAI(path: "/reported/chat"))
                """, more: fileLog("reported")),
            AIConfig.route("unaccumulated", path: "/unaccumulated", aiProxy: """
                route_type: llm/v1/chat, logging: {log_statistics: true}, \(AIConfig.openAI())
                """, more: fileLog("unaccumulated"))))
        defer { Task { await h.stop() } }
        let frames = ProviderFixtures.openAIStream(deltas: ["The answer", " is 42."])
        h.provider.answer(path: "/v1/chat/completions", with: .events(frames))
        // OpenAI's `stream_options.include_usage` chunk, before [DONE].
        let usageChunk = #"data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":31,"completion_tokens":6,"total_tokens":37}}"# + "\n\n"
        h.provider.answer(path: "/reported/chat", with: .events(frames.dropLast() + [usageChunk, frames.last!]))

        let question = #"{"stream":true,"messages":[{"role":"user","content":"What is the final answer"}]}"#
        var usages: [String: JSONValue] = [:]
        for name in ["estimated", "reported", "unaccumulated"] {
            let response = try await h.post("/\(name)", question)
            #expect(response.status == 200)
            #expect(response.body.hasSuffix("data: [DONE]"), "\(name): \(response.body)")
            let lines = try await Self.logLines(log(name), atLeast: 1)
            try #require(lines.count == 1, "\(name): \(lines)")
            let entry = try JSONValue.parse(lines[0])
            usages[name] = try #require(entry["ai"]?["proxy"]?["usage"], "\(name): \(lines[0])")
            let meta = entry["ai"]?["proxy"]?["meta"]
            #expect(meta?["request_model"] == "gpt-4o-mini")
            #expect(meta?["response_model"] == "gpt-4o-mini", "streams fall back to the request model")
        }
        #expect(usages["estimated"]?["prompt_tokens"] == 9)
        #expect(usages["estimated"]?["completion_tokens"] == 5)
        #expect(usages["estimated"]?["total_tokens"] == 14)
        #expect(usages["reported"]?["prompt_tokens"] == 31, "the stream's usage replaces the estimate")
        #expect(usages["reported"]?["completion_tokens"] == 6)
        #expect(usages["reported"]?["total_tokens"] == 37)
        #expect(usages["unaccumulated"]?["prompt_tokens"] == 9)
        #expect(usages["unaccumulated"]?["completion_tokens"] == 0, "no text collected without log_payloads")
        #expect(usages["unaccumulated"]?["total_tokens"] == 9)
    }

    /// A body filter of a higher-priority plugin sees ai-proxy's converted body (the whole response
    /// is held), and the client's Content-Length counts what the filters delivered.
    @Test func bodyFiltersRunOnTheConvertedBody() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            AIConfig.route("plain", path: "/plain", aiProxy: "\(AIConfig.chat), \(AIConfig.anthropic())"),
            AIConfig.route("shout", path: "/shout", aiProxy: "\(AIConfig.chat), \(AIConfig.anthropic())",
                           more: ["name: tracer-low, config: {tag: upper}"])))
        defer { Task { await h.stop() } }
        h.provider.answer(path: "/v1/messages", with: .json(ProviderFixtures.anthropicMessage(texts: ["Bonjour le monde"])))

        let plain = try await h.post("/plain", Self.hello)
        #expect(plain.status == 200, "\(plain.body)")
        #expect(plain.json?["choices"]?[0]?["message"]?["content"] == "Bonjour le monde", "the converted body")
        let shout = try await h.post("/shout", Self.hello)
        #expect(shout.status == 200, "\(shout.body)")
        #expect(shout.body == plain.body.uppercased() + "<end>")
        #expect(shout.headers.first(name: "Content-Length") == String(shout.body.utf8.count))
        #expect(shout.headers.first(name: "Transfer-Encoding") == nil)
        #expect(shout.headers.first(name: "X-Kong-LLM-Model") == "anthropic/claude-3-5-haiku")
    }
}
