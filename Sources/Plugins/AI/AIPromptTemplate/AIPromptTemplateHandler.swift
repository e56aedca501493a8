import Core
import NIOCore

/// ai-prompt-template's configuration, typed and its templates parsed once per snapshot.
struct AIPromptTemplateConfig: Sendable {
    /// By name; the first of several with one name wins, as Kong's lookup walks the list in order.
    let templates: [String: PromptTemplate]
    let allowUntemplatedRequests: Bool
    let logOriginalRequest: Bool
    let maxRequestBodySize: Int

    /// Throws when a template does not parse: the schema refuses those, so only a configuration
    /// that skipped validation gets here.
    init(_ config: JSONValue) throws(AIPromptTemplateConfigError) {
        var templates: [String: PromptTemplate] = [:]
        for entry in config["templates"]?.arrayValue ?? [] {
            guard let name = entry["name"]?.stringValue, let text = entry["template"]?.stringValue,
                  templates[name] == nil else { continue }
            do {
                templates[name] = try PromptTemplate(text)
            } catch {
                throw AIPromptTemplateConfigError(template: name, reason: error)
            }
        }
        self.templates = templates
        allowUntemplatedRequests = config["allow_untemplated_requests"]?.boolValue ?? true
        logOriginalRequest = config["log_original_request"]?.boolValue ?? false
        maxRequestBodySize = config["max_request_body_size"]?.intValue ?? 8192
    }
}

struct AIPromptTemplateConfigError: Error, Sendable, CustomStringConvertible {
    let template: String
    let reason: PromptTemplateSyntaxError
    var description: String { "ai-prompt-template: template '\(template)': \(reason)" }
}

/// ai-prompt-template (spec §9): a request whose `messages` or `prompt` is `{template://<name>}`
/// has its body replaced by that template rendered with the request's `properties`, verbatim.
/// Runs before the decorator and the guard (773), which then parse the rendered body.
struct AIPromptTemplateHandler: WithoutRewritePhase {
    let config: AIPromptTemplateConfig

    func access(_ context: ProxyRequestContext) async -> PluginVerdict {
        let raw = await AIRequestBody.raw(context, maxRequestBodySize: config.maxRequestBodySize)
        if config.logOriginalRequest, let raw { Self.logOriginalRequest(raw, in: context) }

        // Kong parses as JSON whatever the Content-Type says.
        guard let raw, case .object(let body)? = try? JSONValue.parse(bytes: raw.readableBytesView) else {
            return Self.reject("this LLM route only supports application/json requests")
        }
        // Lua truthiness: `false` counts as absent, `null` (cjson's sentinel) as present.
        let messages = LuaSemantics.truthy(body["messages"]) ? body["messages"] : nil
        let prompt = LuaSemantics.truthy(body["prompt"]) ? body["prompt"] : nil
        if messages != nil && prompt != nil {
            return Self.reject("cannot run 'messages' and 'prompt' templates at the same time")
        }
        guard let reference = messages ?? prompt else {
            return Self.reject("only 'llm/v1/chat' and 'llm/v1/completions' formats are supported for templating")
        }
        guard let name = Self.templateName(reference) else {
            return config.allowUntemplatedRequests ? .proceed : Self.reject("this LLM route only supports templated requests")
        }
        guard let template = config.templates[name] else {
            return Self.reject("could not find template name [\(name)]")
        }
        do {
            let rendered = try template.render(properties: LuaSemantics.or(body["properties"], .object([:])))
            context.setRequestBody(ByteBuffer(bytes: rendered))
            return .proceed
        } catch {
            return Self.reject(error.message)
        }
    }

    /// The name in a `{template://<name>}` reference; nil when `reference` is not one. Compared
    /// byte by byte, as Kong's `sub` does (no Unicode normalisation).
    static func templateName(_ reference: JSONValue) -> String? {
        guard case .string(let text) = reference else { return nil }
        let bytes = text.utf8
        let prefix = "{template://".utf8
        guard bytes.starts(with: prefix), bytes.last == UInt8(ascii: "}") else { return nil }
        return String(decoding: bytes.dropFirst(prefix.count).dropLast(), as: UTF8.self)
    }

    /// Kong's `set_serialize_value("ai.payload.original_request", raw)`, next to what other AI
    /// plugins log under `ai`.
    private static func logOriginalRequest(_ raw: ByteBuffer, in context: ProxyRequestContext) {
        context.updateAILog { ai in
            var payload = ai["payload"]?.objectValue ?? [:]
            payload["original_request"] = .string(String(buffer: raw))
            ai["payload"] = .object(payload)
        }
    }

    private static func reject(_ message: String) -> PluginVerdict { .aiError(400, message) }
}
