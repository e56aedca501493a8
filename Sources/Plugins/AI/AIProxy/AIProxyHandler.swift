import Core
import NIOCore
import NIOHTTP1

/// ai-proxy's configuration, typed once per configuration snapshot.
struct AIProxyConfig: Sendable {
    let pluginID: String
    let routeType: LLMRouteType
    let model: LLMModelConfig
    let modelTemplate: LLMModelTemplate
    let auth: LLMAuth
    let logStatistics: Bool
    let logPayloads: Bool
    /// `allow`, `deny` or `always`.
    let responseStreaming: String
    let maxRequestBodySize: Int
    let modelNameHeader: Bool
    /// `openai`, `gemini` or `bedrock`: the client's input format.
    let llmFormat: String

    init?(instance: PluginInstance, environment: [String: String]) {
        let config = instance.config
        guard let routeType = config["route_type"]?.stringValue.flatMap(LLMRouteType.init(rawValue:)),
              let modelRecord = config["model"], let model = LLMModelConfig(json: modelRecord) else { return nil }
        pluginID = instance.id
        self.routeType = routeType
        self.model = model
        modelTemplate = LLMModelTemplate(record: modelRecord)
        auth = LLMAuth(json: config["auth"] ?? .null, environment: environment)
        logStatistics = config["logging"]?["log_statistics"]?.boolValue ?? false
        logPayloads = config["logging"]?["log_payloads"]?.boolValue ?? false
        responseStreaming = config["response_streaming"]?.stringValue ?? "allow"
        maxRequestBodySize = config["max_request_body_size"]?.intValue ?? 8192
        modelNameHeader = config["model_name_header"]?.boolValue ?? true
        llmFormat = config["llm_format"]?.stringValue ?? "openai"
    }
}

/// ai-proxy (spec §2): turns an OpenAI-format request into the configured provider's request,
/// sends it to the provider instead of the service's host, and turns the answer (whole, or event
/// by event when streaming) back into the OpenAI format, recording usage and cost.
final class AIProxyHandler: PluginHandler, @unchecked Sendable {
    let config: AIProxyConfig
    let environment: [String: String]

    init(config: AIProxyConfig, environment: [String: String]) {
        self.config = config
        self.environment = environment
    }

    var filtersBody: Bool { true }

    /// Kong reads a body that spilled past nginx's 8 KiB in-memory buffer only when it is within
    /// `max_request_body_size`; smaller bodies are always read.
    static let inMemoryBodyBuffer = 8192

    // MARK: Access

