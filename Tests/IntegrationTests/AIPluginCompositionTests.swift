import Core
import Foundation
import NIOCore
import Testing

/// Spec §0.1/§0.2 and issue 6 §4: every AI plugin plus key-auth on one route. Each plugin must run
/// in PRIORITY order and see the previous one's output; a rejection by any of them short-circuits
/// with its own status and body, and the log record holds the analytics of what did run.
///
/// One mock plays every remote party, told apart by path: the request transformer's LLM (`/rt/…`),
/// Azure Content Safety (`/contentsafety/…`), the provider behind ai-proxy (Anthropic, `/v1/messages`)
/// and the response transformer's LLM (`/rst/…`).
@Suite(.serialized)
struct AIPluginCompositionTests {
    static let transformerLLM = "/rt/v1/chat/completions"
    static let responseLLM = "/rst/v1/chat/completions"
    static let contentSafety = "/contentsafety/text:analyze"
    static let anthropic = "/v1/messages"

    static func openAILLM(_ path: String, logging: String) -> String {
        "llm: {route_type: llm/v1/chat, auth: {header_name: Authorization, header_value: \"Bearer sk-side\"}, logging: \(logging), "
            + "model: {provider: openai, name: gpt-4o-mini, options: {upstream_url: \"PROVIDER\(path)\", input_cost: 10, output_cost: 10}}}"
    }

    /// The route with every plugin; `responseTransformer` adds ai-response-transformer (which
    /// then makes the provider call itself and answers).
    static func document(logPath: String, responseTransformer: Bool = false, guardingMode: String = "BOTH") -> String {
        var plugins = [
            "name: key-auth, config: {key_names: [apikey]}",
            "name: ai-request-transformer, config: {prompt: \"Turn this into a chat request\", "
                + openAILLM(transformerLLM, logging: "{log_statistics: true, log_payloads: false}") + "}",
            "name: ai-azure-content-safety, config: {content_safety_url: \"PROVIDER\(contentSafety)\", content_safety_key: cs-key, "
                + "guarding_mode: \(guardingMode), categories: [{name: Hate, rejection_level: 2}, {name: Violence, rejection_level: 4}]}",
            "name: ai-prompt-template, config: {templates: [{name: ask, template: \"{\\\"messages\\\":[{\\\"role\\\":\\\"user\\\",\\\"content\\\":\\\"Tell me about {{topic}}\\\"}]}\"}]}",
            "name: ai-prompt-decorator, config: {prompts: {prepend: [{role: system, content: \"You are a cat expert.\"}], "
                + "append: [{role: user, content: \"Answer briefly.\"}]}}",
            "name: ai-prompt-guard, config: {allow_patterns: [\"cat\"], deny_patterns: [\"dog\"], match_all_roles: true}",
            "name: ai-proxy, config: {route_type: llm/v1/chat, logging: {log_statistics: true, log_payloads: false}, "
                + "auth: {header_name: x-api-key, header_value: sk-anthropic}, "
                + "model: {provider: anthropic, name: claude-3-5-haiku, options: {upstream_url: \"PROVIDER\(anthropic)\", "
                + "anthropic_version: \"2023-06-01\", input_cost: 1, output_cost: 2}}}",
            "name: file-log, config: {path: \"\(logPath)\"}",
        ]
        if responseTransformer {
            plugins.append("name: ai-response-transformer, config: {prompt: \"Translate to French\", "
                           + openAILLM(responseLLM, logging: "{log_statistics: true, log_payloads: false}") + "}")
        }
        return """
            consumers:
            - username: alice
              keyauth_credentials: [{key: alice-key}]
            services:
            - name: llm
              url: PROVIDER/unused
              routes:
              - name: all
                paths: ["/all"]
                plugins:

            """ + plugins.map { "    - {\($0)}\n" }.joined()
    }

    /// What the request transformer's LLM turns the client's text into.
    static func chatRequest(_ text: String) -> String {
        #"{"messages":[{"role":"user","content":\#(ProviderFixtures.quoted(text))}]}"#
    }

