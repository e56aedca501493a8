import Core

/// Provider authentication from an `llm` record's `auth` (spec §2.5), shared by ai-proxy and the
/// transformers. Secrets are resolved once per configuration snapshot.
struct LLMAuth: Sendable {
    struct Pair: Sendable { let name: String; let value: String }

    let header: Pair?
    let queryParameter: Pair?
    let bodyParameter: Pair?
    let allowOverride: Bool

    /// `environment` resolves `{vault://env/...}` references; one that does not resolve leaves
    /// its pair unset (reported on the error output, without the secret).
    init(json: JSONValue, environment: [String: String]) {
        func secret(_ field: String) -> String? {
            guard let value = json[field]?.stringValue else { return nil }
            guard let resolved = VaultReference.resolve(value, environment: environment) else {
                ErrorLog.report("llm auth: could not resolve the vault reference in auth.\(field)")
                return nil
            }
            return resolved
        }
        if let name = secret("header_name"), let value = secret("header_value") {
            header = Pair(name: name, value: value)
        } else {
            header = nil
        }
        var query: Pair?, body: Pair?
        if let name = secret("param_name"), let value = secret("param_value") {
            switch json["param_location"]?.stringValue {
            case "query": query = Pair(name: name, value: value)
            case "body": body = Pair(name: name, value: value)
            default: break
            }
        }
        queryParameter = query
        bodyParameter = body
        allowOverride = json["allow_override"]?.boolValue ?? false
    }

    /// Header and query auth on the request: the configured value, unless the client sent its own
    /// and `allow_override` lets it win. Gemini and Hugging Face always apply the configured
    /// header; Hugging Face takes no query auth; Bedrock takes neither (it is signed).
    func apply(to context: ProxyRequestContext, provider: LLMProvider) {
        let override = allowOverride && provider != .gemini && provider != .huggingface
        if let header, provider.sendsConfiguredAuth, !(override && context.headers.contains(name: header.name)) {
            context.headers.replaceOrAdd(name: header.name, value: header.value)
        }
        if let parameter = queryParameter, provider.sendsConfiguredAuth, provider != .huggingface,
           !(override && context.hasQueryArgument(parameter.name)) {
            context.setQueryArgument(parameter.name, parameter.value)
        }
        // Whoever set them, these values are keys: the logs never show them.
        if let header { context.logRedactions.redactHeader(header.name) }
        if let parameter = queryParameter { context.logRedactions.redactQueryArgument(parameter.name) }
    }
}
