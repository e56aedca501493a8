import Core
import Foundation

/// Generated entity endpoints (spec §3.2–§3.4) over the running configuration, with DB-less
/// write refusals (spec §4.1).
extension AdminAPI {
    func entityEndpoint(_ segments: [String], method: String, request: AdminRequest) async -> AdminResponse {
        guard let entity = entity(forAdminName: segments[0]) else { return .notFound }
        switch segments.count {
        case 1:
            return method == "GET" ? list(entity, request: request, path: "/" + segments[0], parent: nil)
                : await create(entity, request: request, forcing: [:])
        case 2:
            return await single(entity, key: segments[1], method: method, request: request)
        case 3:
            if let (child, link) = nestedChild(parent: entity, nestedName: segments[2]) {
                guard let parentRow = find(entity, key: segments[1]), let parentID = parentRow["id"] else { return .notFound }
                if method == "GET" {
                    return list(child, request: request, path: "/\(segments[0])/\(segments[1])/\(segments[2])",
                                parent: (link, parentID))
                }
                return await create(child, request: request, forcing: [link: ["id": parentID]])
            }
            return await parentOf(entity, key: segments[1], field: segments[2], method: method, request: request)
        case 4:
            guard let (child, link) = nestedChild(parent: entity, nestedName: segments[2]),
                  let parentRow = find(entity, key: segments[1]), let parentID = parentRow["id"] else { return .notFound }
            if let row = find(child, key: segments[3]), row[link]?["id"] != parentID {
                return .notFound  // exists, but belongs to another parent
            }
            return await single(child, key: segments[3], method: method, request: request,
                                forcing: [link: ["id": parentID]])
        default:
            return .notFound
        }
    }

    // MARK: Reads

    /// The entities served: the database's committed rows in DB mode, else the loaded configuration.
    var currentConfig: DeclarativeConfig { database?.current ?? gateway.holder.current.config }

    /// The entity's rows a read sees: those whose `ttl` expired are gone (Kong's queries skip
    /// them), though the database keeps them.
    func readableRows(_ entity: String) -> [JSONValue] {
        let rows = currentConfig.rows(entity)
        guard registry[entity]?.ttl == true else { return rows }
        let now = Int(Date().timeIntervalSince1970)
        return rows.filter { !EntityTTL.hasExpired($0, at: now) }
    }

    /// By id, else by the entity's endpoint key.
    func find(_ entity: String, key: String) -> JSONValue? {
        let rows = readableRows(entity)
        if UUIDLike.isUUID(key), let row = rows.first(where: { $0["id"]?.stringValue == key }) { return row }
        guard let endpointKey = registry[entity]?.endpointKey else { return nil }
        return rows.first(where: { $0[endpointKey]?.stringValue == key })
    }

    func list(_ entity: String, request: AdminRequest, path: String, parent: (field: String, id: JSONValue)?) -> AdminResponse {
        if entity == "consumers", parent == nil, request.query.contains(where: { $0.name == "custom_id" }) {
            return consumer(byCustomID: request)
        }
        var rows = readableRows(entity)
        if let parent { rows = rows.filter { $0[parent.field]?["id"] == parent.id } }
        if let raw = request.queryValue("tags") {
            switch TagFilter.parse(raw) {
            case .failure(let error):
                return .error(KongError(code: .invalidOptions, message: "invalid option (tags: \(error.description))",
                                        extra: ["options": ["tags": .string(error.description)]]))
            case .success(let filter):
                rows = rows.filter { filter.matches($0["tags"]?.arrayValue?.compactMap(\.stringValue) ?? []) }
            }
        }
        return paged(rows, request: request, path: path, shown: output)
    }

