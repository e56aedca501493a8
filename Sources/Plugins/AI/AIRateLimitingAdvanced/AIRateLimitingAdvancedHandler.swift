import Core
import Foundation
import NIOHTTP1

extension AIRateLimitingAdvancedPlugin {
    /// The handler of one configured instance. Strategies and providers this build cannot run yet
    /// refuse the configuration (it is not loaded) instead of counting wrongly.
    ///
    /// `counterDatabase` holds the `cluster` strategy's counters: DB mode's database (DB-less
    /// nodes refuse the strategy when they validate the configuration).
    static func makeHandler(_ instance: PluginInstance, environment: [String: String],
                            counterDatabase: (any SharedCounterStore)?) throws -> any PluginHandler {
        if let reason = AIRateLimitConfig.unsupported(instance.config) {
            throw AIRateLimitUnsupported(description: reason)
        }
        guard let config = AIRateLimitConfig(instance: instance, environment: environment) else {
            throw PluginConfigurationError(plugin: definition.name)
        }
        let counters: any TokenCounterStore
        switch config.strategy {
        case .local:
            counters = TokenWindowCounters.shared
        case .redis(let settings):
            counters = RedisCounterStore.counters(settings)
        case .cluster(let syncRate):
            guard let counterDatabase else { throw AIRateLimitUnsupported(description: clusterUnsupportedMessage) }
            counters = SharedTokenCounters.shared(.database(ObjectIdentifier(counterDatabase), syncRate: syncRate)) {
                SharedTokenCounters(store: counterDatabase, storeName: "the database", syncRate: syncRate)
            }
        }
        return AIRateLimitingAdvancedHandler(config: config, counters: counters)
    }
}

struct AIRateLimitUnsupported: Error, CustomStringConvertible {
    let description: String
}

/// ai-rate-limiting-advanced (spec §5), `local` strategy: before the LLM call, every
/// (provider, window) rate is checked and the request denied when one is over its limit; after
/// the answer, the tokens (or cost) each AI plugin reported for a provider are added to that
/// provider's counters — in the header filter when known (whole answers), else in the log phase
/// (streams). The request that crosses a limit succeeds; the next one is refused.
struct AIRateLimitingAdvancedHandler: WithoutRewritePhase {
    let config: AIRateLimitConfig
    let counters: any TokenCounterStore

    /// What the later phases need about one request.
    final class RequestState: @unchecked Sendable {
        static let key = "ai-rate-limiting-advanced"
        let identifier: String
        /// The `X-AI-RateLimit-*` headers computed in access (none when hidden).
        let headers: [(String, String)]
        /// Ledger entries already added to the counters.
        var accounted = 0

        init(identifier: String, headers: [(String, String)]) {
            self.identifier = identifier
            self.headers = headers
        }
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    // MARK: Access: the decision (§5.3)

