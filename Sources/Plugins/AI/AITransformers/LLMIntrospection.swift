import AsyncHTTPClient
import Core
import Foundation
import NIOCore
import NIOHTTP1

/// The transformers' one-shot LLM call (spec §3.3, Kong's `ai_introspect_body`): `prompt` as the
/// system message, a text as the user message, sent through the configured provider's driver
/// (the same conversion, target, auth and cloud identity as ai-proxy), and the answer's text back,
/// optionally cut to the first match of `transformation_extract_pattern`.
struct LLMIntrospection: Sendable {
    /// Why the call gave no text, as the client sees it.
    enum Failure: Error, Equatable {
        /// §3.3-1: a cloud identity failed; a plain-text 500.
        case beforeProxying
        /// A 400 `{"error":{"message":…}}`.
        case rejected(String)

        var verdict: PluginVerdict {
            switch self {
            case .beforeProxying:
                return .exit(PluginExit(status: 500, body: .text("LLM request failed before proxying")))
            case .rejected(let message):
                return .aiError(400, message)
            }
        }
    }

    let config: TransformerConfig
    let environment: [String: String]

    static let introspectionFailed = "failed to introspect request with AI service"

    /// Runs the call and records the plugin's analytics (§3.4) in the request's log record.
    /// `clientInput`: what `payload.request` logs when it is not `input` (ai-response-transformer
    /// transforms the upstream's answer, but Kong logs the client's raw body, §3.4).
    func run(input: String, clientInput: String? = nil, context: ProxyRequestContext) async -> Result<String, Failure> {
        let model = config.model
        let started = ContinuousClock.now

        // §3.3-3: the OpenAI-shaped request, then the provider's shape.
        let messages: [JSONValue]
        if model.provider == .bedrock, LLMRequestConversion.bedrockRefusesSystemPrompts(model: model.name ?? "") {
            messages = [["role": "user", "content": .string(config.prompt)],
                        ["role": "assistant", "content": "What is the message?"],
                        ["role": "user", "content": .string(input)]]
        } else {
            messages = [["role": "system", "content": .string(config.prompt)],
                        ["role": "user", "content": .string(input)]]
        }
        var converted: JSONValue
        do {
            converted = try LLMRequestConversion.toProvider(.object(["messages": .array(messages), "stream": false]),
                                                            route: .chat, model: model)
        } catch {
            return .failure(.rejected(error.clientMessage))
        }
        // §3.3-4: body-parameter auth where the provider takes the OpenAI object; no query auth.
        if let parameter = config.auth.bodyParameter, LLMDialect(model)?.sendsTheOpenAIObject(on: .chat) == true {
            converted[parameter.name] = .string(parameter.value)
        }
        let body = converted.serializedBytes(JSONWriteOptions(sortedKeys: false))

        let upstream: LLMUpstream
        do {
            upstream = try LLMUpstream.target(route: .chat, model: model, stream: false, clientPath: "/",
                                              clientAPIVersion: nil, environment: environment)
        } catch {
            ErrorLog.report("\(config.pluginName): failed to configure the LLM target: \(error.message)")
            return .failure(.rejected("\(Self.introspectionFailed): \(error.message)"))
        }
        let query = upstream.query.isEmpty ? nil
            : upstream.query.map { "\(CloudEncoding.percentEncoded($0.0))=\(CloudEncoding.percentEncoded($0.1))" }
                .joined(separator: "&")
        let override = UpstreamTargetOverride(tls: upstream.tls, host: upstream.host, port: upstream.port, path: upstream.path)

        var headers = HTTPHeaders()
        headers.add(name: "Host", value: override.hostHeader)
        headers.add(name: "Accept", value: "application/json")
        headers.add(name: "Content-Type", value: "application/json")
        if let header = config.auth.header, model.provider.sendsConfiguredAuth {
            headers.replaceOrAdd(name: header.name, value: header.value)
        }
        if model.provider == .anthropic, let version = model.options.anthropicVersion {
            headers.replaceOrAdd(name: "anthropic-version", value: version)
        }
        if let identity = config.cloudIdentity {
            let signable = LLMSignableRequest(method: "POST", hostHeader: override.hostHeader, path: upstream.path,
                                              query: query, contentType: "application/json", body: body)
            do {
                for (name, value) in try await identity.headers(for: signable, region: upstream.signingRegion, now: Date()) {
                    headers.replaceOrAdd(name: name, value: value)
                }
            } catch {
                ErrorLog.report("\(config.pluginName): \(model.provider.rawValue) cloud identity failed: \(error.message)")
                return .failure(.beforeProxying)
            }
        }

        let address = UpstreamAddress(tls: upstream.tls, host: upstream.host, port: upstream.port,
                                      target: query.map { "\(upstream.path)?\($0)" } ?? upstream.path,
                                      hostHeader: override.hostHeader, verifyTLS: config.http.verifyTLS)
        let answer: TransformerCall.Answer
        do {
            answer = try await TransformerCall.send(method: .POST, to: address, headers: headers,
                                                    body: ByteBuffer(bytes: body), options: config.http)
        } catch {
            return .failure(.rejected("\(Self.introspectionFailed): request to ai service failed: request failed: \(error)"))
        }
        guard answer.status <= 299 else {
            if model.provider == .huggingface {
                return .failure(.rejected("\(Self.introspectionFailed): Hugging Face API returned status \(answer.status)"))
            }
            return .failure(.rejected("\(Self.introspectionFailed): status code \(answer.status)"))
        }

        // §3.3-5/6: back to the OpenAI shape, then the text.
        let answerBytes: [UInt8]
        do {
            answerBytes = Array(try answer.decodedBody().readableBytesView)
        } catch {
            return .failure(.rejected("failed to convert AI response to JSON: \(error)"))
        }
        let response: LLMConvertedResponse
        do {
            response = try LLMResponseConversion.fromProvider(answerBytes, route: .chat, model: model, transformerCall: true)
        } catch {
            return .failure(.rejected("failed to convert AI response to Kong format: \(error.clientMessage)"))
        }
        let latency = Int64((ContinuousClock.now - started) / .milliseconds(1))
        let responseBytes = response.bytes(upstream: answerBytes)
        guard response.document.objectValue != nil else {
            return .failure(.rejected("failed to convert AI response to JSON: the answer is not a JSON object"))
        }
        recordAnalytics(context, input: clientInput ?? input, response: response, responseBytes: responseBytes, latency: latency)
        guard let text = response.document["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue else {
            return .failure(.rejected("no 'choices' in upstream AI service response"))
        }
        guard let pattern = config.extractPattern else { return .success(text) }
        do {
            guard let match = try pattern.get().firstMatch(in: text) else {
                return .failure(.rejected("AI response did not match specified regular expression"))
            }
            return .success(String(match))
        } catch {
            return .failure(.rejected("failed regex matching ai response: \(error)"))
        }
    }

