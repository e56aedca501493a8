import Core

extension PluginExit {
    /// The AI plugins' rejection (spec §0.3): `{"error":{"message":"<text>"}}` as JSON.
    static func aiError(_ status: Int, _ message: String) -> PluginExit {
        PluginExit(status: status, body: .json(["error": ["message": .string(message)]]))
    }
}

extension PluginVerdict {
    /// Answers with `PluginExit.aiError`.
    static func aiError(_ status: Int, _ message: String) -> PluginVerdict { .exit(.aiError(status, message)) }
}

extension ProxyRequestContext {
    /// Changes the request's `ai` log object (Kong's `ai.*` serialize values), keeping what the
    /// other AI plugins put there. `ai.proxy` as ai-proxy records it is a typed member, not in
    /// the object `change` sees: what `change` writes under `proxy` merges over it.
    func updateAILog(_ change: (inout [String: JSONValue]) -> Void) {
        forgetReplacedLogMembers("ai")
        var ai = logRecord["ai"]?.objectValue ?? [:]
        change(&ai)
        logRecord["ai"] = .object(ai)
    }
}

extension LLMModelOptions {
    /// Cost in the configured currency of `prompt` and `completion` tokens: per-million prices
    /// `input_cost` / `output_cost`; nil unless both are configured.
    func cost(prompt: Int, completion: Int) -> Double? {
        guard let input = inputCost, let output = outputCost else { return nil }
        return (Double(prompt) * input + Double(completion) * output) / 1_000_000
    }
}
