/// Kong's DAO for DB mode (spec §1.4, §1.7, §2.8, §3.3): turns one Admin API write into the
/// rows to store, or Kong's error object. Pure: it reads the current entities and returns the
/// changes; `EntityDatabase` commits them. Validation is the schema engine's; this type adds
/// what needs the other entities — reference resolution, uniqueness, delete rules.
public struct EntityDAO: Sendable {
    public let registry: EntityRegistry
    public var auto: AutoValueSource

    public init(registry: EntityRegistry, auto: AutoValueSource = .system) {
        self.registry = registry
        self.auto = auto
    }

    /// A validated write: the entity as stored, and every row change it makes.
    public struct Write: Sendable {
        public let row: JSONValue
        public let changes: [EntityChange]

        public init(row: JSONValue, changes: [EntityChange]) {
            self.row = row
            self.changes = changes
        }
    }

    // MARK: Insert, upsert, update

    /// `POST`: a new entity.
    public func insert(_ entity: String, _ input: [String: JSONValue], in current: DeclarativeConfig) -> Result<Write, KongError> {
        write(entity, input, context: .insert, replacing: nil, in: current)
    }

    /// `PUT /A/{key}`: create or replace. A UUID key is the id; any other key is the endpoint key's
    /// value, forced into the body (Kong ignores the body's own value).
    public func upsert(_ entity: String, key: String, _ input: [String: JSONValue],
                       in current: DeclarativeConfig) -> Result<Write, KongError> {
        guard let schema = registry[entity] else { return .failure(Self.unknownEntity(entity)) }
        var input = input
        let existing: JSONValue?
        if UUIDText.isValid(key) {
            input["id"] = .string(key)
            existing = current.rows(entity).first { $0["id"]?.stringValue == key }
        } else if let endpointKey = schema.endpointKey {
            input[endpointKey] = .string(key)
            existing = current.rows(entity).first { $0[endpointKey]?.stringValue == key }
            if let id = existing?["id"] { input["id"] = id }
        } else {
            return .failure(KongError(code: .invalidPrimaryKey, message: "invalid primary key: '{id=\"\(key)\"}'",
                                      fields: ["id": "expected a valid UUID"]))
        }
        // An upsert replaces the entity; it keeps only when it was created.
        if let createdAt = existing?["created_at"], input["created_at"] == nil { input["created_at"] = createdAt }
        return write(entity, input, context: .upsert, replacing: existing, in: current)
    }

    /// `PATCH` of the row stored under `key` (its id, or its references for memberships); Kong's
    /// code 6 when it is gone.
    public func update(_ entity: String, key: String, _ patch: [String: JSONValue],
                       in current: DeclarativeConfig) -> Result<Write, KongError> {
        guard let schema = registry[entity] else { return .failure(Self.unknownEntity(entity)) }
        guard let existing = current.row(entity, key: key, schema: schema) else {
            return .failure(KongError(code: .notFound, message: "could not find the entity with primary key '{id=\"\(key)\"}'",
                                      fields: ["id": .string(key)]))
        }
        return update(entity, existing: existing, patch, in: current)
    }

    /// `PATCH`: the stored entity merged with the body (records recursively; arrays, sets and
    /// maps replaced), then validated whole.
    public func update(_ entity: String, existing: JSONValue, _ patch: [String: JSONValue],
                       in current: DeclarativeConfig) -> Result<Write, KongError> {
        guard let schema = registry[entity] else { return .failure(Self.unknownEntity(entity)) }
        var patch = patch
        var ttl: JSONValue?
        if schema.ttl { ttl = patch.removeValue(forKey: "ttl") }
        var base = existing.objectValue ?? [:]
        base["ttl"] = nil
        var merged = merge(entity, base, with: patch)
        for field in schema.primaryKey { merged[field] = existing[field] }
        if let ttl { merged["ttl"] = ttl }
        return write(entity, merged, context: .upsert, replacing: existing,
                     keepingTTL: ttl == nil ? existing["ttl"] : nil, in: current)
    }

