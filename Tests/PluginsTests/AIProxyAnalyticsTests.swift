import Core
import Testing
@testable import Plugins

/// ai-proxy's typed `ai.proxy` record writes itself into the log line: the bytes must be what its
/// value form gives through the Kong JSON writer, for every shape it takes.
struct AIProxyAnalyticsTests {
    static let base = AIProxyAnalytics(
        pluginID: "6a1f-proxy", providerName: "openai", requestModel: "gpt-4o-mini", responseModel: "gpt-4o-mini-2024",
        latency: 37, azure: nil, usage: LLMUsage(promptTokens: 11, completionTokens: 7), cost: 0.0000123, payload: nil)

    static var variants: [(String, AIProxyAnalytics)] {
        var azure = base
        azure.providerName = "azure"
        azure.azure = .init(instanceID: "inst", deploymentID: nil, apiVersion: "2024-02-01")
        var payloads = base
        payloads.payload = .init(request: #"{"messages":[{"content":"a/b \"q\"\n"}]}"#, response: nil)
        var noCompletion = base
        noCompletion.usage = LLMUsage(promptTokens: 5, completionTokens: 0)
        noCompletion.cost = 0
        var awkward = base
        awkward.requestModel = "models/gemini-1.5 ünïcode \u{1}"
        awkward.responseModel = "UNSPECIFIED"
        awkward.latency = 1_000_001
        awkward.usage = LLMUsage(promptTokens: 3, completionTokens: 3)
        var everything = azure
        everything.payload = .init(request: nil, response: "{}")
        return [("plain", base), ("azure", azure), ("payloads", payloads), ("no completion", noCompletion),
                ("escapes and a fractional time per token", awkward), ("azure with payloads", everything)]
    }

    @Test func theWrittenRecordIsItsValueFormEncodedTheKongWay() {
        for (name, analytics) in Self.variants {
            var json = KongJSONWriter()
            analytics.write(to: &json)
            let expected = analytics.jsonValue.serializedBytes(.kong)
            #expect(String(decoding: json.out, as: UTF8.self) == String(decoding: expected, as: UTF8.self), "\(name)")
        }
    }

    @Test func theValueFormHasKongsMembers() {
        let value = Self.base.jsonValue
        #expect(value["meta"]?["plugin_id"] == "6a1f-proxy")
        #expect(value["meta"]?["llm_latency"] == 37)
        #expect(value["meta"]?["azure_instance_id"] == nil, "azure members only for the azure provider")
        #expect(value["usage"]?["total_tokens"] == 18)
        #expect(value["usage"]?["time_per_token"] == .number(37.0 / 7.0))
        #expect(value["payload"] == nil, "payloads only with log_payloads")
        #expect(Self.variants[1].1.jsonValue["meta"]?["azure_deployment_id"] == .null)
    }
}
