import Core
import Foundation
import NIOCore
import NIOHTTP1
import Plugins
import Testing

/// YAML and scripts for ai-azure-content-safety routes: the mock provider plays both Azure AI
/// Content Safety (`…/contentsafety/text:analyze`, under a per-route prefix so each route can get
/// its own answer) and the OpenAI model behind ai-proxy (`/v1/chat/completions`).
enum ContentSafety {
    static let analyzePath = "/contentsafety/text:analyze"
    static let llmPath = "/v1/chat/completions"
    /// The subscription key: it must reach Azure and nothing else.
    static let key = "cs-key-\(UUID().uuidString.lowercased())"
    static let hateAndViolence = "categories: [{name: Hate, rejection_level: 1}, {name: Violence, rejection_level: 2}]"

    /// A route `/<name>` with ai-proxy (OpenAI at the mock), ai-azure-content-safety asking Azure at
    /// `PROVIDER/<azurePrefix>/contentsafety/text:analyze` with the key and `config`, and `more`.
    static func route(_ name: String, azurePrefix: String = "", _ config: String = hateAndViolence,
                      key: String? = ContentSafety.key, proxy: String = "\(AIConfig.chat), \(AIConfig.openAI())",
                      more: [String] = []) -> String {
        var safety = "content_safety_url: \"PROVIDER\(azurePrefix)\(analyzePath)\""
        if let key { safety += ", content_safety_key: \"\(key)\"" }
        if !config.isEmpty { safety += ", " + config }
        return AIConfig.route(name, path: "/\(name)", aiProxy: proxy,
                              more: ["name: ai-azure-content-safety, config: {\(safety)}"] + more)
    }

    static func fileLog(_ path: String) -> String { "name: file-log, config: {path: \"\(path)\"}" }