    struct Script: Sendable {
        var transformed = chatRequest("Tell me about cats")
        var hateSeverity = 0
        var answer = "Cats purr."
        var answerHate = 0
    }

    /// Scripts the mock: Azure rates the prompt (`Tell me…`) and the answer separately.
    static func script(_ h: AIHarness, _ script: Script) {
        h.provider.answer { request in
            switch request.path {
            case transformerLLM:
                return .json(ProviderFixtures.openAIChat(content: script.transformed, prompt: 20, completion: 10))
            case responseLLM:
                return .json(ProviderFixtures.openAIChat(content: "Les chats ronronnent.", prompt: 30, completion: 5))
            case contentSafety:
                let text = request.json?["text"]?.stringValue ?? ""
                let hate = text.contains(script.answer) ? script.answerHate : script.hateSeverity
                return .json(#"{"blocklistsMatch":[],"categoriesAnalysis":[{"category":"Hate","severity":\#(hate)},{"category":"Violence","severity":0}]}"#)
            case anthropic:
                return .json(ProviderFixtures.anthropicMessage(texts: [script.answer], input: 40, output: 8))
            default:
                return .json(#"{"error":"unexpected \#(request.path)"}"#, status: 404)
            }
        }
    }

    /// The client sends `{"question": text}` as JSON: the request transformer keeps the client's
    /// Content-Type, and the later AI plugins read only JSON bodies (as Kong's do).
    static func send(_ h: AIHarness, _ text: String, key: String? = "alice-key") async throws -> ProxyHarness.Response {
        var headers = [("Content-Type", "application/json")]
        if let key { headers.append(("apikey", key)) }
        return try await h.gateway.send("/all", method: .POST, headers: headers,
                                        body: #"{"question":\#(ProviderFixtures.quoted(text))}"#)
    }

    static func requests(_ h: AIHarness, _ path: String) -> [ProviderRequest] { h.provider.requests.filter { $0.path == path } }

    static func start(responseTransformer: Bool = false, guardingMode: String = "BOTH") async throws -> (AIHarness, String, URL) {
        let directory = try TemporaryDirectory.make("composition")
        let logPath = directory.appendingPathComponent("all.log").path
        let h = try await AIHarness.start(document(logPath: logPath, responseTransformer: responseTransformer,
                                                   guardingMode: guardingMode))
        return (h, logPath, directory)
    }

    // MARK: The whole chain

    @Test func everyPluginRunsInPriorityOrderOnThePreviousOnesOutput() async throws {
        let (h, logPath, directory) = try await Self.start()
        defer { try? FileManager.default.removeItem(at: directory); Task { await h.stop() } }
        Self.script(h, Script())

        let response = try await Self.send(h, "hey, cats?")
        #expect(response.status == 200, "\(response.body)")
        // ai-proxy converted Anthropic's answer back to OpenAI's shape.
        #expect(response.json?["choices"]?[0]?["message"]?["content"] == "Cats purr.")
        #expect(response.json?["object"] == "chat.completion")

        // 777 ai-request-transformer saw the client's raw text.
        let rewrite = try #require(Self.requests(h, Self.transformerLLM).first)
        #expect(rewrite.json?["messages"]?[1]?["content"] == #"{"question":"hey, cats?"}"#)
        // 774 ai-azure-content-safety saw the transformer's output (and later the answer).
        let checks = Self.requests(h, Self.contentSafety)
        try #require(checks.count == 2, "prompt then answer")
        #expect(checks[0].json?["text"] == "Tell me about cats\n\n")
        #expect(checks[1].json?["text"]?.stringValue?.contains("Cats purr.") == true)
        // 773 template let the untemplated request through; 772 decorator wrapped it; 771 guard
        // passed it; 770 ai-proxy converted the decorated messages to Anthropic's format.
        let provider = try #require(Self.requests(h, Self.anthropic).first)
        #expect(provider.json?["system"] == "You are a cat expert.")
        #expect(provider.json?["messages"] == [
            ["role": "user", "content": "Tell me about cats"],
            ["role": "user", "content": "Answer briefly."],
        ])
        #expect(provider.headers.first(name: "x-api-key") == "sk-anthropic")
        #expect(provider.headers.first(name: "apikey") == nil || provider.headers.first(name: "apikey") == "alice-key")

        let entry = try JSONValue.parse(try #require(try await AIProxyTests.logLines(logPath, atLeast: 1).first))
        #expect(entry["consumer"]?["username"] == "alice", "key-auth (1250) ran first")
        #expect(entry["ai"]?["ai-request-transformer"]?["usage"]?["total_tokens"] == 30)
        #expect(entry["ai"]?["proxy"]?["usage"]?["prompt_tokens"] == 40)
        #expect(entry["ai"]?["proxy"]?["usage"]?["completion_tokens"] == 8)
        #expect(entry["ai"]?["proxy"]?["meta"]?["provider_name"] == "anthropic")
        #expect(entry["ai"]?["proxy"]?["azure-content-safety"]?["input_processing_latency"] != nil)
        #expect(entry["ai"]?["proxy"]?["azure-content-safety"]?["output_processing_latency"] != nil)
    }

    @Test func theResponseTransformerAnswersWithItsTransformationOfTheProvidersAnswer() async throws {
        let (h, logPath, directory) = try await Self.start(responseTransformer: true)
        defer { try? FileManager.default.removeItem(at: directory); Task { await h.stop() } }
        Self.script(h, Script())

        let response = try await Self.send(h, "hey, cats?")
        #expect(response.status == 200, "\(response.body)")
        #expect(response.body == "Les chats ronronnent.")
        // 768 ran after ai-proxy: it sent ai-proxy's converted request to the provider itself, and
        // gave its LLM the provider's answer.
        let provider = try #require(Self.requests(h, Self.anthropic).first)
        #expect(provider.json?["system"] == "You are a cat expert.")
        #expect(Self.requests(h, Self.anthropic).count == 1, "no second provider call by the proxy")
        let translate = try #require(Self.requests(h, Self.responseLLM).first)
        #expect(translate.json?["messages"]?[1]?["content"]?.stringValue?.contains("Cats purr.") == true)

        let entry = try JSONValue.parse(try #require(try await AIProxyTests.logLines(logPath, atLeast: 1).first))
        #expect(entry["ai"]?["ai-request-transformer"]?["usage"]?["total_tokens"] == 30)
        #expect(entry["ai"]?["ai-response-transformer"]?["usage"]?["total_tokens"] == 35)
        #expect(entry["ai"]?["ai-response-transformer"]?["meta"]?["request_model"] == "claude-3-5-haiku")
    }

    // MARK: Short circuits

    @Test func keyAuthRefusesBeforeAnyAIPluginRuns() async throws {
        let (h, _, directory) = try await Self.start()
        defer { try? FileManager.default.removeItem(at: directory); Task { await h.stop() } }
        Self.script(h, Script())
        let response = try await Self.send(h, "hey, cats?", key: nil)
        #expect(response.status == 401)
        #expect(h.provider.requests.isEmpty, "no LLM, Azure or provider call")
    }

    @Test func aContentSafetyBreachStopsTheChainWithItsOwnBody() async throws {
        let (h, logPath, directory) = try await Self.start()
        defer { try? FileManager.default.removeItem(at: directory); Task { await h.stop() } }
        var script = Script()
        script.hateSeverity = 4
        Self.script(h, script)
        let response = try await Self.send(h, "something hateful")
        #expect(response.status == 400)
        #expect(response.json == ["error": ["message": "request failed content safety check: breached category [Hate] at level 2"]])
        #expect(Self.requests(h, Self.transformerLLM).count == 1, "777 ran before 774")
        #expect(Self.requests(h, Self.anthropic).isEmpty)
        let entry = try JSONValue.parse(try #require(try await AIProxyTests.logLines(logPath, atLeast: 1).first))
        #expect(entry["ai"]?["ai-request-transformer"]?["usage"]?["total_tokens"] == 30, "the transformer's spend is still logged")
        #expect(entry["ai"]?["audit"]?["azure_content_safety"]?["Hate"] == 2)
        #expect(entry["ai"]?["proxy"]?["usage"] == nil, "ai-proxy never ran")
        #expect(entry["response"]?["status"] == 400)
    }

    @Test func contentSafetyRunsBeforeTheTemplateAndRefusesATemplateCall() async throws {
        let (h, _, directory) = try await Self.start()
        defer { try? FileManager.default.removeItem(at: directory); Task { await h.stop() } }
        var script = Script()
        script.transformed = #"{"messages":"{template://ask}","properties":{"topic":"cats"}}"#
        Self.script(h, script)
        let response = try await Self.send(h, "use a template")
        // 774 checks the prompt before 773 renders it: a template call has no messages array.
        #expect(response.status == 400)
        #expect(response.json == ["error": ["message": "request [messages] array is empty or missing"]])
        #expect(Self.requests(h, Self.contentSafety).isEmpty)
        #expect(Self.requests(h, Self.anthropic).isEmpty)
    }

    @Test func theTemplateRendersForTheDecoratorAndRefusesAnUnknownName() async throws {
        // Content safety on the answer only, so the template call reaches the template.
        let (h, _, directory) = try await Self.start(guardingMode: "OUTPUT")
        defer { try? FileManager.default.removeItem(at: directory); Task { await h.stop() } }
        var script = Script()
        script.transformed = #"{"messages":"{template://ask}","properties":{"topic":"cats"}}"#
        Self.script(h, script)
        let rendered = try await Self.send(h, "use a template")
        #expect(rendered.status == 200, "\(rendered.body)")
        let provider = try #require(Self.requests(h, Self.anthropic).first)
        #expect(provider.json?["messages"] == [
            ["role": "user", "content": "Tell me about cats"],
            ["role": "user", "content": "Answer briefly."],
        ], "773 rendered, then 772 decorated the rendered messages")

        script.transformed = #"{"messages":"{template://nope}"}"#
        Self.script(h, script)
        let refused = try await Self.send(h, "use a template")
        #expect(refused.status == 400)
        #expect(refused.json == ["error": ["message": "could not find template name [nope]"]])
        #expect(Self.requests(h, Self.anthropic).count == 1, "no provider call for the refused one")
    }

    @Test func theGuardSeesTheDecoratedMessagesAndItsRefusalStopsTheProxy() async throws {
        let (h, logPath, directory) = try await Self.start()
        defer { try? FileManager.default.removeItem(at: directory); Task { await h.stop() } }
        var script = Script()
        script.transformed = Self.chatRequest("Tell me about dogs")
        Self.script(h, script)
        let response = try await Self.send(h, "dogs?")
        #expect(response.status == 400)
        #expect(response.json == ["error": ["message": "bad request"]])
        #expect(Self.requests(h, Self.contentSafety).count == 1, "774 ran before 771")
        #expect(Self.requests(h, Self.anthropic).isEmpty)
        let entry = try JSONValue.parse(try #require(try await AIProxyTests.logLines(logPath, atLeast: 1).first))
        #expect(entry["ai"]?["proxy"]?["usage"] == nil)
        #expect(entry["ai"]?["ai-request-transformer"] != nil)

        // "cat" only appears in the decorator's system prompt: with match_all_roles the guard's
        // allow pattern matches it, which shows it checks the decorated messages.
        script.transformed = Self.chatRequest("Tell me about birds")
        Self.script(h, script)
        let allowed = try await Self.send(h, "birds?")
        #expect(allowed.status == 200, "\(allowed.body)")
    }

    @Test func anAnswerThatFailsContentSafetyIsReplacedByTheGuardsBody() async throws {
        let (h, _, directory) = try await Self.start()
        defer { try? FileManager.default.removeItem(at: directory); Task { await h.stop() } }
        var script = Script()
        script.answerHate = 6
        Self.script(h, script)
        let response = try await Self.send(h, "cats?")
        #expect(response.status == 400)
        #expect(response.json == ["error": ["message": "response failed content safety check: breached category [Hate] at level 2"]])
        #expect(Self.requests(h, Self.anthropic).count == 1, "the provider answered; the answer was withheld")
    }
}
