import Foundation

/// Validation of values against field and record definitions, following Kong's
/// `Schema:validate_field`, `validate_fields` and `run_entity_checks` step by step.
public struct ValidationOptions: Sendable {
    /// Insert/upsert: every required field must be present. Update (PATCH): partial input.
    public var fullCheck: Bool
    public init(fullCheck: Bool = true) { self.fullCheck = fullCheck }
    public static let insert = ValidationOptions(fullCheck: true)
    public static let update = ValidationOptions(fullCheck: false)
}

extension RecordSchema {
    /// Validates a record whose defaults were already filled (`processAutoFields`).
    /// Returns nil when valid.
    public func validate(_ input: [String: JSONValue], options: ValidationOptions = .insert) -> ErrorRecord? {
        var errors = ErrorRecord()
        let byName = Dictionary(fields.map { ($0.name, $0.field) }, uniquingKeysWith: { a, _ in a })

        for (key, value) in input {
            guard let field = byName[key] else {
                errors[key] = .message(SchemaMessages.unknownField)
                continue
            }
            if let error = field.validate(value) { errors[key] = error }
        }
        for (name, field) in fields where field.isRequired {
            let value = input[name]
            if case .some(.null) = value {
                errors[name] = .message(SchemaMessages.required)
            } else if value == nil && options.fullCheck {
                errors[name] = .message(SchemaMessages.required)
            }
        }
        runChecks(checks, on: input, errors: &errors, options: options)
        return errors.isEmpty ? nil : errors
    }

    func runChecks(_ checks: [EntityCheck], on input: [String: JSONValue], errors: inout ErrorRecord,
                   options: ValidationOptions) {
        for check in checks {
            run(check, on: input, errors: &errors, options: options)
        }
    }

    /// Kong's `run_entity_check`: decides whether a check runs at all, then runs it.
    private func run(_ check: EntityCheck, on input: [String: JSONValue], errors: inout ErrorRecord,
                     options: ValidationOptions) {
        let root = JSONValue.object(input)
        let sources = check.fieldSources
        var missing: [String] = []
        var allAbsent = true
        var allValid = true
        for name in sources.all {
            let value = root.value(atPath: name)
            if value == nil {
                if !check.runsWithMissingFields && sources.required.contains(name) { missing.append(name) }
            } else {
                allAbsent = false
                if let field = field(atPath: name), field.referenceable, let s = value?.stringValue,
                   VaultReference.isReference(s) {
                    return
                }
            }
            // Kong looks the name up flat (`errors[fname]`): a dotted name never finds the nested
            // error, so a check over nested fields runs even when one of them failed.
            if errors.fields[name] != nil { allValid = false }
        }
        if !allValid && !check.runsWithInvalidFields { return }
        if allAbsent && !(check.runsWithMissingFields && options.fullCheck) { return }
        if !missing.isEmpty {
            let message = SchemaMessages.requiredForEntityCheck + (options.fullCheck ? "" : " when updating")
            for name in missing { errors.set(path: name, .message(message)) }
            return
        }
        if let message = evaluate(check, root: root, errors: &errors, updating: !options.fullCheck) {
            errors.entity.append(message)
        }
    }

