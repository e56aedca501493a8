import Core

/// One entry of `config.categories`: an Azure harm category and the severity that rejects.
struct ContentSafetyCategory: Sendable, Equatable {
    /// `Hate`, `SelfHarm`, `Sexual` or `Violence`, as Azure names them.
    let name: String
    let rejectionLevel: Int
}

/// What Azure is asked besides the text (spec §6.3-3), fixed per configuration.
struct ContentSafetyAnalysisOptions: Sendable, Equatable {
    let categories: [ContentSafetyCategory]
    let blocklistNames: [String]?
    let haltOnBlocklistHit: Bool
    /// `FourSeverityLevels` or `EightSeverityLevels`.
    let outputType: String

    /// The *Analyze Text* body (REST API 2023-10-01). `categories` is left out when none are
    /// configured: Azure then analyses all four, and no severity can breach (only blocklists can).
    /// An empty list would not do, as Kong's encoder would write it `{}`.
    func requestBody(text: String) -> JSONValue {
        var body: [String: JSONValue] = [
            "text": .string(text),
            "haltOnBlocklistHit": .bool(haltOnBlocklistHit),
            "outputType": .string(outputType),
        ]
        if !categories.isEmpty { body["categories"] = .array(categories.map { .string($0.name) }) }
        if let blocklistNames { body["blocklistNames"] = .array(blocklistNames.map(JSONValue.string)) }
        return .object(body)
    }
}

/// Why Azure's answer could not be read. The texts are Kong's error-log wording; the client only
/// sees the generic 500.
enum ContentSafetyAnswerError: Error, Equatable, CustomStringConvertible {
    /// The body is not a JSON object.
    case notJSON
    /// No `categoriesAnalysis` and no blocklist match.
    case invalid

    var description: String {
        switch self {
        case .notJSON: return "content safety introspection failure"
        case .invalid: return "content safety introspection is invalid"
        }
    }
}

/// Azure's judgement of one text against the configuration (spec §6.3-4 and -5).
struct ContentSafetyVerdict: Sendable, Equatable {
    /// Configured categories whose severity reached their rejection level, in Azure's order.
    let breachedCategories: [ContentSafetyCategory]
    /// Names of the blocklists that matched, in Azure's order (one per match).
    let breachedBlocklists: [String]

    var breached: Bool { !breachedCategories.isEmpty || !breachedBlocklists.isEmpty }

    /// Category reasons joined by `"; "`, blocklist reasons appended directly after them without a
    /// separator (the wording of Kong's published custom-guardrail equivalent, spec §6.3-5). A
    /// category reason names the *configured* level, not the severity Azure found.
    var reasons: String {
        breachedCategories.map { "breached category [\($0.name)] at level \($0.rejectionLevel)" }.joined(separator: "; ")
            + breachedBlocklists.map { "breached blocklist [\($0)]" }.joined()
    }

    /// Reads Azure's 200 answer. From 3.11 a blocklist-only answer (Azure stops analysing at a
    /// blocklist hit when `haltOnBlocklistHit` is on) is accepted; an answer with neither
    /// categories nor blocklist matches is invalid.
    init(answer bytes: some Collection<UInt8>, categories: [ContentSafetyCategory]) throws(ContentSafetyAnswerError) {
        guard case .object(let answer)? = try? JSONValue.parse(bytes: bytes) else { throw .notJSON }
        let analysis = answer["categoriesAnalysis"]?.arrayValue ?? []
        let matches = answer["blocklistsMatch"]?.arrayValue ?? []
        guard !analysis.isEmpty || !matches.isEmpty else { throw .invalid }
        var breachedCategories: [ContentSafetyCategory] = []
        for entry in analysis {
            guard let name = entry["category"]?.stringValue, let severity = entry["severity"]?.numberValue,
                  let configured = categories.first(where: { $0.name == name }),
                  severity >= Double(configured.rejectionLevel) else { continue }
            breachedCategories.append(configured)
        }
        self.breachedCategories = breachedCategories
        breachedBlocklists = matches.map { $0["blocklistName"]?.stringValue ?? "" }
    }

    init(breachedCategories: [ContentSafetyCategory], breachedBlocklists: [String]) {
        self.breachedCategories = breachedCategories
        self.breachedBlocklists = breachedBlocklists
    }
}

/// Which side of the exchange a check screened.
enum ContentSafetyDirection: String, Sendable {
    case request
    case response

    /// The 400 message for a breach: the reasons only when `reveal_failure_reason` is on.
    func failureMessage(_ verdict: ContentSafetyVerdict, reveal: Bool) -> String {
        let message = "\(rawValue) failed content safety check"
        return reveal ? "\(message): \(verdict.reasons)" : message
    }
}