    private func write(_ entity: String, _ input: [String: JSONValue], context: WriteContext,
                       replacing existing: JSONValue?, keepingTTL kept: JSONValue? = nil,
                       in current: DeclarativeConfig) -> Result<Write, KongError> {
        guard let schema = registry[entity] else { return .failure(Self.unknownEntity(entity)) }
        var input = input
        var ttl: JSONValue?
        if schema.ttl { ttl = input.removeValue(forKey: "ttl") }
        if case .failure(let error) = resolveReferences(schema, &input, in: current) { return .failure(error) }
        if schema.name == "plugins", let error = protocolsMismatch(input, in: current) { return .failure(error) }

        var row: [String: JSONValue]
        switch schema.process(input, context: context, auto: auto) {
        case .success(let processed): row = processed
        case .failure(let errors): return .failure(.schemaViolation(errors))
        }
        if let ttl, !ttl.isNull {
            guard let seconds = ttl.intValue, KeyAuthCredentialSchema.ttlRange.contains(seconds) else {
                return .failure(.schemaViolation(ErrorRecord(fields: ["ttl": .message(KeyAuthCredentialSchema.ttlError)])))
            }
            // Stored relative to `created_at`, as the snapshot reads it; a new ttl counts from now.
            let createdAt = row["created_at"]?.intValue ?? auto.now()
            // Clamped to Kong's range, so an exported row always imports again.
            let relative = seconds == 0 ? 0 : min(KeyAuthCredentialSchema.ttlRange.upperBound, seconds + max(0, auto.now() - createdAt))
            row["ttl"] = .number(Double(relative))
        } else if let kept, !kept.isNull {
            row["ttl"] = kept
        }
        let stored = JSONValue.object(row)
        if let error = constraintViolation(schema, stored, replacing: existing, in: current) { return .failure(error) }
        return .success(Write(row: stored, changes: [.put(entity: entity, row: stored)]))
    }

    /// Kong resolves a reference given by its endpoint key (`{"name": "svc"}`) to its id before
    /// validating; a reference that resolves to nothing is `foreign keys unresolved` (code 13).
    private func resolveReferences(_ schema: EntitySchema, _ input: inout [String: JSONValue],
                                   in current: DeclarativeConfig) -> Result<Void, KongError> {
        for (field, reference) in schema.foreignKeys {
            guard case .object(let given)? = input[field], given["id"] == nil,
                  let parentSchema = registry[reference], let endpointKey = parentSchema.endpointKey,
                  let wanted = given[endpointKey]?.stringValue else { continue }
            if let id = current.rows(reference).first(where: { $0[endpointKey]?.stringValue == wanted })?["id"] {
                input[field] = ["id": id]
            } else {
                let detail = "the foreign key cannot be resolved with '{\(endpointKey)=\"\(wanted)\"}' for an existing '\(reference)' entity"
                return .failure(KongError(code: .foreignKeysUnresolved,
                                          message: "foreign key unresolved (\(field).\(endpointKey): \(detail))",
                                          fields: [field: [endpointKey: .string(detail)]]))
            }
        }
        return .success(())
    }

