import Foundation

/// Loads Kong's declarative configuration (`_format_version` 1.1 / 2.1 / 3.0): flattens nested
/// entities, generates Kong's deterministic ids, resolves references, validates every entity and
/// checks uniqueness. The whole document is validated before anything is returned; any error
/// rejects it whole.
public struct DeclarativeLoader: Sendable {
    public let registry: EntityRegistry
    public var auto: AutoValueSource

    public init(registry: EntityRegistry, auto: AutoValueSource = .system) {
        self.registry = registry
        self.auto = auto
    }

    public static let formatVersions = ["1.1", "2.1", "3.0"]

    /// Entity types Kong knows that Silverback does not manage (yet): refused with a clear message
    /// rather than Kong's generic `unknown field`.
    static let unsupportedKongEntities: Set<String> = [
        "certificates", "snis", "ca_certificates", "upstreams", "targets", "vaults", "keys", "key_sets",
        "filter_chains", "workspaces", "parameters", "basicauth_credentials", "acls", "jwt_secrets",
        "hmacauth_credentials", "oauth2_credentials", "consumer_group_plugins",
    ]

    /// Reads and loads a file; the format follows the extension, as in Kong.
    public func load(path: String) throws(DeclarativeLoadError) -> DeclarativeConfig {
        guard let format = DocumentFormat.forPath(path) else {
            throw .unreadable("unknown file type: \(path). (Accepted types: json, yaml)")
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw .unreadable("cannot read declarative config file \(path): \(error.localizedDescription)")
        }
        return try load(text: text, format: format)
    }

    public func load(text: String, format: DocumentFormat) throws(DeclarativeLoadError) -> DeclarativeConfig {
        let document: JSONValue
        do { document = try DocumentReader.read(text, format: format) } catch { throw .unreadable(error.message) }
        switch load(document) {
        case .success(let config): return config
        case .failure(let error): throw .invalid(error)
        }
    }

    /// Text without a file name (`DocumentReader.read(unnamed:)`).
    public func load(unnamed text: String) throws(DeclarativeLoadError) -> DeclarativeConfig {
        let document: JSONValue
        do { document = try DocumentReader.read(unnamed: text) } catch { throw .unreadable(error.message) }
        switch load(document) {
        case .success(let config): return config
        case .failure(let error): throw .invalid(error)
        }
    }

    public func load(_ document: JSONValue) -> Result<DeclarativeConfig, DeclarativeError> {
        var run = LoadRun(loader: self)
        return run.execute(document)
    }
}

public enum DeclarativeLoadError: Error, Sendable, Equatable {
    /// The file could not be read or parsed (not JSON/YAML, unknown extension).
    case unreadable(String)
    case invalid(DeclarativeError)
}

/// The validated, fully-resolved result: each entity type's rows in input order, foreign keys as
/// `{"id": ...}`, defaults filled. Immutable; later layers compile it into router and chains.
public struct DeclarativeConfig: Sendable, Equatable {
    public let formatVersion: String
    public let transform: Bool
    /// Entity name → rows (objects), in document order (parents before nested children).
    public let entities: [String: [JSONValue]]

    public func rows(_ entity: String) -> [JSONValue] { entities[entity] ?? [] }
}

/// One entity found in the document, with where it came from.
private struct EntityInput {
    enum Step { case key(String), index(Int) }

    let type: String
    var fields: [String: JSONValue]
    /// As given, nested child arrays removed: what flattened errors echo back.
    let original: [String: JSONValue]
    let path: [Step]
    let parent: Int?
    let linkField: String?
    var id: String?
    var ttl: JSONValue?
    /// Field errors found while the entity was collected (a nested child list that is not a
    /// list, a mistyped `_comment`): its own errors, beside the schema's.
    var collectErrors: [String: FieldError] = [:]
}

