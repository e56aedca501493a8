import Core

/// ai-request-transformer's and ai-response-transformer's configuration (spec §3.2, §4.2), typed
/// once per configuration snapshot.
struct TransformerConfig: Sendable {
    let pluginName: String
    let pluginID: String
    let prompt: String
    /// nil: no pattern. A pattern that does not compile fails each request as Kong does (§3.3-5).
    let extractPattern: Result<AIPattern, AIPattern.Failure>?
    let http: TransformerHTTPOptions
    let maxRequestBodySize: Int
    let model: LLMModelConfig
    let auth: LLMAuth
    let cloudIdentity: LLMCloudIdentity?
    let logStatistics: Bool
    let logPayloads: Bool
    /// ai-response-transformer only.
    let parseJSONInstructions: Bool

    init?(plugin: String, instance: PluginInstance, environment: [String: String]) {
        let config = instance.config
        guard let prompt = config["prompt"]?.stringValue, let llm = config["llm"],
              let model = llm["model"].flatMap(LLMModelConfig.init(json:)) else { return nil }
        pluginName = plugin
        pluginID = instance.id
        self.prompt = prompt
        extractPattern = config["transformation_extract_pattern"]?.stringValue.map { pattern in
            Result { () throws(AIPattern.Failure) in try AIPattern(pattern, caseInsensitive: true, multiline: true) }
        }
        func proxy(_ host: String, _ port: String) -> AIForwardProxy? {
            guard let name = config[host]?.stringValue, let number = config[port]?.intValue else { return nil }
            return AIForwardProxy(host: name, port: number)
        }
        http = TransformerHTTPOptions(timeoutMilliseconds: config["http_timeout"]?.intValue ?? 60_000,
                                      verifyTLS: config["https_verify"]?.boolValue ?? true,
                                      httpProxy: proxy("http_proxy_host", "http_proxy_port"),
                                      httpsProxy: proxy("https_proxy_host", "https_proxy_port"))
        maxRequestBodySize = config["max_request_body_size"]?.intValue ?? 8192
        self.model = model
        auth = LLMAuth(json: llm["auth"] ?? .null, environment: environment)
        cloudIdentity = LLMCloudIdentity.make(provider: model.provider, auth: llm["auth"] ?? .null, environment: environment)
        logStatistics = llm["logging"]?["log_statistics"]?.boolValue ?? false
        logPayloads = llm["logging"]?["log_payloads"]?.boolValue ?? false
        parseJSONInstructions = config["parse_llm_response_json_instructions"]?.boolValue ?? false
    }
}

/// How the transformers reach the LLM (and ai-response-transformer the upstream): the timeout,
/// certificate verification and Kong's `http(s)_proxy_*` forward proxies (`http://host:port`;
/// HTTPS goes through it with CONNECT).
struct TransformerHTTPOptions: Sendable, Hashable {
    let timeoutMilliseconds: Int
    let verifyTLS: Bool
    let httpProxy: AIForwardProxy?
    let httpsProxy: AIForwardProxy?

    func proxy(tls: Bool) -> AIForwardProxy? { tls ? httpsProxy : httpProxy }
}