    func access(_ context: ProxyRequestContext) async -> PluginVerdict {
        // The requestPrompt provider's cost is this request's, known before the decision.
        var promptCost = 0.0
        if let function = config.requestPrompt {
            switch await Self.requestPromptCost(function, context) {
            case .cost(let cost): promptCost = cost
            case .refused(let exit): return .exit(exit)
            }
        }
        let identifier = identifierValue(context)
        let now = Self.now()
        var headers: [(String, String)] = []
        var denyingProviders: [String] = []
        var resetMax = 0
        var perWindowReset: [(String, String)] = []
        for provider in config.providers {
            var denies = false
            for window in provider.windows {
                let key = TokenCounterKey(namespace: provider.namespace, identifier: identifier, windowSize: window.size)
                var reading = await counters.reading(key, now: now, sliding: config.sliding)
                if provider.isRequestPrompt {
                    // §5.4: for requestPrompt the rate, and Remaining, include this request.
                    reading = TokenWindowCounters.Reading(rate: reading.rate + promptCost, windowStart: reading.windowStart)
                }
                if !config.hideClientHeaders {
                    headers.append((window.limitHeader, window.limitText))
                    headers.append((window.remainingHeader, remaining(window.limit - reading.rate)))
                    if provider.isRequestPrompt { headers.append((window.queryCostHeader, Self.headerNumber(promptCost))) }
                }
                // Equal to the limit still passes.
                guard reading.rate > window.limit else { continue }
                denies = true
                let reset = self.reset(window: window, reading: reading, now: now)
                resetMax = max(resetMax, reset)
                if !config.hideClientHeaders {
                    let suffix = "\(window.label)-\(provider.name)"
                    perWindowReset.append(("X-AI-RateLimit-Reset-\(suffix)", String(reset)))
                    perWindowReset.append(("X-AI-RateLimit-Retry-After-\(suffix)", String(withJitter(reset))))
                }
            }
            if denies { denyingProviders.append(provider.name) }
        }
        // Charged at once, denied or not, unless `disable_penalty` spares denied requests (it
        // applies to sliding windows only, as in Kong).
        if promptCost != 0, denyingProviders.isEmpty || !(config.disablePenalty && config.sliding) {
            for provider in config.providers where provider.isRequestPrompt {
                for window in provider.windows {
                    counters.add(promptCost, to: TokenCounterKey(namespace: provider.namespace, identifier: identifier,
                                                                 windowSize: window.size), now: now)
                }
            }
        }
        guard denyingProviders.isEmpty else {
            var message = config.errorMessage
            if !config.errorHideProviders { message += denyingProviders.joined(separator: ", ") }
            let denial = headers + perWindowReset + [
                ("X-AI-RateLimit-Reset", String(resetMax)),
                ("X-AI-RateLimit-Retry-After", String(withJitter(resetMax))),
            ]
            // §5.3: the LLM call that was not made is logged with zero tokens.
            if !context.hasLogMember("ai", "proxy") {
                context.updateAILog { ai in
                    if ai["proxy"] == nil { ai["proxy"] = Self.deniedCallAnalytics }
                }
            }
            return .exit(PluginExit(status: config.errorCode, headers: denial, body: .json(["message": .string(message)])))
        }
        context.shared[RequestState.key] = RequestState(identifier: identifier, headers: headers)
        // The AI plugins that run next report their usage to the ledger.
        AIUsageLedger.open(context)
        return .proceed
    }

    static let deniedCallAnalytics: JSONValue = ["usage": [
        "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "time_per_token": 0, "cost": 0,
    ]]

    /// §5.3: runs `request_prompt_count_function` on this request; Kong's 500 when it fails or
    /// returns anything but a (finite) number.
    private static func requestPromptCost(_ function: RequestPromptFunction,
                                          _ context: ProxyRequestContext) async -> RequestPromptOutcome {
        let body = await AIRequestBody.raw(context, maxRequestBodySize: requestPromptBodyLimit)
        let request = RequestPromptFunction.Request(
            method: context.method.rawValue, path: String(context.rawPath), rawQuery: context.rawQuery.map(String.init) ?? "",
            headers: context.headers.map { ($0.name.lowercased(), $0.value) },
            query: context.queryArguments.map { ($0.name, $0.value ?? "") },
            body: body.map { Array($0.readableBytesView) }, facts: context.pdkFacts)
        let failure: String
        switch await function.costOffTheEventLoops(of: request) {
        case .success(let cost) where cost.isFinite:
            return .cost(cost)
        case .success(let cost):
            ErrorLog.report("[ai-rate-limiting-advanced] Bad return value from function, expected a finite number, got \(cost)")
            failure = "Bad return value from the request prompt count function"
        case .failure(.badReturn(let type)):
            ErrorLog.report("[ai-rate-limiting-advanced] Bad return value from function, expected number type, got \(type)")
            failure = "Bad return value from the request prompt count function"
        case .failure(.runtime(let message)), .failure(.limit(let message)):
            ErrorLog.report("[ai-rate-limiting-advanced] error executing request prompt count function: \(message)")
            failure = "Error executing request prompt count function"
        }
        return .refused(PluginExit(status: 500, body: .json(["message": .string(failure)])))
    }

