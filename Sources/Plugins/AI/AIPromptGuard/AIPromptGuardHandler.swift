import Core

/// ai-prompt-guard's configuration, typed and its patterns compiled once per snapshot.
struct AIPromptGuardConfig: Sendable {
    let rules: PromptGuard
    let maxRequestBodySize: Int

    init(_ config: JSONValue) {
        func patterns(_ name: String) -> [GuardPattern] {
            (config[name]?.arrayValue ?? []).compactMap(\.stringValue).map(GuardPattern.init)
        }
        rules = PromptGuard(allow: patterns("allow_patterns"), deny: patterns("deny_patterns"),
                            onlyLatest: config["allow_all_conversation_history"]?.boolValue ?? false,
                            matchAllRoles: config["match_all_roles"]?.boolValue ?? false,
                            format: LLMNativeFormat(llmFormat: config["llm_format"]?.stringValue))
        maxRequestBodySize = config["max_request_body_size"]?.intValue ?? 8192
    }
}

/// A configured pattern, compiled; or why it does not compile, which Kong only finds out (and
/// answers 500 for) when a request reaches the pattern.
enum GuardPattern: Sendable {
    case compiled(AIPattern)
    case invalid(source: String, reason: String)

    init(_ source: String) {
        do {
            self = .compiled(try AIPattern(source))
        } catch {
            self = .invalid(source: source, reason: error.description)
        }
    }
}

/// The guard's decision over one request body (spec §8 steps 1–4), free of any request state.
struct PromptGuard: Sendable {
    enum Verdict: Equatable, Sendable {
        case allowed
        /// 400 `bad request`; the reason is for the log only (clients are not told a guard exists).
        case blocked(String)
        /// 400 `bad request` as well: a pattern ran out of time on this prompt, which is blocked
        /// rather than let through unchecked.
        case timedOut(pattern: String)
        /// Generic 500: a pattern that does not compile (an administrator's error).
        case failed(String)
    }

    static let badFormat = "ai-prompt-guard only supports llm/v1/chat or llm/v1/completions prompts"
    static let denied = "prompt pattern is blocked"
    static let notAllowed = "prompt doesn't match any allowed pattern"

    let allow: [GuardPattern]
    let deny: [GuardPattern]
    /// `allow_all_conversation_history`: only the latest taken message is checked.
    let onlyLatest: Bool
    let matchAllRoles: Bool
    /// The client's native format, if it is not OpenAI's.
    let format: LLMNativeFormat?

    func verdict(for body: [String: JSONValue]) -> Verdict {
        guard let text = prompt(of: body) else { return .blocked(Self.badFormat) }
        return check(text)
    }

    /// The text the patterns run on; nil when the body is no chat or completions request.
    ///
    /// Chat: the taken messages' contents (role `user`, or every role with `match_all_roles`),
    /// latest first, each followed by one space — or only the latest with `onlyLatest`. Every
    /// message needs a string `role`, every taken one a string `content`. Completions: `prompt`.
    func prompt(of body: [String: JSONValue]) -> String? {
        let messages: [JSONValue]
        let native: Bool
        if let format {
            // Native bodies are read through their OpenAI shape (text parts only, joined).
            let listKey = format == .gemini ? "contents" : "messages"
            guard body[listKey]?.arrayValue != nil else { return nil }
            messages = format.openAIRequest(from: .object(body), model: nil, stream: false)["messages"]?.arrayValue ?? []
            native = true
        } else {
            switch body["messages"] {
            case .array(let list)?: messages = list
            // A JSON object is a Lua table too, with no array part: no messages, empty text.
            case .object?: messages = []
            default:
                guard case .string(let prompt)? = body["prompt"] else { return nil }
                return prompt
            }
            native = false
        }
        var text = ""
        for message in messages.reversed() {
            guard case .string(let role)? = message["role"] else { return nil }
            guard role == "user" || matchAllRoles else { continue }
            guard let content = Self.content(message["content"], native: native) else { return nil }
            text += content
            if onlyLatest { break }
            text += " "
        }
        return text
    }

    /// A message's text: a string; for converted native messages also a list of text parts (or
    /// nothing, for a turn of tool calls only).
    private static func content(_ value: JSONValue?, native: Bool) -> String? {
        switch value {
        case .string(let text)?: return text
        case .array(let parts)? where native: return parts.compactMap { $0["text"]?.stringValue }.joined(separator: " ")
        case nil where native: return ""
        default: return nil
        }
    }

    /// Deny patterns first, in order (the first match blocks), then allow patterns (one must
    /// match, when there are any). A pattern's compile failure shows only when it is reached, as
    /// in Kong; a match that exceeds its time limit blocks (docs/decisions.md).
    func check(_ text: String) -> Verdict {
        // Prepared once for all the patterns (bytes as Kong's PCRE reads them).
        let text = AIPattern.Subject(text)
        for pattern in deny {
            switch Self.run(pattern, on: text) {
            case .matched: return .blocked(Self.denied)
            case .notMatched: continue
            case .stopped(let verdict): return verdict
            }
        }
        if allow.isEmpty { return .allowed }
        for pattern in allow {
            switch Self.run(pattern, on: text) {
            case .matched: return .allowed
            case .notMatched: continue
            case .stopped(let verdict): return verdict
            }
        }
        return .blocked(Self.notAllowed)
    }

    private enum Outcome {
        case matched, notMatched
        /// The pattern decides the request whatever the others say.
        case stopped(Verdict)
    }

    private static func run(_ pattern: GuardPattern, on text: AIPattern.Subject) -> Outcome {
        switch pattern {
        case .invalid(let source, let reason):
            return .stopped(.failed("bad regex pattern '\(source)', failed to execute: \(reason)"))
        case .compiled(let expression):
            do {
                return try expression.matches(text) ? .matched : .notMatched
            } catch {
                return .stopped(.timedOut(pattern: expression.source))
            }
        }
    }
}

/// ai-prompt-guard (spec §8): checks the prompt of the body in use — as the decorator left it —
/// against the patterns; a blocked prompt answers `400 bad request` and never reaches ai-proxy.
struct AIPromptGuardHandler: WithoutRewritePhase {
    let config: AIPromptGuardConfig

    func access(_ context: ProxyRequestContext) async -> PluginVerdict {
        // No JSON object: Kong's empty table, which has neither `messages` nor `prompt`.
        let body = await AIRequestBody.object(context, maxRequestBodySize: config.maxRequestBodySize) ?? [:]
        switch config.rules.verdict(for: body) {
        case .allowed:
            return .proceed
        case .blocked:
            // The reason stays unlogged: Kong logs it at debug level only.
            return Self.badRequest
        case .timedOut(let pattern):
            ErrorLog.report("ai-prompt-guard: pattern '\(pattern)' took longer than its time limit to match; request blocked", level: .warn)
            return Self.badRequest
        case .failed(let reason):
            ErrorLog.report("ai-prompt-guard: \(reason)")
            return .exit(.error(500))
        }
    }

    /// The same answer for every refusal: clients are not told a guard exists.
    private static let badRequest = PluginVerdict.aiError(400, "bad request")
}
