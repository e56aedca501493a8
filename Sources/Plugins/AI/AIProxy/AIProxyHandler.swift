import Core
import Foundation
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
    /// The native format when `llm_format` is not `openai` (§2.12).
    let nativeFormat: LLMNativeFormat?
    /// Bedrock's SigV4 keys, Gemini's service account, Azure's managed identity (§2.3-14).
    let cloudIdentity: LLMCloudIdentity?
    /// The only members of the client's body ai-proxy reads when it sends an OpenAI-format
    /// provider a chat request as the client's own object (its `messages` are only checked to be
    /// a non-empty list, from their bytes): the rest is passed on unbuilt
    /// (`AIRequestBody.skimNow`). nil when the request is converted, templated or native.
    /// A member not built stands in as `true`, so one the conversion may set to `true` must be
    /// listed (`stream`); the others it writes get numbers or strings (defaults, body auth).
    let readMembers: Set<String>?

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
        nativeFormat = LLMNativeFormat(llmFormat: llmFormat)
        cloudIdentity = LLMCloudIdentity.make(provider: model.provider, auth: config["auth"] ?? .null,
                                              environment: environment)
        // A template may name another provider per request; the others need the whole body.
        let passesTheObjectOn = routeType == .chat && nativeFormat == nil && !modelTemplate.isTemplated
            && LLMDialect(model) == .openAI
        readMembers = passesTheObjectOn ? ["model", "stream", "stream_options", "prompt"] : nil
    }
}

/// ai-proxy (spec §2): turns an OpenAI-format request into the configured provider's request,
/// sends it to the provider instead of the service's host, and turns the answer (whole, or event
/// by event when streaming) back into the OpenAI format, recording usage and cost.
final class AIProxyHandler: WithoutRewritePhase, @unchecked Sendable {
    let config: AIProxyConfig
    let environment: [String: String]

    init(config: AIProxyConfig, environment: [String: String]) {
        self.config = config
        self.environment = environment
    }

    var filtersBody: Bool { true }

    // MARK: Access

    func access(_ context: ProxyRequestContext) async -> PluginVerdict {
        let body: [String: JSONValue]?
        var skim: JSONSourceObject?
        if let readMembers = config.readMembers {
            (body, skim) = await AIRequestBody.skim(context, maxRequestBodySize: config.maxRequestBodySize, keeping: readMembers)
        } else {
            body = await AIRequestBody.object(context, maxRequestBodySize: config.maxRequestBodySize)
        }
        switch prepare(context, body: body, skim: skim) {
        case .decided(let verdict): return verdict
        case .signing(let pending): return await sign(context, pending)
        }
    }

    /// Without waiting when the body has already arrived whole and no cloud identity signs the
    /// request (signing may fetch a token, and Bedrock's may read a body not read yet).
    func accessNow(_ context: ProxyRequestContext) -> PluginVerdict? {
        guard config.cloudIdentity == nil else { return nil }
        let body: [String: JSONValue]?
        var skim: JSONSourceObject?
        if let readMembers = config.readMembers {
            guard let read = AIRequestBody.skimNow(context, maxRequestBodySize: config.maxRequestBodySize,
                                                   keeping: readMembers) else { return nil }
            (body, skim) = read
        } else {
            guard let read = AIRequestBody.objectNow(context, maxRequestBodySize: config.maxRequestBodySize) else { return nil }
            body = read
        }
        switch prepare(context, body: body, skim: skim) {
        case .decided(let verdict): return verdict
        case .signing: preconditionFailure("only a cloud identity signs")
        }
    }

    /// The access phase up to the cloud identity's signature, which may wait.
    private enum Preparation {
        case decided(PluginVerdict)
        case signing(PendingSignature)
    }

    /// What signing needs of the prepared request.
    private struct PendingSignature {
        let identity: LLMCloudIdentity
        let model: LLMModelConfig
        let upstreamPath: String
        let signingRegion: String?
        let target: UpstreamTargetOverride
        let state: AIProxyRequestState
    }

