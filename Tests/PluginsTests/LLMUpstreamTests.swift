import Core
import Plugins
import Testing

/// `LLMUpstream.target`: where ai-proxy sends a request, per provider (spec ai-plugins §2.5).
struct LLMUpstreamTests {
    // MARK: Helpers

    /// The model record as the schema hands it over, typed.
    static func model(_ json: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) throws -> LLMModelConfig {
        try #require(LLMModelConfig(json: json), "not a model record: \(json.serialized())", sourceLocation: sourceLocation)
    }

    static func target(_ json: JSONValue, route: LLMRouteType = .chat, stream: Bool = false,
                       clientPath: String = "/client/path", apiVersion: String? = nil,
                       environment: [String: String] = [:],
                       sourceLocation: SourceLocation = #_sourceLocation) throws -> LLMUpstream {
        try LLMUpstream.target(route: route, model: try model(json, sourceLocation: sourceLocation), stream: stream,
                               clientPath: clientPath, clientAPIVersion: apiVersion, environment: environment)
    }

    /// Compares each field as produced (not through `LLMUpstream.init`, which would normalize the
    /// expected path too).
    static func expect(_ upstream: LLMUpstream, tls: Bool = true, host: String, port: Int = 443, path: String,
                       query: [String] = [], _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(upstream.tls == tls, "tls", sourceLocation: sourceLocation)
        #expect(upstream.host == host, sourceLocation: sourceLocation)
        #expect(upstream.port == port, sourceLocation: sourceLocation)
        #expect(upstream.path == path, comment, sourceLocation: sourceLocation)
        #expect(upstream.query.map { "\($0.0)=\($0.1)" } == query, sourceLocation: sourceLocation)
    }

    // MARK: Default endpoints

    @Test func openAIDefaults() throws {
        let model: JSONValue = ["provider": "openai", "name": "gpt-4o"]
        Self.expect(try Self.target(model), host: "api.openai.com", path: "/v1/chat/completions")
        Self.expect(try Self.target(model, route: .completions), host: "api.openai.com", path: "/v1/completions")
        Self.expect(try Self.target(model, stream: true), host: "api.openai.com", path: "/v1/chat/completions")
    }

    @Test func anthropicCohereAndMistralDefaults() throws {
        let anthropic: JSONValue = ["provider": "anthropic", "name": "claude-2.1", "options": ["anthropic_version": "2023-06-01"]]
        Self.expect(try Self.target(anthropic), host: "api.anthropic.com", path: "/v1/messages")
        Self.expect(try Self.target(anthropic, route: .completions), host: "api.anthropic.com", path: "/v1/complete")
        let cohere: JSONValue = ["provider": "cohere", "name": "command"]
        Self.expect(try Self.target(cohere), host: "api.cohere.com", path: "/v1/chat")
        Self.expect(try Self.target(cohere, route: .completions), host: "api.cohere.com", path: "/v1/generate")
        let mistral: JSONValue = ["provider": "mistral", "name": "mistral-tiny", "options": ["mistral_format": "openai"]]
        Self.expect(try Self.target(mistral), host: "api.mistral.ai", path: "/v1/chat/completions")
        Self.expect(try Self.target(mistral, route: .completions), host: "api.mistral.ai", path: "/",
                    "mistral has no default completions path")
    }

    // MARK: Azure

    static let azure: JSONValue = ["provider": "azure", "name": "gpt-4",
                                   "options": ["azure_instance": "my-instance", "azure_deployment_id": "my-deployment"]]

    @Test func azureInstanceAndDeploymentPath() throws {
        Self.expect(try Self.target(Self.azure), host: "my-instance.openai.azure.com",
                    path: "/openai/deployments/my-deployment/chat/completions", query: ["api-version=2023-05-15"])
        Self.expect(try Self.target(Self.azure, route: .completions), host: "my-instance.openai.azure.com",
                    path: "/openai/deployments/my-deployment/completions", query: ["api-version=2023-05-15"])
    }

