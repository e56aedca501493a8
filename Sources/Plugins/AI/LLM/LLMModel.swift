import Core

/// The `route_type` of an `llm` record: which OpenAI API shape the client speaks.
public enum LLMRouteType: String, Sendable {
    case chat = "llm/v1/chat"
    case completions = "llm/v1/completions"
    /// OpenAI `/v1/embeddings` (a 3.11 route type; ai-proxy only). Never streams.
    case embeddings = "llm/v1/embeddings"
    case preserve
}

/// `model.provider`.
public enum LLMProvider: String, Sendable {
    case openai, azure, anthropic, cohere, mistral, llama2, gemini, bedrock, huggingface

    /// Kong estimates prompt tokens for these (their streams carry no usage; spec §2.3-4.13).
    var estimatesPromptTokens: Bool { [.openai, .azure, .mistral, .huggingface].contains(self) }

    /// Kong drops `Set-Cookie` from these providers' non-stream answers (spec §2.7).
    var dropsSetCookie: Bool { [.openai, .azure, .mistral, .gemini, .bedrock].contains(self) }

    /// Whether the configured header and query-parameter auth is sent (spec §2.5). Bedrock's
    /// requests carry their SigV4 signature only: Kong's bedrock driver signs and sets nothing else.
    var sendsConfiguredAuth: Bool { self != .bedrock }
}

/// Which wire format a configuration speaks: the provider, refined by the mistral/llama2
/// `*_format` option. One mapping for requests, responses and streams.
public enum LLMDialect: Sendable, Equatable {
    case openAI, ollama, llama2Raw, anthropic, cohere, gemini, bedrock, huggingFace

    /// Nil for mistral/llama2 without a format this gateway knows (the schema requires one).
    public init?(_ model: LLMModelConfig) {
        switch model.provider {
        case .openai, .azure: self = .openAI
        case .anthropic: self = .anthropic
        case .cohere: self = .cohere
        case .gemini: self = .gemini
        case .bedrock: self = .bedrock
        case .huggingface: self = .huggingFace
        case .mistral:
            switch model.options.mistralFormat {
            case "openai": self = .openAI
            case "ollama": self = .ollama
            default: return nil
            }
        case .llama2:
            switch model.options.llama2Format {
            case "openai": self = .openAI
            case "ollama": self = .ollama
            case "raw": self = .llama2Raw
            default: return nil
            }
        }
    }

    /// Gemini and Bedrock have no completions API; Anthropic and llama2's raw format (a
    /// text-generation endpoint) have no embeddings API.
    func supports(_ route: LLMRouteType) -> Bool {
        switch self {
        case .gemini, .bedrock: return route == .chat || route == .embeddings
        case .anthropic, .llama2Raw: return route != .embeddings
        default: return true
        }
    }

    /// The converted request is the client's OpenAI object itself, so body-parameter auth
    /// reaches the wire (spec §2.3-4.11).
    var sendsTheOpenAIObject: Bool { self == .openAI || self == .cohere || self == .huggingFace }

    /// `sendsTheOpenAIObject` for a route: embeddings requests are forwarded as the client's
    /// object only to OpenAI-compatible upstreams (Cohere and Hugging Face get new bodies).
    public func sendsTheOpenAIObject(on route: LLMRouteType) -> Bool {
        route == .embeddings ? self == .openAI : sendsTheOpenAIObject
    }

    /// `<route>/<format>`, as Kong names mistral/llama2 transformers in its errors.
    static func formatTarget(_ route: LLMRouteType, _ model: LLMModelConfig) -> String {
        let format = model.provider == .mistral ? model.options.mistralFormat : model.options.llama2Format
        return "\(route.rawValue)/\(format ?? "")"
    }
}

/// `config.model` of an `llm` record after schema processing (defaults filled), typed once per
/// configuration snapshot so request paths never look fields up by name.
public struct LLMModelConfig: Sendable, Equatable {
    public var provider: LLMProvider
    /// May hold a `$(source.key)` template (spec §2.4) until resolved for a request.
    public var name: String?
    /// Behind one reference, copied on write: every request copies its route's model (to resolve
    /// a templated name and keep it for the answer), and the options are twenty-odd optional
    /// strings, each a retain and a release per copy.
    private var optionsStorage: OptionsStorage

    public var options: LLMModelOptions {
        _read { yield optionsStorage.value }
        _modify {
            if !isKnownUniquelyReferenced(&optionsStorage) { optionsStorage = OptionsStorage(optionsStorage.value) }
            yield &optionsStorage.value
        }
    }

    public init(provider: LLMProvider, name: String? = nil, options: LLMModelOptions = LLMModelOptions()) {
        self.provider = provider
        self.name = name
        optionsStorage = OptionsStorage(options)
    }