    /// Everything of the access phase but the signature, over the body as `AIRequestBody.object`
    /// gives it.
    /// `skim`: the body's parse when only `config.readMembers` were built (`body` is its members).
    private func prepare(_ context: ProxyRequestContext, body: [String: JSONValue]?,
                         skim: JSONSourceObject? = nil) -> Preparation {
        let state = AIProxyRequestState()
        context.shared[AIProxyRequestState.key] = state
        // A rate limiter counts this request's tokens: usage is gathered even without statistics.
        state.countsUsage = config.logStatistics || AIUsageLedger.of(context) != nil
        // §2.3-1, before the upstream's Accept-Encoding replaces the client's.
        state.clientAcceptsGzip = LLMGzip.clientAccepts(context.headers)

        // §2.3-2: `body` is parsed when it is a JSON object within the size limit (once per
        // request: earlier AI plugins hand their parse, possibly rewritten, forward — §0.2).
        state.started = NIODeadline.now()

        // §2.3-4.1: the model configuration for this request.
        var model = config.model
        if config.modelTemplate.isTemplated {
            do {
                let resolved = try config.modelTemplate.resolve(templateSources(context))
                guard let typed = LLMModelConfig(json: resolved) else { return .decided(Self.reject(400, "model provider not resolved")) }
                model = typed
            } catch {
                return .decided(Self.reject(400, error.message))
            }
        }
        let route = config.routeType

        if let native = config.nativeFormat {
            // §2.3-3 / §2.12: the client speaks the provider's API; its body goes as sent.
            guard let nativeBody = body else { return .decided(Self.reject(400, "request body doesn't contain valid prompts")) }
            let invocation = native.invocation(path: String(context.rawPath), captures: context.match?.namedCaptures ?? [:])
            // §2.3-4.2 on the body's OpenAI shape (§2.3-3): a native request without any message
            // (`{}`, `"contents": []`) is refused here, as Kong refuses it, not by the provider.
            guard Self.hasPrompts(native.openAIRequest(from: .object(nativeBody), invocation: invocation).objectValue ?? [:]) else {
                return .decided(Self.reject(400, "request body doesn't contain valid prompts"))
            }
            // Only the model matters here: the body is forwarded and usage read from the answer.
            if let refusal = Self.checkModel(["model": invocation.model.map(JSONValue.string) ?? .null], &model) {
                return .decided(refusal)
            }
            state.streaming = invocation.stream || config.responseStreaming == "always"
            if state.streaming && config.responseStreaming == "deny" {
                return .decided(Self.reject(400, "response streaming is not enabled for this LLM"))
            }
            state.native = native
            if config.logStatistics && config.logPayloads, let raw = context.bufferedBody {
                state.requestPayload = String(buffer: raw)
            }
        } else if route == .preserve {
            // Forwarded untouched; the model is recorded, and a body naming another model than the
            // configured one is refused (§2.3-4.4/4.5; a preserve request needs no model, 4.6).
            if let refusal = Self.checkModel(body ?? [:], &model, requiringOne: false) { return .decided(refusal) }
            // §2.11: `payload.request` is the body as sent upstream, here the client's own.
            if config.logStatistics && config.logPayloads, let raw = context.bufferedBody {
                state.requestPayload = String(buffer: raw)
            }
            state.streaming = LuaSemantics.truthy(body?["stream"]) || config.responseStreaming == "always"
            if state.streaming && config.responseStreaming == "deny" {
                return .decided(Self.reject(400, "response streaming is not enabled for this LLM"))
            }
        } else if route == .embeddings {
            // Embeddings (the 3.11 route type): `input` instead of messages/prompt, never streamed.
            // (The conversion validates `input`, `encoding_format` and `dimensions`.)
            guard let request = body else { return .decided(Self.reject(400, LLMEmbeddingsRequest.invalidInput)) }
            if let refusal = Self.checkModel(request, &model) { return .decided(refusal) }
            state.embeddingEncoding = LLMEmbeddingEncoding(request: request)
            if let refusal = convertRequest(request, model: model, route: route, state: state, context: context) {
                return .decided(refusal)
            }
        } else {
            guard var request = body else { return .decided(Self.reject(400, "request body doesn't contain valid prompts")) }
            let received = context.bufferedBody
            let hasMessages = skim?.isNonEmptyArray("messages") ?? Self.hasMessages(request)
            let hasPrompt = request["prompt"]?.stringValue != nil
            guard hasMessages || hasPrompt else { return .decided(Self.reject(400, "request body doesn't contain valid prompts")) }
            if let refusal = Self.checkModel(request, &model) { return .decided(refusal) }
            if hasMessages && hasPrompt { return .decided(Self.reject(400, "request matches multiple LLM request formats")) }
            if route == .completions && hasMessages {
                return .decided(Self.reject(400, "[llm/v1/chat] message format is not compatible with [llm/v1/completions] route type"))
            }
            if route == .chat && hasPrompt {
                return .decided(Self.reject(400, "[llm/v1/completions] message format is not compatible with [llm/v1/chat] route type"))
            }
            // §2.3-4.8: streaming.
            state.streaming = LuaSemantics.truthy(request["stream"]) || config.responseStreaming == "always"
            if state.streaming {
                if config.responseStreaming == "deny" {
                    return .decided(Self.reject(400, "response streaming is not enabled for this LLM"))
                }
                request["stream"] = true
                state.includeUsage = request["stream_options"]?["include_usage"] == .bool(true)
            }
            if let refusal = convertRequest(request, model: model, route: route, state: state, context: context) {
                return .decided(refusal)
            }
            // §2.3-4.13: prompt estimate for providers whose streams lack usage (only analytics
            // read it, so it is made only when they are recorded).
            if state.countsUsage, model.provider.estimatesPromptTokens {
                // A skim has no messages to count: the estimate is made from the client's bytes
                // if an answer without usage asks for it. It cannot fail for a chat request,
                // whose messages are a non-empty list.
                if skim != nil {
                    state.promptEstimateSource = received
                } else if let estimate = try? LLMTokenEstimate.promptTokens(request: .object(request), streaming: state.streaming) {
                    state.promptEstimate = estimate
                } else {
                    return .decided(.exit(.error(500)))
                }
            }
        }
        state.model = model

        // §2.3-4.15 / §2.5: target, path, query and auth.
        let apiVersion = model.provider == .azure ? context.queryArguments.first { $0.name == "api-version" }?.value : nil
        let upstream: LLMUpstream
        do {
            upstream = try LLMUpstream.target(route: route, model: model, stream: state.streaming,
                                              clientPath: String(context.rawPath),
                                              // Only Hugging Face reads it: not built for the others.
                                              proxiedPath: model.provider == .huggingface ? context.proxiedPath : "/",
                                              clientAPIVersion: apiVersion,
                                              environment: environment)
        } catch .huggingFaceUnresolvable {
            // §2.10: a plain-text 400, not the AI plugins' JSON error.
            return .decided(.exit(PluginExit(status: 400, body: .text(LLMUpstream.Failure.huggingFaceUnresolvable.message))))
        } catch .missingRegion {
            // §2.3-14: Bedrock signs for a region; none anywhere fails like a failed signature.
            ErrorLog.report("ai-proxy: AWS region not specified anywhere")
            return .decided(Self.reject(500, "LLM request failed before proxying"))
        } catch {
            ErrorLog.report("ai-proxy: failed to configure the upstream: \(error.message)")
            return .decided(.exit(.error(500)))
        }
        for (name, value) in upstream.query { context.setQueryArgument(name, value) }
        config.auth.apply(to: context, provider: model.provider)
        if model.provider == .anthropic, let version = model.options.anthropicVersion {
            context.headers.replaceOrAdd(name: "anthropic-version", value: version)
        }
        let target = UpstreamTargetOverride(tls: upstream.tls, host: upstream.host, port: upstream.port, path: upstream.path)
        context.upstreamTarget = target
        // §2.3-4.9: Gemini is asked for identity, as Kong does. The others may gzip (the gateway
        // inflates it); the client's own header is not forwarded, so no provider answers in an
        // encoding the gateway cannot read (docs/decisions.md).
        context.headers.replaceOrAdd(name: "Accept-Encoding",
                                     value: model.provider == .gemini ? "identity" : "gzip, identity")
        // §2.3-14: signed last, over the request exactly as it will be sent.
        if let identity = config.cloudIdentity {
            return .signing(PendingSignature(identity: identity, model: model, upstreamPath: upstream.path,
                                             signingRegion: upstream.signingRegion, target: target, state: state))
        }
        return .decided(Self.ready(context, state: state))
    }