    /// Azure's 200 answer with these severities (in this order) and blocklist matches.
    static func verdict(_ severities: [(String, Int)], blocklists: [String] = []) -> ProviderReply {
        let analysis = severities.map { #"{"category":"\#($0.0)","severity":\#($0.1)}"# }.joined(separator: ",")
        let matches = blocklists.enumerated().map {
            #"{"blocklistName":"\#($1)","blocklistItemId":"item-\#($0)","blocklistItemText":"Acme"}"#
        }.joined(separator: ",")
        return .json(#"{"blocklistsMatch":[\#(matches)],"categoriesAnalysis":[\#(analysis)]}"#)
    }

    static let clean = verdict([("Hate", 0), ("SelfHarm", 0), ("Sexual", 0), ("Violence", 0)])
    static let answer = "A kind answer"

    /// Scripts the mock: Azure calls (path ending in `analyzePath`) go to `azure`, the LLM path to
    /// `llm`, anything else (token endpoints) to `other`.
    static func script(_ h: AIHarness,
                       azure: @escaping @Sendable (ProviderRequest) -> ProviderReply,
                       llm: @escaping @Sendable (ProviderRequest) -> ProviderReply = { _ in .json(ProviderFixtures.openAIChat(content: answer)) },
                       other: @escaping @Sendable (ProviderRequest) -> ProviderReply = { _ in .json("{}", status: 404) }) {
        h.provider.answer { request in
            if request.path.hasSuffix(analyzePath) { return azure(request) }
            if request.path.hasSuffix(llmPath) { return llm(request) }
            return other(request)
        }
    }

    static func azureCalls(_ h: AIHarness) -> [ProviderRequest] { h.provider.requests.filter { $0.path.hasSuffix(analyzePath) } }
    static func llmCalls(_ h: AIHarness) -> [ProviderRequest] { h.provider.requests.filter { $0.path.hasSuffix(llmPath) } }

    /// The texts Azure was asked about, in order.
    static func screened(_ h: AIHarness) -> [String] { azureCalls(h).compactMap { $0.json?["text"]?.stringValue } }
}

/// Kong's generic 500 (spec §0.3): the default message and the request id, in the JSON template.
func expectGeneric500(_ response: ProxyHarness.Response, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(response.status == 500, "\(response.body)", sourceLocation: sourceLocation)
    #expect(response.headers.first(name: "Content-Type") == "application/json; charset=utf-8", sourceLocation: sourceLocation)
    #expect(response.json?["message"] == "An unexpected error occurred", "\(response.body)", sourceLocation: sourceLocation)
    #expect(response.json?["request_id"]?.stringValue?.isEmpty == false, "\(response.body)", sourceLocation: sourceLocation)
    #expect(!response.body.contains(ContentSafety.key), "the key is in the error body", sourceLocation: sourceLocation)
}

/// ai-azure-content-safety end to end (spec ai-plugins §6): a real gateway, the mock provider as
/// both Azure Content Safety and the LLM, declarative YAML.
@Suite(.serialized)
struct AIAzureContentSafetyTests {
    static let conversation = """
        {"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Hi"},\
        {"role":"assistant","content":"Hello"},{"role":"user","content":"Say it in French"}]}
        """

    // MARK: The Analyze Text call (§6.3-2, -3)

    @Test func azureIsAskedAboutTheWholeConversation() async throws {
        let h = try await AIHarness.start(AIConfig.document(ContentSafety.route("screened", """
            categories: [{name: Violence, rejection_level: 4}, {name: Hate, rejection_level: 2}], \
            blocklist_names: [company_competitors, slurs], halt_on_blocklist_hit: false, \
            output_type: EightSeverityLevels, azure_api_version: "2024-09-01"
            """)))
        defer { Task { await h.stop() } }
        ContentSafety.script(h, azure: { _ in ContentSafety.clean })

        let response = try await h.post("/screened", Self.conversation)

        #expect(response.status == 200, "\(response.body)")
        #expect(response.body == ProviderFixtures.openAIChat(content: ContentSafety.answer), "no breach: the LLM answers")
        #expect(h.provider.requests.map(\.path) == [ContentSafety.analyzePath, ContentSafety.llmPath], "Azure first, then the LLM")
        let azure = try #require(ContentSafety.azureCalls(h).first)
        #expect(azure.method == .POST)
        #expect(azure.query == "api-version=2024-09-01")
        #expect(azure.headers["Ocp-Apim-Subscription-Key"] == [ContentSafety.key])
        #expect(azure.headers["Authorization"].isEmpty)
        #expect(azure.headers["Content-Type"] == ["application/json"])
        #expect(azure.headers["Accept"] == ["application/json"])
        #expect(azure.json == [
            "text": "You are terse.\n\nHi\n\nHello\n\nSay it in French\n\n",
            "categories": ["Violence", "Hate"],
            "blocklistNames": ["company_competitors", "slurs"],
            "haltOnBlocklistHit": false,
            "outputType": "EightSeverityLevels",
        ], "\(azure.bodyText)")
        let llm = try #require(ContentSafety.llmCalls(h).first)
        #expect(llm.json?["messages"] == (try JSONValue.parse(Self.conversation))["messages"], "the prompt goes on unchanged")
        #expect(!llm.bodyText.contains(ContentSafety.key) && llm.headers.first(name: "Ocp-Apim-Subscription-Key") == nil)
    }

