import Core
import NIOCore
import NIOHTTP1

extension AIAzureContentSafetyPlugin {
    /// The handler of one configured instance; `environment` serves `{vault://env/…}` references
    /// and the Azure identity endpoints.
    static func makeHandler(_ instance: PluginInstance, environment: [String: String]) throws -> any PluginHandler {
        guard let config = AIAzureContentSafetyConfig(config: instance.config) else {
            throw PluginConfigurationError(plugin: definition.name)
        }
        let service = ContentSafetyService(config: instance.config, options: config.analysis, environment: environment)
        return AIAzureContentSafetyHandler(config: config, service: service)
    }
}

/// ai-azure-content-safety's configuration, typed once per configuration snapshot.
struct AIAzureContentSafetyConfig: Sendable {
    let analysis: ContentSafetyAnalysisOptions
    let textSource: ContentSafetyTextSource
    let revealFailureReason: Bool
    /// `guarding_mode` INPUT or BOTH.
    let guardsRequest: Bool
    /// `guarding_mode` OUTPUT or BOTH.
    let guardsResponse: Bool
    let stopOnError: Bool
    /// What the log's `ai.proxy.azure-content-safety` repeats of the configuration.
    let logged: [String: JSONValue]

    init?(config: JSONValue) {
        var categories: [ContentSafetyCategory] = []
        for entry in config["categories"]?.arrayValue ?? [] {
            guard let name = entry["name"]?.stringValue, let level = entry["rejection_level"]?.intValue else { return nil }
            categories.append(ContentSafetyCategory(name: name, rejectionLevel: level))
        }
        guard let textSource = ContentSafetyTextSource(rawValue: config["text_source"]?.stringValue ?? "concatenate_all_content")
        else { return nil }
        analysis = ContentSafetyAnalysisOptions(
            categories: categories,
            blocklistNames: config["blocklist_names"]?.arrayValue?.compactMap(\.stringValue),
            haltOnBlocklistHit: config["halt_on_blocklist_hit"]?.boolValue ?? true,
            outputType: config["output_type"]?.stringValue ?? "FourSeverityLevels")
        self.textSource = textSource
        revealFailureReason = config["reveal_failure_reason"]?.boolValue ?? true
        let mode = config["guarding_mode"]?.stringValue ?? "INPUT"
        guardsRequest = mode != "OUTPUT"
        guardsResponse = mode != "INPUT"
        stopOnError = config["stop_on_error"]?.boolValue ?? true
        var logged: [String: JSONValue] = [:]
        for (key, field) in [("azure_tenant_id", "azure_tenant_id"), ("azure_client_id", "azure_client_id"),
                             ("azure_api_version", "azure_api_version"), ("azure_content_safety_url", "content_safety_url")] {
            if let value = config[field], !value.isNull { logged[key] = value }
        }
        self.logged = logged
    }
}

/// ai-azure-content-safety (spec ai-plugins §6): screens the prompt with Azure AI Content Safety
/// before it reaches the LLM, and with `guarding_mode` OUTPUT or BOTH the LLM's answer before it
/// reaches the client.
final class AIAzureContentSafetyHandler: WithoutRewritePhase, @unchecked Sendable {
    let config: AIAzureContentSafetyConfig
    let service: ContentSafetyService

    init(config: AIAzureContentSafetyConfig, service: ContentSafetyService) {
        self.config = config
        self.service = service
    }

    /// Kong reads AI request bodies up to nginx's in-memory buffer (spec §0.2).
    static let maxRequestBodySize = 8192
    static let authenticationFailure = "failed to authenticate with Azure Content Services"

    // MARK: Request guard (§6.3-1 to -7)

    func access(_ context: ProxyRequestContext) async -> PluginVerdict {
        let state = ContentSafetyRequestState()
        context.shared[ContentSafetyRequestState.key] = state
        let body = await AIRequestBody.object(context, maxRequestBodySize: Self.maxRequestBodySize)
        if config.guardsRequest {
            guard let body else { return Self.reject("request is not in json format") }
            guard let messages = body["messages"]?.arrayValue, !messages.isEmpty else {
                return Self.reject("request [messages] array is empty or missing")
            }
            let text = ContentSafetyText.prompt(messages: messages, source: config.textSource)
            // `concatenate_user_content` with no user message: nothing to screen.
            if !text.isEmpty, let exit = await check(text, .request, state: state) { return .exit(exit) }
        }
        // Only a whole answer can be screened: a streamed one goes to the client unchecked
        // (docs/decisions.md). ai-proxy also turns buffering off when it streams.
        if config.guardsResponse, !LuaSemantics.truthy(body?["stream"]) {
            state.checksResponse = true
            context.buffersResponse = true
        }
        return .proceed
    }

    // MARK: Response guard (§6.3-8)

    var inspectsResponse: Bool { config.guardsResponse }

