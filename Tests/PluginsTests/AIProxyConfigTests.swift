@testable import Core
@testable import Plugins
import Testing

/// Which ai-proxy configurations skim the client's body (`AIProxyConfig.readMembers`): only a
/// chat route whose provider gets the client's own OpenAI object, with no model template and no
/// native input format. Every other one needs the whole body.
struct AIProxyConfigTests {
    static func config(_ routeType: String, _ model: JSONValue, llmFormat: String = "openai") throws -> AIProxyConfig {
        let row: JSONValue = ["id": "p", "name": "ai-proxy",
                              "config": ["route_type": .string(routeType), "model": model, "llm_format": .string(llmFormat)]]
        let instance = try #require(PluginInstance(row))
        return try #require(AIProxyConfig(instance: instance, environment: [:]))
    }

    @Test func onlyChatForAnOpenAIFormatProviderIsSkimmed() throws {
        let skimmed: [JSONValue] = [
            ["provider": "openai", "name": "gpt-4o"],
            ["provider": "azure", "name": "gpt-4o", "options": ["azure_instance": "i", "azure_deployment_id": "d"]],
            ["provider": "mistral", "name": "m", "options": ["mistral_format": "openai", "upstream_url": "http://m/v1"]],
            ["provider": "llama2", "name": "l", "options": ["llama2_format": "openai", "upstream_url": "http://l/v1"]],
        ]
        for model in skimmed {
            #expect(try Self.config("llm/v1/chat", model).readMembers == ["model", "stream", "stream_options", "prompt"], "\(model)")
        }
        let whole: [(String, JSONValue, String)] = [
            ("llm/v1/completions", ["provider": "openai", "name": "gpt-4o"], "openai"),
            ("llm/v1/embeddings", ["provider": "openai", "name": "text-embedding-3-small"], "openai"),
            ("preserve", ["provider": "openai", "name": "gpt-4o"], "openai"),
            ("llm/v1/chat", ["provider": "openai", "name": "$(headers.x-model)"], "openai"),
            ("llm/v1/chat", ["provider": "anthropic", "name": "claude"], "openai"),
            ("llm/v1/chat", ["provider": "cohere", "name": "command"], "openai"),
            ("llm/v1/chat", ["provider": "mistral", "name": "m", "options": ["mistral_format": "ollama", "upstream_url": "http://m"]], "openai"),
            ("llm/v1/chat", ["provider": "gemini", "name": "gemini-1.5-flash"], "gemini"),
        ]
        for (route, model, format) in whole {
            #expect(try Self.config(route, model, llmFormat: format).readMembers == nil, "\(route) \(model) \(format)")
        }
    }
}