    /// Runs one check; returns the entity error message on failure.
    private func evaluate(_ check: EntityCheck, root: JSONValue, errors: inout ErrorRecord, updating: Bool) -> String? {
        func nonEmpty(_ name: String) -> Bool { root.value(atPath: name)?.isNonEmpty ?? false }
        switch check {
        case .atLeastOneOf(let names):
            if names.contains(where: nonEmpty) { return nil }
            return SchemaMessages.atLeastOneOf(SchemaMessages.quoted(names), updating: updating)
        case .onlyOneOf(let names):
            if names.filter(nonEmpty).count == 1 { return nil }
            return "exactly one of these fields must be non-empty: \(SchemaMessages.quoted(names))"
        case .mutuallyRequired(let names):
            let count = names.filter(nonEmpty).count
            if count == 0 || count == names.count { return nil }
            return "all or none of these fields must be set: \(SchemaMessages.quoted(names))"
        case .mutuallyExclusive(let names):
            if names.filter(nonEmpty).count <= 1 { return nil }
            return "only one or none of these fields must be set: \(SchemaMessages.quoted(names))"
        case .mutuallyExclusiveSets(let set1, let set2):
            let present1 = set1.filter(nonEmpty), present2 = set2.filter(nonEmpty)
            if present1.isEmpty || present2.isEmpty { return nil }
            return "these sets are mutually exclusive: (\(SchemaMessages.quoted(present1))), (\(SchemaMessages.quoted(present2)))"
        case .distinct(let names):
            var seen: [JSONValue] = []
            for name in names {
                guard let value = root.value(atPath: name), value.isNonEmpty else { continue }
                if seen.contains(value) {
                    return "values of these fields must be distinct: \(SchemaMessages.quoted(names))"
                }
                seen.append(value)
            }
            return nil
        case .conditional(let ifField, let ifMatch, let thenField, let thenMatch, let thenErr):
            let ifValue = root.value(atPath: ifField) ?? .null
            let thenValue = root.value(atPath: thenField) ?? .null
            guard ifMatch.inheriting(from: field(atPath: ifField)).checkRule(ifValue) == nil else { return nil }
            if thenMatch.isRequired && thenValue.isNull {
                errors.set(path: thenField, .message(SchemaMessages.required))
                return "failed conditional validation given value of field '\(ifField)'"
            }
            guard let message = thenMatch.inheriting(from: field(atPath: thenField)).checkRule(thenValue) else { return nil }
            errors.set(path: thenField, .message(message))
            return thenErr.map { $0.replacingOccurrences(of: "%s", with: ifField) }
                ?? "failed conditional validation given value of field '\(ifField)'"
        case .conditionalAtLeastOneOf(let c):
            guard let ifValue = root.value(atPath: c.ifField) else { return nil }
            let ifDefinition = field(atPath: c.ifField)
            let names: [String]
            let err: String?
            if c.ifMatch.inheriting(from: ifDefinition).checkRule(ifValue) == nil {
                names = c.thenAtLeastOneOf
                err = c.thenErr
            } else if let elseMatch = c.elseMatch, elseMatch.inheriting(from: ifDefinition).checkRule(ifValue) == nil,
                      let elseNames = c.elseThenAtLeastOneOf {
                names = elseNames
                err = c.elseThenErr
            } else {
                return nil
            }
            if names.contains(where: nonEmpty) { return nil }
            let list = SchemaMessages.quoted(names)
            if let err { return err.replacingOccurrences(of: "%s", with: list) }
            return (updating ? "when updating, " : "") + "at least one of these fields must be non-empty: \(list)"
        case .custom(let custom):
            guard let failure = custom.check(root) else { return nil }
            for (path, message) in failure.fieldErrors { errors.set(path: path, .message(message)) }
            return failure.message
        }
    }
}

extension JSONValue {
    /// Kong's `get_field`: dotted lookup through nested objects; nil when absent on the way.
    public func value(atPath path: String) -> JSONValue? {
        var current = self
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            guard case .object(let o) = current, let next = o[String(part)] else { return nil }
            current = next
        }
        return current
    }
}

extension Field.Kind {
    /// Whether a present value has this kind's JSON type (what `validate` and a `conditional`
    /// match check before anything else).
    func admits(_ value: JSONValue) -> Bool {
        switch (self, value) {
        case (.array, .array), (.set, .array), (.map, .object), (.record, .object), (.foreign, .object),
             (.boolean, .bool), (.string, .string), (.abstractRecord, _):
            return true
        case (.integer, _): return value.intValue != nil
        case (.number, .number(let n)): return n.isFinite
        default: return false
        }
    }
}

