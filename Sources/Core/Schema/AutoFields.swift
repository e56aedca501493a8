import Foundation

/// The CRUD context of Kong's `process_auto_fields`.
public enum WriteContext: Sendable {
    case insert, upsert, update
}

/// Sources of generated values, injectable so tests and the declarative loader are deterministic.
public struct AutoValueSource: Sendable {
    public var now: @Sendable () -> Int
    public var uuid: @Sendable () -> String
    public var randomString: @Sendable () -> String

    public init(now: @escaping @Sendable () -> Int, uuid: @escaping @Sendable () -> String,
                randomString: @escaping @Sendable () -> String) {
        self.now = now
        self.uuid = uuid
        self.randomString = randomString
    }

    public static let system = AutoValueSource(
        now: { Int(Date().timeIntervalSince1970) },
        uuid: { UUID().uuidString.lowercased() },
        randomString: {
            // Kong's `random_string`: 32 chars of [A-Za-z0-9].
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
            var generator = SystemRandomNumberGenerator()
            return String((0..<32).map { _ in alphabet[Int(generator.next(upperBound: UInt(alphabet.count)))] })
        }
    )
}

extension RecordSchema {
    /// Kong's `process_auto_fields`: fills defaults and auto values, expands required records,
    /// de-duplicates sets. Absent optional fields become null on insert/upsert; update (PATCH)
    /// leaves absent fields absent. Values of the wrong type are left for validation to report.
    public func processAutoFields(_ input: [String: JSONValue], context: WriteContext,
                                  auto: AutoValueSource = .system) -> [String: JSONValue] {
        var data = input
        var now: Int?
        for (name, field) in fields {
            var value = data[name]
            if field.auto {
                value = Self.autoValue(name: name, field: field, current: value, context: context,
                                       auto: auto, now: &now)
            }
            data[name] = field.adjust(value, context: context, auto: auto)
        }
        return data
    }

    private static func autoValue(name: String, field: Field, current: JSONValue?, context: WriteContext,
                                  auto: AutoValueSource, now: inout Int?) -> JSONValue? {
        let creating = context == .insert || context == .upsert
        if field.validators.uuid {
            return creating && current == nil ? .string(auto.uuid()) : current
        }
        if case .string = field.kind {
            return creating && current == nil ? .string(auto.randomString()) : current
        }
        if (name == "created_at" && creating && current.isNullOrAbsent) || name == "updated_at" {
            let seconds = now ?? auto.now()
            now = seconds
            return .number(Double(seconds))
        }
        return current
    }
}

extension Field {
    /// Kong's `adjust_field_for_context` for one value (nil = absent).
    func adjust(_ value: JSONValue?, context: WriteContext, auto: AutoValueSource) -> JSONValue? {
        switch kind {
        case .abstractRecord:
            return value ?? (context == .update ? nil : missingValue(context: context, auto: auto))
        case .record(let schema):
            let recurse = context == .update
                ? (value != nil && value != .null)
                : (value != .null && (value != nil || isRequired))
            if recurse {
                let base = value ?? missingValue(context: context, auto: auto)
                if case .object(let members)? = base {
                    return .object(schema.processAutoFields(members, context: context, auto: auto))
                }
                return base
            }
        case .array(let element):
            if case .array(let items)? = value {
                return .array(items.map { element.adjust($0, context: context, auto: auto) ?? .null })
            }
        case .set(let element):
            if case .array(let items)? = value {
                var unique: [JSONValue] = []
                for item in items where !unique.contains(item) { unique.append(item) }
                return .array(unique.map { element.adjust($0, context: context, auto: auto) ?? .null })
            }
        case .map(_, let values):
            if case .object(let members)? = value {
                return .object(members.mapValues { values.adjust($0, context: context, auto: auto) ?? .null })
            }
        default:
            break
        }
        if value == nil && context != .update { return missingValue(context: context, auto: auto) }
        return value
    }

    /// Kong's `handle_missing_field`.
    func missingValue(context: WriteContext, auto: AutoValueSource) -> JSONValue? {
        if let defaultValue {
            if case .record(let schema) = kind, case .object(let members) = defaultValue {
                return .object(schema.processAutoFields(members, context: .insert, auto: auto))
            }
            return defaultValue
        }
        if !isRequired { return .null }
        if case .abstractRecord = kind { return nil }
        if case .record(let schema) = kind {
            return .object(schema.processAutoFields([:], context: .insert, auto: auto))
        }
        return nil
    }
}