    /// The request is ready to go upstream.
    private static func ready(_ context: ProxyRequestContext, state: AIProxyRequestState) -> PluginVerdict {
        context.buffersResponse = !state.streaming
        state.active = true
        return .proceed
    }

    /// §2.3-14: the cloud identity's headers (a signature, or a token it may have to fetch).
    private func sign(_ context: ProxyRequestContext, _ pending: PendingSignature) async -> PluginVerdict {
        let model = pending.model
        // The Host the proxy engine will send.
        let host = context.match?.route.preserveHost == true
            ? context.headers.first(name: "host") ?? pending.target.hostHeader : pending.target.hostHeader
        // SigV4 covers the body: one not read yet (preserve, larger than the introspection
        // limit) is read now, within the gateway's body limit.
        var signedBody: [UInt8] = []
        if model.provider == .bedrock {
            do {
                signedBody = try await context.requestBody().map { Array($0.readableBytesView) } ?? []
            } catch {
                ErrorLog.report("ai-proxy: the request body could not be read to be signed")
                return Self.reject(500, "LLM request failed before proxying")
            }
        }
        let request = LLMSignableRequest(
            method: context.method.rawValue, hostHeader: host, path: pending.upstreamPath,
            query: context.rawQuery.map(String.init), contentType: context.headers.first(name: "content-type"),
            body: signedBody)
        do {
            for (name, value) in try await pending.identity.headers(for: request, region: pending.signingRegion,
                                                                    now: Date()) {
                context.headers.replaceOrAdd(name: name, value: value)
            }
            context.logRedactions.redactHeader("X-Amz-Security-Token")
        } catch {
            ErrorLog.report("ai-proxy: \(model.provider.rawValue) cloud identity failed: \(error.message)")
            return Self.reject(500, "LLM request failed before proxying")
        }
        return Self.ready(context, state: pending.state)
    }

