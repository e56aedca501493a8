/// Export of schema declarations to Kong's `/schemas` JSON form: `fields` is an array of
/// single-key objects (order preserved), each holding the field's attributes.
extension Field {
    public var exportJSON: JSONValue {
        var o: [String: JSONValue] = ["type": .string(kind.name)]
        switch kind {
        case .array(let e), .set(let e): o["elements"] = e.exportJSON
        case .map(let k, let v): o["keys"] = k.exportJSON; o["values"] = v.exportJSON
        case .record(let r):
            o["fields"] = r.exportFields
            if !r.checks.isEmpty { o["entity_checks"] = .array(r.checks.map(\.exportJSON)) }
        case .foreign(let reference): o["reference"] = .string(reference)
        case .abstractRecord: o["abstract"] = true
        default: break
        }
        if let requiredFlag { o["required"] = .bool(requiredFlag) } else if isRequired { o["required"] = true }
        if let defaultValue { o["default"] = defaultValue }
        if auto { o["auto"] = true }
        if unique { o["unique"] = true }
        if immutable { o["immutable"] = true }
        if referenceable { o["referenceable"] = true }
        if encrypted { o["encrypted"] = true }
        if let onDelete { o["on_delete"] = .string(onDelete) }
        if let description { o["description"] = .string(description) }
        if let err { o["err"] = .string(err) }
        if let deprecation {
            o["deprecation"] = ["message": .string(deprecation.message),
                                "removal_in_version": .string(deprecation.removalInVersion)]
        }
        let v = validators
        if let eq = v.eq { o["eq"] = eq }
        if let ne = v.ne { o["ne"] = ne }
        if let x = v.notOneOf { o["not_one_of"] = .array(x) }
        if let x = v.oneOf { o["one_of"] = .array(x) }
        if let x = v.gt { o["gt"] = .number(x) }
        if v.timestamp { o["timestamp"] = true }
        if v.uuid { o["uuid"] = true }
        if v.isRegex { o["is_regex"] = true }
        if let x = v.between { o["between"] = .array(x.map(JSONValue.number)) }
        if let x = v.lenEq { o["len_eq"] = .number(Double(x)) }
        if let x = v.lenMin { o["len_min"] = .number(Double(x)) }
        if let x = v.lenMax { o["len_max"] = .number(Double(x)) }
        if let x = v.startsWith { o["starts_with"] = .string(x) }
        if let x = v.notMatch { o["not_match"] = .string(x.source) }
        if let x = v.matchNone { o["match_none"] = .array(x.map { ["pattern": .string($0.pattern.source), "err": .string($0.err)] }) }
        if let x = v.match { o["match"] = .string(x.source) }
        if let x = v.matchAll { o["match_all"] = .array(x.map { ["pattern": .string($0.pattern.source), "err": .string($0.err)] }) }
        if let x = v.matchAny { o["match_any"] = ["patterns": .array(x.patterns.map { .string($0.source) }), "err": .string(x.err)] }
        if let x = v.contains { o["contains"] = x }
        if let x = v.custom { o["custom_validator"] = .string(x.name) }
        if let x = v.mutuallyExclusiveSubsets {
            o["mutually_exclusive_subsets"] = .array(x.map { .array($0.map(JSONValue.string)) })
        }
        return .object(o)
    }

    /// Only the validators, as `conditional` matches export them.
    var exportRule: JSONValue {
        guard case .object(var o) = exportJSON else { return .object([:]) }
        o["type"] = nil
        if requiredFlag == nil { o["required"] = nil }
        return .object(o)
    }
}

extension RecordSchema {
    public var exportFields: JSONValue {
        .array(fields.map { .object([$0.name: $0.field.exportJSON]) })
    }
}

extension EntityCheck {
    public var exportJSON: JSONValue {
        func names(_ list: [String]) -> JSONValue { .array(list.map(JSONValue.string)) }
        switch self {
        case .atLeastOneOf(let f): return ["at_least_one_of": names(f)]
        case .onlyOneOf(let f): return ["only_one_of": names(f)]
        case .mutuallyRequired(let f): return ["mutually_required": names(f)]
        case .mutuallyExclusive(let f): return ["mutually_exclusive": names(f)]
        case .mutuallyExclusiveSets(let a, let b): return ["mutually_exclusive_sets": ["set1": names(a), "set2": names(b)]]
        case .distinct(let f): return ["distinct": names(f)]
        case .conditional(let ifField, let ifMatch, let thenField, let thenMatch, let thenErr):
            var o: [String: JSONValue] = ["if_field": .string(ifField), "if_match": ifMatch.exportRule,
                                          "then_field": .string(thenField), "then_match": thenMatch.exportRule]
            if let thenErr { o["then_err"] = .string(thenErr) }
            return ["conditional": .object(o)]
        case .conditionalAtLeastOneOf(let c):
            var o: [String: JSONValue] = ["if_field": .string(c.ifField), "if_match": c.ifMatch.exportRule,
                                          "then_at_least_one_of": names(c.thenAtLeastOneOf)]
            if let e = c.thenErr { o["then_err"] = .string(e) }
            if let m = c.elseMatch { o["else_match"] = m.exportRule }
            if let l = c.elseThenAtLeastOneOf { o["else_then_at_least_one_of"] = names(l) }
            if let e = c.elseThenErr { o["else_then_err"] = .string(e) }
            return ["conditional_at_least_one_of": .object(o)]
        case .custom(let c):
            return ["custom_entity_check": ["field_sources": names(c.fieldSources), "name": .string(c.name)]]
        }
    }
}

extension EntitySchema {
    /// `GET /schemas/{entity}`.
    public var exportJSON: JSONValue {
        var o: [String: JSONValue] = ["name": .string(name), "fields": record.exportFields,
                                      "primary_key": .array(primaryKey.map(JSONValue.string))]
        if let endpointKey { o["endpoint_key"] = .string(endpointKey) }
        if let cacheKey { o["cache_key"] = .array(cacheKey.map(JSONValue.string)) }
        if ttl { o["ttl"] = true }
        if let subschemaKey { o["subschema_key"] = .string(subschemaKey) }
        if let subschemaError { o["subschema_error"] = .string(subschemaError) }
        if !record.checks.isEmpty { o["entity_checks"] = .array(record.checks.map(\.exportJSON)) }
        return .object(o)
    }

    /// `GET /schemas/plugins/{name}`: the subschema's fields.
    public func exportSubschema(_ key: String) -> JSONValue? {
        guard let sub = subschemas[key] else { return nil }
        var o: [String: JSONValue] = ["fields": .array(sub.fields.map { .object([$0.name: $0.field.exportJSON]) })]
        if !sub.checks.isEmpty { o["entity_checks"] = .array(sub.checks.map(\.exportJSON)) }
        return .object(o)
    }
}