    /// `api-version`: the client's query argument › `azure_api_version` › 2023-05-15.
    @Test func azureAPIVersionPrecedence() throws {
        let configured = merging(Self.azure, ["options": ["azure_api_version": "2024-02-01"]])
        #expect(try Self.target(configured, apiVersion: "2024-10-21").query.map { "\($0.0)=\($0.1)" } == ["api-version=2024-10-21"])
        #expect(try Self.target(configured).query.map { "\($0.0)=\($0.1)" } == ["api-version=2024-02-01"])
        #expect(try Self.target(Self.azure).query.map { "\($0.0)=\($0.1)" } == ["api-version=2023-05-15"])
        #expect(try Self.target(Self.azure, apiVersion: "2024-10-21").query.map { "\($0.0)=\($0.1)" } == ["api-version=2024-10-21"])
    }

    /// With `upstream_url` its scheme, host, port and path replace the Azure URL; `api-version` is
    /// still set.
    @Test func azureWithUpstreamURLKeepsTheAPIVersion() throws {
        let overridden = merging(Self.azure, ["options": ["upstream_url": "http://azure-proxy.local:8080/my/azure?ignored=1",
                                                          "azure_api_version": "2024-02-01"]])
        Self.expect(try Self.target(overridden), tls: false, host: "azure-proxy.local", port: 8080, path: "/my/azure",
                    query: ["api-version=2024-02-01"])
        Self.expect(try Self.target(overridden, apiVersion: "2025-01-01"), tls: false, host: "azure-proxy.local", port: 8080,
                    path: "/my/azure", query: ["api-version=2025-01-01"])
    }

    @Test func azureAppendsUpstreamPathAfterTheDeployment() throws {
        let withPath = merging(Self.azure, ["options": ["upstream_path": "/extensions/chat/completions"]])
        Self.expect(try Self.target(withPath), host: "my-instance.openai.azure.com",
                    path: "/openai/deployments/my-deployment/extensions/chat/completions", query: ["api-version=2023-05-15"])
        let noSlash = merging(Self.azure, ["options": ["upstream_path": "embeddings"]])
        #expect(try Self.target(noSlash).path == "/openai/deployments/my-deployment/embeddings")
    }

    // MARK: Gemini

    @Test func geminiPublicChatAndStreamOperations() throws {
        let gemini: JSONValue = ["provider": "gemini", "name": "gemini-1.5-flash"]
        Self.expect(try Self.target(gemini), host: "generativelanguage.googleapis.com",
                    path: "/v1beta/models/gemini-1.5-flash:generateContent")
        Self.expect(try Self.target(gemini, stream: true), host: "generativelanguage.googleapis.com",
                    path: "/v1beta/models/gemini-1.5-flash:streamGenerateContent")
    }

    @Test func geminiVertexWhenAllThreeFieldsAreSet() throws {
        let vertex: JSONValue = ["provider": "gemini", "name": "gemini-1.5-pro", "options": ["gemini": [
            "api_endpoint": "us-central1-aiplatform.googleapis.com", "project_id": "my-project", "location_id": "us-central1",
        ]]]
        Self.expect(try Self.target(vertex), host: "us-central1-aiplatform.googleapis.com",
                    path: "/v1/projects/my-project/locations/us-central1/publishers/google/models/gemini-1.5-pro:generateContent")
        Self.expect(try Self.target(vertex, stream: true), host: "us-central1-aiplatform.googleapis.com",
                    path: "/v1/projects/my-project/locations/us-central1/publishers/google/models/gemini-1.5-pro:streamGenerateContent")
        // Two of three: still the public endpoint.
        let partial: JSONValue = ["provider": "gemini", "name": "gemini-1.5-pro", "options": ["gemini": [
            "api_endpoint": "us-central1-aiplatform.googleapis.com", "project_id": "my-project",
        ]]]
        Self.expect(try Self.target(partial), host: "generativelanguage.googleapis.com",
                    path: "/v1beta/models/gemini-1.5-pro:generateContent")
    }

    // MARK: Bedrock

    static let bedrock: JSONValue = ["provider": "bedrock", "name": "anthropic.claude-3-haiku-20240307-v1:0"]