    /// §2.3-4.2: a non-empty `messages` array or a string `prompt`.
    private static func hasPrompts(_ request: [String: JSONValue]) -> Bool {
        hasMessages(request) || request["prompt"]?.stringValue != nil
    }

    private static func hasMessages(_ request: [String: JSONValue]) -> Bool {
        request["messages"]?.arrayValue.map { !$0.isEmpty } ?? false
    }

    /// §2.3-4.4 to 4.6: the request's `model` against the configured one; `requiringOne`: a
    /// request without any model name is refused (4.6, not for preserve).
    private static func checkModel(_ request: [String: JSONValue], _ model: inout LLMModelConfig,
                                   requiringOne: Bool = true) -> PluginVerdict? {
        if model.name == nil, let named = request["model"]?.stringValue { model.name = named }
        if let asked = request["model"]?.stringValue, !asked.isEmpty, asked != model.name {
            return reject(400, "cannot use own model - must be: \(model.name ?? "")")
        }
        guard !requiringOne || model.name?.isEmpty == false else {
            return reject(400, "model parameter not found in request, nor in gateway configuration")
        }
        return nil
    }

    /// §2.3-4.10 to 4.12: the provider's format, body-parameter auth, and the new upstream body.
    private func convertRequest(_ request: [String: JSONValue], model: LLMModelConfig, route: LLMRouteType,
                                state: AIProxyRequestState, context: ProxyRequestContext) -> PluginVerdict? {
        var converted: JSONValue
        do {
            converted = try LLMRequestConversion.toProvider(.object(request), route: route, model: model)
        } catch {
            if error.isPlainTextBody {
                return .exit(PluginExit(status: 400, body: .text(error.clientMessage)))
            }
            return Self.reject(400, error.clientMessage)
        }
        // Body-parameter auth, where the converted body is the OpenAI object.
        var keyField: String?
        if let auth = config.auth.bodyParameter, LLMDialect(model)?.sendsTheOpenAIObject(on: route) == true,
           converted[auth.name] == nil || !config.auth.allowOverride {
            converted[auth.name] = .string(auth.value)
            keyField = auth.name
        }
        // Key order is irrelevant to providers: no sorting on the request path. What the
        // conversion passed on unchanged is copied from the client's bytes (docs/decisions.md).
        // (A skimmed body's members that were not built can only be copied: always from there.)
        let source = AIRequestBody.takeSource(context)
        func encode(_ body: JSONValue) -> [UInt8] {
            if let source, case .object(let members) = body { return source.encode(members) }
            return body.serializedBytes(JSONWriteOptions(sortedKeys: false),
                                        reservingCapacity: (context.bufferedBody?.readableBytes ?? 0) + 256)
        }
        let encoded = encode(converted)
        if config.logStatistics && config.logPayloads {
            // The logged payload never shows the key.
            if let keyField {
                var shown = converted
                shown[keyField] = "REDACTED"
                state.requestPayload = String(decoding: encode(shown), as: UTF8.self)
            } else {
                state.requestPayload = String(decoding: encoded, as: UTF8.self)
            }
        }
        context.setRequestBody(ByteBuffer(bytes: encoded))
        context.headers.set(name: "Content-Type", value: "application/json")
        return nil
    }

