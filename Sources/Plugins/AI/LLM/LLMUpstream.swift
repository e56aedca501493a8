import Core

/// Where an LLM request goes (spec §2.5): scheme, host, port, path and the query arguments the
/// provider needs, from the provider's default endpoint or `model.options.upstream_url`.
public struct LLMUpstream: Sendable, Equatable {
    public var tls: Bool
    public var host: String
    public var port: Int
    /// Always starts with a single `/`.
    public var path: String
    /// Query arguments the gateway adds (Azure's `api-version`), in order.
    public var query: [(String, String)]
    /// The AWS region a Bedrock request is signed for: resolved here, with the host it names,
    /// so the signature cannot disagree with the target. Nil for other providers.
    public var signingRegion: String?

    public static func == (a: LLMUpstream, b: LLMUpstream) -> Bool {
        a.tls == b.tls && a.host == b.host && a.port == b.port && a.path == b.path
            && a.query.map { "\($0.0)=\($0.1)" } == b.query.map { "\($0.0)=\($0.1)" }
            && a.signingRegion == b.signingRegion
    }

    public init(tls: Bool, host: String, port: Int, path: String, query: [(String, String)] = []) {
        self.tls = tls
        self.host = host
        self.port = port
        self.path = Self.normalized(path)
        self.query = query
    }

    static func normalized(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.first == "/" { trimmed.removeFirst() }
        return "/" + trimmed
    }

    /// Why no target could be built (answered with Kong's generic 500).
    public struct Failure: Error, Equatable, Sendable {
        public let message: String

        /// Bedrock without a region: Kong fails it as a failed signature (ai-plugins §2.3-14).
        public static let missingRegion = Failure(message: "AWS region not specified anywhere")
        /// Hugging Face without `upstream_url` and without a model name to build the URL from
        /// (a preserve route): Kong's 400, its spelling kept (spec §2.10).
        public static let huggingFaceUnresolvable = Failure(message: "Could not parse the Hugging Face model endponit")
    }