    @Test func userContentScreensOnlyWhatTheUserWrote() async throws {
        let h = try await AIHarness.start(AIConfig.document(ContentSafety.route(
            "users", "\(ContentSafety.hateAndViolence), text_source: concatenate_user_content")))
        defer { Task { await h.stop() } }
        ContentSafety.script(h, azure: { _ in ContentSafety.clean })

        #expect(try await h.post("/users", Self.conversation).status == 200)
        #expect(try await h.post("/users", #"{"messages":[{"role":"user","content":[{"type":"text","text":"Describe"},{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]},{"role":"user"}]}"#).status == 200)

        let calls = ContentSafety.azureCalls(h)
        try #require(calls.count == 2)
        #expect(calls[0].json == [
            "text": "Hi\n\nSay it in French\n\n",
            "categories": ["Hate", "Violence"],
            "haltOnBlocklistHit": true,
            "outputType": "FourSeverityLevels",
        ], "defaults; no blocklistNames when none are configured: \(calls[0].bodyText)")
        #expect(calls[0].query == "api-version=2023-10-01")
        #expect(calls[1].json?["text"] == "Describe\n\n \n\n", "text parts only; a message without content is a space")
    }

    // MARK: Refusals (§6.3-1, -5, -6)

    @Test func requestsThatAreNoChatAreRefusedBeforeAzure() async throws {
        let h = try await AIHarness.start(AIConfig.document(ContentSafety.route("guarded")))
        defer { Task { await h.stop() } }
        ContentSafety.script(h, azure: { _ in ContentSafety.clean })

        expectAIError(try await h.post("/guarded", "Hello there"), "request is not in json format")
        expectAIError(try await h.post("/guarded", #"[{"role":"user","content":"Hi"}]"#), "request is not in json format")
        expectAIError(try await h.post("/guarded", #"{"prompt":"Hi"}"#), "request [messages] array is empty or missing")
        expectAIError(try await h.post("/guarded", #"{"messages":[]}"#), "request [messages] array is empty or missing")
        expectAIError(try await h.post("/guarded", #"{"messages":"Hi"}"#), "request [messages] array is empty or missing")
        #expect(h.provider.requests.isEmpty, "neither Azure nor the LLM was called")
    }

    @Test func aBreachIsRefusedWithItsReasons() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            ContentSafety.route("revealed", azurePrefix: "/breach"),
            ContentSafety.route("hidden", azurePrefix: "/breach", "\(ContentSafety.hateAndViolence), reveal_failure_reason: false"),
            ContentSafety.route("below", azurePrefix: "/below"),
            ContentSafety.route("blocklisted", azurePrefix: "/blocklist",
                                "\(ContentSafety.hateAndViolence), blocklist_names: [competitors]"),
            ContentSafety.route("both", azurePrefix: "/both")))
        defer { Task { await h.stop() } }
        ContentSafety.script(h, azure: { request in
            switch request.path.dropLast(ContentSafety.analyzePath.count) {
            case "/breach": return ContentSafety.verdict([("Hate", 2), ("SelfHarm", 6), ("Sexual", 0), ("Violence", 4)])
            case "/below": return ContentSafety.verdict([("Hate", 0), ("Violence", 1)])
            // Azure stops at a blocklist hit (haltOnBlocklistHit): no categories analysed.
            case "/blocklist": return ContentSafety.verdict([], blocklists: ["competitors"])
            default: return ContentSafety.verdict([("Violence", 6)], blocklists: ["competitors"])
            }
        })
        let prompt = #"{"messages":[{"role":"user","content":"Something nasty"}]}"#

        expectAIError(try await h.post("/revealed", prompt),
                      "request failed content safety check: breached category [Hate] at level 1; breached category [Violence] at level 2")
        expectAIError(try await h.post("/hidden", prompt), "request failed content safety check")
        expectAIError(try await h.post("/blocklisted", prompt), "request failed content safety check: breached blocklist [competitors]")
        expectAIError(try await h.post("/both", prompt),
                      "request failed content safety check: breached category [Violence] at level 2breached blocklist [competitors]")
        #expect(ContentSafety.llmCalls(h).isEmpty, "a refused prompt never reaches the LLM")
        #expect(try await h.post("/below", prompt).status == 200, "severities under the levels pass")
        #expect(ContentSafety.llmCalls(h).count == 1)
        #expect(ContentSafety.azureCalls(h).first { $0.path.hasPrefix("/blocklist") }?.json?["blocklistNames"] == ["competitors"])
    }

    // MARK: Failures (§6.3-7)

    @Test func azureFailuresAnswerTheGeneric500() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            ContentSafety.route("status", azurePrefix: "/status"),
            ContentSafety.route("html", azurePrefix: "/html"),
            ContentSafety.route("unanalysed", azurePrefix: "/unanalysed"),
            ContentSafety.route("lenient", azurePrefix: "/status", "\(ContentSafety.hateAndViolence), stop_on_error: false"),
            AIConfig.route("unreachable", path: "/unreachable", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())", more: [
                "name: ai-azure-content-safety, config: {content_safety_url: \"http://127.0.0.1:1\(ContentSafety.analyzePath)\", content_safety_key: \"\(ContentSafety.key)\"}",
            ])))
        defer { Task { await h.stop() } }
        ContentSafety.script(h, azure: { request in
            switch request.path.dropLast(ContentSafety.analyzePath.count) {
            case "/status": return .json(#"{"error":{"code":"InternalServerError","message":"try later"}}"#, status: 500)
            case "/html": return ProviderReply(status: 200, headers: [("Content-Type", "text/html")],
                                               chunks: [.init(text: "<html>maintenance</html>")])
            default: return .json(#"{"blocklistsMatch":[]}"#)
            }
        })
        let prompt = #"{"messages":[{"role":"user","content":"Hi"}]}"#

        for route in ["/status", "/html", "/unanalysed", "/unreachable"] {
            expectGeneric500(try await h.post(route, prompt))
        }
        #expect(ContentSafety.llmCalls(h).isEmpty, "an unchecked prompt never reaches the LLM")
        let lenient = try await h.post("/lenient", prompt)
        #expect(lenient.status == 200, "stop_on_error false: Azure's failure lets the prompt through: \(lenient.body)")
        #expect(ContentSafety.llmCalls(h).count == 1)
    }

    // MARK: Managed identity

    @Test func managedIdentityTokensReplaceTheKey() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            ContentSafety.route("msi", azurePrefix: "/msi", "azure_use_managed_identity: true, azure_client_id: cs-identity"),
            ContentSafety.route("entra", azurePrefix: "/entra", """
                azure_use_managed_identity: true, azure_client_id: cs-app, azure_client_secret: cs-app-secret, \
                azure_tenant_id: cs-tenant
                """, key: nil),
            ContentSafety.route("denied", azurePrefix: "/denied", "azure_use_managed_identity: true, azure_client_id: cs-denied"))) { provider in
            ["AZURE_POD_IDENTITY_AUTHORITY_HOST": provider.baseURL, "AZURE_AUTHORITY_HOST": provider.baseURL]
        }
        defer { Task { await h.stop() } }
        ContentSafety.script(h, azure: { request in
            let expected = request.path.hasPrefix("/msi") ? "Bearer cs-msi-token" : "Bearer cs-entra-token"
            guard request.headers.first(name: "authorization") == expected,
                  request.headers.first(name: "ocp-apim-subscription-key") == nil else {
                return .json(#"{"error":{"code":"PermissionDenied","message":"no token"}}"#, status: 401)
            }
            return ContentSafety.clean
        }, other: { request in
            let query = request.query ?? ""
            if request.path == "/metadata/identity/oauth2/token" {
                guard request.headers.first(name: "metadata") == "true", query.contains("client_id=cs-identity"),
                      query.contains("resource=https%3A%2F%2Fcognitiveservices.azure.com") else {
                    return .json(#"{"error":"invalid_request","error_description":"Identity not found"}"#, status: 400)
                }
                return .json(#"{"access_token":"cs-msi-token","expires_in":"3599","token_type":"Bearer"}"#)
            }
            if request.path == "/cs-tenant/oauth2/v2.0/token", request.method == .POST,
               request.bodyText.contains("client_secret=cs-app-secret"), request.bodyText.contains("client_id=cs-app"),
               request.bodyText.contains("scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default") {
                return .json(#"{"access_token":"cs-entra-token","expires_in":3599,"token_type":"Bearer"}"#)
            }
            return .json(#"{"error":"invalid_client"}"#, status: 401)
        })
        let prompt = #"{"messages":[{"role":"user","content":"Hi"}]}"#

        let msi = try await h.post("/msi", prompt)
        #expect(msi.status == 200, "\(msi.body)")
        #expect(h.provider.requests.map(\.path) == ["/metadata/identity/oauth2/token", "/msi\(ContentSafety.analyzePath)", ContentSafety.llmPath])
        let entra = try await h.post("/entra", prompt)
        #expect(entra.status == 200, "\(entra.body)")
        #expect(h.provider.requests.dropFirst(3).map(\.path) == ["/cs-tenant/oauth2/v2.0/token", "/entra\(ContentSafety.analyzePath)", ContentSafety.llmPath])

        let before = h.provider.requests.count
        let denied = try await h.post("/denied", prompt)
        expectAIError(denied, "failed to authenticate with Azure Content Services", status: 500)
        #expect(h.provider.requests.dropFirst(before).map(\.path) == ["/metadata/identity/oauth2/token"],
                "no token: neither Azure nor the LLM is called")
    }

    // MARK: Audit log (§6.4)

    @Test func theLogRecordsBreachesAndTheCheck() async throws {
        let directory = try TemporaryDirectory.make("content-safety-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("cs.log").path
        let h = try await AIHarness.start(AIConfig.document(ContentSafety.route(
            "logged", ContentSafety.hateAndViolence, key: "{vault://env/\(TestSecrets.variable)}",
            proxy: "route_type: llm/v1/chat, logging: {log_statistics: true, log_payloads: true}, \(AIConfig.openAI())",
            more: [ContentSafety.fileLog(logPath)]))) { _ in [TestSecrets.variable: TestSecrets.value] }
        defer { Task { await h.stop() } }
        ContentSafety.script(h, azure: { request in
            guard request.headers.first(name: "ocp-apim-subscription-key") == TestSecrets.value else {
                return .json(#"{"error":{"code":"401","message":"Access denied due to invalid subscription key"}}"#, status: 401)
            }
            return (request.json?["text"]?.stringValue ?? "").contains("hurt")
                ? ContentSafety.verdict([("Hate", 2), ("Violence", 4)]) : ContentSafety.clean
        })

        let refused = try await h.post("/logged", #"{"messages":[{"role":"user","content":"I want to hurt them"}]}"#)
        expectAIError(refused, "request failed content safety check: breached category [Hate] at level 1; breached category [Violence] at level 2")
        let first = try await AIProxyTests.logLines(logPath, atLeast: 1)
        try #require(first.count == 1, "\(first)")
        let blocked = try JSONValue.parse(first[0])
        #expect(blocked["ai"]?["audit"]?["azure_content_safety"] == ["Hate": 1, "Violence": 2],
                "the configured level of each breached category: \(first[0])")
        let meta = try #require(blocked["ai"]?["proxy"]?["azure-content-safety"], "\(first[0])")
        #expect(meta["azure_api_version"] == "2023-10-01")
        #expect(meta["azure_content_safety_url"] == .string(h.provider.baseURL + ContentSafety.analyzePath))
        #expect((meta["input_processing_latency"]?.numberValue ?? -1) >= 0)
        #expect(meta["input_block_reason"] == "breached category [Hate] at level 1; breached category [Violence] at level 2")
        #expect(meta["output_processing_latency"] == nil && meta["output_block_reason"] == nil, "no answer was checked")
        #expect(blocked["response"]?["status"] == 400)
        #expect(!first[0].contains(TestSecrets.value), "the key is in the log: \(first[0])")
        #expect(!refused.body.contains(TestSecrets.value))

        let passed = try await h.post("/logged", #"{"messages":[{"role":"user","content":"Be kind"}]}"#)
        #expect(passed.status == 200, "\(passed.body)")
        let both = try await AIProxyTests.logLines(logPath, atLeast: 2)
        try #require(both.count == 2, "\(both)")
        let clean = try JSONValue.parse(both[1])
        #expect(clean["ai"]?["audit"] == nil, "no breach, no audit key")
        #expect(clean["ai"]?["proxy"]?["usage"]?["total_tokens"] == 37, "ai-proxy's analytics are kept: \(both[1])")
        #expect((clean["ai"]?["proxy"]?["azure-content-safety"]?["input_processing_latency"]?.numberValue ?? -1) >= 0,
                "and the check's own, next to them: \(both[1])")
        #expect(clean["ai"]?["proxy"]?["azure-content-safety"]?["input_block_reason"] == nil)
        #expect(!both[1].contains(TestSecrets.value))
    }

    // MARK: Response guard (§6.3-8)

    /// The LLM answers a harmful text when asked for one; Azure flags every text mentioning harm.
    static func scriptAnswers(_ h: AIHarness, azure: (@Sendable (ProviderRequest) -> ProviderReply)? = nil) {
        ContentSafety.script(h, azure: azure ?? { request in
            (request.json?["text"]?.stringValue ?? "").contains("harmful")
                ? ContentSafety.verdict([("Hate", 0), ("Violence", 4)]) : ContentSafety.clean
        }, llm: { request in
            if request.json?["stream"] == true {
                return .events(ProviderFixtures.openAIStream(deltas: ["A harmful", " stream"]))
            }
            let asked = request.json?["messages"]?[0]?["content"]?.stringValue ?? ""
            let body = ProviderFixtures.openAIChat(content: asked.contains("dangerous") ? "A harmful answer" : ContentSafety.answer)
            guard request.path.hasPrefix("/gz") else { return .json(body) }
            let zipped = (try? Gzip.compress(body)) ?? []
            return ProviderReply(status: 200, headers: [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
                                 chunks: [.init(bytes: zipped)])
        })
    }

    static let dangerous = #"{"messages":[{"role":"user","content":"Tell me something dangerous"}]}"#
    static let kind = #"{"messages":[{"role":"user","content":"Be kind"}]}"#

    @Test func outputModeScreensTheAnswer() async throws {
        let output = "\(ContentSafety.hateAndViolence), guarding_mode: OUTPUT"
        let h = try await AIHarness.start(AIConfig.document(
            ContentSafety.route("output", output),
            ContentSafety.route("hidden", "\(output), reveal_failure_reason: false"),
            ContentSafety.route("zipped", output, proxy: "\(AIConfig.chat), \(AIConfig.openAI(path: "/gz\(ContentSafety.llmPath)"))")))
        defer { Task { await h.stop() } }
        Self.scriptAnswers(h)

        let blocked = try await h.post("/output", Self.dangerous)
        expectAIError(blocked, "response failed content safety check: breached category [Violence] at level 2")
        #expect(ContentSafety.llmCalls(h).count == 1, "the LLM was asked")
        #expect(ContentSafety.screened(h) == ["A harmful answer"], "only the answer is screened in OUTPUT mode")

        let passed = try await h.post("/output", Self.kind)
        #expect(passed.status == 200, "\(passed.body)")
        #expect(passed.body == ProviderFixtures.openAIChat(content: ContentSafety.answer), "a clean answer goes as it came")
        #expect(ContentSafety.screened(h).last == ContentSafety.answer)

        expectAIError(try await h.post("/hidden", Self.dangerous), "response failed content safety check")

        // A gzip answer kept compressed for a client that accepts gzip is read inflated.
        let zipped = try await h.post("/zipped", Self.dangerous, headers: [("Accept-Encoding", "gzip")])
        expectAIError(zipped, "response failed content safety check: breached category [Violence] at level 2")
        let unzipped = try await h.post("/zipped", Self.kind, headers: [("Accept-Encoding", "gzip")])
        #expect(unzipped.status == 200)
        #expect(unzipped.headers.first(name: "Content-Encoding") == "gzip")
        #expect(try Gzip.decompress(unzipped.bytes) == ProviderFixtures.openAIChat(content: ContentSafety.answer))
        #expect(ContentSafety.screened(h).suffix(2) == ["A harmful answer", ContentSafety.answer])
    }

    @Test func aLongAnswerIsScreenedInPiecesAzureAccepts() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            ContentSafety.route("output", "\(ContentSafety.hateAndViolence), guarding_mode: OUTPUT")))
        defer { Task { await h.stop() } }
        let long = String(repeating: "calm words ", count: 2_000) + "harmful"  // 22,007 characters
        ContentSafety.script(h, azure: { request in
            let text = request.json?["text"]?.stringValue ?? ""
            // Azure's own limit: a longer text is refused with 400.
            if text.count > 10_000 { return .json(#"{"error":{"code":"InvalidRequestBody"}}"#, status: 400) }
            return text.contains("harmful") ? ContentSafety.verdict([("Hate", 0), ("Violence", 4)]) : ContentSafety.clean
        }, llm: { _ in .json(ProviderFixtures.openAIChat(content: long)) })
        let response = try await h.post("/output", Self.kind)
        expectAIError(response, "response failed content safety check: breached category [Violence] at level 2")
        let pieces = ContentSafety.screened(h)
        #expect(pieces.count == 3, "10,000 + 10,000 + 2,007 characters")
        #expect(pieces.joined() == long)
        #expect(pieces.allSatisfy { $0.count <= 10_000 })
    }

    @Test func bothModeScreensPromptAndAnswerAndLogsBoth() async throws {
        let directory = try TemporaryDirectory.make("content-safety-both")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("both.log").path
        let h = try await AIHarness.start(AIConfig.document(ContentSafety.route(
            "both", "\(ContentSafety.hateAndViolence), guarding_mode: BOTH", more: [ContentSafety.fileLog(logPath)])))
        defer { Task { await h.stop() } }
        Self.scriptAnswers(h)

        #expect(try await h.post("/both", Self.kind).status == 200)
        #expect(ContentSafety.screened(h) == ["Be kind\n\n", ContentSafety.answer], "the prompt, then the answer")
        expectAIError(try await h.post("/both", Self.dangerous),
                      "response failed content safety check: breached category [Violence] at level 2")

        let lines = try await AIProxyTests.logLines(logPath, atLeast: 2)
        try #require(lines.count == 2, "\(lines)")
        let passed = try JSONValue.parse(lines[0]), blocked = try JSONValue.parse(lines[1])
        let passedMeta = try #require(passed["ai"]?["proxy"]?["azure-content-safety"], "\(lines[0])")
        #expect((passedMeta["input_processing_latency"]?.numberValue ?? -1) >= 0)
        #expect((passedMeta["output_processing_latency"]?.numberValue ?? -1) >= 0)
        let blockedMeta = try #require(blocked["ai"]?["proxy"]?["azure-content-safety"], "\(lines[1])")
        #expect(blockedMeta["output_block_reason"] == "breached category [Violence] at level 2")
        #expect(blockedMeta["input_block_reason"] == nil, "the prompt itself was clean")
        #expect(blocked["ai"]?["audit"]?["azure_content_safety"] == ["Violence": 2])
        #expect(blocked["response"]?["status"] == 400)
    }

    /// A client that leaves while its answer is being screened is logged once the check is over,
    /// with Kong's 499.
    @Test func aClientLeavingDuringTheAnswersCheckIsLoggedAs499() async throws {
        let directory = try TemporaryDirectory.make("content-safety-left")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("left.log").path
        let h = try await AIHarness.start(AIConfig.document(ContentSafety.route(
            "output", "\(ContentSafety.hateAndViolence), guarding_mode: OUTPUT", more: [ContentSafety.fileLog(logPath)])))
        defer { Task { await h.stop() } }
        var slow = ContentSafety.clean
        slow.chunks[0].pauseBefore = .milliseconds(300)
        let slowVerdict = slow
        ContentSafety.script(h, azure: { _ in slowVerdict })
        let body = Self.kind
        try await h.gateway.rawConnection().executeThenClose { _, outbound in
            try await outbound.write(ByteBuffer(string: "POST /output HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"))
            // Gone while Azure is still looking at the answer.
            let deadline = ContinuousClock.now + .seconds(10)
            while ContentSafety.azureCalls(h).isEmpty && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        #expect(ContentSafety.screened(h) == [ContentSafety.answer])
        let lines = try await AIProxyTests.logLines(logPath, atLeast: 1)
        #expect(lines.count == 1)
        let entry = try #require(lines.first.flatMap { try? JSONValue.parse($0) })
        #expect(entry["response"]?["status"] == 499)
    }

    /// Streams are not held back for a check (docs/decisions.md): the answer streams unscreened.
    @Test func aStreamedAnswerIsNotScreened() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            ContentSafety.route("output", "\(ContentSafety.hateAndViolence), guarding_mode: OUTPUT")))
        defer { Task { await h.stop() } }
        Self.scriptAnswers(h)

        let response = try await h.post("/output", #"{"stream":true,"messages":[{"role":"user","content":"Tell me something dangerous"}]}"#)
        #expect(response.status == 200)
        #expect(response.headers.first(name: "Content-Type") == "text/event-stream")
        #expect(response.body.contains("A harmful") && response.body.hasSuffix("data: [DONE]"), "\(response.body)")
        #expect(ContentSafety.azureCalls(h).isEmpty)
    }

    @Test func stopOnErrorDecidesWhetherAnUncheckedAnswerGoes() async throws {
        let h = try await AIHarness.start(AIConfig.document(
            ContentSafety.route("strict", "\(ContentSafety.hateAndViolence), guarding_mode: OUTPUT"),
            ContentSafety.route("lenient", "\(ContentSafety.hateAndViolence), guarding_mode: OUTPUT, stop_on_error: false")))
        defer { Task { await h.stop() } }
        Self.scriptAnswers(h, azure: { _ in .json(#"{"error":{"code":"ServiceUnavailable"}}"#, status: 503) })

        expectGeneric500(try await h.post("/strict", Self.kind))
        let lenient = try await h.post("/lenient", Self.kind)
        #expect(lenient.status == 200, "\(lenient.body)")
        #expect(lenient.body == ProviderFixtures.openAIChat(content: ContentSafety.answer))
        #expect(ContentSafety.azureCalls(h).count == 2, "both answers were submitted")
    }
}