    /// Kong's `check_protocols_match` (DB mode, before the schema runs): a plugin's explicit
    /// `protocols` must share one with its route's, or, scoped to a service, with one of that
    /// service's routes (a service without routes passes). A route that does not exist is left to
    /// the reference check.
    private func protocolsMismatch(_ plugin: [String: JSONValue], in current: DeclarativeConfig) -> KongError? {
        guard let protocols = plugin["protocols"]?.arrayValue?.compactMap(\.stringValue) else { return nil }
        func shares(_ route: JSONValue) -> Bool {
            let routeProtocols = route["protocols"]?.arrayValue?.compactMap(\.stringValue) ?? []
            return protocols.contains(where: routeProtocols.contains)
        }
        func mismatch(_ message: String) -> KongError {
            .schemaViolation(ErrorRecord(fields: ["protocols": .message(message)]))
        }
        if let routeID = plugin["route"]?["id"]?.stringValue {
            guard let route = current.rows("routes").first(where: { $0["id"]?.stringValue == routeID }),
                  !shares(route) else { return nil }
            return mismatch("must match the associated route's protocols")
        }
        if let serviceID = plugin["service"]?["id"]?.stringValue {
            let routes = current.rows("routes").filter { $0["service"]?["id"]?.stringValue == serviceID }
            guard !routes.isEmpty, !routes.contains(where: shares) else { return nil }
            return mismatch("must match the protocols of at least one route pointing to this Plugin's service")
        }
        return nil
    }

    /// What the database would refuse, in Kong's words: primary key, unique fields, the
    /// plugin cache key, then references.
    private func constraintViolation(_ schema: EntitySchema, _ row: JSONValue, replacing existing: JSONValue?,
                                     in current: DeclarativeConfig) -> KongError? {
        let rows = current.rows(schema.name)
        let ownKey = existing.flatMap { RowKey.of($0, schema: schema) }
        let key = RowKey.of(row, schema: schema)
        let others = rows.filter { RowKey.of($0, schema: schema) != ownKey }
        if existing == nil, let key, others.contains(where: { RowKey.of($0, schema: schema) == key }) {
            if schema.primaryKey == ["id"] {
                return KongError(code: .primaryKeyViolation, message: "primary key violation on key '{id=\"\(key)\"}'",
                                 fields: ["id": .string(key)])
            }
            var parts: [String: JSONValue] = [:]
            for field in schema.primaryKey { parts[field] = row[field] ?? .null }
            return Self.uniqueViolation(.object(parts))
        }
        var uniqueFields = schema.uniqueFields
        if let endpointKey = schema.endpointKey, !uniqueFields.contains(endpointKey) { uniqueFields.insert(endpointKey, at: 0) }
        for field in uniqueFields {
            guard let value = row[field], !value.isNull else { continue }
            if others.contains(where: { $0[field] == value }) { return Self.uniqueViolation([field: value]) }
        }
        if schema.name == "plugins" {
            let scope = ["name", "route", "service", "consumer", "consumer_group"]
            func cacheKey(_ r: JSONValue) -> [JSONValue] { scope.map { r[$0] ?? .null } }
            if others.contains(where: { cacheKey($0) == cacheKey(row) }) {
                var parts: [String: JSONValue] = [:]
                for field in scope where field != "consumer_group" || !(row[field]?.isNull ?? true) {
                    parts[field] = row[field] ?? .null
                }
                return Self.uniqueViolation(.object(parts))
            }
        }
        for (field, reference) in schema.foreignKeys {
            guard let id = row[field]?["id"]?.stringValue else { continue }
            if !current.rows(reference).contains(where: { $0["id"]?.stringValue == id }) {
                return KongError(code: .foreignKeyViolation,
                                 message: "the foreign key '{id=\"\(id)\"}' does not reference an existing '\(reference)' entity.",
                                 fields: [field: ["id": .string(id)]])
            }
        }
        return nil
    }

    static func uniqueViolation(_ key: JSONValue) -> KongError {
        KongError(code: .uniqueViolation, message: "UNIQUE violation detected on '\(LuaLiteral.render(key))'", fields: key)
    }

    static func unknownEntity(_ entity: String) -> KongError {
        KongError(code: .notFound, message: "no entity named '\(entity)'")
    }

    // MARK: Delete

    /// `DELETE`: the entity and everything that cascades from it (children first), or Kong's
    /// error when a reference that does not cascade still points at it. Nothing to delete is
    /// no change (Kong's DELETE is idempotent).
    public func delete(_ entity: String, key: String, in current: DeclarativeConfig) -> Result<[EntityChange], KongError> {
        guard let schema = registry[entity] else { return .failure(Self.unknownEntity(entity)) }
        guard let row = current.row(entity, key: key, schema: schema) else { return .success([]) }
        var changes: [EntityChange] = []
        var visited: Set<String> = []
        if let error = collectDeletion(entity, row: row, key: key, into: &changes, visited: &visited, in: current) {
            return .failure(error)
        }
        return .success(changes)
    }