    /// From the processed `model` record; nil when the provider is missing or unknown (the schema
    /// refuses such configurations before this runs).
    public init?(json: JSONValue) {
        guard let provider = json["provider"]?.stringValue.flatMap(LLMProvider.init(rawValue:)) else { return nil }
        self.init(provider: provider, name: json["name"]?.stringValue,
                  options: LLMModelOptions(json: json["options"] ?? .null))
    }

    public static func == (a: LLMModelConfig, b: LLMModelConfig) -> Bool {
        a.provider == b.provider && a.name == b.name
            && (a.optionsStorage === b.optionsStorage || a.optionsStorage.value == b.optionsStorage.value)
    }

    /// Mutated only through `options`' copy-on-write accessor.
    private final class OptionsStorage: @unchecked Sendable {
        var value: LLMModelOptions
        init(_ value: LLMModelOptions) { self.value = value }
    }
}

/// `model.options`; absent values are nil (Kong: "not configured", so the request's value is kept).
public struct LLMModelOptions: Sendable, Equatable {
    public var maxTokens: Int?
    public var inputCost: Double?
    public var outputCost: Double?
    public var temperature: Double?
    public var topP: Double?
    public var topK: Int?
    public var anthropicVersion: String?
    public var azureInstance: String?
    public var azureAPIVersion: String?
    public var azureDeploymentID: String?
    /// `raw`, `openai` or `ollama`.
    public var llama2Format: String?
    /// `openai` or `ollama`.
    public var mistralFormat: String?
    public var upstreamURL: String? {
        didSet { upstreamURLTarget = upstreamURL.map { url in Result { () throws(LLMUpstream.Failure) in try LLMUpstream.parse(url) } } }
    }
    /// `upstream_url` parsed once, with the configuration (not on every request).
    public private(set) var upstreamURLTarget: Result<LLMUpstream, LLMUpstream.Failure>?
    public var upstreamPath: String?
    public var geminiAPIEndpoint: String?
    public var geminiProjectID: String?
    public var geminiLocationID: String?
    public var bedrockRegion: String?
    public var huggingfaceUseCache: Bool?
    public var huggingfaceWaitForModel: Bool?

    public init() {}

    public init(json: JSONValue) {
        maxTokens = json["max_tokens"]?.intValue
        inputCost = json["input_cost"]?.numberValue
        outputCost = json["output_cost"]?.numberValue
        temperature = json["temperature"]?.numberValue
        topP = json["top_p"]?.numberValue
        topK = json["top_k"]?.intValue
        anthropicVersion = json["anthropic_version"]?.stringValue
        azureInstance = json["azure_instance"]?.stringValue
        azureAPIVersion = json["azure_api_version"]?.stringValue
        azureDeploymentID = json["azure_deployment_id"]?.stringValue
        llama2Format = json["llama2_format"]?.stringValue
        mistralFormat = json["mistral_format"]?.stringValue
        upstreamURL = json["upstream_url"]?.stringValue
        upstreamURLTarget = upstreamURL.map { url in Result { () throws(LLMUpstream.Failure) in try LLMUpstream.parse(url) } }
        upstreamPath = json["upstream_path"]?.stringValue
        geminiAPIEndpoint = json["gemini"]?["api_endpoint"]?.stringValue
        geminiProjectID = json["gemini"]?["project_id"]?.stringValue
        geminiLocationID = json["gemini"]?["location_id"]?.stringValue
        bedrockRegion = json["bedrock"]?["aws_region"]?.stringValue
        huggingfaceUseCache = json["huggingface"]?["use_cache"]?.boolValue
        huggingfaceWaitForModel = json["huggingface"]?["wait_for_model"]?.boolValue
    }

    /// Vertex AI when all three `gemini.*` fields are set (spec §2.5).
    public var usesVertex: Bool { geminiAPIEndpoint != nil && geminiProjectID != nil && geminiLocationID != nil }
}

/// Token counts of one LLM exchange, as the analytics of spec §2.11 record them.
public struct LLMUsage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int { promptTokens + completionTokens }

    public init(promptTokens: Int = 0, completionTokens: Int = 0) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }
}

/// A conversion failure. `message` is the detail Kong's driver produces; `clientMessage` is what
/// the client is shown: `LLMRequestConversion` / `LLMResponseConversion` fill it with Kong's
/// per-provider `error transforming to …` / `transformation failed from type …` envelope
/// (spec §2.6/§2.7), so callers answer with it as is.
public struct LLMConversionError: Error, Equatable, Sendable {
    public let message: String
    public var clientMessage: String
    /// Kong answers this one with the bare text as body (`kong.response.exit(400, "<text>")`),
    /// not the `{"error":{"message":…}}` envelope.
    public var isPlainTextBody: Bool

    public init(_ message: String, clientMessage: String? = nil, isPlainTextBody: Bool = false) {
        self.message = message
        self.clientMessage = clientMessage ?? message
        self.isPlainTextBody = isPlainTextBody
    }
}
