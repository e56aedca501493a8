import Core

/// DB-mode writes (spec §3.3): the body decoded with the schema's coercions, the DAO's Kong
/// semantics, one transaction in the store, then the proxy's snapshot rebuilt.
extension AdminAPI {
    /// The request body as fields, with `forcing` (a nested parent, a URL key) laid over it.
    func decodedBody(_ entity: String, request: AdminRequest,
                     forcing: [String: JSONValue]) -> Result<[String: JSONValue], RefusedRequest> {
        guard let schema = registry[entity] else { return .failure(RefusedRequest(response: .notFound)) }
        var body: [String: JSONValue]
        do { body = try RequestBodyDecoder.decode(request, schema: schema.record) } catch {
            return .failure(RefusedRequest(response: bodyFailure(error)))
        }
        for (key, value) in forcing { body[key] = value }
        return .success(body)
    }

    /// `POST`: 201 with the stored entity.
    func insert(_ entity: String, request: AdminRequest, forcing: [String: JSONValue],
                database: EntityDatabase) async -> AdminResponse {
        let body: [String: JSONValue]
        switch decodedBody(entity, request: request, forcing: forcing) {
        case .failure(let refused): return refused.response
        case .success(let decoded): body = decoded
        }
        return respond(201, await database.write { dao, current in
            dao.insert(entity, body, in: current).map { ($0.row, $0.changes) }
        })
    }

    /// `PUT`: 200 with the entity, created or replaced.
    func upsert(_ entity: String, key: String, request: AdminRequest, forcing: [String: JSONValue],
                database: EntityDatabase) async -> AdminResponse {
        let body: [String: JSONValue]
        switch decodedBody(entity, request: request, forcing: forcing) {
        case .failure(let refused): return refused.response
        case .success(let decoded): body = decoded
        }
        return respond(200, await database.write { dao, current in
            dao.upsert(entity, key: key, body, in: current).map { ($0.row, $0.changes) }
        })
    }

    /// `PATCH`: 200 with the merged entity. The row is looked up again inside the write, so a
    /// concurrent delete gives 404 rather than resurrecting it.
    func update(_ entity: String, row: JSONValue, request: AdminRequest, forcing: [String: JSONValue],
                database: EntityDatabase) async -> AdminResponse {
        let body: [String: JSONValue]
        switch decodedBody(entity, request: request, forcing: forcing) {
        case .failure(let refused): return refused.response
        case .success(let decoded): body = decoded
        }
        let id = row["id"]
        let registry = self.registry
        return respond(200, await database.write { dao, current in
            guard let schema = registry[entity], let key = RowKey.of(row, schema: schema),
                  let stored = current.rows(entity).first(where: { RowKey.of($0, schema: schema) == key }) else {
                let shown = id?.stringValue ?? ""
                return .failure(KongError(code: .notFound, message: "could not find the entity with primary key '{id=\"\(shown)\"}'",
                                          fields: ["id": .string(shown)]))
            }
            return dao.update(entity, existing: stored, body, in: current).map { ($0.row, $0.changes) }
        })
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
        let body: [String: JSONValue]
        switch decodedBody(reference, request: request, forcing: [:]) {
        case .failure(let refused): return refused.response
        case .success(let decoded): body = decoded
        }
        let registry = self.registry
        return respond(200, await database.write { dao, current in
            let parent: EntityDAO.Write
            switch dao.insert(reference, body, in: current) {
            case .failure(let error): return .failure(error)
            case .success(let write): parent = write
            }
            guard let schema = registry[child], let key = RowKey.of(childRow, schema: schema),
                  let stored = current.rows(child).first(where: { RowKey.of($0, schema: schema) == key }) else {
                return .failure(KongError(code: .notFound, message: "could not find the entity with primary key '{id=\"\(childRow["id"]?.stringValue ?? "")\"}'"))
            }
            let withParent = current.applying(parent.changes, registry: registry)
            return dao.update(child, existing: stored, [field: ["id": parent.row["id"] ?? .null]], in: withParent)
                .map { (parent.row, parent.changes + $0.changes) }
        })
    }

    func respond(_ status: Int, _ result: Result<JSONValue, KongError>) -> AdminResponse {
        switch result {
        case .success(let row): return .json(status, output(row))
        case .failure(let error): return .error(error)
        }
    }
}

/// A request refused before it reaches the database (its body could not be read).
struct RefusedRequest: Error {
    let response: AdminResponse
}