extension Field {
    /// Kong's `validate_field` for a present value. Returns nil when valid.
    public func validate(_ value: JSONValue) -> FieldError? {
        if case .null = value {
            if let ne = validators.ne, ne.isNull { return .message(err ?? "value must not be null") }
            if let eq = validators.eq, !eq.isNull { return .message("value must be \(eq.luaText)") }
            if isRequired { return .message(SchemaMessages.required) }
            return nil
        }
        if let eq = validators.eq, eq.isNull { return .message(err ?? "value must be null") }
        if let deprecation { ErrorLog.report(deprecation.warning, level: .warn) }
        guard kind.admits(value) else { return .message(SchemaMessages.typeMismatch(kind)) }

        switch kind {
        case .abstractRecord:
            return .message("error in schema definition: abstract field was not specialized")
        case .array(let element), .set(let element):
            guard case .array(let items) = value else { break }
            var elementErrors: [Int: FieldError] = [:]
            let elementField = element.required()
            for (i, item) in items.enumerated() {
                if let e = elementField.validate(item) { elementErrors[i] = e }
            }
            if !elementErrors.isEmpty { return .list(elementErrors) }
        case .map(let keys, let values):
            guard case .object(let members) = value else { break }
            let keyField = keys.required(), valueField = values.required()
            for key in members.keys.sorted() {
                if let e = keyField.validate(.string(key)) { return e }
                if let e = valueField.validate(members[key]!) { return e }
            }
        case .record(let schema):
            guard case .object(let members) = value else { break }
            if let errors = schema.validate(schema.processAutoFields(members, context: .insert)) {
                return .record(errors)
            }
        case .foreign:
            guard case .object(let members) = value else { break }
            guard let id = members["id"] else {
                return .record(ErrorRecord(fields: ["id": .message(SchemaMessages.missingPrimaryKey)]))
            }
            if let e = Field.string.uuid().required().validate(id) { return .record(ErrorRecord(fields: ["id": e])) }
        case .string:
            if case .string(let s) = value, referenceable && VaultReference.isReference(s) { return nil }
        case .integer, .number, .boolean:
            break  // the type is all `admits` checks
        }
        return checkValidators(value).map(FieldError.message)
    }

    /// A `conditional` match as Kong applies it: the match's validators over the checked field's
    /// own definition (Kong sets the field as the match table's `__index`), so a null value fails
    /// a match on a required field.
    func inheriting(from base: Field?) -> Field {
        guard var merged = base else { return self }
        if let requiredFlag { merged.requiredFlag = requiredFlag }
        if let err { merged.err = err }
        merged.validators = merged.validators.overlaid(by: validators)
        return merged
    }

    /// A `conditional` match over the field's value, as Kong's `validate_field` runs it with the
    /// field's definition behind the match table: the value's type first (a mistyped value fails
    /// as `expected a boolean`, not as the match's `value must be false`), then the validators.
    /// Elements and nested records are not looked into.
    func checkRule(_ value: JSONValue) -> String? {
        if case .null = value {
            if let ne = validators.ne, ne.isNull { return err ?? "value must not be null" }
            if let eq = validators.eq, !eq.isNull { return "value must be \(eq.luaText)" }
            if isRequired { return SchemaMessages.required }
            return nil
        }
        if let eq = validators.eq, eq.isNull { return err ?? "value must be null" }
        if !kind.admits(value) { return SchemaMessages.typeMismatch(kind) }
        if case .string(let s) = value, referenceable, VaultReference.isReference(s) { return nil }
        return checkValidators(value)
    }

    /// Runs the validators in Kong's order; the first failure wins, `err` replaces its text.
    private func checkValidators(_ value: JSONValue) -> String? {
        guard let message = firstFailingValidator(value) else { return nil }
        return err ?? message
    }

