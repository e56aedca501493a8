import Core
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `/status`'s `memory` (Kong's `kong.node.get_memory_stats`). Silverback has one process and no
/// Lua VM: its one "worker" reports the process's resident memory as `http_allocated_gc`, and
/// there are no `lua_shared_dicts`.
enum MemoryReport {
    /// Kong's `bytes_to_str` unit and scale: `b` (numbers), `k`/`m`/`g` (strings with `KiB`…).
    struct Units {
        let divisor: Double?
        let suffix: String
        let scale: Int
    }

    /// The query's `unit` (default `m`) and `scale` (default 2; not a number: the default), or
    /// Kong's 400 message.
    static func units(unit: String?, scale: String?) -> Result<Units, StatusError> {
        let unit = unit ?? "m"
        let digits = scale.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) } ?? 2
        let lower = unit.lowercased()
        if lower.isEmpty || lower == "b" { return .success(Units(divisor: nil, suffix: "", scale: 0)) }
        guard digits >= 0 else { return .failure(StatusError(message: "scale must be equal or greater than 0")) }
        // Lua's `%.<n>f` takes the integer part; a precision past 99 is refused by its format.
        let scale = Int(min(digits, 99))
        switch lower {
        case "k": return .success(Units(divisor: 1024, suffix: " KiB", scale: scale))
        case "m": return .success(Units(divisor: 1024 * 1024, suffix: " MiB", scale: scale))
        case "g": return .success(Units(divisor: 1024 * 1024 * 1024, suffix: " GiB", scale: scale))
        default: return .failure(StatusError(message: "invalid unit '\(unit)' (expected 'k/K', 'm/M', or 'g/G')"))
        }
    }

    struct StatusError: Error {
        let message: String
    }

    static func current(in units: Units) -> JSONValue {
        [
            "workers_lua_vms": [["http_allocated_gc": value(allocatedBytes(), in: units), "pid": .number(Double(getpid()))]],
            "lua_shared_dicts": .object([:]),
        ]
    }

    static func value(_ bytes: Int, in units: Units) -> JSONValue {
        guard let divisor = units.divisor else { return .number(Double(bytes)) }
        return .string(String(format: "%.\(units.scale)f", Double(bytes) / divisor) + units.suffix)
    }

    /// The process's resident memory (`/proc/self/statm`'s second field, in pages): what the
    /// gateway holds, its heap included. 0 where there is no `/proc`.
    static func allocatedBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
