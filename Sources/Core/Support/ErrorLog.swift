#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Errors that do not reach a client go to the gateway's error output (stderr), as Kong writes
/// them to its error log: one unbuffered write per line. Callers never include secrets (keys,
/// credentials) in the message.
public enum ErrorLog {
    /// Kong's (nginx's) `log_level` values, least severe first.
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case debug, info, notice, warn, error, crit, alert, emerg

        public init?(name: String) {
            guard let level = Self.allCases.first(where: { "\($0)" == name }) else { return nil }
            self = level
        }

        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    /// The least severe level written (Kong's default `log_level` is `notice`); set once at start.
    private static let threshold = Atomic<Int>(Level.notice.rawValue)

    public static func setLevel(_ level: Level) { threshold.store(level.rawValue, ordering: .relaxed) }

    public static var level: Level { Level(rawValue: threshold.load(ordering: .relaxed)) ?? .notice }

    /// Writes `message` when `level` is at least the node's `log_level`.
    public static func report(_ message: String, level: Level = .error) {
        guard level.rawValue >= threshold.load(ordering: .relaxed) else { return }
        var line = Array(message.utf8)
        line.append(UInt8(ascii: "\n"))
        line.withUnsafeBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
