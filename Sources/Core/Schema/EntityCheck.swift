/// Kong's cross-field rules (`entity_checks`). Field names may be dotted paths into nested
/// records (`auth.header_name`, `config.route_type`); messages quote them as given.
public enum EntityCheck: Sendable {
    case atLeastOneOf([String])
    case onlyOneOf([String])
    case mutuallyRequired([String])
    case mutuallyExclusive([String])
    case mutuallyExclusiveSets(set1: [String], set2: [String])
    case distinct([String])
    /// If `ifField` passes `ifMatch`, `thenField` must pass `thenMatch` (validators, or `required`).
    case conditional(ifField: String, ifMatch: Field, thenField: String, thenMatch: Field, thenErr: String? = nil)
    case conditionalAtLeastOneOf(ConditionalAtLeastOneOf)
    case custom(CustomEntityCheck)

    /// Kong's `checker.run_with_invalid_fields`.
    var runsWithInvalidFields: Bool {
        switch self {
        case .atLeastOneOf, .onlyOneOf, .distinct, .conditional, .conditionalAtLeastOneOf: return true
        case .mutuallyRequired, .mutuallyExclusive, .mutuallyExclusiveSets, .custom: return false
        }
    }

    /// Kong's `checker.run_with_missing_fields`.
    var runsWithMissingFields: Bool {
        switch self {
        case .atLeastOneOf, .conditionalAtLeastOneOf, .mutuallyRequired, .mutuallyExclusive, .mutuallyExclusiveSets:
            return true
        case .onlyOneOf, .distinct, .conditional: return false
        case .custom(let c): return c.runWithMissingFields
        }
    }

    /// The fields the check reads, and which of them must be present for it to run.
    var fieldSources: (all: [String], required: Set<String>) {
        switch self {
        case .atLeastOneOf(let f), .onlyOneOf(let f), .mutuallyRequired(let f), .mutuallyExclusive(let f),
             .distinct(let f):
            return (f, Set(f))
        case .mutuallyExclusiveSets(let s1, let s2):
            return (s1 + s2, Set(s1 + s2))
        case .conditional(let ifField, _, let thenField, _, _):
            return ([ifField, thenField], [ifField])
        case .conditionalAtLeastOneOf(let c):
            return ([c.ifField] + c.thenAtLeastOneOf + (c.elseThenAtLeastOneOf ?? []), [c.ifField])
        case .custom(let c):
            return (c.fieldSources, Set(c.fieldSources))
        }
    }
}

public struct ConditionalAtLeastOneOf: Sendable {
    public var ifField: String
    public var ifMatch: Field
    public var thenAtLeastOneOf: [String]
    /// `%s` is replaced by the quoted field list.
    public var thenErr: String?
    public var elseMatch: Field?
    public var elseThenAtLeastOneOf: [String]?
    public var elseThenErr: String?

    public init(ifField: String, ifMatch: Field, thenAtLeastOneOf: [String], thenErr: String? = nil,
                elseMatch: Field? = nil, elseThenAtLeastOneOf: [String]? = nil, elseThenErr: String? = nil) {
        self.ifField = ifField
        self.ifMatch = ifMatch
        self.thenAtLeastOneOf = thenAtLeastOneOf
        self.thenErr = thenErr
        self.elseMatch = elseMatch
        self.elseThenAtLeastOneOf = elseThenAtLeastOneOf
        self.elseThenErr = elseThenErr
    }
}

/// Kong's `custom_entity_check`: a predicate over the listed fields. It receives the whole
/// (defaults-filled) record and returns nil when fine, else the entity error message and,
/// for checks Kong expresses with element matches, the field errors that go with it.
public struct CustomEntityCheck: Sendable {
    public var name: String
    public var fieldSources: [String]
    public var runWithMissingFields: Bool
    public var check: @Sendable (JSONValue) -> EntityCheckFailure?

    public init(name: String, fieldSources: [String], runWithMissingFields: Bool = false,
                check: @escaping @Sendable (JSONValue) -> EntityCheckFailure?) {
        self.name = name
        self.fieldSources = fieldSources
        self.runWithMissingFields = runWithMissingFields
        self.check = check
    }
}

extension Field {
    /// A bag of validators for `conditional` matches; its kind is not used.
    public static var rule: Field { Field(.string) }
}

public struct EntityCheckFailure: Sendable, ExpressibleByStringLiteral {
    public var message: String
    /// Dotted field path → message.
    public var fieldErrors: [String: String]
    public init(_ message: String, fieldErrors: [String: String] = [:]) {
        self.message = message
        self.fieldErrors = fieldErrors
    }
    public init(stringLiteral value: String) { self.init(value) }
}