    /// §3.4: `ai.<plugin>.meta/usage/cache` with `log_statistics`, `ai.<plugin>.payload` with
    /// `log_payloads`; the usage also goes to the request's usage ledger for rate limiting.
    private func recordAnalytics(_ context: ProxyRequestContext, input: String, response: LLMConvertedResponse,
                                 responseBytes: [UInt8], latency: Int64) {
        let options = config.model.options
        var cost: Double?
        if let prompt = response.promptTokens, let completion = response.completionTokens {
            cost = options.cost(prompt: prompt, completion: completion)
        }
        AIUsageLedger.record(context, AIUsageLedger.Entry(
            plugin: config.pluginName, provider: config.model.provider, model: response.model ?? config.model.name,
            usage: response.usage ?? LLMUsage(), cost: cost ?? 0))
        guard config.logStatistics || config.logPayloads else { return }
        var entry: [String: JSONValue] = [:]
        if config.logStatistics {
            let requestModel = AIProxyRequestState.of(context).flatMap { $0.active ? $0.model.name : nil } ?? "UNSPECIFIED"
            var meta: [String: JSONValue] = [
                "plugin_id": .string(config.pluginID),
                "provider_name": .string(config.model.provider.rawValue),
                "request_model": .string(requestModel),
                "response_model": .string(response.model ?? config.model.name ?? "UNSPECIFIED"),
                "llm_latency": .number(Double(latency)),
            ]
            if config.model.provider == .azure {
                meta["azure_instance_id"] = options.azureInstance.map(JSONValue.string) ?? .null
                meta["azure_deployment_id"] = options.azureDeploymentID.map(JSONValue.string) ?? .null
                meta["azure_api_version"] = options.azureAPIVersion.map(JSONValue.string) ?? .null
            }
            var usage: [String: JSONValue] = [:]
            if let prompt = response.promptTokens { usage["prompt_tokens"] = .number(Double(prompt)) }
            if let completion = response.completionTokens {
                usage["completion_tokens"] = .number(Double(completion))
                usage["time_per_token"] = .number(completion > 0 ? (Double(latency) / Double(completion)).rounded(.down) : 0)
            }
            // §3.4: only what the converted body has (none is computed).
            if let total = response.document["usage"]?["total_tokens"]?.intValue {
                usage["total_tokens"] = .number(Double(total))
            }
            if let cost { usage["cost"] = .number(cost) }
            entry["meta"] = .object(meta)
            entry["usage"] = .object(usage)
            entry["cache"] = .object([:])
        }
        if config.logPayloads {
            entry["payload"] = .object([
                "request": .string(input),
                "response": .string(String(decoding: responseBytes, as: UTF8.self)),
            ])
        }
        context.updateAILog { $0[config.pluginName] = .object(entry) }
    }
}

