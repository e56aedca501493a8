import Core

/// ai-proxy's `ai.proxy` log object (spec §2.11): `meta`, `usage` and, with `log_payloads`,
/// `payload`. Kept typed and written straight into the log line: built as dictionaries, it cost
/// about as much on the request's loop as writing it (sorting each object's keys) cost on the
/// log thread.
struct AIProxyAnalytics: TypedLogValue {
    struct Azure {
        var instanceID: String?
        var deploymentID: String?
        var apiVersion: String?
    }

    struct Payload {
        var request: String?
        var response: String?
    }

    var pluginID: String
    var providerName: String
    var requestModel: String
    var responseModel: String
    var latency: Int64
    /// Only for the azure provider (its `meta` names the deployment).
    var azure: Azure?
    var usage: LLMUsage
    var cost: Double
    /// Only with `log_payloads`.
    var payload: Payload?

    /// Milliseconds per completion token (0 without completion tokens), as Kong divides.
    var timePerToken: Double {
        usage.completionTokens > 0 ? Double(latency) / Double(usage.completionTokens) : 0
    }

    var jsonValue: JSONValue {
        var meta: [String: JSONValue] = [
            "plugin_id": .string(pluginID),
            "provider_name": .string(providerName),
            "request_model": .string(requestModel),
            "response_model": .string(responseModel),
            "llm_latency": .number(Double(latency)),
        ]
        if let azure {
            meta["azure_instance_id"] = azure.instanceID.map(JSONValue.string) ?? .null
            meta["azure_deployment_id"] = azure.deploymentID.map(JSONValue.string) ?? .null
            meta["azure_api_version"] = azure.apiVersion.map(JSONValue.string) ?? .null
        }
        var proxy: [String: JSONValue] = [
            "meta": .object(meta),
            "usage": .object([
                "prompt_tokens": .number(Double(usage.promptTokens)),
                "completion_tokens": .number(Double(usage.completionTokens)),
                "total_tokens": .number(Double(usage.totalTokens)),
                "time_per_token": .number(timePerToken),
                "cost": .number(cost),
            ]),
        ]
        if let payload {
            proxy["payload"] = .object([
                "request": payload.request.map(JSONValue.string) ?? .null,
                "response": payload.response.map(JSONValue.string) ?? .null,
            ])
        }
        return .object(proxy)
    }

    /// Members in the byte order of their names, as `jsonValue` is written.
    func write(to json: inout KongJSONWriter) {
        json.open()
        json.member("meta")
        json.open()
        if let azure {
            json.member("azure_api_version"); json.string(orNull: azure.apiVersion)
            json.member("azure_deployment_id"); json.string(orNull: azure.deploymentID)
            json.member("azure_instance_id"); json.string(orNull: azure.instanceID)
        }
        json.member("llm_latency"); json.integer(latency)
        json.member("plugin_id"); json.string(pluginID)
        json.member("provider_name"); json.string(providerName)
        json.member("request_model"); json.string(requestModel)
        json.member("response_model"); json.string(responseModel)
        json.close()
        if let payload {
            json.member("payload")
            json.open()
            json.member("request"); json.string(orNull: payload.request)
            json.member("response"); json.string(orNull: payload.response)
            json.close()
        }
        json.member("usage")
        json.open()
        json.member("completion_tokens"); json.integer(Int64(usage.completionTokens))
        json.member("cost"); json.number(cost)
        json.member("prompt_tokens"); json.integer(Int64(usage.promptTokens))
        json.member("time_per_token"); json.number(timePerToken)
        json.member("total_tokens"); json.integer(Int64(usage.totalTokens))
        json.close()
        json.close()
    }
}