    /// One page of `items` (Kong's `size`, default 100 and at most 1,000, and `offset`), each as
    /// `shown` writes it, with `next` and `offset` when more follow; `next` repeats the request's
    /// `size` and `tags`. Items come in the order of their `sortKey` (Kong's primary key order),
    /// and a page starts after the offset's key (`PageCursor`).
    func paged(_ items: [JSONValue], request: AdminRequest, path: String,
               sortKey: (JSONValue) -> [JSONValue] = { [$0["id"] ?? .null] },
               shown: (JSONValue) -> JSONValue = { $0 }) -> AdminResponse {
        var size = 100
        if let raw = request.queryValue("size") {
            guard let number = Double(raw) else {
                return .error(KongError(code: .invalidSize, message: "size must be a number"))
            }
            guard number == number.rounded(), number >= 1, number <= 1000 else {
                return .error(KongError(code: .invalidSize, message: "size must be an integer between 1 and 1000"))
            }
            size = Int(number)
        }
        var keyed = items.map { (key: sortKey($0), item: $0) }
        keyed.sort { PageCursor.precedes($0.key, $1.key) }
        var start = 0
        if let token = request.queryValue("offset") {
            switch PageCursor.decode(token) {
            case .failure(let error): return .error(error)
            case .success(let cursor):
                start = keyed.firstIndex { PageCursor.precedes(cursor.key, $0.key) } ?? keyed.count
            }
        }
        let end = min(keyed.count, start + size)
        var body: [String: JSONValue] = ["data": .array(keyed[start..<end].map { shown($0.item) }), "next": .null]
        if end < keyed.count {
            let token = PageCursor(key: keyed[end - 1].key).token
            var next = "\(path)?offset=\(token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? token)"
            if let size = request.queryValue("size") { next += "&size=\(size)" }
            if let tags = request.queryValue("tags") {
                next += "&tags=\(tags.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? tags)"
            }
            body["next"] = .string(next)
            body["offset"] = .string(token)
        }
        // Kong encodes an empty list as `{}`... except for `data`, which it always writes as an array.
        return .json(200, .object(body))
    }

    /// Kong's `GET /consumers?custom_id=<v>` (spec §2.3): the consumer with that `custom_id` as a
    /// one-entry list (empty when none), never paged.
    private func consumer(byCustomID request: AdminRequest) -> AdminResponse {
        let values = request.query.filter { $0.name == "custom_id" }.map(\.value)
        guard values.count == 1, let customID = values.first, !customID.isEmpty else {
            return .message(400, "custom_id must be an unempty string")
        }
        let found = readableRows("consumers").filter { $0["custom_id"]?.stringValue == customID }
        return .json(200, ["data": .array(found.map(output)), "next": .null])
    }

    /// Entity JSON as the Admin API shows it: every field present; empty strings as null.
    func output(_ row: JSONValue) -> JSONValue {
        guard case .object(var fields) = row else { return row }
        for (key, value) in fields where value == "" { fields[key] = .null }
        // A credential's `ttl` is kept relative to `created_at`; Kong shows the seconds left.
        if let ttl = fields["ttl"]?.intValue, ttl > 0, let createdAt = fields["created_at"]?.intValue {
            fields["ttl"] = .number(Double(max(0, createdAt + ttl - Int(Date().timeIntervalSince1970))))
        }
        return .object(fields)
    }

    // MARK: One entity

    func single(_ entity: String, key: String, method: String, request: AdminRequest,
                forcing: [String: JSONValue] = [:]) async -> AdminResponse {
        let row = find(entity, key: key)
        let byID = UUIDLike.isUUID(key)
        let endpointKey = registry[entity]?.endpointKey ?? "id"
        switch method {
        case "GET":
            return row.map { .json(200, output($0)) } ?? .notFound
        case "PUT":
            if let database {
                return await commit(entity, request: request, forcing: forcing, status: 200, database: database) { dao, current, body in
                    dao.upsert(entity, key: key, body, in: current)
                }
            }
            var forcing = forcing
            forcing[byID ? "id" : endpointKey] = .string(key)
            if let failure = validateBody(entity, request: request, forcing: forcing, context: .upsert) { return failure }
            return unsupported(byID ? "cannot create or update '\(entity)' entities when not using a database"
                : "cannot create or update '\(entity)' entities by '\(endpointKey)' when not using a database")
        case "PATCH":
            guard let row else { return notFoundError(entity, key: key, byID: byID, endpointKey: endpointKey) }
            if let database, let schema = registry[entity], let rowKey = RowKey.of(row, schema: schema) {
                // Looked up again inside the write: a concurrent delete gives 404, not a resurrection.
                return await commit(entity, request: request, forcing: forcing, stored: row, status: 200,
                                    database: database) { dao, current, body in
                    dao.update(entity, key: rowKey, body, in: current)
                }
            }
            if let failure = validatePatch(entity, row: row, request: request) { return failure }
            return unsupported(byID ? "cannot update '\(entity)' entities when not using a database"
                : "cannot update '\(entity)' entities by '\(endpointKey)' when not using a database")
        case "DELETE":
            guard let row else { return .noContent }
            if let database { return await remove(entity, row: row, database: database) }
            return unsupported(byID ? "cannot remove '\(entity)' entities when not using a database"
                : "cannot remove '\(entity)' entities by '\(endpointKey)' when not using a database")
        default:
            return .methodNotAllowed
        }
    }