/// One HTTP exchange of a transformer (the LLM call, or ai-response-transformer's upstream call),
/// over the shared clients of `AISideCallClients`, read whole.
enum TransformerCall {
    /// At most this much of an answer is read (an LLM answer or the upstream's body).
    static let maxResponseBytes = 64 << 20

    struct Answer: Sendable {
        let status: Int
        let headers: HTTPHeaders
        let body: ByteBuffer

        /// The body, inflated when it came gzip-encoded.
        func decodedBody() throws -> ByteBuffer {
            LLMGzip.isEncoded(headers) ? try LLMGzip.inflate(body) : body
        }
    }

    /// A transport failure, described without the request's secrets (only the error's kind).
    struct TransportFailure: Error, CustomStringConvertible {
        let description: String
        /// No connection was made (refused, connect timeout, name resolution).
        let connecting: Bool
    }

    static func send(method: HTTPMethod, to address: UpstreamAddress, headers: HTTPHeaders, body: ByteBuffer?,
                     options: TransformerHTTPOptions) async throws(TransportFailure) -> Answer {
        var request = HTTPClientRequest(url: address.url)
        request.method = method
        request.headers = headers
        if let hostHeader = address.hostHeader { request.headers.replaceOrAdd(name: "Host", value: hostHeader) }
        if let body { request.body = .bytes(body) }
        let client = AISideCallClients.client(verifyTLS: options.verifyTLS, proxy: options.proxy(tls: address.tls),
                                                   timeoutMilliseconds: options.timeoutMilliseconds)
        do {
            // Bounded by the client's connect/read/write timeouts; the deadline only stops a
            // peer that trickles bytes forever.
            let response = try await client.execute(request, timeout: .hours(1))
            let collected = try await response.body.collect(upTo: maxResponseBytes)
            return Answer(status: Int(response.status.code), headers: response.headers, body: collected)
        } catch {
            throw TransportFailure(description: Self.describe(error), connecting: Self.isConnectFailure(error))
        }
    }

    /// No connection was made: refused, timed out, not resolved, or the TLS handshake failed
    /// (lua-resty-http's `connect` does the handshake).
    static func isConnectFailure(_ error: any Error) -> Bool {
        if let client = error as? HTTPClientError, client == .connectTimeout { return true }
        let text = String(describing: error).lowercased()
        return text.contains("connection refused") || text.contains("connect") && text.contains("timeout")
            || text.contains("resolution") || text.contains("unknown host") || isHandshakeFailure(text)
    }

    /// AsyncHTTPClient reports a failed handshake as `handshakeFailed(…)` (NIOSSL's case name).
    private static func isHandshakeFailure(_ lowercased: String) -> Bool {
        lowercased.contains("handshake")
    }

    /// Kong's lua-resty-http texts where there is one (`timeout`, `connection refused`,
    /// `handshake failed`), else the client's own error name. A TLS library's error is never
    /// passed on as it prints itself: that text carries build paths and library internals.
    static func describe(_ error: any Error) -> String {
        if let client = error as? HTTPClientError {
            switch client {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout: return "timeout"
            default: return String(describing: client)
            }
        }
        let text = String(describing: error)
        if text.localizedCaseInsensitiveContains("connection refused") { return "connection refused" }
        if isHandshakeFailure(text.lowercased()) {
            return text.contains("CERTIFICATE_VERIFY_FAILED") ? "handshake failed: certificate verify failed" : "handshake failed"
        }
        // Any other TLS library error prints its internals (build paths): its kind is enough.
        if text.contains("BoringSSL") { return "ssl error" }
        return text
    }
}