private struct LoadRun {
    let loader: DeclarativeLoader
    var inputs: [EntityInput] = []
    var documentErrors = ErrorRecord()
    /// `_transform` (default true).
    var transform = true
    /// Errors per input index.
    var schemaErrors: [Int: ErrorRecord] = [:]
    /// Positional messages (duplicates of primary/endpoint key) per input index.
    var positionalMessages: [Int: String] = [:]
    /// Keyed messages (references, other unique fields) per input index.
    var keyedMessages: [Int: [String]] = [:]
    /// The entities among `keyedMessages` with a reference error: Kong lists those (`insert`),
    /// where a lone uniqueness message is a string.
    var hasReferenceErrors: Set<Int> = []

    init(loader: DeclarativeLoader) { self.loader = loader }

    var registry: EntityRegistry { loader.registry }

    mutating func execute(_ document: JSONValue) -> Result<DeclarativeConfig, DeclarativeError> {
        guard case .object(var top) = document else {
            documentErrors.entity.append("expected an object")
            return .failure(makeError())
        }
        let version = readHeader(&top)
        if let version, version != "3.0" { migrateRoutePaths(&top) }
        for key in top.keys.sorted() {
            collectTopLevel(key: key, value: top[key]!)
        }
        resolveReferences()
        checkUniqueness()
        validateEntities()
        if !documentErrors.isEmpty || !schemaErrors.isEmpty || !positionalMessages.isEmpty || !keyedMessages.isEmpty {
            return .failure(makeError())
        }
        var entities: [String: [JSONValue]] = [:]
        for input in inputs {
            var row = input.fields
            if let ttl = input.ttl { row["ttl"] = ttl }
            entities[input.type, default: []].append(.object(row))
        }
        return .success(DeclarativeConfig(formatVersion: version ?? "3.0", transform: transform, entities: entities))
    }

    // MARK: Document header

    mutating func readHeader(_ top: inout [String: JSONValue]) -> String? {
        var version: String?
        switch top.removeValue(forKey: "_format_version") {
        case nil, .null?: documentErrors["_format_version"] = .message("required field missing")
        case .string(let v)?:
            if DeclarativeLoader.formatVersions.contains(v) { version = v } else {
                documentErrors["_format_version"] = .message("expected one of: 1.1, 2.1, 3.0")
            }
        case .some: documentErrors["_format_version"] = .message("expected a string")
        }
        if let t = top.removeValue(forKey: "_transform"), !t.isNull {
            if let flag = t.boolValue { transform = flag } else { documentErrors["_transform"] = .message("expected a boolean") }
        }
        if let c = top.removeValue(forKey: "_comment"), !c.isNull, c.stringValue == nil {
            documentErrors["_comment"] = .message("expected a string")
        }
        if let w = top.removeValue(forKey: "_workspace"), !w.isNull, w.stringValue == nil {
            documentErrors["_workspace"] = .message("expected a string")
        }
        if let i = top.removeValue(forKey: "_ignore"), !i.isNull, i.arrayValue == nil {
            documentErrors["_ignore"] = .message("expected an array")
        }
        return version
    }