    func access(_ context: ProxyRequestContext) async -> PluginVerdict {
        let state = AIProxyRequestState()
        context.shared[AIProxyRequestState.key] = state

        // §2.3-2: the body, parsed when it is a JSON object within the size limit.
        let limit = max(Self.inMemoryBodyBuffer, config.maxRequestBodySize)
        let raw: ByteBuffer?
        do { raw = try await context.requestBody(limit: limit) } catch { raw = nil }
        let contentType = context.headers.first(name: "content-type")?.lowercased() ?? "application/json"
        var body: [String: JSONValue]?
        if let raw, contentType.hasPrefix("application/json") || contentType.isEmpty,
           case .object(let object)? = try? JSONValue.parse(bytes: raw.readableBytesView) {
            body = object
        }
        state.started = NIODeadline.now()

        // §2.3-4.1: the model configuration for this request.
        var model = config.model
        if config.modelTemplate.isTemplated {
            do {
                let resolved = try config.modelTemplate.resolve(templateSources(context))
                guard let typed = LLMModelConfig(json: resolved) else { return Self.reject(400, "model provider not resolved") }
                model = typed
            } catch {
                return Self.reject(400, error.message)
            }
        }
        let route = config.routeType

        if route == .preserve {
            // Forwarded untouched; the model is only recorded.
            if model.name == nil, let named = body?["model"]?.stringValue { model.name = named }
            state.streaming = LuaSemantics.truthy(body?["stream"]) || config.responseStreaming == "always"
            if state.streaming && config.responseStreaming == "deny" {
                return Self.reject(400, "response streaming is not enabled for this LLM")
            }
        } else {
            guard var request = body else { return Self.reject(400, "request body doesn't contain valid prompts") }
            let hasMessages = request["messages"]?.arrayValue.map { !$0.isEmpty } ?? false
            let hasPrompt = request["prompt"]?.stringValue != nil
            guard hasMessages || hasPrompt else { return Self.reject(400, "request body doesn't contain valid prompts") }
            if model.name == nil, let named = request["model"]?.stringValue { model.name = named }
            if let asked = request["model"]?.stringValue, !asked.isEmpty, asked != model.name {
                return Self.reject(400, "cannot use own model - must be: \(model.name ?? "")")
            }
            guard model.name?.isEmpty == false else {
                return Self.reject(400, "model parameter not found in request, nor in gateway configuration")
            }
            if hasMessages && hasPrompt { return Self.reject(400, "request matches multiple LLM request formats") }
            if route == .completions && hasMessages {
                return Self.reject(400, "[llm/v1/chat] message format is not compatible with [llm/v1/completions] route type")
            }
            if route == .chat && hasPrompt {
                return Self.reject(400, "[llm/v1/completions] message format is not compatible with [llm/v1/chat] route type")
            }
            // §2.3-4.8: streaming.
            state.streaming = LuaSemantics.truthy(request["stream"]) || config.responseStreaming == "always"
            if state.streaming {
                if config.responseStreaming == "deny" {
                    return Self.reject(400, "response streaming is not enabled for this LLM")
                }
                request["stream"] = true
            }
            // §2.3-4.10: the provider's format.
            var converted: JSONValue
            do {
                converted = try LLMRequestConversion.toProvider(.object(request), route: route, model: model)
            } catch {
                if error.isPlainTextBody {
                    return .exit(PluginExit(status: 400, body: .text(error.clientMessage)))
                }
                return Self.reject(400, error.clientMessage)
            }
            // §2.3-4.11: body-parameter auth, where the converted body is the OpenAI object.
            if let auth = config.auth.bodyParameter, LLMDialect(model)?.sendsTheOpenAIObject == true,
               converted[auth.name] == nil || !config.auth.allowOverride {
                converted[auth.name] = .string(auth.value)
            }
            // §2.3-4.13: prompt estimate for providers whose streams lack usage (only analytics
            // read it, so it is made only when they are recorded).
            if config.logStatistics, model.provider.estimatesPromptTokens {
                do {
                    state.promptEstimate = try LLMTokenEstimate.promptTokens(request: .object(request), streaming: state.streaming)
                } catch {
                    return .exit(.error(500))
                }
            }
            // Key order is irrelevant to providers: no sorting on the request path.
            let encoded = converted.serializedBytes(JSONWriteOptions(sortedKeys: false))
            if config.logStatistics && config.logPayloads { state.requestPayload = String(decoding: encoded, as: UTF8.self) }
            context.setRequestBody(ByteBuffer(bytes: encoded))
            context.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        }
        state.model = model

        // §2.3-4.14: cloud identities this build does not sign for yet.
        if model.provider == .bedrock || (model.provider == .gemini && config.auth.gcpUseServiceAccount) {
            ErrorLog.report("ai-proxy: \(model.provider.rawValue) cloud credentials are not supported yet")
            return .exit(PluginExit(status: 500, body: .json(["error": ["message": "LLM request failed before proxying"]])))
        }

        // §2.3-4.15 / §2.5: target, path, query and auth.
        let apiVersion = model.provider == .azure ? context.queryArguments.first { $0.name == "api-version" }?.value : nil
        let upstream: LLMUpstream
        do {
            upstream = try LLMUpstream.target(route: route, model: model, stream: state.streaming,
                                              clientPath: String(context.rawPath), clientAPIVersion: apiVersion,
                                              environment: environment)
        } catch {
            ErrorLog.report("ai-proxy: failed to configure the upstream: \(error.message)")
            return .exit(.error(500))
        }
        for (name, value) in upstream.query { context.setQueryArgument(name, value) }
        config.auth.apply(to: context, provider: model.provider)
        if model.provider == .anthropic, let version = model.options.anthropicVersion {
            context.headers.replaceOrAdd(name: "anthropic-version", value: version)
        }
        context.upstreamTarget = UpstreamTargetOverride(tls: upstream.tls, host: upstream.host, port: upstream.port,
                                                        path: upstream.path)
        // The gateway does not inflate compressed answers: it asks the provider for none.
        context.headers.replaceOrAdd(name: "Accept-Encoding", value: "identity")
        context.buffersResponse = !state.streaming
        state.active = true
        return .proceed
    }

