import Core
import Plugins
import Testing

/// Every bundled plugin enabled, as a database-backed node with `plugins = bundled` has them.
let registry = EntityRegistry(plugins: BundledPlugins.all, dbless: false)

/// A consumer reference, for scope tests.
let someConsumer: JSONValue = ["id": "6e2a4b8c-1f3d-4a5b-9c7d-0e1f2a3b4c5d"]

/// Runs a plugin entity through the real write path (subschema selection, defaults, validation).
func processPlugin(_ name: String, config: JSONValue?, extra: [String: JSONValue] = [:])
    -> Result<[String: JSONValue], ErrorRecord>
{
    var input: [String: JSONValue] = ["name": .string(name)]
    if let config { input["config"] = config }
    for (key, value) in extra { input[key] = value }
    return registry["plugins"]!.process(input, context: .insert)
}

/// `base` with `patch` merged in: objects merge recursively, anything else (null included) replaces.
func merging(_ base: JSONValue, _ patch: JSONValue) -> JSONValue {
    guard case .object(var result) = base, case .object(let changes) = patch else { return patch }
    for (key, value) in changes {
        if let existing = result[key], case .object = existing, case .object = value {
            result[key] = merging(existing, value)
        } else {
            result[key] = value
        }
    }
    return .object(result)
}

/// Dotted lookup through objects and (0-based) arrays: `config.llm_providers.0.name`, `config.@entity`.
func lookup(_ value: JSONValue, _ path: String) -> JSONValue? {
    var current = value
    for part in path.split(separator: ".").map(String.init) {
        switch current {
        case .object(let members):
            guard let next = members[part] else { return nil }
            current = next
        case .array(let items):
            guard let index = Int(part), items.indices.contains(index) else { return nil }
            current = items[index]
        default:
            return nil
        }
    }
    return current
}

/// The processed entity, or a recorded issue.
func expectValid(_ result: Result<[String: JSONValue], ErrorRecord>,
                 sourceLocation: SourceLocation = #_sourceLocation) -> JSONValue? {
    switch result {
    case .success(let entity):
        return .object(entity)
    case .failure(let errors):
        Issue.record("expected a valid entity, got \(errors.json.serialized())", sourceLocation: sourceLocation)
        return nil
    }
}

/// Each path of the error tree holds the message: equal to a field error, or one of an
/// `@entity` list.
func expectErrors(_ result: Result<[String: JSONValue], ErrorRecord>, _ expected: [String: String],
                  sourceLocation: SourceLocation = #_sourceLocation) {
    guard case .failure(let errors) = result else {
        Issue.record("expected a schema violation, got a valid entity", sourceLocation: sourceLocation)
        return
    }
    let tree = errors.json
    for path in expected.keys.sorted() {
        let message = expected[path]!
        switch lookup(tree, path) {
        case .string(let actual)?:
            #expect(actual == message, "at \(path) in \(tree.serialized())", sourceLocation: sourceLocation)
        case .array(let items)?:
            #expect(items.contains(.string(message)), "at \(path) in \(tree.serialized())",
                    sourceLocation: sourceLocation)
        default:
            Issue.record("no error at \(path) (wanted \"\(message)\") in \(tree.serialized())",
                         sourceLocation: sourceLocation)
        }
    }
}

/// One configuration case: a patch over the plugin's minimal valid config and, for invalid ones,
/// the errors (path in the error tree → Kong's message) it must produce.
struct ConfigCase: Sendable, CustomTestStringConvertible {
    let label: String
    let patch: JSONValue
    let expected: [String: String]

    init(_ label: String, _ patch: JSONValue, _ expected: [String: String]) {
        self.label = label
        self.patch = patch
        self.expected = expected
    }

    var testDescription: String { label }
}

/// A default value the processed entity must hold (path from the plugin entity).
struct DefaultValue: Sendable, CustomTestStringConvertible {
    let path: String
    let value: JSONValue

    init(_ path: String, _ value: JSONValue) {
        self.path = path
        self.value = value
    }

    var testDescription: String { path }
}