    enum RequestPromptOutcome {
        case cost(Double)
        case refused(PluginExit)
    }

    /// The largest body `kong.request.get_raw_body()` hands the function; a larger one reads as none.
    static let requestPromptBodyLimit = 1 << 20

    /// §5.3: the identifier's value; a missing one falls back to the client's forwarded address
    /// (Kong's `kong.client.get_forwarded_ip()`).
    private func identifierValue(_ context: ProxyRequestContext) -> String {
        let value: String?
        switch config.identifier {
        case .consumer: value = context.consumer?.id ?? context.credentialID
        case .credential: value = context.credentialID
        case .ip: value = nil
        case .service: value = context.match?.service?.id
        case .header: value = config.headerName.flatMap { context.header($0) }
        case .path: value = config.path.flatMap { $0 == context.match?.path ? $0 : nil }
        case .consumerGroup: value = context.consumer == nil ? nil : config.consumerGroupID
        }
        return value ?? context.forwardedClientAddress
    }

    /// `max(limit − rate, 0)`, an integer except for the `cost` strategy.
    private func remaining(_ left: Double) -> String {
        let left = max(left, 0)
        if config.tokensCount != .cost, left < 9e15 { return String(Int(left)) }  // the common case, no formatter
        return Self.headerNumber(config.tokensCount == .cost ? left : left.rounded(.down))
    }

    /// A number as Lua's `tostring` writes it into a header (`%.14g`): `0.00015`, not the
    /// binary fraction's 17 digits.
    static func headerNumber(_ value: Double) -> String { String(format: "%.14g", value) }

    /// §5.4: seconds until the window lets the identifier through again.
    private func reset(window: AIRateLimitConfig.Window, reading: TokenWindowCounters.Reading, now: Double) -> Int {
        let size = Double(window.size)
        var reset = max(1, size - (now - reading.windowStart))
        if config.sliding {
            let over = reading.rate + window.limit > 0 ? (reading.rate - window.limit) / (reading.rate + window.limit) : 0
            reset += max(0, over * size)
        }
        return Int(reset.rounded(.up))
    }

    private func withJitter(_ reset: Int) -> Int {
        config.retryAfterJitterMax > 0 ? reset + Int.random(in: 1...config.retryAfterJitterMax) : reset
    }

    // MARK: Response: headers and accounting

    func headerFilter(_ context: ProxyRequestContext, status: Int, headers: inout HTTPHeaders) {
        guard let state = context.shared[RequestState.key] as? RequestState else { return }
        for (name, value) in state.headers { headers.add(name: name, value: value) }
        account(context, state)
    }

    var logs: Bool { true }

    /// Only usage reported after the headers went out (a stream's) is left for the log phase.
    func needsLog(_ context: ProxyRequestContext) -> Bool {
        guard let state = context.shared[RequestState.key] as? RequestState,
              let ledger = AIUsageLedger.of(context) else { return false }
        return ledger.entries.count > state.accounted
    }

    /// Streams report their usage only once the last event went by.
    func log(_ context: ProxyRequestContext) {
        guard let state = context.shared[RequestState.key] as? RequestState else { return }
        account(context, state)
    }

    /// Adds the usage reported since the last call to each named provider's counters.
    private func account(_ context: ProxyRequestContext, _ state: RequestState) {
        guard let ledger = AIUsageLedger.of(context), ledger.entries.count > state.accounted else { return }
        let fresh = ledger.entries[state.accounted...]
        state.accounted = ledger.entries.count
        let now = Self.now()
        for provider in config.providers {
            let spent = fresh.filter { $0.provider.rawValue == provider.name }.reduce(0) { $0 + config.cost(of: $1) }
            guard spent > 0 else { continue }
            for window in provider.windows {
                counters.add(spent, to: TokenCounterKey(namespace: provider.namespace, identifier: state.identifier,
                                                        windowSize: window.size), now: now)
            }
        }
    }
}