    // MARK: Response

    func bufferedResponse(_ context: ProxyRequestContext, status: inout Int, headers: inout HTTPHeaders,
                          body: inout ByteBuffer) {
        guard let state = AIProxyRequestState.of(context), state.active, !state.streaming else { return }
        // The request's bytes are not kept past the answer (a queued log entry holds the state).
        defer { state.promptEstimateSource = nil }
        let latency = Self.milliseconds(since: state.started)
        // §2.8/§2.9: whatever answer a gzip client gets (converted, native, the provider's error,
        // the gateway's own 500) goes gzip-encoded; one already gzip is not compressed twice.
        defer {
            if state.clientAcceptsGzip, body.readableBytes > 0, !LLMGzip.isEncoded(headers),
               let zipped = LLMGzip.deflate(body) {
                body = zipped
                headers.replaceOrAdd(name: "Content-Encoding", value: "gzip")
            }
        }
        // §2.8: the gateway reads the answer inflated; the client gets gzip only if it accepts it.
        let upstreamGzip = LLMGzip.isEncoded(headers)
        /// The body as the gateway reads it; nil when it cannot be inflated (logged).
        func inflated() -> ByteBuffer? {
            guard upstreamGzip else { return body }
            do {
                return try LLMGzip.inflate(body)
            } catch {
                ErrorLog.report("ai-proxy: the upstream's gzip body \(error)")
                return nil
            }
        }
        /// For a client that does not accept gzip: the inflated body, else the body as received.
        func decodedForClient() -> ByteBuffer? {
            guard upstreamGzip && !state.clientAcceptsGzip, let plain = inflated() else { return nil }
            headers.removeIfPresent(name: "Content-Encoding")
            return plain
        }
        /// §2.11: a call that ended without a usable answer is still recorded ("once per request,
        /// when the body is complete", whatever its status, as Kong's log-phase serializer does),
        /// with no tokens counted (nothing reaches a rate limiter's budget); `payload.response` is
        /// what the client got.
        func recordFailedCall() {
            guard state.countsUsage else { return }
            let sentBody = body
            recordAnalytics(context, state: state, latency: latency, usage: LLMUsage(), responseModel: nil,
                            responsePayload: { LLMGzip.isEncoded(headers) ? nil : String(buffer: sentBody) })
        }
        guard status == 200 else {
            // Errors pass through (§2.10), decoded only for a client without gzip.
            if let plain = decodedForClient() { body = plain }
            recordFailedCall()
            return
        }
        if state.model.provider.dropsSetCookie { headers.remove(name: "Set-Cookie") }
        if let native = state.native {
            // §2.12: the provider's answer goes unchanged; only analytics read it.
            let plain = state.countsUsage || !state.clientAcceptsGzip ? inflated() : nil
            if upstreamGzip && !state.clientAcceptsGzip, let plain {
                body = plain
                headers.removeIfPresent(name: "Content-Encoding")
            }
            guard state.countsUsage, let plain else { return }
            let document = (try? JSONValue.parse(bytes: plain.readableBytesView)) ?? .null
            recordAnalytics(context, state: state, latency: latency,
                            usage: native.usage(fromResponse: document) ?? LLMUsage(),
                            responseModel: native.responseModel(fromResponse: document),
                            responsePayload: { String(buffer: plain) })
            return
        }
        guard let plain = inflated() else {
            // Marked gzip but not inflatable. A preserve route never converts: the answer goes on
            // as received. Elsewhere it fails as any undecodable answer does (§2.7), in the
            // provider's words.
            if config.routeType != .preserve {
                status = 500
                headers.removeIfPresent(name: "Content-Encoding")
                headers.replaceOrAdd(name: "Content-Type", value: "application/json; charset=utf-8")
                body = Self.errorBody(LLMResponseConversion.undecodable(route: config.routeType, model: state.model).clientMessage)
            }
            recordFailedCall()
            return
        }
        let upstream = Array(plain.readableBytesView)
        let converted: LLMConvertedResponse
        do {
            converted = try LLMResponseConversion.fromProvider(upstream, route: config.routeType, model: state.model,
                                                               embeddingEncoding: state.embeddingEncoding)
        } catch {
            status = 500
            headers.removeIfPresent(name: "Content-Encoding")
            headers.replaceOrAdd(name: "Content-Type", value: "application/json; charset=utf-8")
            body = Self.errorBody(error.clientMessage)
            recordFailedCall()
            return
        }
        // The client's bytes: the upstream's own, or the converted document encoded once.
        let sent = converted.bytes(upstream: upstream)
        let verbatim: Bool
        if case .upstream = converted.body { verbatim = true } else { verbatim = false }
        if state.clientAcceptsGzip, verbatim && upstreamGzip {
            // An upstream gzip body forwarded unchanged is not compressed a second time.
            headers.replaceOrAdd(name: "Content-Encoding", value: "gzip")
        } else if state.clientAcceptsGzip, let zipped = LLMGzip.deflate(verbatim ? plain : ByteBuffer(bytes: sent)) {
            body = zipped
            headers.replaceOrAdd(name: "Content-Encoding", value: "gzip")
        } else {
            if !verbatim || upstreamGzip { body = verbatim ? plain : ByteBuffer(bytes: sent) }
            headers.removeIfPresent(name: "Content-Encoding")
        }
        guard state.countsUsage else { return }
        recordAnalytics(context, state: state, latency: latency,
                        usage: converted.usage ?? LLMUsage(promptTokens: state.promptEstimate ?? 0),
                        responseModel: converted.model,
                        responsePayload: { String(decoding: sent, as: UTF8.self) })
    }