    /// Region: `model.options.bedrock.aws_region` › `AWS_REGION` › `AWS_DEFAULT_REGION`; the model
    /// name goes into the path verbatim.
    @Test func bedrockRegionPrecedence() throws {
        let both = ["AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "ap-south-1"]
        let configured = merging(Self.bedrock, ["options": ["bedrock": ["aws_region": "eu-central-1"]]])
        Self.expect(try Self.target(configured, environment: both), host: "bedrock-runtime.eu-central-1.amazonaws.com",
                    path: "/model/anthropic.claude-3-haiku-20240307-v1:0/converse")
        Self.expect(try Self.target(Self.bedrock, environment: both), host: "bedrock-runtime.us-west-2.amazonaws.com",
                    path: "/model/anthropic.claude-3-haiku-20240307-v1:0/converse")
        Self.expect(try Self.target(Self.bedrock, environment: ["AWS_DEFAULT_REGION": "ap-south-1"]),
                    host: "bedrock-runtime.ap-south-1.amazonaws.com", path: "/model/anthropic.claude-3-haiku-20240307-v1:0/converse")
        // The signature's region is the one the host names, also under `upstream_url`.
        #expect(try Self.target(configured, environment: both).signingRegion == "eu-central-1")
        #expect(try Self.target(Self.bedrock, environment: ["AWS_DEFAULT_REGION": "ap-south-1"]).signingRegion == "ap-south-1")
        let overridden = merging(Self.bedrock, ["options": ["upstream_url": "http://127.0.0.1:9/bedrock"]])
        #expect(try Self.target(overridden, environment: both).signingRegion == "us-west-2")
        #expect(try Self.target(["provider": "openai", "name": "gpt-4o"], environment: both).signingRegion == nil)
        Self.expect(try Self.target(configured, stream: true), host: "bedrock-runtime.eu-central-1.amazonaws.com",
                    path: "/model/anthropic.claude-3-haiku-20240307-v1:0/converse-stream")
    }

    @Test func bedrockWithoutAnyRegionFails() throws {
        let error = #expect(throws: LLMUpstream.Failure.self) {
            try LLMUpstream.target(route: .chat, model: try Self.model(Self.bedrock), stream: false, clientPath: "/",
                                   clientAPIVersion: nil, environment: ["AWS_ACCESS_KEY_ID": "AKIA-not-a-region"])
        }
        #expect(error?.message == "AWS region not specified anywhere")
        // The region (§2.3-14) is checked before `upstream_url` (§2.3-15) is used.
        let withBadURL = merging(Self.bedrock, ["options": ["upstream_url": "no-scheme"]])
        #expect(throws: LLMUpstream.Failure.missingRegion) {
            try Self.target(withBadURL, environment: [:])
        }
        let urlError = #expect(throws: LLMUpstream.Failure.self) {
            try Self.target(withBadURL, environment: ["AWS_REGION": "us-east-1"])
        }
        #expect(urlError?.message == "missing scheme in url")
    }

    // MARK: Hugging Face

    @Test func huggingFaceDefaults() throws {
        let hf: JSONValue = ["provider": "huggingface", "name": "mistralai/Mistral-7B-Instruct-v0.2"]
        Self.expect(try Self.target(hf), host: "api-inference.huggingface.co",
                    path: "/models/mistralai/Mistral-7B-Instruct-v0.2/v1/chat/completions")
        Self.expect(try Self.target(hf, route: .completions), host: "api-inference.huggingface.co",
                    path: "/models/mistralai/Mistral-7B-Instruct-v0.2")
    }

    /// §2.10: without `upstream_url` the URL is built from the model name; a preserve route that
    /// has none cannot reach Hugging Face (Kong's text, its spelling kept).
    @Test func huggingFaceWithoutModelOrURLIsUnresolvable() throws {
        let anonymous: JSONValue = ["provider": "huggingface"]
        #expect(throws: LLMUpstream.Failure.huggingFaceUnresolvable) { try Self.target(anonymous, route: .preserve) }
        #expect(LLMUpstream.Failure.huggingFaceUnresolvable.message == "Could not parse the Hugging Face model endponit")
        let routed: JSONValue = ["provider": "huggingface", "options": ["upstream_url": "https://tgi.local"]]
        Self.expect(try Self.target(routed, route: .preserve), host: "tgi.local", path: "/client/path")
    }

    /// With `upstream_url`: chat appends `/v1/chat/completions` to its path, completions use it as
    /// is (`/` when it has none).
    @Test func huggingFaceWithUpstreamURL() throws {
        let hf: JSONValue = ["provider": "huggingface", "name": "tgi",
                             "options": ["upstream_url": "http://tgi.local:8080/endpoint"]]
        Self.expect(try Self.target(hf), tls: false, host: "tgi.local", port: 8080, path: "/endpoint/v1/chat/completions")
        Self.expect(try Self.target(hf, route: .completions), tls: false, host: "tgi.local", port: 8080, path: "/endpoint")
        let bare: JSONValue = ["provider": "huggingface", "name": "tgi", "options": ["upstream_url": "https://tgi.local"]]
        Self.expect(try Self.target(bare), host: "tgi.local", path: "/v1/chat/completions")
        Self.expect(try Self.target(bare, route: .completions), host: "tgi.local", path: "/")
        // §2.5: without a path of its own, completions keep the proxied path.
        let routed = try LLMUpstream.target(route: .completions, model: try Self.model(bare), stream: false,
                                            clientPath: "/hf/generate", proxiedPath: "/api/generate", clientAPIVersion: nil)
        Self.expect(routed, host: "tgi.local", path: "/api/generate")
        let withPath = try LLMUpstream.target(route: .completions, model: try Self.model(hf), stream: false,
                                              clientPath: "/hf/generate", proxiedPath: "/api/generate", clientAPIVersion: nil)
        Self.expect(withPath, tls: false, host: "tgi.local", port: 8080, path: "/endpoint", "a path of its own is used as is")
        let slash: JSONValue = ["provider": "huggingface", "name": "tgi", "options": ["upstream_url": "https://tgi.local/"]]
        let explicitRoot = try LLMUpstream.target(route: .completions, model: try Self.model(slash), stream: false,
                                                  clientPath: "/hf", proxiedPath: "/api/generate", clientAPIVersion: nil)
        Self.expect(explicitRoot, host: "tgi.local", path: "/", "`/` is a path")
    }

    // MARK: upstream_url

    /// Scheme, host, port and path of `upstream_url` replace the default; the port defaults by
    /// scheme (443 for https, 80 for http); its query and fragment are ignored.
    @Test func upstreamURLOverridesSchemeHostPortAndPath() throws {
        for provider in ["openai", "anthropic", "cohere", "mistral"] {
            let explicit: JSONValue = ["provider": .string(provider), "name": "m",
                                       "options": ["upstream_url": "http://10.0.0.5:11434/api/chat?api_key=dropped#frag"]]
            Self.expect(try Self.target(explicit), tls: false, host: "10.0.0.5", port: 11434, path: "/api/chat")
            Self.expect(try Self.target(explicit, route: .completions), tls: false, host: "10.0.0.5", port: 11434,
                        path: "/api/chat", "the override is used for completions too")
            let https: JSONValue = ["provider": .string(provider), "name": "m", "options": ["upstream_url": "https://llm.example/v2/x"]]
            Self.expect(try Self.target(https), host: "llm.example", port: 443, path: "/v2/x")
            let http: JSONValue = ["provider": .string(provider), "name": "m", "options": ["upstream_url": "http://llm.example"]]
            Self.expect(try Self.target(http), tls: false, host: "llm.example", port: 80, path: "/")
        }
        let upper: JSONValue = ["provider": "openai", "name": "m", "options": ["upstream_url": "HTTPS://llm.example:8443/v1"]]
        Self.expect(try Self.target(upper), host: "llm.example", port: 8443, path: "/v1")
    }

    @Test func llama2NeedsAnUpstreamURL() throws {
        let error = #expect(throws: LLMUpstream.Failure.self) {
            try LLMUpstream.target(route: .chat, model: try Self.model(["provider": "llama2", "name": "llama2",
                                                                        "options": ["llama2_format": "ollama"]]),
                                   stream: false, clientPath: "/", clientAPIVersion: nil)
        }
        #expect(error?.message.isEmpty == false)
        let withURL: JSONValue = ["provider": "llama2", "name": "llama2",
                                  "options": ["llama2_format": "ollama", "upstream_url": "http://ollama:11434/api/chat"]]
        Self.expect(try Self.target(withURL), tls: false, host: "ollama", port: 11434, path: "/api/chat")
    }

    /// Spec §2.5: "When `upstream_url` is set, its scheme, host, port and path are used" — for
    /// Gemini and Bedrock too (Kong's drivers parse `upstream_url` whole and only compute their
    /// default URL when it is absent).
    @Test func geminiAndBedrockUseTheUpstreamURLPath() throws {
        let gemini: JSONValue = ["provider": "gemini", "name": "gemini-1.5-flash",
                                 "options": ["upstream_url": "http://gemini-mock:8080/v1/chat/completions"]]
        Self.expect(try Self.target(gemini), tls: false, host: "gemini-mock", port: 8080, path: "/v1/chat/completions")
        let bedrock = merging(Self.bedrock, ["options": ["upstream_url": "http://bedrock-mock:8081/converse-here",
                                                         "bedrock": ["aws_region": "us-east-1"]]])
        Self.expect(try Self.target(bedrock), tls: false, host: "bedrock-mock", port: 8081, path: "/converse-here")
    }

    // MARK: upstream_path

    /// openai (and anthropic, cohere, mistral) use `upstream_path` only without `upstream_url`.
    @Test func upstreamPathOnlyWithoutUpstreamURL() throws {
        for (provider, host) in [("openai", "api.openai.com"), ("anthropic", "api.anthropic.com"), ("cohere", "api.cohere.com"),
                                 ("mistral", "api.mistral.ai")] {
            let pathOnly: JSONValue = ["provider": .string(provider), "name": "m", "options": ["upstream_path": "custom/path"]]
            Self.expect(try Self.target(pathOnly), host: host, path: "/custom/path")
            let both: JSONValue = ["provider": .string(provider), "name": "m",
                                   "options": ["upstream_path": "/custom/path", "upstream_url": "http://self-hosted:9000/v1/chat"]]
            Self.expect(try Self.target(both), tls: false, host: "self-hosted", port: 9000, path: "/v1/chat",
                        "\(provider): upstream_url wins over upstream_path")
        }
        let slashes: JSONValue = ["provider": "openai", "name": "m", "options": ["upstream_path": "///many/slashes"]]
        #expect(try Self.target(slashes).path == "/many/slashes", "a single leading slash")
    }

    /// Gemini and Bedrock apply `upstream_path` even with `upstream_url` (whose scheme, host and
    /// port are kept).
    @Test func geminiAndBedrockApplyUpstreamPathEvenWithUpstreamURL() throws {
        let gemini: JSONValue = ["provider": "gemini", "name": "gemini-1.5-flash", "options": [
            "upstream_url": "http://gemini-mock:8080/ignored", "upstream_path": "/v1beta/models/other:generateContent",
        ]]
        Self.expect(try Self.target(gemini), tls: false, host: "gemini-mock", port: 8080, path: "/v1beta/models/other:generateContent")
        let geminiPathOnly: JSONValue = ["provider": "gemini", "name": "gemini-1.5-flash", "options": ["upstream_path": "/custom"]]
        Self.expect(try Self.target(geminiPathOnly), host: "generativelanguage.googleapis.com", path: "/custom")

        let bedrock = merging(Self.bedrock, ["options": ["upstream_url": "https://bedrock-mock:9443/ignored",
                                                         "upstream_path": "/model/x/converse", "bedrock": ["aws_region": "us-east-1"]]])
        Self.expect(try Self.target(bedrock), host: "bedrock-mock", port: 9443, path: "/model/x/converse")
        let bedrockPathOnly = merging(Self.bedrock, ["options": ["upstream_path": "/custom", "bedrock": ["aws_region": "us-east-1"]]])
        Self.expect(try Self.target(bedrockPathOnly), host: "bedrock-runtime.us-east-1.amazonaws.com", path: "/custom")
    }

    // MARK: preserve

    /// Preserve keeps the client's original path; only scheme, host and port of the target count.
    /// `upstream_path` still wins.
    @Test func preserveKeepsTheClientPath() throws {
        let openai: JSONValue = ["provider": "openai", "name": "text-embedding-3-large",
                                 "options": ["upstream_url": "http://embeddings.local:8000/v1/embeddings"]]
        Self.expect(try Self.target(openai, route: .preserve, clientPath: "/ai/v1/embeddings"), tls: false,
                    host: "embeddings.local", port: 8000, path: "/ai/v1/embeddings")
        Self.expect(try Self.target(["provider": "openai"], route: .preserve, clientPath: "/v1/models"),
                    host: "api.openai.com", path: "/v1/models")
        Self.expect(try Self.target(Self.azure, route: .preserve, clientPath: "/openai/files"),
                    host: "my-instance.openai.azure.com", path: "/openai/files", query: ["api-version=2023-05-15"])
        let withPath = merging(openai, ["options": ["upstream_path": "/fixed"]])
        Self.expect(try Self.target(withPath, route: .preserve, clientPath: "/ai/v1/embeddings"), tls: false,
                    host: "embeddings.local", port: 8000, path: "/fixed")
    }
}
