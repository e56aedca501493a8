/// A Kong entity schema: its record (fields + entity checks) and the schema-level attributes.
public struct EntitySchema: Sendable {
    /// Entity (table) name, e.g. `services`, `keyauth_credentials`.
    public var name: String
    /// Singular name used by flattened declarative errors (`service`, `keyauth_credential`).
    public var singularName: String
    public var primaryKey: [String] = ["id"]
    /// Alternate key usable in URLs and declarative references (`name`, `username`, ...).
    public var endpointKey: String?
    /// Fields forming a unique composite key (plugins: name/route/service/consumer).
    public var cacheKey: [String]?
    /// Entity accepts a per-row `ttl` (seconds).
    public var ttl = false
    public var adminName: String?
    public var nestedAdminName: String?
    public var record: RecordSchema
    public var subschemaKey: String?
    /// Format with one `%s`: the unknown key's value.
    public var subschemaError: String?
    public var subschemas: [String: Subschema] = [:]
    /// Plugins: an unknown subschema key is an error that stops validation. Routes: the key
    /// (protocols) only adds rules, and an unknown value is reported by the field itself.
    public var subschemaRequired = true
    public var shorthands: [Shorthand] = []

    public init(name: String, singularName: String, record: RecordSchema) {
        self.name = name
        self.singularName = singularName
        self.record = record
    }

    /// Foreign-key fields, in declaration order: (field name, referenced entity).
    public var foreignKeys: [(field: String, reference: String)] {
        record.fields.compactMap { name, field in
            if case .foreign(let reference) = field.kind { return (name, reference) }
            return nil
        }
    }

    /// Unique fields other than the primary key.
    public var uniqueFields: [String] {
        record.fields.filter { $0.field.unique && !primaryKey.contains($0.name) }.map(\.name)
    }

    /// The record after the subschema selected by `input` specialised it.
    public func effectiveRecord(for input: [String: JSONValue]) -> RecordSchema {
        guard let subschema = subschema(for: input) else { return record }
        var effective = record.overriding(with: subschema.fields)
        effective.checks += subschema.checks
        return effective
    }

    public func subschema(for input: [String: JSONValue]) -> Subschema? {
        guard let key = subschemaKey else { return nil }
        switch input[key] {
        case .string(let s)?: return subschemas[s]
        case .array(let items)?:
            for case .string(let s) in items { if let sub = subschemas[s] { return sub } }
            return nil
        default: return nil
        }
    }

    /// Kong's write path for one entity: shorthand expansion, subschema selection, auto fields and
    /// defaults, then validation. Returns the stored form or the error tree.
    public func process(_ input: [String: JSONValue], context: WriteContext,
                        auto: AutoValueSource = .system) -> Result<[String: JSONValue], ErrorRecord> {
        var data = input
        var shorthandErrors = ErrorRecord()
        for shorthand in shorthands {
            guard let value = data[shorthand.name] else { continue }
            if let error = shorthand.field.validate(value) {
                shorthandErrors[shorthand.name] = error
                continue
            }
            data[shorthand.name] = nil
            guard !value.isNull else { continue }
            switch shorthand.expand(value) {
            case .success(let expanded): for (k, v) in expanded { data[k] = v }
            case .failure(let error): shorthandErrors[shorthand.name] = .message(error.message)
            }
        }
        if !shorthandErrors.isEmpty { return .failure(shorthandErrors) }

        if let key = subschemaKey, subschemaRequired {
            let value = data[key]
            if value.isNullOrAbsent { return .failure(ErrorRecord(fields: [key: .message(SchemaMessages.required)])) }
            if subschema(for: data) == nil {
                let shown: String
                switch value! {
                case .array(let items): shown = items.first?.luaText ?? ""
                default: shown = value!.luaText
                }
                let format = subschemaError ?? "unknown type: %s"
                return .failure(ErrorRecord(fields: [key: .message(format.replacingOccurrences(of: "%s", with: shown))]))
            }
        }
        let processed = effectiveRecord(for: data).processAutoFields(data, context: context, auto: auto)
        // The subschema is chosen again once defaults are in: a route without `protocols` gets
        // the default protocols' rules, as in Kong (auto fields run before validation).
        let effective = effectiveRecord(for: processed)
        var validationInput = processed
        if ttl { validationInput["ttl"] = nil }
        if let errors = effective.validate(validationInput, options: context == .update ? .update : .insert) {
            return .failure(errors)
        }
        return .success(processed)
    }
}

/// What a subschema adds to its parent: field overrides (e.g. a plugin's `config`) and checks.
public struct Subschema: Sendable {
    public var fields: [(name: String, field: Field)]
    public var checks: [EntityCheck]
    public init(fields: [(name: String, field: Field)], checks: [EntityCheck] = []) {
        self.fields = fields
        self.checks = checks
    }
}

/// Input-only sugar (`services.url`): validated by its own field, expanded before validation,
/// its results overriding explicitly given fields.
public struct Shorthand: Sendable {
    public var name: String
    public var field: Field
    public var expand: @Sendable (JSONValue) -> Result<[String: JSONValue], ShorthandError>
    public init(name: String, field: Field,
                expand: @escaping @Sendable (JSONValue) -> Result<[String: JSONValue], ShorthandError>) {
        self.name = name
        self.field = field
        self.expand = expand
    }
}

public struct ShorthandError: Error, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
}
