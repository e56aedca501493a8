import Core
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// file-log (`kong/plugins/file-log/schema.lua`): one JSON line per request, Kong's log
/// serializer document, appended to `config.path`.
public enum FileLogPlugin {
    static let luaUnsupported =
        "custom_fields_by_lua is not supported: Silverback does not run Lua code; remove the field"

    public static let definition: PluginDefinition = PluginDefinition(
        name: "file-log",
        priority: 9,
        version: KongVersion.number,
        config: RecordSchema([
            "path": Field.string.required().match(#"^[^*&%%\`]+$"#).err("not a valid filename"),
            "reopen": Field.boolean.required().default(false),
            "custom_fields_by_lua": Field.map(keys: Field.string.lenMin(1), values: Field.string.lenMin(1))
                .required(false)
                .custom("lua_code_unsupported") { value in value.isNull ? nil : luaUnsupported },
        ]),
        protocols: Typedefs.protocols
    )
}

/// Writes each request's serialized log line. Runs in the log phase, which the gateway runs off
/// the request path on one task, so writes never interleave.
final class FileLogHandler: WithoutRequestPhases, @unchecked Sendable {
    let path: String
    let reopen: Bool
    /// Kept open between requests unless `reopen` (then each line opens and closes the file, so
    /// log rotation by renaming is picked up).
    private var descriptor: Int32 = -1

    init(config: JSONValue) {
        path = config["path"]?.stringValue ?? ""
        reopen = config["reopen"]?.boolValue ?? false
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    var logs: Bool { true }

    func log(_ context: ProxyRequestContext) {
        // Kong's cjson output: slashes escaped.
        var line = LogSerializer.kongLine(context)
        line.append(UInt8(ascii: "\n"))
        write(line)
    }

    private func write(_ bytes: [UInt8]) {
        if descriptor < 0 || reopen {
            if descriptor >= 0 { close(descriptor) }
            descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
            guard descriptor >= 0 else {
                ErrorLog.report("[file-log] failed to open the file: \(String(cString: strerror(errno))) \(path)")
                return
            }
        }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                ErrorLog.report("[file-log] failed to write to the file: \(String(cString: strerror(errno))) \(path)")
                return
            }
            offset += written
        }
    }
}
