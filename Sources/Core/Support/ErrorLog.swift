#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors that do not reach a client go to the gateway's error output (stderr), as Kong writes
/// them to its error log: one unbuffered write per line. Callers never include secrets (keys,
/// credentials) in the message.
public enum ErrorLog {
    public static func report(_ message: String) {
        var line = Array(message.utf8)
        line.append(UInt8(ascii: "\n"))
        line.withUnsafeBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