    func inspectResponse(_ context: ProxyRequestContext, status: Int, headers: HTTPHeaders,
                         body: ByteBuffer) async -> PluginExit? {
        guard let state = ContentSafetyRequestState.of(context), state.checksResponse,
              (200..<300).contains(status) else { return nil }
        var plain = body
        if LLMGzip.isEncoded(headers) {
            do {
                plain = try LLMGzip.inflate(body)
            } catch {
                // An answer that cannot be read cannot be screened: an error like Azure's own.
                ErrorLog.report("ai-azure-content-safety: the response's gzip body \(error)")
                return config.stopOnError ? .error(500) : nil
            }
        }
        guard let answer = try? JSONValue.parse(bytes: plain.readableBytesView) else { return nil }
        let text = ContentSafetyText.answer(answer)
        guard !text.isEmpty else { return nil }
        // An answer may be longer than Azure takes: checked piece by piece, the first breach wins.
        for piece in ContentSafetyText.pieces(text) {
            if let exit = await check(String(piece), .response, state: state) { return exit }
        }
        return nil
    }

    // MARK: The check

    /// Screens `text`; the exit to answer with, or nil to let the exchange go on.
    private func check(_ text: String, _ direction: ContentSafetyDirection,
                       state: ContentSafetyRequestState) async -> PluginExit? {
        let started = NIODeadline.now()
        let outcome: Result<ContentSafetyVerdict, ContentSafetyCallError>
        do throws(ContentSafetyCallError) {
            outcome = .success(try await service.analyze(text))
        } catch {
            outcome = .failure(error)
        }
        state.record(latency: (NIODeadline.now() - started).nanoseconds / 1_000_000, direction)
        switch outcome {
        case .success(let verdict):
            guard verdict.breached else { return nil }
            state.record(verdict, direction)
            return .aiError(400, direction.failureMessage(verdict, reveal: config.revealFailureReason))
        case .failure(let error):
            ErrorLog.report("ai-azure-content-safety: \(direction.rawValue) check: \(error)")
            // `stop_on_error: false`: the check is skipped, not failed (docs/decisions.md).
            guard config.stopOnError else { return nil }
            if case .authentication = error {
                return .aiError(500, Self.authenticationFailure)
            }
            return .error(500)
        }
    }

    private static func reject(_ message: String) -> PluginVerdict { .aiError(400, message) }

    // MARK: Audit log (§6.4)

    var logs: Bool { true }

    /// The log phase only when a check was made (it records latencies, reasons or levels).
    func needsLog(_ context: ProxyRequestContext) -> Bool {
        ContentSafetyRequestState.of(context)?.hasAudit ?? false
    }

    /// Written in the log phase, after ai-proxy has set `ai.proxy` (which it replaces whole): what
    /// is written under `proxy` here merges over ai-proxy's record.
    func log(_ context: ProxyRequestContext) {
        guard let state = ContentSafetyRequestState.of(context) else { return }
        context.updateAILog { ai in
            if !state.breachedCategories.isEmpty {
                var audit = ai["audit"]?.objectValue ?? [:]
                var levels = audit["azure_content_safety"]?.objectValue ?? [:]
                for category in state.breachedCategories {
                    levels[category.name] = .number(Double(category.rejectionLevel))
                }
                audit["azure_content_safety"] = .object(levels)
                ai["audit"] = .object(audit)
            }
            var proxy = ai["proxy"]?.objectValue ?? [:]
            proxy["azure-content-safety"] = .object(config.logged.merging(state.logged) { _, mine in mine })
            ai["proxy"] = .object(proxy)
        }
    }
}

/// What the plugin keeps about one request between its phases.
final class ContentSafetyRequestState: @unchecked Sendable {
    static let key = "ai-azure-content-safety"

    static func of(_ context: ProxyRequestContext) -> ContentSafetyRequestState? {
        context.shared[key] as? ContentSafetyRequestState
    }

    /// The answer is held for the response guard.
    var checksResponse = false
    /// Configured categories breached by the prompt or the answer.
    private(set) var breachedCategories: [ContentSafetyCategory] = []
    /// `input_/output_processing_latency` (ms) and `input_/output_block_reason`.
    private(set) var logged: [String: JSONValue] = [:]
    /// A check was made: there is something to log.
    var hasAudit: Bool { !logged.isEmpty || !breachedCategories.isEmpty }

    func record(latency milliseconds: Int64, _ direction: ContentSafetyDirection) {
        logged["\(Self.side(direction))_processing_latency"] = .number(Double(milliseconds))
    }

    /// The reasons are logged even when `reveal_failure_reason` hides them from the client.
    func record(_ verdict: ContentSafetyVerdict, _ direction: ContentSafetyDirection) {
        breachedCategories += verdict.breachedCategories
        logged["\(Self.side(direction))_block_reason"] = .string(verdict.reasons)
    }

    private static func side(_ direction: ContentSafetyDirection) -> String {
        direction == .request ? "input" : "output"
    }
}