    /// `/A/{x}/f`: the entity `f` references.
    func parentOf(_ entity: String, key: String, field: String, method: String, request: AdminRequest) async -> AdminResponse {
        guard let row = find(entity, key: key),
              let reference = registry[entity]?.foreignKeys.first(where: { $0.field == field })?.reference else { return .notFound }
        guard let parentID = row[field]?["id"]?.stringValue else {
            guard method == "PUT" else { return .notFound }
            guard let database else { return await create(reference, request: request, forcing: [:]) }
            return await createAndLink(reference, child: entity, childRow: row, field: field, request: request, database: database)
        }
        if method == "DELETE" { return .methodNotAllowed }
        return await single(reference, key: parentID, method: method, request: request)
    }

    // MARK: DB-less refusals (after validation, as Kong does)

    func create(_ entity: String, request: AdminRequest, forcing: [String: JSONValue]) async -> AdminResponse {
        if let database {
            return await commit(entity, request: request, forcing: forcing, status: 201, database: database) { dao, current, body in
                dao.insert(entity, body, in: current)
            }
        }
        if let failure = validateBody(entity, request: request, forcing: forcing, context: .insert) { return failure }
        return unsupported("cannot create '\(entity)' entities when not using a database")
    }

    func validateBody(_ entity: String, request: AdminRequest, forcing: [String: JSONValue],
                      context: WriteContext) -> AdminResponse? {
        guard let schema = registry[entity] else { return .notFound }
        switch decodedBody(entity, request: request, forcing: forcing) {
        case .failure(let refused): return refused.response
        case .success(let body):
            if case .failure(let errors) = schema.process(body, context: context) { return .error(.schemaViolation(errors)) }
            return nil
        }
    }

    /// PATCH: the stored entity merged with the body (records recursively), then validated whole.
    func validatePatch(_ entity: String, row: JSONValue, request: AdminRequest) -> AdminResponse? {
        guard let schema = registry[entity] else { return .notFound }
        switch decodedBody(entity, request: request, forcing: [:], stored: row) {
        case .failure(let refused): return refused.response
        case .success(let body):
            let merged = EntityDAO(registry: registry).merge(entity, row.objectValue ?? [:], with: body)
            if case .failure(let errors) = schema.process(merged, context: .upsert) { return .error(.schemaViolation(errors)) }
            return nil
        }
    }

    func unsupported(_ message: String) -> AdminResponse {
        .error(KongError(code: .operationUnsupported, message: message))
    }

    func notFoundError(_ entity: String, key: String, byID: Bool, endpointKey: String) -> AdminResponse {
        let field = byID ? "id" : endpointKey
        return .error(KongError(code: .notFound,
                                message: byID ? "could not find the entity with primary key '{id=\"\(key)\"}'"
                                    : "could not find the entity with '{\(field)=\"\(key)\"}'",
                                fields: [field: .string(key)]))
    }
}

enum UUIDLike {
    static func isUUID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return false }
        for (i, b) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(i) { if b != UInt8(ascii: "-") { return false } } else if !isHex(b) { return false }
        }
        return true
    }

    static func isHex(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) || (0x61...0x66).contains(b | 0x20) }
}

/// `tags=a,b` (all of them) or `tags=a/b` (any of them), at most 5 (spec §3.4).
enum TagFilter {
    case all([String]), any([String])

    static func parse(_ raw: String) -> Result<TagFilter, TagFilterError> {
        if raw.isEmpty { return .failure(TagFilterError("cannot be null")) }
        let hasComma = raw.contains(","), hasSlash = raw.contains("/")
        if hasComma && hasSlash { return .failure(TagFilterError("invalid filter syntax")) }
        let tags = raw.split(separator: hasSlash ? "/" : ",", omittingEmptySubsequences: false).map(String.init)
        if tags.contains(where: \.isEmpty) { return .failure(TagFilterError("invalid filter syntax")) }
        if tags.count > 5 { return .failure(TagFilterError("cannot query more than 5 tags")) }
        return .success(hasSlash ? .any(tags) : .all(tags))
    }

    func matches(_ tags: [String]) -> Bool {
        switch self {
        case .all(let wanted): return wanted.allSatisfy(tags.contains)
        case .any(let wanted): return wanted.contains(where: tags.contains)
        }
    }
}

struct TagFilterError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
