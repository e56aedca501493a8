import Core
import NIOCore

/// ai-rate-limiting-advanced's configuration, typed once per configuration snapshot (spec §5.2).
struct AIRateLimitConfig: Sendable {
    struct Window: Sendable, Equatable {
        let limit: Double
        let size: Int
        /// `second`, `minute`, …, or the size in seconds (§5.4).
        let label: String
        /// `X-AI-RateLimit-Limit-<w>-<p>` and its value, and the Remaining header's name: made
        /// once per snapshot, not per request.
        let limitHeader: String
        let limitText: String
        let remainingHeader: String
        /// `X-AI-RateLimit-Query-Cost-<w>-requestPrompt` (the requestPrompt provider's windows).
        let queryCostHeader: String

        init(limit: Double, size: Int, provider: String) {
            self.limit = limit
            self.size = size
            label = AIRateLimitConfig.label(size)
            limitHeader = "X-AI-RateLimit-Limit-\(label)-\(provider)"
            limitText = AIRateLimitingAdvancedHandler.headerNumber(limit)
            remainingHeader = "X-AI-RateLimit-Remaining-\(label)-\(provider)"
            queryCostHeader = "X-AI-RateLimit-Query-Cost-\(label)-\(provider)"
        }
    }

    struct Provider: Sendable {
        /// As configured (case kept in header names).
        let name: String
        let windows: [Window]
        /// The counters' namespace (Kong's RLA namespace per provider entry and instance).
        let namespace: String
        /// Charged by `request_prompt_count_function` before the call, not by LLM usage after it.
        var isRequestPrompt: Bool { name == "requestPrompt" }
    }

    enum Identifier: String, Sendable {
        case consumer, credential, ip, service, header, path
        case consumerGroup = "consumer-group"
    }

    enum TokensCount: String, Sendable {
        case total = "total_tokens", prompt = "prompt_tokens", completion = "completion_tokens", cost
    }

    let pluginID: String
    /// The consumer group the instance is scoped to (the `consumer-group` identifier's value).
    let consumerGroupID: String?
    let providers: [Provider]
    let identifier: Identifier
    let headerName: String?
    let path: String?
    let sliding: Bool
    let hideClientHeaders: Bool
    let retryAfterJitterMax: Int
    let errorCode: Int
    let errorMessage: String
    let errorHideProviders: Bool
    let tokensCount: TokensCount
    /// The requestPrompt provider's cost function.
    let requestPrompt: RequestPromptFunction?
    /// Requests this instance denies are not charged to the requestPrompt counters.
    let disablePenalty: Bool
    /// Where the counters live (`sync_rate` -1 counts in the process whatever the strategy).
    enum Strategy: Sendable, Equatable {
        case local
        case redis(RedisCounterStore.Settings)
        /// In the configuration database.
        case cluster(syncRate: Double)
    }
    let strategy: Strategy

    /// Why this build cannot run a validated configuration (yet); nil when it can.
    static func unsupported(_ config: JSONValue) -> String? {
        // Kong's schema only asks `gt 0`; a denial must still be an HTTP status.
        if let code = config["error_code"]?.numberValue, !(100...599).contains(code) || code.rounded() != code {
            return "error_code must be an HTTP status code (100-599), got \(JSONValue.formatNumber(code))"
        }
        switch config["strategy"]?.stringValue ?? "local" {
        case "local": break
        case "redis":
            let redis = config["redis"] ?? .null
            if !redis["sentinel_nodes"].isNullOrAbsent || !redis["sentinel_master"].isNullOrAbsent {
                if redis["sentinel_master"].isNullOrAbsent { return "redis.sentinel_master is required with redis.sentinel_nodes" }
                if redis["sentinel_nodes"].isNullOrAbsent { return "redis.sentinel_nodes is required with redis.sentinel_master" }
                // Counters are written: only the master can take them.
                if redis["sentinel_role"]?.stringValue == "slave" {
                    return "redis.sentinel_role 'slave' cannot hold rate-limiting counters (they are written); use 'master' or 'any'"
                }
            }
            if !redis["cluster_nodes"].isNullOrAbsent { return "Redis Cluster (redis.cluster_nodes) is not supported by this build yet" }
        default:
            break
        }
        return nil
    }

