import NIOHTTP1

/// Kong's `kong.log.serialize()` for HTTP requests: the document log plugins (file-log…) write,
/// with the fields plugins added through `context.logRecord` and `setLogMember` (Kong's
/// `set_serialize_value`) merged in at the top level. Read in the log phase, off the request path. `KongLogLine` writes it.
public enum LogSerializer {
    /// Request headers whose values Kong replaces by this text.
    static let redactedHeaders: Set<String> = ["authorization", "proxy-authorization"]

    /// Whether a lower-case header name is one of `redactedHeaders`, without hashing it (every
    /// request header of every log line is asked).
    static func isAlwaysRedacted(_ name: String) -> Bool {
        switch name.utf8.count {
        case 13: name == "authorization"
        case 19: name == "proxy-authorization"
        default: false
        }
    }

    /// The document as a value.
    public static func serialize(_ context: ProxyRequestContext) -> JSONValue {
        var line = KongLogLine()
        line.write(context, withPluginFields: false)
        // The writer's own output always reads back.
        var root = (try? JSONValue.parse(bytes: line.out))?.objectValue ?? [:]
        for key in context.logRecordFields {
            if let value = context.logRecordValue(key) { root[key] = merged(root[key], value) }
        }
        return .object(root)
    }

    /// `serialize(context).serializedBytes(.kong)`, byte for byte, written straight into bytes:
    /// the log thread writes one per request, and building the document's dictionaries first (then
    /// sorting each one's keys) cost more than the rest of the log phase.
    public static func kongLine(_ context: ProxyRequestContext) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(2048)
        appendKongLine(context, to: &line)
        return line
    }

    /// `kongLine(context)` appended to `bytes` (a writer holding several lines writes them into
    /// one buffer).
    public static func appendKongLine(_ context: ProxyRequestContext, to bytes: inout [UInt8]) {
        var layouts = LineLayouts()
        appendKongLine(context, to: &bytes, layouts: &layouts)
    }

    /// What a writer keeps from one line to the next (the header names' order).
    public struct LineLayouts: Sendable {
        var headers = KongLogLine.HeaderLayouts()
        public init() {}
    }

    /// `appendKongLine(context, to:)`, reusing what `layouts` kept from the writer's last line.
    public static func appendKongLine(_ context: ProxyRequestContext, to bytes: inout [UInt8], layouts: inout LineLayouts) {
        // A plugin's field that lands on one of the serializer's own merges into it: the document
        // is then built as a value (no bundled plugin does it).
        guard context.logRecord.keys.allSatisfy({ !KongLogLine.ownFields.contains($0) }),
              context.typedLogMembers.allSatisfy({ !KongLogLine.ownFields.contains($0.field) }) else {
            return bytes.append(contentsOf: serialize(context).serializedBytes(.kong))
        }
        KongLogLine.append(context, to: &bytes, layouts: &layouts.headers)
    }

    /// Plugins' values merge into objects already there (two AI plugins both write under `ai`).
    static func merged(_ existing: JSONValue?, _ added: JSONValue) -> JSONValue {
        guard case .object(var base)? = existing, case .object(let extra) = added else { return added }
        for (key, value) in extra { base[key] = merged(base[key], value) }
        return .object(base)
    }
}