    // MARK: Response

    func bufferedResponse(_ context: ProxyRequestContext, status: inout Int, headers: inout HTTPHeaders,
                          body: inout ByteBuffer) {
        guard let state = AIProxyRequestState.of(context), state.active, !state.streaming else { return }
        state.upstreamStatus = status
        let latency = Self.milliseconds(since: state.started)
        guard status == 200 else { return }
        if state.model.provider.dropsSetCookie { headers.remove(name: "Set-Cookie") }
        let upstream = Array(body.readableBytesView)
        let converted: LLMConvertedResponse
        do {
            converted = try LLMResponseConversion.fromProvider(upstream, route: config.routeType, model: state.model)
        } catch {
            status = 500
            headers.replaceOrAdd(name: "Content-Type", value: "application/json; charset=utf-8")
            body = ByteBuffer(bytes: JSONValue.object(["error": ["message": .string(error.clientMessage)]])
                .serializedBytes(.kong))
            return
        }
        // The client's bytes: the upstream's own, or the converted document encoded once.
        let sent = converted.bytes(upstream: upstream)
        if case .converted = converted.body { body = ByteBuffer(bytes: sent) }
        guard config.logStatistics else { return }
        recordAnalytics(context, state: state, latency: latency,
                        usage: converted.usage ?? LLMUsage(promptTokens: state.promptEstimate ?? 0),
                        responseModel: converted.model,
                        responsePayload: { String(decoding: sent, as: UTF8.self) })
    }

    func headerFilter(_ context: ProxyRequestContext, status: Int, headers: inout HTTPHeaders) {
        guard let state = AIProxyRequestState.of(context), state.active, context.exchangeLog.proxied else { return }
        if state.streaming {
            state.upstreamStatus = status
            state.streamLatency = Self.milliseconds(since: state.started)
            let upstreamContentType = headers.first(name: "content-type")
            headers.replaceOrAdd(name: "Content-Type", value: "text/event-stream")
            headers.remove(name: "Content-Length")
            headers.remove(name: "Content-Encoding")
            if status == 200, config.routeType != .preserve, config.llmFormat == "openai" {
                // Verbatim OpenAI events are parsed only when analytics read them.
                state.normalizer = StreamNormalizer(contentType: upstreamContentType,
                                                    route: config.routeType, model: state.model,
                                                    accumulateText: config.logPayloads,
                                                    inspectPassthrough: config.logStatistics)
            }
        }
        // The model header on the upstream's success (also on a 500 from a failed conversion).
        let succeeded = (state.upstreamStatus ?? status) == 200
        if succeeded, config.modelNameHeader || context.headers.contains(name: "Kong-Debug"),
           let name = state.model.name {
            headers.replaceOrAdd(name: "X-Kong-LLM-Model", value: "\(state.model.provider.rawValue)/\(name)")
        }
    }

    func bodyFilter(_ context: ProxyRequestContext, chunk: inout ByteBuffer, last: Bool) {
        guard let state = AIProxyRequestState.of(context), state.active, state.streaming,
              context.exchangeLog.proxied else { return }
        if state.normalizer != nil {
            var frames = state.normalizer!.process(chunk.readableBytesView)
            if last { frames += state.normalizer!.finish() }
            chunk = ByteBuffer(bytes: frames)
        }
        if last && config.logStatistics { recordStreamAnalytics(context, state: state) }
    }

    // MARK: Analytics (§2.11)