    private func firstFailingValidator(_ value: JSONValue) -> String? {
        let v = validators
        if let eq = v.eq, eq != value { return "value must be \(eq.luaText)" }
        if let ne = v.ne, ne == value { return "value must not be \(ne.luaText)" }
        if let list = v.notOneOf, list.contains(value) {
            return "must not be one of: \(list.map(\.luaText).joined(separator: ", "))"
        }
        if let list = v.oneOf, !list.contains(value) {
            return "expected one of: \(list.map(\.luaText).joined(separator: ", "))"
        }
        let number = value.numberValue
        if let gt = v.gt, let n = number, !(n > gt) {
            return "value must be greater than \(JSONValue.formatNumber(gt))"
        }
        if v.timestamp, let n = number, !(n > 0) { return "expected a valid timestamp" }
        let string = value.stringValue
        if v.uuid, let s = string, !UUIDText.isValid(s) { return "expected a valid UUID" }
        if v.isRegex, let s = string, !RegexSyntax.isValid(s) { return "not a valid regex: \(s)" }
        if let b = v.between, let n = number, n < b[0] || n > b[1] {
            return "value should be between \(Int(b[0])) and \(Int(b[1]))"
        }
        if let length = value.kongLength {
            if let n = v.lenEq, length != n { return "length must be \(n)" }
            let implicitMin = (string != nil && v.lenMin == nil) ? 1 : nil
            if let n = v.lenMin ?? implicitMin, length < n { return "length must be at least \(n)" }
            if let n = v.lenMax, length > n { return "length must be at most \(n)" }
        }
        if let s = string {
            if let prefix = v.startsWith, !s.hasPrefix(prefix) { return "should start with: \(prefix)" }
            if let p = v.notMatch, p.matches(s) { return "invalid value: \(s)" }
            if let rules = v.matchNone, let hit = rules.first(where: { $0.pattern.matches(s) }) { return hit.err }
            if let p = v.match, !p.matches(s) { return "invalid value: \(s)" }
            if let rules = v.matchAll, let miss = rules.first(where: { !$0.pattern.matches(s) }) { return miss.err }
            if let any = v.matchAny, !any.patterns.contains(where: { $0.matches(s) }) { return any.err }
        }
        if let wanted = v.contains, case .array(let items) = value, !items.contains(wanted) {
            return "expected to contain: \(wanted.luaText)"
        }
        if let custom = v.custom, let message = custom.check(value) { return message }
        if let subsets = v.mutuallyExclusiveSubsets, case .array(let items) = value {
            var present: [[String]] = []
            for item in items {
                guard let s = item.stringValue, let subset = subsets.first(where: { $0.contains(s) }) else { continue }
                if !present.contains(subset) { present.append(subset) }
            }
            if present.count > 1 {
                let text = present.map { "(\(SchemaMessages.quoted($0)))" }.joined(separator: ", ")
                return "these sets are mutually exclusive: \(text)"
            }
        }
        return nil
    }
}

extension JSONValue {
    /// Lua's `#` as the length validators use it: bytes of a string, items of a table.
    var kongLength: Int? {
        switch self {
        case .string(let s): return s.utf8.count
        case .array(let a): return a.count
        case .object(let o): return o.count
        default: return nil
        }
    }
}

enum UUIDText {
    /// Kong's `uuid` validator: 36 chars, 8-4-4-4-12 hex, case-insensitive.
    static func isValid(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard bytes.count == 36 else { return false }
        for (i, b) in bytes.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                if b != UInt8(ascii: "-") { return false }
            } else if !((0x30...0x39).contains(b) || (0x61...0x66).contains(b | 0x20)) {
                return false
            }
        }
        return true
    }
}

/// Whether a pattern compiles as a PCRE-style regular expression (Kong: `ngx.re` / PCRE).
public enum RegexSyntax {
    public static func isValid(_ pattern: String) -> Bool { compileError(pattern) == nil }

    /// The compiler's complaint, or nil when the pattern compiles.
    public static func compileError(_ pattern: String) -> String? {
        do {
            _ = try NSRegularExpression(pattern: pattern)
            return nil
        } catch {
            return "invalid regular expression"
        }
    }
}
