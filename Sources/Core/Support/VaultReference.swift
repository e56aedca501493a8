import Foundation

/// Kong's secret references in `referenceable` fields: `{vault://env/<name>}` reads the process
/// environment variable named by `<name>` upper-cased with `-` turned into `_` (Kong's `env`
/// vault), optionally `{vault://env/<name>/<key>}` for a JSON object variable's key. Other vault
/// backends are not available; their references resolve to nil.
public enum VaultReference {
    /// Whether `value` is a reference: referenceable fields accept it without running their
    /// validators; at run time it must resolve, or the value is unusable.
    public static func isReference(_ value: String) -> Bool {
        value.hasPrefix("{vault://") && value.hasSuffix("}") && value.utf8.count > "{vault://}".utf8.count
    }

    /// The referenced secret, the value itself when it is no reference, nil when unresolvable.
    public static func resolve(_ value: String, environment: [String: String]) -> String? {
        guard isReference(value) else { return value }
        let inner = value.dropFirst("{vault://".count).dropLast()
        let parts = inner.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "env", !parts[1].isEmpty else { return nil }
        let variable = parts[1].uppercased().replacingOccurrences(of: "-", with: "_")
        guard let secret = environment[variable] else { return nil }
        guard parts.count >= 3 else { return secret }
        guard case .object(let object)? = try? JSONValue.parse(secret) else { return nil }
        return object[String(parts[2])]?.stringValue
    }
}
