import Core
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The official OpenAI Python SDK (openai_sdk_test.py) against one gateway whose ai-proxy routes
/// reach a mock provider answering in each provider's own format: chat, streamed chat (with and
/// without `stream_options.include_usage`), tool calls, completions and embeddings, for openai,
/// azure, mistral, anthropic, gemini and bedrock.
@Suite(.serialized)
struct OpenAISDKTests {
    @Test(.enabled(if: OpenAISDK.python != nil,
                   "needs a Python whose `import openai` works: python3, or OPENAI_SDK_PYTHON=<interpreter>"))
    func openAISDKTalksToTheGateway() async throws {
        let h = try await AIHarness.start(SDKMock.configuration)
        defer { Task { await h.stop() } }
        h.provider.answer { SDKMock.respond(to: $0) }

        let run = try await OpenAISDK.runScript(baseURL: "http://127.0.0.1:\(h.gateway.port)")
        #expect(run.status == 0, "openai_sdk_test.py failed:\n\(run.output)")

        let requests = h.provider.requests
        let paths = requests.map(SDKMock.path)
        #expect(paths == SDKMock.expectedPaths, """
            the provider received, in the script's order (the own-model request is refused by the gateway):
            \(paths.joined(separator: "\n"))
            expected:
            \(SDKMock.expectedPaths.joined(separator: "\n"))
            """)
        #expect(!requests.contains { $0.json?["model"] == "not-configured" }, "the own-model request never reached the provider")
        #expect(h.gateway.upstream.acceptedConnections == 0, "the service's own host is never called")

        // Each provider's authentication, as configured (§2.5).
        for request in requests {
            let path = SDKMock.path(request)
            let headers = request.headers
            switch SDKMock.family(path) {
            case .openAI:
                #expect(headers["Authorization"] == ["Bearer sk-test"], "\(path)")
            case .azure:
                #expect(headers["api-key"] == ["az-test"], "\(path)")
                #expect(request.query?.split(separator: "&").contains("api-version=2024-06-01") == true,
                        "azure_api_version goes in the query, also with upstream_url: \(request.uri)")
            case .mistral:
                #expect(headers["Authorization"] == ["Bearer mi-test"], "\(path)")
            case .anthropic:
                #expect(headers["x-api-key"] == ["ak-test"], "\(path)")
                #expect(headers["anthropic-version"] == ["2023-06-01"], "\(path)")
            case .gemini:
                #expect(headers["x-goog-api-key"] == ["gk-test"], "\(path)")
            case .bedrock:
                #expect(SDKMock.signedForBedrock(request), "SigV4 for AKIDEXAMPLE, us-east-1, bedrock: \(headers)")
            case nil:
                Issue.record("unexpected provider request \(request.uri)")
            }
        }

        // The OpenAI-compatible providers got the client's stream_options as is (§2.6).
        for chatPath in [SDKMock.openAIChat, SDKMock.azureChat, SDKMock.mistralChat] {
            let streamed = requests.filter { SDKMock.path($0) == chatPath && $0.json?["stream"] == true }
            #expect(streamed.map { $0.json?["stream_options"]?["include_usage"] } == [nil, true], "\(chatPath)")
        }

        // The tool definition in each provider's own format (§2.6).
        let anthropicTools = requests.first { SDKMock.path($0) == SDKMock.anthropicChat && $0.json?["tools"] != nil }?.json?["tools"]
        #expect(anthropicTools?.arrayValue?.first?["name"] == "add")
        #expect(anthropicTools?.arrayValue?.first?["input_schema"]?["required"] == ["a", "b"])
        let geminiTools = requests.first { SDKMock.path($0) == SDKMock.geminiChat && $0.json?["tools"] != nil }?.json?["tools"]
        #expect(geminiTools?.arrayValue?.first?["function_declarations"]?.arrayValue?.first?["name"] == "add")
        let bedrockTools = requests.first { SDKMock.path($0) == SDKMock.bedrockChat && $0.json?["toolConfig"] != nil }?
            .json?["toolConfig"]?["tools"]?.arrayValue?.first?["toolSpec"]
        #expect(bedrockTools?["name"] == "add")
        #expect(bedrockTools?["inputSchema"]?["json"]?["required"] == ["a", "b"])

        // Embeddings: OpenAI gets the SDK's body (base64 by default), the others their own.
        let openAIEmbeddings = requests.filter { SDKMock.path($0) == SDKMock.openAIEmbeddings }
        #expect(openAIEmbeddings.map { $0.json?["encoding_format"] } == ["base64", "float"])
        #expect(openAIEmbeddings.allSatisfy { $0.json?["input"] == .array(SDKMock.embeddingInputs.map(JSONValue.string)) })
        for request in requests where SDKMock.path(request) == SDKMock.geminiEmbeddings {
            let texts = request.json?["requests"]?.arrayValue?.map { $0["content"]?["parts"]?.arrayValue?.first?["text"] ?? .null }
            #expect(texts == SDKMock.embeddingInputs.map(JSONValue.string), "\(request.bodyText)")
            #expect(request.json?["requests"]?.arrayValue?.first?["model"] == "models/text-embedding-004")
        }
        for request in requests where SDKMock.path(request) == SDKMock.bedrockEmbeddings {
            #expect(request.json?["inputText"] == .string(SDKMock.embeddingInputs[0]), "\(request.bodyText)")
        }
    }
}

/// The gateway configuration and the mock provider of `OpenAISDKTests`. Texts, token counts and
/// vectors here are what openai_sdk_test.py expects (its `PROVIDERS`, `COMPLETIONS_*` and
/// `EMBEDDING_*`): change both together.
///
/// Every route's `upstream_url` has its own path, so the mock tells providers apart by path.
/// Gemini and Bedrock use the URL's path as the whole path, the same in both modes, so each has a
/// second chat route whose URL names the stream operation (`:streamGenerateContent`,
/// `/converse-stream`).
enum SDKMock {
    // MARK: Provider paths

    static let openAIChat = "/v1/chat/completions"
    static let openAICompletions = "/v1/completions"
    static let openAIEmbeddings = "/v1/embeddings"
    static let azureChat = "/azure/openai/deployments/gpt-4o-deployment/chat/completions"
    static let mistralChat = "/mistral/v1/chat/completions"
    static let anthropicChat = "/v1/messages"
    static let geminiChat = "/gemini/v1beta/models/gemini-1.5-flash:generateContent"
    static let geminiStream = "/gemini/v1beta/models/gemini-1.5-flash:streamGenerateContent"
    static let geminiEmbeddings = "/gemini/v1beta/models/text-embedding-004:batchEmbedContents"
    static let bedrockChat = "/bedrock/model/anthropic.claude-3-haiku-20240307-v1:0/converse"
    static let bedrockStream = "/bedrock/model/anthropic.claude-3-haiku-20240307-v1:0/converse-stream"
    static let bedrockEmbeddings = "/bedrock/model/amazon.titan-embed-text-v2:0/invoke"

    /// The provider paths in the order openai_sdk_test.py makes its calls: per chat provider
    /// chat, stream, stream with include_usage, tool call; then completions; then embeddings
    /// (SDK default base64, then float) for openai, gemini, bedrock. The own-model call last,
    /// refused by the gateway.
    static let expectedPaths: [String] = {
        let chats = [(openAIChat, openAIChat), (azureChat, azureChat), (mistralChat, mistralChat),
                     (anthropicChat, anthropicChat), (geminiChat, geminiStream), (bedrockChat, bedrockStream)]
        return chats.flatMap { chat, stream in [chat, stream, stream, chat] } + [openAICompletions]
            + [openAIEmbeddings, openAIEmbeddings, geminiEmbeddings, geminiEmbeddings, bedrockEmbeddings, bedrockEmbeddings]
    }()

    // MARK: Answers

    static let openAIText = "Hello from the mock provider"
    static let azureText = "Hello from the mock Azure deployment"
    static let mistralText = "Bonjour from the mock Mistral"
    static let anthropicText = "Bonjour from the mock Claude"
    static let geminiText = "Hola from the mock Gemini"
    static let bedrockText = "Hallo from the mock Bedrock"
    static let completionText = "This is indeed a test"
    /// Usage of the OpenAI-compatible streams' last chunk (when asked for).
    static let streamUsage = (prompt: 9, completion: 4)
    static let toolArguments = #"{"a": 2, "b": 3}"#
    static let embeddingInputs = ["The food was delicious", "and the waiter was kind"]
    /// Input i is answered with vector i (exact in float32, so base64 round-trips).
    static let embeddingVectors: [[Double]] = [[0.25, -0.5, 0.125, 1.0], [0.0625, 2.0, -0.75, 0.5]]

    /// The text in two stream deltas, cut after "from ".
    static func deltas(_ text: String) -> [String] {
        guard let cut = text.range(of: "from ")?.upperBound else { return [text] }
        return [String(text[..<cut]), String(text[cut...])]
    }

    // MARK: Gateway

    static let configuration: String = {
        let chat = AIConfig.chat
        let completions = "route_type: llm/v1/completions, logging: {}"
        let embeddings = "route_type: llm/v1/embeddings, logging: {}"
        let openAIAuth = #"auth: {header_name: Authorization, header_value: "Bearer sk-test"}"#
        let geminiAuth = "auth: {header_name: x-goog-api-key, header_value: gk-test}"
        let bedrockAuth = #"auth: {aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}"#
        func gemini(_ name: String, _ path: String) -> String {
            #"model: {provider: gemini, name: "\#(name)", options: {upstream_url: "PROVIDER\#(path)"}}"#
        }
        func bedrock(_ name: String, _ path: String) -> String {
            #"model: {provider: bedrock, name: "\#(name)", options: {upstream_url: "PROVIDER\#(path)", bedrock: {aws_region: us-east-1}}}"#
        }
        let claudeOnBedrock = "anthropic.claude-3-haiku-20240307-v1:0"
        return AIConfig.document(
            AIConfig.route("openai", path: "/openai", aiProxy: "\(chat), \(openAIAuth), \(AIConfig.openAI())"),
            AIConfig.route("openai-completions", path: "/openai-completions", aiProxy: """
                \(completions), \(openAIAuth), \(AIConfig.openAI("gpt-3.5-turbo-instruct", path: openAICompletions))
                """),
            AIConfig.route("openai-embeddings", path: "/openai-embeddings", aiProxy: """
                \(embeddings), \(openAIAuth), \(AIConfig.openAI("text-embedding-3-small", path: openAIEmbeddings))
                """),
            AIConfig.route("azure", path: "/azure", aiProxy: """
                \(chat), auth: {header_name: api-key, header_value: az-test}, model: {provider: azure, name: gpt-4o, options: \
                {azure_instance: mock-instance, azure_deployment_id: gpt-4o-deployment, azure_api_version: "2024-06-01", \
                upstream_url: "PROVIDER\(azureChat)"}}
                """),
            AIConfig.route("mistral", path: "/mistral", aiProxy: """
                \(chat), auth: {header_name: Authorization, header_value: "Bearer mi-test"}, model: {provider: mistral, \
                name: mistral-small-latest, options: {mistral_format: openai, upstream_url: "PROVIDER\(mistralChat)"}}
                """),
            AIConfig.route("anthropic", path: "/anthropic", aiProxy: """
                \(chat), auth: {header_name: x-api-key, header_value: ak-test}, \(AIConfig.anthropic())
                """),
            AIConfig.route("gemini", path: "/gemini", aiProxy: "\(chat), \(geminiAuth), \(gemini("gemini-1.5-flash", geminiChat))"),
            AIConfig.route("gemini-stream", path: "/gemini-stream", aiProxy: """
                \(chat), \(geminiAuth), \(gemini("gemini-1.5-flash", geminiStream))
                """),
            AIConfig.route("gemini-embeddings", path: "/gemini-embeddings", aiProxy: """
                \(embeddings), \(geminiAuth), \(gemini("text-embedding-004", geminiEmbeddings))
                """),
            AIConfig.route("bedrock", path: "/bedrock", aiProxy: "\(chat), \(bedrockAuth), \(bedrock(claudeOnBedrock, bedrockChat))"),
            AIConfig.route("bedrock-stream", path: "/bedrock-stream", aiProxy: """
                \(chat), \(bedrockAuth), \(bedrock(claudeOnBedrock, bedrockStream))
                """),
            AIConfig.route("bedrock-embeddings", path: "/bedrock-embeddings", aiProxy: """
                \(embeddings), \(bedrockAuth), \(bedrock("amazon.titan-embed-text-v2:0", bedrockEmbeddings))
                """))
    }()

    // MARK: Provider

    enum Family { case openAI, azure, mistral, anthropic, gemini, bedrock }

    /// The request's path, percent-decoded (a gateway may encode the `:` of Gemini operations and
    /// Bedrock model ids).
    static func path(_ request: ProviderRequest) -> String {
        request.path.removingPercentEncoding ?? request.path
    }

    static func family(_ path: String) -> Family? {
        switch path {
        case openAIChat, openAICompletions, openAIEmbeddings: return .openAI
        case azureChat: return .azure
        case mistralChat: return .mistral
        case anthropicChat: return .anthropic
        case geminiChat, geminiStream, geminiEmbeddings: return .gemini
        case bedrockChat, bedrockStream, bedrockEmbeddings: return .bedrock
        default: return nil
        }
    }

    /// Bedrock's SigV4 `Authorization` for the configured key, region and service, and its date.
    static func signedForBedrock(_ request: ProviderRequest) -> Bool {
        guard let authorization = request.headers.first(name: "Authorization") else { return false }
        return authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && authorization.contains("/us-east-1/bedrock/aws4_request")
            && authorization.contains("Signature=")
            && request.headers.first(name: "X-Amz-Date") != nil
    }

    /// Answers as each provider would: by path, then by what the body asks (tools, stream,
    /// include_usage, encoding_format). Requests a provider would refuse (missing api-version,
    /// key or signature) get that provider's kind of error.
    static func respond(to request: ProviderRequest) -> ProviderReply {
        let path = Self.path(request)
        let body = request.json
        let asksForTools = body?["tools"] != nil || body?["toolConfig"] != nil
        let streams = body?["stream"] == true
        let usage = body?["stream_options"]?["include_usage"] == true ? streamUsage : nil

        func openAICompatible(_ text: String, model: String) -> ProviderReply {
            if asksForTools { return .json(ProviderFixtures.openAIToolCall(name: "add", arguments: toolArguments, model: model)) }
            if streams { return .events(ProviderFixtures.openAIStream(deltas: deltas(text), model: model, usage: usage)) }
            return .json(ProviderFixtures.openAIChat(content: text, model: model))
        }
        func vectors(_ count: Int) -> [[Double]] { Array(embeddingVectors.prefix(count)) }

        switch family(path) {
        case .gemini? where request.headers.first(name: "x-goog-api-key") != "gk-test":
            return .json(#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#,
                         status: 400)
        case .bedrock? where !signedForBedrock(request):
            return .json(#"{"message":"Missing Authentication Token"}"#, status: 403)
        case .azure? where request.query?.split(separator: "&").contains("api-version=2024-06-01") != true:
            return .json(#"{"error":{"code":"404","message":"Resource not found"}}"#, status: 404)
        default:
            break
        }

        switch path {
        case openAIChat: return openAICompatible(openAIText, model: "gpt-4o-mini")
        case azureChat: return openAICompatible(azureText, model: "gpt-4o")
        case mistralChat: return openAICompatible(mistralText, model: "mistral-small-latest")
        case openAICompletions: return .json(ProviderFixtures.openAICompletion(text: completionText))
        case openAIEmbeddings:
            let count = body?["input"]?.arrayValue?.count ?? 1
            return .json(ProviderFixtures.openAIEmbeddings(vectors(count), base64: body?["encoding_format"] == "base64"))
        case anthropicChat:
            if asksForTools { return .json(ProviderFixtures.anthropicToolUse(name: "add", input: toolArguments)) }
            if streams { return .events(ProviderFixtures.anthropicStream(deltas: deltas(anthropicText))) }
            return .json(ProviderFixtures.anthropicMessage(texts: [anthropicText]))
        case geminiChat:
            if asksForTools { return .json(ProviderFixtures.geminiFunctionCall(name: "add", args: toolArguments)) }
            return .json(ProviderFixtures.geminiContent(text: geminiText))
        case geminiStream:
            return .events(ProviderFixtures.geminiStream(deltas: deltas(geminiText)), contentType: "application/json")
        case geminiEmbeddings:
            return .json(ProviderFixtures.geminiEmbeddings(vectors(body?["requests"]?.arrayValue?.count ?? 0)))
        case bedrockChat:
            if asksForTools { return .json(ProviderFixtures.bedrockToolUse(name: "add", input: toolArguments)) }
            return .json(ProviderFixtures.bedrockConverse(text: bedrockText))
        case bedrockStream:
            return ProviderFixtures.bedrockStream(deltas: deltas(bedrockText))
        case bedrockEmbeddings:
            return .json(ProviderFixtures.bedrockTitanEmbedding(embeddingVectors[0]))
        default:
            return .json(#"{"error":{"message":"mock provider: nothing scripted for \#(path)"}}"#, status: 404)
        }
    }
}

/// Finds a Python that has the `openai` package and runs openai_sdk_test.py with it.
enum OpenAISDK {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("openai_sdk_test.py")

    /// The virtualenv `.ci/setup` creates under `.build`.
    static let setupVirtualenv = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/venv-openai/bin/python").path

    /// `OPENAI_SDK_PYTHON` if set and usable, else `.ci/setup`'s virtualenv, else `python3` if it
    /// can `import openai`, else nil.
    static let python: String? = {
        let candidates = [ProcessInfo.processInfo.environment["OPENAI_SDK_PYTHON"], setupVirtualenv, "python3"].compactMap { $0 }
        return candidates.first { python in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [python, "-c", "import openai"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return false }
            process.waitUntilExit()
            return process.terminationStatus == 0
        }
    }()

    /// Runs the script (without blocking a concurrency thread: the gateway's mock provider needs them).
    static func runScript(baseURL: String) async throws -> (status: Int32, output: String) {
        let python = try #require(python)
        let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("openai-sdk-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outputFile) }
        let output = try FileHandle(forWritingTo: outputFile)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script.path, baseURL]
        var environment = ProcessInfo.processInfo.environment
        environment["NO_PROXY"] = "127.0.0.1,localhost"
        environment["no_proxy"] = "127.0.0.1,localhost"
        environment["PYTHONUNBUFFERED"] = "1"
        process.environment = environment
        process.standardOutput = output
        process.standardError = output
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { finished in continuation.resume(returning: finished.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        try output.close()
        let text = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
        return (status, text)
    }
}