    func headerFilter(_ context: ProxyRequestContext, status: Int, headers: inout HTTPHeaders) {
        guard let state = AIProxyRequestState.of(context), state.active, context.exchangeLog.proxied else { return }
        if state.streaming {
            state.streamLatency = Self.milliseconds(since: state.started)
            let upstreamContentType = headers.first(name: "content-type")
            // Streams reach the client uncompressed (§2.8): a gzip upstream is inflated as it comes.
            if LLMGzip.isEncoded(headers) {
                do {
                    state.streamInflater = try LLMGzipStream()
                } catch {
                    state.streamUndecodable = true
                }
            }
            headers.remove(name: "Content-Length")
            headers.removeIfPresent(name: "Content-Encoding")
            if let native = state.native {
                // The native client reads the provider's own stream format (an AWS event stream
                // is binary): its content type is kept (docs/decisions.md).
                if status == 200, state.countsUsage {
                    state.nativeStreamUsage = LLMNativeStreamUsage(format: native, contentType: upstreamContentType,
                                                                   model: state.model.name,
                                                                   accumulateText: config.logPayloads)
                }
            } else {
                headers.replaceOrAdd(name: "Content-Type", value: "text/event-stream")
            }
            if status == 200, config.routeType != .preserve, state.native == nil {
                // Verbatim OpenAI events are parsed only when analytics read them.
                state.normalizer = StreamNormalizer(contentType: upstreamContentType,
                                                    route: config.routeType, model: state.model,
                                                    accumulateText: config.logPayloads,
                                                    inspectPassthrough: state.countsUsage,
                                                    includeUsage: state.includeUsage)
            }
        }
        // The model header on the upstream's success (also on a 500 from a failed conversion).
        let succeeded = (context.exchangeLog.upstreamStatus ?? status) == 200
        if succeeded, config.modelNameHeader || context.headers.contains(name: "Kong-Debug"),
           let name = state.model.name {
            headers.replaceOrAdd(name: "X-Kong-LLM-Model", value: "\(state.model.provider.rawValue)/\(name)")
        }
    }

