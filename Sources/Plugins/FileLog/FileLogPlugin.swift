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
                // An empty map holds no Lua: accepted, as Kong accepts it (configurations carry it).
                .custom("lua_code_unsupported") { value in
                    value.isNull || value.objectValue?.isEmpty == true ? nil : luaUnsupported
                },
        ]),
        protocols: Typedefs.protocols
    )
}

/// Writes each request's serialized log line. Runs in the log phase, which the gateway runs off
/// the request path on one thread, so writes never interleave.
///
/// The lines of one log batch (what queued up while the previous batch ran) go out in one
/// `write(2)` when the batch ends (`logBatchEnded`), or sooner once `heldLimit` bytes are held:
/// under load one system call per line was a fifth of the log thread's time. Each write holds
/// whole lines only, so an `O_APPEND` regular file never gets a line cut by another writer's.
/// A pipe, FIFO or terminal (`/dev/stdout` in a container) still gets one write per line: a
/// write there is atomic only up to `PIPE_BUF` bytes, which a line fits and a batch does not.
final class FileLogHandler: WithoutRequestPhases, @unchecked Sendable {
    let path: String
    let reopen: Bool
    /// Kept open between writes unless `reopen` (then each write opens and closes the file, so
    /// log rotation by renaming is picked up).
    private var descriptor: Int32 = -1
    /// The descriptor is a regular file: a batch goes out in one write.
    private var writesWholeBatches = false
    /// Lines not written yet (whole lines), reused between batches.
    private var held: [UInt8] = []
    static let heldLimit = 64 * 1024
    /// What the serializer keeps between this handler's lines.
    private var layouts = LogSerializer.LineLayouts()

    init(config: JSONValue) {
        path = config["path"]?.stringValue ?? ""
        reopen = config["reopen"]?.boolValue ?? false
    }

    deinit {
        writeHeld()  // the batch end always comes first; nothing is left unless a caller skipped it
        if descriptor >= 0 { close(descriptor) }
    }

    var logs: Bool { true }

    func log(_ context: ProxyRequestContext) {
        // Kong's cjson output: slashes escaped.
        LogSerializer.appendKongLine(context, to: &held, layouts: &layouts)
        held.append(UInt8(ascii: "\n"))
        if held.count >= Self.heldLimit { writeHeld() }
    }

    func logBatchEnded() {
        writeHeld()
    }

    private func writeHeld() {
        guard !held.isEmpty else { return }
        if openIfNeeded() {
            held.withUnsafeBytes { bytes in
                LogLineWriter.write(lines: bytes, to: descriptor, wholeBatches: writesWholeBatches) { error in
                    ErrorLog.report("[file-log] failed to write to the file: \(String(cString: strerror(error))) \(path)")
                }
            }
        }
        // A burst's buffer is not kept: held lines of a quiet gateway fit in a few KB.
        if held.capacity > 4 * Self.heldLimit { held = [] } else { held.removeAll(keepingCapacity: true) }
    }

    private func openIfNeeded() -> Bool {
        guard descriptor < 0 || reopen else { return true }
        if descriptor >= 0 { close(descriptor) }
        descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard descriptor >= 0 else {
            ErrorLog.report("[file-log] failed to open the file: \(String(cString: strerror(errno))) \(path)")
            return false
        }
        writesWholeBatches = LogLineWriter.takesWholeBatches(descriptor)
        return true
    }
}
