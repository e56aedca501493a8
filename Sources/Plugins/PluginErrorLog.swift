#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Plugin errors go to the gateway's error output (stderr), as Kong writes them to its error log.
/// Callers never include secrets (keys, credentials) in the message.
enum PluginErrorLog {
    static func report(_ message: String) {
        var line = Array(message.utf8)
        line.append(UInt8(ascii: "\n"))
        line.withUnsafeBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