    func bodyFilter(_ context: ProxyRequestContext, chunk: inout ByteBuffer, last: Bool) {
        guard let state = AIProxyRequestState.of(context), state.active, state.streaming,
              context.exchangeLog.proxied else { return }
        if state.streamUndecodable {
            chunk = ByteBuffer()
        } else if let inflater = state.streamInflater {
            do {
                chunk = try inflater.inflate(chunk)
            } catch {
                // Nothing after a corrupt byte can be decoded: the rest of the stream is dropped.
                ErrorLog.report("ai-proxy: the upstream's gzip stream \(error)")
                state.streamUndecodable = true
                chunk = ByteBuffer()
            }
        }
        if state.nativeStreamUsage != nil {
            state.nativeStreamUsage!.consume(chunk.readableBytesView)
            if last { state.nativeStreamUsage!.finish() }
        }
        if state.normalizer != nil {
            var frames = state.normalizer!.process(chunk.readableBytesView)
            if last {
                frames += state.normalizer!.finish()
            } else if state.normalizer!.ended {
                // The unsupported-stream frame ends the response (Kong: `ngx.arg[2] = true`).
                context.endsResponseBody = true
            }
            chunk = ByteBuffer(bytes: frames)
        }
        if last && state.countsUsage { recordStreamAnalytics(context, state: state) }
        if last { state.promptEstimateSource = nil }
    }

    // MARK: Analytics (§2.11)