    init?(instance: PluginInstance, environment: [String: String]) {
        let config = instance.config
        guard let identifier = Identifier(rawValue: config["identifier"]?.stringValue ?? "consumer"),
              let tokensCount = TokensCount(rawValue: config["tokens_count_strategy"]?.stringValue ?? "total_tokens")
        else { return nil }
        var providers: [Provider] = []
        for entry in config["llm_providers"]?.arrayValue ?? [] {
            guard let name = entry["name"]?.stringValue, let limits = entry["limit"]?.arrayValue,
                  let sizes = entry["window_size"]?.arrayValue, limits.count == sizes.count else { return nil }
            let windows = zip(limits, sizes).compactMap { limit, size -> Window? in
                guard let limit = limit.numberValue, let size = size.numberValue else { return nil }
                return Window(limit: limit, size: Int(Self.clamp(size, 1, Self.maxWindow)), provider: name)
            }
            providers.append(Provider(name: name, windows: windows, namespace: "\(instance.id)|\(name)"))
        }
        pluginID = instance.id
        consumerGroupID = instance.consumerGroupID
        self.providers = providers
        self.identifier = identifier
        headerName = config["header_name"]?.stringValue
        path = config["path"]?.stringValue
        sliding = (config["window_type"]?.stringValue ?? "sliding") == "sliding"
        hideClientHeaders = config["hide_client_headers"]?.boolValue ?? false
        retryAfterJitterMax = Int(Self.clamp(config["retry_after_jitter_max"]?.numberValue ?? 0, 0, Self.maxWindow))
        errorCode = Int(Self.clamp(config["error_code"]?.numberValue ?? 429, 0, 1000))
        errorMessage = config["error_message"]?.stringValue ?? "AI token rate limit exceeded for provider(s): "
        errorHideProviders = config["error_hide_providers"]?.boolValue ?? false
        self.tokensCount = tokensCount
        requestPrompt = providers.contains(where: \.isRequestPrompt)
            ? config["request_prompt_count_function"]?.stringValue.map { RequestPromptFunction(source: $0) } : nil
        disablePenalty = config["disable_penalty"]?.boolValue ?? false
        let syncRate = config["sync_rate"]?.numberValue ?? -1
        if config["strategy"]?.stringValue == "cluster", syncRate >= 0 {
            strategy = .cluster(syncRate: syncRate)
        } else if config["strategy"]?.stringValue == "redis", syncRate >= 0 {
            let record = config["redis"] ?? .null
            func secret(_ name: String) -> String? {
                record[name]?.stringValue.flatMap { VaultReference.resolve($0, environment: environment) }
            }
            func milliseconds(_ name: String) -> TimeAmount {
                .milliseconds(Int64(Self.clamp(record[name]?.numberValue ?? 2000, 1, 2_147_483_646)))
            }
            var pool = RedisConnectionPool.Configuration()
            pool.host = record["host"]?.stringValue ?? "127.0.0.1"
            pool.port = record["port"]?.intValue ?? 6379
            pool.database = record["database"]?.intValue ?? 0
            pool.username = secret("username")
            pool.password = secret("password")
            pool.connectTimeout = milliseconds("connect_timeout")
            pool.readTimeout = milliseconds("read_timeout")
            // Pipelined connections: a few carry any load; Kong's pool size counts idle sockets.
            pool.size = min(4, max(1, record["keepalive_pool_size"]?.intValue ?? 4))
            if let master = record["sentinel_master"]?.stringValue, let nodes = record["sentinel_nodes"]?.arrayValue {
                pool.sentinel = RedisConnectionPool.Sentinel(
                    master: master,
                    nodes: nodes.map { .init(host: $0["host"]?.stringValue ?? "127.0.0.1", port: $0["port"]?.intValue ?? 6379) },
                    username: secret("sentinel_username"), password: secret("sentinel_password"))
            }
            if record["ssl"]?.boolValue == true {
                pool.tls = RedisConnectionPool.TLS(verify: record["ssl_verify"]?.boolValue ?? false,
                                                   serverName: record["server_name"]?.stringValue)
            }
            strategy = .redis(RedisCounterStore.Settings(redis: pool, syncRate: syncRate))
        } else {
            strategy = .local
        }
    }

    /// §5.4's window labels.
    static func label(_ size: Int) -> String {
        switch size {
        case 1: return "second"
        case 60: return "minute"
        case 3600: return "hour"
        case 86400: return "day"
        case 2_592_000: return "month"
        case 31_536_000: return "year"
        default: return String(size)
        }
    }

    /// Ten years: longer windows or jitters behave the same and keep the time arithmetic in range.
    static let maxWindow: Double = 315_360_000

    static func clamp(_ value: Double, _ low: Double, _ high: Double) -> Double {
        value.isNaN ? low : min(max(value, low), high).rounded(.down)
    }

    /// What a ledger entry costs against this configuration.
    func cost(of entry: AIUsageLedger.Entry) -> Double {
        switch tokensCount {
        case .total: return Double(entry.usage.totalTokens)
        case .prompt: return Double(entry.usage.promptTokens)
        case .completion: return Double(entry.usage.completionTokens)
        case .cost: return entry.cost
        }
    }
}