    private func recordStreamAnalytics(_ context: ProxyRequestContext, state: AIProxyRequestState) {
        let latency = state.streamLatency ?? 0
        guard let normalizer = state.normalizer else {
            recordAnalytics(context, state: state, latency: latency,
                            usage: LLMUsage(promptTokens: state.promptEstimate ?? 0), responseModel: nil,
                            responsePayload: { nil })
            return
        }
        let completion = normalizer.converter.completion(logStatistics: true, promptTokenEstimate: state.promptEstimate)
        recordAnalytics(context, state: state, latency: latency, usage: completion.usage, responseModel: nil,
                        responsePayload: { completion.compositeResponse(logPayloads: true).serialized(.kong) })
    }

    /// Writes `ai.proxy` into the log record; `responsePayload` is built only with `log_payloads`.
    private func recordAnalytics(_ context: ProxyRequestContext, state: AIProxyRequestState, latency: Int64,
                                 usage: LLMUsage, responseModel: String?, responsePayload: () -> String?) {
        let options = state.model.options
        var cost = 0.0
        if let input = options.inputCost, let output = options.outputCost {
            cost = (Double(usage.promptTokens) * input + Double(usage.completionTokens) * output) / 1_000_000
        }
        let requestModel = state.model.name ?? "UNSPECIFIED"
        var meta: [String: JSONValue] = [
            "plugin_id": .string(config.pluginID),
            "provider_name": .string(state.model.provider.rawValue),
            "request_model": .string(requestModel),
            "response_model": .string(responseModel ?? requestModel),
            "llm_latency": .number(Double(latency)),
        ]
        if state.model.provider == .azure {
            meta["azure_instance_id"] = options.azureInstance.map(JSONValue.string) ?? .null
            meta["azure_deployment_id"] = options.azureDeploymentID.map(JSONValue.string) ?? .null
            meta["azure_api_version"] = options.azureAPIVersion.map(JSONValue.string) ?? .null
        }
        var proxy: [String: JSONValue] = [
            "meta": .object(meta),
            "usage": .object([
                "prompt_tokens": .number(Double(usage.promptTokens)),
                "completion_tokens": .number(Double(usage.completionTokens)),
                "total_tokens": .number(Double(usage.totalTokens)),
                "time_per_token": .number(usage.completionTokens > 0 ? Double(latency) / Double(usage.completionTokens) : 0),
                "cost": .number(cost),
            ]),
        ]
        if config.logPayloads {
            proxy["payload"] = .object([
                "request": state.requestPayload.map(JSONValue.string) ?? .null,
                "response": responsePayload().map(JSONValue.string) ?? .null,
            ])
        }
        var ai = context.logRecord["ai"]?.objectValue ?? [:]
        ai["proxy"] = .object(proxy)
        context.logRecord["ai"] = .object(ai)
    }

    // MARK: Helpers

    private func templateSources(_ context: ProxyRequestContext) -> LLMModelTemplate.Sources {
        let headers = context.headers
        let query = context.queryArguments
        return LLMModelTemplate.Sources(
            uriCaptures: context.match?.namedCaptures ?? [:],
            header: { headers.first(name: $0) },
            queryParameter: { name in query.first { $0.name == name }.map { $0.value ?? "" } })
    }

    static func reject(_ status: Int, _ message: String) -> PluginVerdict {
        .exit(PluginExit(status: status, body: .json(["error": ["message": .string(message)]])))
    }

    static func milliseconds(since start: NIODeadline) -> Int64 {
        (NIODeadline.now() - start).nanoseconds / 1_000_000
    }
}

/// What ai-proxy keeps about one request between its phases (`kong.ctx.plugin`).
final class AIProxyRequestState: @unchecked Sendable {
    static let key = "ai-proxy"

    static func of(_ context: ProxyRequestContext) -> AIProxyRequestState? {
        context.shared[key] as? AIProxyRequestState
    }

    /// Access accepted the request: the response phases act on it.
    var active = false
    var model = LLMModelConfig(provider: .openai)
    var streaming = false
    var started = NIODeadline.now()
    var promptEstimate: Int?
    /// The body sent upstream, kept only when payloads are logged.
    var requestPayload: String?
    var upstreamStatus: Int?
    /// Until the stream's response headers (spec §2.11 `llm_latency`).
    var streamLatency: Int64?
    var normalizer: StreamNormalizer?
}