    /// `llm/v1/embeddings` defaults: openai `/v1/embeddings`; azure
    /// `/openai/deployments/<deployment>/embeddings` (+ `api-version`); mistral `/v1/embeddings`;
    /// cohere `/v1/embed`; gemini `…/v1beta/models/<model>:batchEmbedContents` (Vertex
    /// `…/publishers/google/models/<model>:predict`); bedrock `/model/<model>/invoke`; huggingface
    /// `https://api-inference.huggingface.co/pipeline/feature-extraction/<model>`. `upstream_url` and
    /// `upstream_path` apply as for chat (huggingface: `upstream_url` as is); anthropic has no
    /// embeddings API (a failure; the request conversion refuses such requests first).
    ///
    /// - Parameters:
    ///   - model: resolved for this request.
    ///   - stream: stream mode (Gemini and Bedrock use a different operation; ignored for embeddings).
    ///   - clientPath: the client's original path (preserve mode keeps it).
    ///   - proxiedPath: where the request would go without the plugin (the service path joined
    ///     with the routed one), kept for Hugging Face completions whose `upstream_url` has no path.
    ///   - clientAPIVersion: the client's `api-version` query argument (Azure prefers it).
    public static func target(route: LLMRouteType, model: LLMModelConfig, stream: Bool, clientPath: String,
                              proxiedPath: String = "/", clientAPIVersion: String?,
                              environment: [String: String] = [:]) throws(Failure) -> LLMUpstream {
        let options = model.options
        let name = model.name ?? ""
        // §2.3-14 (the region to sign for) comes before §2.3-15 (the target, `upstream_url`).
        var region: String?
        if model.provider == .bedrock {
            region = AWSRegion.resolve(configured: options.bedrockRegion, environment: environment)
            if region == nil { throw .missingRegion }
        }
        let override = try options.upstreamURLTarget.map { parsed throws(Failure) in try parsed.get() }
        let chat = route == .chat
        let embeddings = route == .embeddings
        var target: LLMUpstream

        switch model.provider {
        case .openai:
            target = override ?? LLMUpstream(tls: true, host: "api.openai.com", port: 443,
                                             path: chat ? "/v1/chat/completions" : embeddings ? "/v1/embeddings" : "/v1/completions")
            if override == nil, let path = options.upstreamPath { target.path = normalized(path) }
        case .azure:
            let deployment = options.azureDeploymentID ?? ""
            let base = "/openai/deployments/\(deployment)"
            target = override ?? LLMUpstream(tls: true, host: "\(options.azureInstance ?? "").openai.azure.com", port: 443,
                                             path: options.upstreamPath.map { base + normalized($0) }
                                                 ?? base + (chat ? "/chat/completions" : embeddings ? "/embeddings" : "/completions"))
            target.query = [("api-version", clientAPIVersion ?? options.azureAPIVersion ?? "2023-05-15")]
        case .anthropic:
            if embeddings { throw Failure(message: "anthropic has no embeddings API") }
            target = override ?? LLMUpstream(tls: true, host: "api.anthropic.com", port: 443,
                                             path: chat ? "/v1/messages" : "/v1/complete")
            if override == nil, let path = options.upstreamPath { target.path = normalized(path) }
        case .cohere:
            target = override ?? LLMUpstream(tls: true, host: "api.cohere.com", port: 443,
                                             path: chat ? "/v1/chat" : embeddings ? "/v1/embed" : "/v1/generate")
            if override == nil, let path = options.upstreamPath { target.path = normalized(path) }
        case .mistral:
            target = override ?? LLMUpstream(tls: true, host: "api.mistral.ai", port: 443,
                                             path: chat ? "/v1/chat/completions" : embeddings ? "/v1/embeddings" : "/")
            if override == nil, let path = options.upstreamPath { target.path = normalized(path) }
        case .llama2:
            guard let override else { throw Failure(message: "llama2 needs model.options.upstream_url") }
            target = override
        case .gemini:
            let operation = embeddings ? (options.usesVertex ? "predict" : "batchEmbedContents")
                : stream ? "streamGenerateContent" : "generateContent"
            if options.usesVertex {
                target = LLMUpstream(tls: true, host: options.geminiAPIEndpoint ?? "", port: 443,
                                     path: "/v1/projects/\(options.geminiProjectID ?? "")/locations/\(options.geminiLocationID ?? "")"
                                         + "/publishers/google/models/\(name):\(operation)")
            } else {
                target = LLMUpstream(tls: true, host: "generativelanguage.googleapis.com", port: 443,
                                     path: "/v1beta/models/\(name):\(operation)")
            }
            if let override { target = override }
            if let path = options.upstreamPath { target.path = normalized(path) }
        case .bedrock:
            let region = region ?? ""  // resolved above
            target = LLMUpstream(tls: true, host: "bedrock-runtime.\(region).amazonaws.com", port: 443,
                                 path: "/model/\(name)/\(embeddings ? "invoke" : stream ? "converse-stream" : "converse")")
            if let override { target = override }
            if let path = options.upstreamPath { target.path = normalized(path) }
            target.signingRegion = region
        case .huggingface:
            if let override {
                target = override
                if chat { target.path = normalized(override.path == "/" ? "/v1/chat/completions" : override.path + "/v1/chat/completions") }
                // §2.5: completions use `upstream_url` as is; without a path of its own the path
                // stays the proxied one.
                else if route == .completions, options.upstreamURL.map({ URLParts($0).path == nil }) == true {
                    target.path = proxiedPath
                }
            } else {
                guard !name.isEmpty else { throw .huggingFaceUnresolvable }
                target = LLMUpstream(tls: true, host: "api-inference.huggingface.co", port: 443,
                                     path: chat ? "/models/\(name)/v1/chat/completions"
                                         : embeddings ? "/pipeline/feature-extraction/\(name)" : "/models/\(name)")
            }
        }
        if route == .preserve {
            // Only scheme, host and port of the target matter; the client's path is kept.
            target.path = options.upstreamPath.map(normalized) ?? normalized(clientPath)
        }
        return target
    }

    /// `upstream_url`: scheme, host, port (default by scheme) and path; its query is ignored.
    static func parse(_ url: String) throws(Failure) -> LLMUpstream {
        let parts = URLParts(url)
        guard let scheme = parts.scheme?.lowercased() else { throw Failure(message: "missing scheme in url") }
        guard let host = parts.host else { throw Failure(message: "missing host in url") }
        let tls = scheme == "https"
        return LLMUpstream(tls: tls, host: host, port: parts.port.flatMap { Int($0) } ?? (tls ? 443 : 80),
                           path: parts.path ?? "/")
    }
}
