import Core

/// DB-mode writes (spec §3.3): the body decoded with the schema's coercions, the DAO's Kong
/// semantics inside the database's write lane, one transaction in the store, then the proxy's
/// snapshot rebuilt (by the database's listener).
extension AdminAPI {
    /// The request body as fields, with `forcing` (a nested parent, a URL key) laid over it.
    /// `stored`: the entity a PATCH changes, whose subschema key (a plugin's name) picks the
    /// coercions when the body does not name one.
    func decodedBody(_ entity: String, request: AdminRequest, forcing: [String: JSONValue],
                     stored: JSONValue? = nil) -> Result<[String: JSONValue], RefusedRequest> {
        guard let schema = registry[entity] else { return .failure(RefusedRequest(response: .notFound)) }
        // `ttl` is an option of entities with a ttl, not a field: coerced as the integer it is.
        let coercion = schema.ttl ? schema.record.overriding(with: [("ttl", Field.integer)]) : schema.record
        var body: [String: JSONValue]
        do {
            body = try RequestBodyDecoder.decode(request) { schema.formCoercions(coercion, for: $0, stored: stored) }
        } catch {
            return .failure(RefusedRequest(response: bodyFailure(error)))
        }
        for (key, value) in forcing { body[key] = value }
        return .success(body)
    }

    /// One entity write: `decide` gets the DAO, the committed state and the decoded body; the
    /// answer is `status` with the stored entity, or Kong's error.
    func commit(_ entity: String, request: AdminRequest, forcing: [String: JSONValue] = [:], stored: JSONValue? = nil,
                status: Int, database: EntityDatabase,
                _ decide: @Sendable (EntityDAO, DeclarativeConfig, [String: JSONValue]) -> Result<EntityDAO.Write, KongError>)
        async -> AdminResponse {
        let body: [String: JSONValue]
        switch decodedBody(entity, request: request, forcing: forcing, stored: stored) {
        case .failure(let refused): return refused.response
        case .success(let decoded): body = decoded
        }
        let result = await database.write { dao, current in
            decide(dao, current, body).map { ($0.row, $0.changes) }
        }
        switch result {
        case .success(let row): return .json(status, output(row))
        case .failure(let error): return .error(error)
        }
    }

    /// `DELETE`: 204, also when something else removed it first.
    func remove(_ entity: String, row: JSONValue, database: EntityDatabase) async -> AdminResponse {
        guard let schema = registry[entity], let key = RowKey.of(row, schema: schema) else { return .noContent }
        let result = await database.write { dao, current in
            dao.delete(entity, key: key, in: current).map { ((), $0) }
        }
        if case .failure(let error) = result { return .error(error) }
        return .noContent
    }

    /// `PUT /A/{x}/f` when `f` is unset: creates the referenced entity and links it, in one
    /// transaction.
    func createAndLink(_ reference: String, child: String, childRow: JSONValue, field: String, request: AdminRequest,
                       database: EntityDatabase) async -> AdminResponse {
        guard let schema = registry[child], let childKey = RowKey.of(childRow, schema: schema) else { return .notFound }
        let registry = self.registry
        return await commit(reference, request: request, status: 200, database: database) { dao, current, body in
            dao.insert(reference, body, in: current).flatMap { parent in
                let withParent = current.applying(parent.changes, registry: registry)
                return dao.update(child, key: childKey, [field: ["id": parent.row["id"] ?? .null]], in: withParent)
                    .map { EntityDAO.Write(row: parent.row, changes: parent.changes + $0.changes) }
            }
        }
    }
}

/// A request refused before it reaches the database (its body could not be read).
struct RefusedRequest: Error {
    let response: AdminResponse
}

extension EntitySchema {
    /// The record a form body is coerced with: `base`, with the fields of the subschema the body
    /// names (or the stored entity, for a PATCH that does not) laid over it, so a plugin's
    /// `config.key_names=apikey` becomes key-auth's array and `config.reopen=true` file-log's
    /// boolean, as Kong decodes a form again once it knows the plugin.
    func formCoercions(_ base: RecordSchema, for assembled: [String: JSONValue], stored: JSONValue?) -> RecordSchema {
        var selector = assembled
        if let key = subschemaKey, selector[key] == nil, let named = stored?[key] { selector[key] = named }
        guard let subschema = subschema(for: selector) else { return base }
        return base.overriding(with: subschema.fields)
    }
}