    /// Format 1.1/2.1 routes: plain paths are normalised, anything else was a regex and gets `~`.
    func migrateRoutePaths(_ top: inout [String: JSONValue]) {
        func migrate(_ route: JSONValue) -> JSONValue {
            guard case .object(var r) = route, case .array(let paths)? = r["paths"] else { return route }
            r["paths"] = .array(paths.map { p in
                guard let s = p.stringValue, !s.hasPrefix("~") else { return p }
                let plain = s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || ".-_~/%".contains($0)) }
                return .string(plain ? PathSyntax.normalize(s) : "~" + s)
            })
            return .object(r)
        }
        if case .array(let routes)? = top["routes"] { top["routes"] = .array(routes.map(migrate)) }
        if case .array(let services)? = top["services"] {
            top["services"] = .array(services.map { service in
                guard case .object(var s) = service, case .array(let routes)? = s["routes"] else { return service }
                s["routes"] = .array(routes.map(migrate))
                return .object(s)
            })
        }
    }

    // MARK: Flattening

    mutating func collectTopLevel(key: String, value: JSONValue) {
        guard registry[key] != nil else {
            documentErrors[key] = .message(DeclarativeLoader.unsupportedKongEntities.contains(key)
                ? "entity type '\(key)' is not supported by Silverback" : "unknown field")
            return
        }
        guard case .array(let items) = value else {
            if !value.isNull { documentErrors[key] = .message("expected an array") }
            return
        }
        collect(type: key, items: items, path: [.key(key)], parent: nil, linkField: nil)
    }

    /// Child entity types that may nest inside `type`, with the field linking them to it.
    func nestedChildren(of type: String) -> [(child: String, link: String)] {
        registry.orderedEntityNames.compactMap { name in
            guard let schema = registry[name],
                  let link = schema.foreignKeys.first(where: { $0.reference == type })?.field else { return nil }
            return (name, link)
        }
    }

    mutating func collect(type: String, items: [JSONValue], path: [EntityInput.Step], parent: Int?, linkField: String?) {
        let schema = registry[type]!
        let children = nestedChildren(of: type)
        for (position, item) in items.enumerated() {
            let itemPath = path + [.index(position)]
            guard case .object(var fields) = item else {
                placeMessage("expected a record", at: itemPath)
                continue
            }
            var collectErrors: [String: FieldError] = [:]
            // Kong's metaschema types them on every entity, as at the top level.
            if let comment = fields.removeValue(forKey: "_comment"), !comment.isNull, comment.stringValue == nil {
                collectErrors["_comment"] = .message("expected a string")
            }
            if let ignore = fields.removeValue(forKey: "_ignore"), !ignore.isNull, ignore.arrayValue == nil {
                collectErrors["_ignore"] = .message("expected an array")
            }
            if fields["id"] == .null { fields["id"] = nil }  // an explicit null id asks for a generated one
            var nested: [(type: String, link: String, items: [JSONValue])] = []
            for (child, link) in children {
                guard let value = fields.removeValue(forKey: child) else { continue }
                guard case .array(let childItems) = value else {
                    if !value.isNull { collectErrors[child] = .message("expected an array") }
                    continue
                }
                nested.append((child, link, childItems))
            }
            // decK's spellings of consumer-group membership.
            var memberships: [JSONValue] = []
            if type == "consumers", let groups = fields.removeValue(forKey: "groups"), !groups.isNull {
                if groups.arrayValue == nil { collectErrors["groups"] = .message("expected an array") }
                for group in groups.arrayValue ?? [] {
                    let ref = group.stringValue.map(JSONValue.string) ?? group["name"] ?? group["id"] ?? .null
                    memberships.append(["consumer_group": ref])
                }
            }
            if type == "consumer_groups", let consumers = fields.removeValue(forKey: "consumers"), !consumers.isNull {
                if consumers.arrayValue == nil { collectErrors["consumers"] = .message("expected an array") }
                for consumer in consumers.arrayValue ?? [] {
                    let ref = consumer.stringValue.map(JSONValue.string) ?? consumer["username"] ?? consumer["id"] ?? .null
                    memberships.append(["consumer": ref])
                }
            }
            var original = fields
            var ttl: JSONValue?
            if schema.ttl { ttl = fields.removeValue(forKey: "ttl") }
            if let parent, let linkField, let parentID = inputs[parent].id, UUIDText.isValid(parentID) {
                original[linkField] = ["id": .string(parentID)]
            }
            let index = inputs.count
            inputs.append(EntityInput(type: type, fields: fields, original: original, path: itemPath,
                                      parent: parent, linkField: linkField,
                                      id: fields["id"]?.stringValue, ttl: ttl, collectErrors: collectErrors))
            assignID(index)
            for (child, link, childItems) in nested {
                collect(type: child, items: childItems, path: itemPath + [.key(child)], parent: index, linkField: link)
            }
            if !memberships.isEmpty {
                let link = type == "consumers" ? "consumer" : "consumer_group"
                collect(type: "consumer_group_consumers", items: memberships,
                        path: itemPath + [.key(type == "consumers" ? "groups" : "consumers")], parent: index, linkField: link)
            }
        }
    }

    // MARK: Ids (spec §5.4)

    static let namespace = "fd02801f-0957-4a15-a55a-c8d9606f30b5"
    /// Stands in for a reference that could not be resolved (already reported).
    static let unresolvedID = "00000000-0000-0000-0000-000000000000"

    /// Deterministic id for an entity without one; parents are assigned before their children.
    mutating func assignID(_ index: Int) {
        let input = inputs[index]
        let schema = registry[input.type]!
        guard schema.primaryKey == ["id"], input.fields["id"] == nil else { return }
        var key: String?
        if let cacheKey = schema.cacheKey {
            var parts: [String] = []
            var complete = true
            for name in cacheKey {
                let field = schema.record.field(named: name)
                // An auto-generated cache-key field (a credential's secret key) never feeds an id:
                // the id would be a hash of the secret, and Kong sends ids upstream.
                if field?.auto == true { complete = false; break }
                switch input.fields[name] {
                case .string(let s)?: parts.append(s)
                case nil, .null?:
                    if name == input.linkField, let parent = input.parent, let parentID = inputs[parent].id {
                        parts.append(parentID)
                    } else if field?.isRequired == true {
                        complete = false
                    } else {
                        parts.append("")
                    }
                default: parts.append("")
                }
            }
            // Silverback adds the consumer group to the plugin cache key only when set, so ids of
            // plugins without a group are exactly Kong's (see docs/decisions.md).
            if input.type == "plugins", let group = input.fields["consumer_group"]?.stringValue {
                parts.append(group)
            } else if input.type == "plugins", input.linkField == "consumer_group",
                      let parent = input.parent, let parentID = inputs[parent].id {
                parts.append(parentID)
            }
            if complete { key = "\(input.type):*:" + parts.joined(separator: ":") }
        } else if let endpointKey = schema.endpointKey, let value = input.fields[endpointKey]?.stringValue {
            key = value
        }
        let id: String
        if let key {
            id = NameBasedUUID.v5(namespace: NameBasedUUID.v5(namespace: Self.namespace, name: input.type), name: key)
        } else {
            id = loader.auto.uuid()
        }
        inputs[index].id = id
        inputs[index].fields["id"] = .string(id)
    }

    // MARK: Uniqueness and references (spec §5.3)

    /// The key under which Kong reports keyed errors: endpoint key value, else id. Nil for an
    /// entity with neither (a membership): its errors are reported at its place in the input.
    func displayKey(_ input: EntityInput) -> String? {
        if let ek = registry[input.type]?.endpointKey, let v = input.fields[ek]?.stringValue { return v }
        return input.id
    }

    mutating func checkUniqueness() {
        var seen: [String: [String: Int]] = [:]  // "<type>\u{0}<field>" → value → first index
        for (index, input) in inputs.enumerated() {
            let schema = registry[input.type]!
            var keys: [(field: String, label: String, positional: Bool)] = []
            if let ek = schema.endpointKey { keys.append((ek, ek, true)) }
            if schema.primaryKey == ["id"] { keys.append(("id", "primary key", true)) }
            for f in schema.uniqueFields where f != schema.endpointKey { keys.append((f, f, false)) }
            if schema.primaryKey.count > 1 { keys.append(("@pk", "primary key", true)) }
            let foreignNames = Set(schema.foreignKeys.map(\.field))
            if let cacheKey = schema.cacheKey, cacheKey.contains(where: foreignNames.contains) {
                keys.append(("@cache_key", "cache key", true))
            }
            for (field, label, positional) in keys {
                let value: String
                if field == "@cache_key" {
                    // Same plugin, same scope: the entity's cache key (plus its consumer group) once
                    // references are resolved, shown as Kong shows cache keys.
                    var parts: [String: JSONValue] = [:]
                    for name in (schema.cacheKey ?? []) + (foreignNames.contains("consumer_group") ? ["consumer_group"] : []) {
                        parts[name] = input.fields[name] ?? .null
                    }
                    // A reference that did not resolve is reported as such; two of them must not
                    // also read as one scope declared twice.
                    guard !parts.values.contains(where: { $0["id"]?.stringValue == Self.unresolvedID }) else { continue }
                    value = LuaLiteral.render(.object(parts))
                } else if field == "@pk" {
                    // Composite keys are foreign keys, compared once resolved to ids.
                    let ids = schema.primaryKey.compactMap { input.fields[$0]?["id"]?.stringValue }
                    guard ids.count == schema.primaryKey.count, !ids.contains(Self.unresolvedID) else { continue }
                    value = ids.joined(separator: ":")
                } else {
                    guard let v = input.fields[field], !v.isNull, v.stringValue != nil else { continue }
                    value = v.luaText
                }
                let bucket = "\(input.type)\u{0}\(field)"
                if seen[bucket]?[value] != nil {
                    let message = "uniqueness violation: '\(input.type)' entity with \(label) set to '\(value)' already declared"
                    if positional { positionalMessages[index] = positionalMessages[index] ?? message }
                    else { keyedMessages[index, default: []].append(message) }
                } else {
                    seen[bucket, default: [:]][value] = index
                }
            }
        }
    }

    mutating func resolveReferences() {
        // Index every entity by id and by endpoint key.
        var byID: [String: Set<String>] = [:]
        var byEndpoint: [String: [String: String]] = [:]
        for input in inputs {
            if let id = input.id { byID[input.type, default: []].insert(id) }
            if let ek = registry[input.type]?.endpointKey, let v = input.fields[ek]?.stringValue, let id = input.id {
                byEndpoint[input.type, default: [:]][v] = byEndpoint[input.type]?[v] ?? id
            }
        }
        for index in inputs.indices {
            let schema = registry[inputs[index].type]!
            for (field, reference) in schema.foreignKeys {
                if field == inputs[index].linkField {
                    let parentID = inputs[index].parent.flatMap { inputs[$0].id }
                    inputs[index].fields[field] = parentID.map { ["id": .string($0)] } ?? .null
                    continue
                }
                guard let value = inputs[index].fields[field], !value.isNull else { continue }
                let wanted: String?
                switch value {
                case .string(let s): wanted = s
                case .object(let o): wanted = o["id"]?.stringValue
                default: wanted = nil
                }
                guard let wanted else { continue }  // wrong shape: the schema reports it
                if let id = byID[reference]?.contains(wanted) == true ? wanted : byEndpoint[reference]?[wanted] {
                    inputs[index].fields[field] = ["id": .string(id)]
                } else {
                    let shown = value.stringValue ?? value.serialized()
                    keyedMessages[index, default: []].append(
                        "invalid reference '\(field): \(shown)' (no such entry in '\(reference)')")
                    hasReferenceErrors.insert(index)
                    // A well-formed placeholder keeps the schema from reporting the same problem twice.
                    inputs[index].fields[field] = ["id": .string(Self.unresolvedID)]
                }
            }
        }
    }

    // MARK: Validation

    mutating func validateEntities() {
        let now = loader.auto.now()
        let auto = AutoValueSource(now: { now }, uuid: loader.auto.uuid, randomString: loader.auto.randomString)
        for index in inputs.indices {
            let schema = registry[inputs[index].type]!
            switch schema.process(inputs[index].fields, context: .insert, auto: auto) {
            case .success(var stored):
                // A document that carries `updated_at` (an export being restored) keeps it, so an
                // export imported again exports identically; the schema stamps it otherwise.
                if let given = inputs[index].fields["updated_at"], given.intValue != nil { stored["updated_at"] = given }
                inputs[index].fields = stored
            case .failure(let errors): schemaErrors[index] = errors
            }
            for (field, error) in inputs[index].collectErrors { schemaErrors[index, default: ErrorRecord()][field] = error }
            if let ttl = inputs[index].ttl, !ttl.isNull {
                if let seconds = ttl.intValue, KeyAuthCredentialSchema.ttlRange.contains(seconds) { continue }
                schemaErrors[index, default: ErrorRecord()]["ttl"] = .message(KeyAuthCredentialSchema.ttlError)
            }
        }
    }

    // MARK: Error assembly

    mutating func placeMessage(_ message: String, at path: [EntityInput.Step]) {
        var root = FieldError.record(documentErrors)
        root = Self.place(.message(message), at: path[...], in: root)
        if case .record(let r) = root { documentErrors = r }
    }

    static func place(_ error: FieldError, at path: ArraySlice<EntityInput.Step>, in node: FieldError?) -> FieldError {
        guard let step = path.first else { return merge(error, into: node) }
        switch step {
        case .key(let k):
            var record: ErrorRecord
            if case .record(let r)? = node { record = r } else { record = ErrorRecord() }
            record.fields[k] = place(error, at: path.dropFirst(), in: record.fields[k])
            return .record(record)
        case .index(let i):
            var list: [Int: FieldError]
            if case .list(let l)? = node { list = l } else { list = [:] }
            list[i] = place(error, at: path.dropFirst(), in: list[i])
            return .list(list)
        }
    }

    static func merge(_ new: FieldError, into existing: FieldError?) -> FieldError {
        switch (new, existing) {
        case (.record(let a), .record(let b)?):
            var merged = b
            merged.entity += a.entity
            for (k, v) in a.fields { merged.fields[k] = merge(v, into: b.fields[k]) }
            return .record(merged)
        case (.list(let a), .list(let b)?):
            var merged = b
            for (k, v) in a { merged[k] = merge(v, into: b[k]) }
            return .list(merged)
        default:
            return new
        }
    }

    func makeError() -> DeclarativeError {
        var tree = FieldError.record(documentErrors)
        var flattened: [(type: String, order: Int, item: FlattenedEntityError)] = []
        var keyedByType: [String: [String: FieldError]] = [:]
        for (index, input) in inputs.enumerated() {
            var own = schemaErrors[index] ?? ErrorRecord()
            if let message = positionalMessages[index] {
                own.entity.append(message)
                // Alone, the message is the entry (Kong's `[2]="uniqueness violation…"`); with the
                // entity's schema errors it joins them under `@entity`, so neither hides the other.
                tree = Self.place(own.fields.isEmpty && own.entity.count == 1 ? .message(message) : .record(own),
                                  at: input.path[...], in: tree)
            } else if !(schemaErrors[index]?.isEmpty ?? true) {
                tree = Self.place(.record(schemaErrors[index]!), at: input.path[...], in: tree)
            }
            if let messages = keyedMessages[index], !messages.isEmpty {
                if let key = displayKey(input) {
                    keyedByType[input.type, default: [:]][key] = messages.count == 1 && !hasReferenceErrors.contains(index)
                        ? .message(messages[0])
                        : .list(Dictionary(uniqueKeysWithValues: messages.enumerated().map { ($0.offset, .message($0.element)) }))
                } else {
                    tree = Self.place(.record(ErrorRecord(entity: messages)), at: input.path[...], in: tree)
                }
                own.entity += messages
            }
            if !own.isEmpty {
                let singular = registry[input.type]!.singularName
                flattened.append((singular, index, FlattenedEntityError(
                    entityType: singular, entity: .object(input.original),
                    errors: FlattenedEntityError.items(from: own))))
            }
        }
        for (type, keyed) in keyedByType {
            guard case .record(var root) = tree else { continue }
            switch root.fields[type] {
            case nil, .record?:
                root.fields[type] = Self.merge(.record(ErrorRecord(fields: keyed)), into: root.fields[type])
                tree = .record(root)
            default:
                // Positional errors already hold this key: report keyed ones at their entity's place.
                for (index, input) in inputs.enumerated() where input.type == type {
                    guard let messages = keyedMessages[index], !messages.isEmpty else { continue }
                    tree = Self.place(.record(ErrorRecord(entity: messages)), at: input.path[...], in: tree)
                }
            }
        }
        let record: ErrorRecord
        if case .record(let r) = tree { record = r } else { record = documentErrors }
        let ordered = flattened.sorted { ($0.type, $0.order) < ($1.type, $1.order) }.map(\.item)
        return DeclarativeError(tree: record, entityErrors: ordered, documentErrors: documentErrors)
    }
}