    private func recordStreamAnalytics(_ context: ProxyRequestContext, state: AIProxyRequestState) {
        let latency = state.streamLatency ?? 0
        if let native = state.nativeStreamUsage {
            let completion = native.completion(logStatistics: true)
            recordAnalytics(context, state: state, latency: latency, usage: completion.usage, responseModel: nil,
                            responsePayload: { completion.compositeResponse(logPayloads: true).serialized(.kong) })
            return
        }
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

    /// Reports the usage to the request's ledger (when a rate limiter reads it) and writes
    /// `ai.proxy` into the log record (with statistics); `responsePayload` is built only with
    /// `log_payloads`.
    private func recordAnalytics(_ context: ProxyRequestContext, state: AIProxyRequestState, latency: Int64,
                                 usage: LLMUsage, responseModel: String?, responsePayload: () -> String?) {
        let options = state.model.options
        let cost = options.cost(prompt: usage.promptTokens, completion: usage.completionTokens) ?? 0
        if AIUsageLedger.of(context) != nil {
            AIUsageLedger.record(context, AIUsageLedger.Entry(plugin: "ai-proxy", provider: state.model.provider,
                                                              model: responseModel ?? state.model.name, usage: usage, cost: cost))
        }
        guard config.logStatistics else { return }
        let requestModel = state.model.name ?? "UNSPECIFIED"
        let analytics = AIProxyAnalytics(
            pluginID: config.pluginID, providerName: state.model.provider.rawValue,
            requestModel: requestModel, responseModel: responseModel ?? requestModel, latency: latency,
            azure: state.model.provider == .azure
                ? AIProxyAnalytics.Azure(instanceID: options.azureInstance, deploymentID: options.azureDeploymentID,
                                         apiVersion: options.azureAPIVersion)
                : nil,
            usage: usage, cost: cost,
            payload: config.logPayloads
                ? AIProxyAnalytics.Payload(request: state.requestPayload, response: responsePayload())
                : nil)
        context.setLogMember("ai", "proxy", analytics)
    }

    // MARK: Helpers

    private func templateSources(_ context: ProxyRequestContext) -> LLMModelTemplate.Sources {
        let query = context.queryArguments
        return LLMModelTemplate.Sources(
            uriCaptures: context.match?.namedCaptures ?? [:],
            header: { context.header($0) },
            queryParameter: { name in query.first { $0.name == name }.map { $0.value ?? "" } })
    }

    static func errorBody(_ message: String) -> ByteBuffer {
        ByteBuffer(bytes: JSONValue.object(["error": ["message": .string(message)]]).serializedBytes(.kong))
    }

    static func reject(_ status: Int, _ message: String) -> PluginVerdict { .aiError(status, message) }

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
    /// §2.11's prompt-token estimate, for providers whose answers may lack usage.
    var promptEstimate: Int? {
        get {
            if let source = promptEstimateSource {
                promptEstimateSource = nil
                let received = try? JSONValue.parse(bytes: source.readableBytesView)
                estimate = received.flatMap { try? LLMTokenEstimate.promptTokens(request: $0, streaming: streaming) }
            }
            return estimate
        }
        set { estimate = newValue }
    }
    private var estimate: Int?
    /// The client's body, when the estimate is made from it the first time it is read (dropped
    /// once the answer is handled).
    var promptEstimateSource: ByteBuffer?
    /// The body sent upstream, kept only when payloads are logged.
    var requestPayload: String?
    /// Until the stream's response headers (spec §2.11 `llm_latency`).
    var streamLatency: Int64?
    var normalizer: StreamNormalizer?
    /// §2.3-1: the client's `Accept-Encoding` names gzip.
    var clientAcceptsGzip = false
    /// Set when a streamed answer comes gzip-encoded.
    var streamInflater: LLMGzipStream?
    var streamUndecodable = false
    /// The client speaks this provider's own API (§2.12).
    var native: LLMNativeFormat?
    var nativeStreamUsage: LLMNativeStreamUsage?
    /// The streamed request asked `stream_options.include_usage`.
    var includeUsage = false
    /// Usage is gathered: statistics are logged, or a rate limiter counts tokens.
    var countsUsage = false
    /// Embeddings: how the client wants vectors written.
    var embeddingEncoding = LLMEmbeddingEncoding.float
}
