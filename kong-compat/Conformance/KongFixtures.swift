import Foundation
import Testing

/// Kong's own ai-proxy fixtures (Apache-2.0), read in place from `../shared/kong-fixtures` next to
/// the repository; never copied into it. Suites that need them are disabled, with this reason
/// shown, when the folder is absent.
enum KongFixtures {
    /// `<repo>/../shared/kong-fixtures/ai-proxy`, or `SILVERBACK_KONG_FIXTURES` when set.
    static let root: URL = {
        if let custom = ProcessInfo.processInfo.environment["SILVERBACK_KONG_FIXTURES"] {
            return URL(fileURLWithPath: custom).appendingPathComponent("ai-proxy")
        }
        let repository = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // Conformance
            .deletingLastPathComponent()  // kong-compat
            .deletingLastPathComponent()  // repository
        return repository.deletingLastPathComponent()
            .appendingPathComponent("shared/kong-fixtures/ai-proxy")
    }()

    static var available: Bool { FileManager.default.fileExists(atPath: root.path) }

    static let missingReason: Comment =
        "Kong's fixtures are not at ../shared/kong-fixtures (or $SILVERBACK_KONG_FIXTURES): conformance cases skipped"

    /// The bytes of `ai-proxy/<relative>`.
    static func data(_ relative: String) throws -> Data {
        try Data(contentsOf: root.appendingPathComponent(relative))
    }

    static func text(_ relative: String) throws -> String {
        String(decoding: try data(relative), as: UTF8.self)
    }
}