    private func collectDeletion(_ entity: String, row: JSONValue, key: String, into changes: inout [EntityChange],
                                 visited: inout Set<String>, in current: DeclarativeConfig) -> KongError? {
        guard visited.insert(entity + "\u{0}" + key).inserted else { return nil }
        let id = row["id"]
        for child in registry.orderedEntityNames {
            guard let childSchema = registry[child] else { continue }
            for (field, reference) in childSchema.foreignKeys where reference == entity {
                let cascades = childSchema.record.field(named: field)?.onDelete == "cascade"
                for childRow in current.rows(child) where id != nil && childRow[field]?["id"] == id {
                    guard cascades else {
                        return KongError(code: .foreignKeyViolation,
                                         message: "an existing '\(child)' entity references this '\(entity)' entity",
                                         fields: ["@referenced_by": .string(child)])
                    }
                    guard let childKey = RowKey.of(childRow, schema: childSchema) else { continue }
                    if let error = collectDeletion(child, row: childRow, key: childKey, into: &changes,
                                                   visited: &visited, in: current) { return error }
                }
            }
        }
        changes.append(.delete(entity: entity, key: key))
        return nil
    }

    // MARK: Merge

    /// Kong's `merge_values` as PATCH applies it: record fields (plugin `config` included) merge
    /// recursively; everything else — arrays, sets, maps, references — is replaced whole.
    public static func merge(_ base: [String: JSONValue], with top: [String: JSONValue],
                             record: RecordSchema) -> [String: JSONValue] {
        var out = base
        for (key, value) in top {
            if case .object(let baseChild)? = base[key], case .object(let topChild) = value,
               case .record(let childRecord)? = record.field(named: key)?.kind {
                out[key] = .object(merge(baseChild, with: topChild, record: childRecord))
            } else {
                out[key] = value
            }
        }
        return out
    }

    /// The merge for an entity: records as its effective schema (subschema included) has them.
    public func merge(_ entity: String, _ base: [String: JSONValue], with top: [String: JSONValue]) -> [String: JSONValue] {
        guard let schema = registry[entity] else { return base.merging(top) { _, new in new } }
        return Self.merge(base, with: top, record: schema.effectiveRecord(for: base))
    }
}

extension DeclarativeConfig {
    /// Rows of a DB-mode node: the store's rows as one configuration the gateway compiles.
    public init(storedRows: [String: [JSONValue]]) {
        self.init(formatVersion: "3.0", transform: false, entities: storedRows)
    }

    /// The row of `entity` stored under `key` (see `RowKey`).
    public func row(_ entity: String, key: String, schema: EntitySchema) -> JSONValue? {
        rows(entity).first { RowKey.of($0, schema: schema) == key }
    }

    /// This configuration with `changes` applied: puts replace the row with the same key in
    /// place (or append), deletes remove it.
    public func applying(_ changes: [EntityChange], registry: EntityRegistry) -> DeclarativeConfig {
        var entities = self.entities
        for change in changes {
            guard let schema = registry[change.entity] else { continue }
            switch change {
            case .put(let entity, let row):
                let key = RowKey.of(row, schema: schema)
                if let at = entities[entity]?.firstIndex(where: { RowKey.of($0, schema: schema) == key }) {
                    entities[entity]![at] = row
                } else {
                    entities[entity, default: []].append(row)
                }
            case .delete(let entity, let key):
                entities[entity]?.removeAll { RowKey.of($0, schema: schema) == key }
            }
        }
        return DeclarativeConfig(formatVersion: formatVersion, transform: transform, entities: entities)
    }
}
