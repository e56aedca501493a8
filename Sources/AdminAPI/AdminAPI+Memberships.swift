import Core
import Foundation

/// `/tags` and the consumer-group membership endpoints [EE] (spec §3.2, §3.4), DB-less reads.
extension AdminAPI {
    static func isMembership(_ segments: [String]) -> Bool {
        segments.count == 3 && ((segments[0] == "consumer_groups" && segments[2] == "consumers")
            || (segments[0] == "consumers" && segments[2] == "consumer_groups"))
    }

    func membership(_ segments: [String], method: String, request: AdminRequest) async -> AdminResponse {
        let fromGroup = segments[0] == "consumer_groups"
        let ownerEntity = fromGroup ? "consumer_groups" : "consumers"
        guard let owner = find(ownerEntity, key: segments[1]), let ownerID = owner["id"] else { return .notFound }
        let memberships = currentConfig.rows("consumer_group_consumers")
        if method != "GET", let database {
            return await writeMembership(segments, method: method, request: request, owner: owner, database: database)
        }
        if method != "GET" {
            // Adding or removing members is a write: refused without a database, as every write.
            if segments.count == 4, find(fromGroup ? "consumers" : "consumer_groups", key: segments[3]) == nil {
                return .notFound
            }
            return unsupported(method == "POST"
                ? "cannot create 'consumer_group_consumers' entities when not using a database"
                : "cannot remove 'consumer_group_consumers' entities when not using a database")
        }
        let ownerField = fromGroup ? "consumer_group" : "consumer"
        let otherField = fromGroup ? "consumer" : "consumer_group"
        let otherEntity = fromGroup ? "consumers" : "consumer_groups"
        let others: [JSONValue] = memberships
            .filter { $0[ownerField]?["id"] == ownerID }
            .compactMap { $0[otherField]?["id"]?.stringValue }
            .compactMap { find(otherEntity, key: $0) }
            .map(output)
        return .json(200, fromGroup
            ? ["consumer_group": output(owner), "consumers": .array(others)]
            : ["consumer": output(owner), "consumer_groups": .array(others)])
    }

    /// Every tagged entity as `{tag, entity_name, entity_id}`, optionally for one tag, paged as
    /// the entity lists are (spec §3.4).
    func tags(_ request: AdminRequest, only: String?) -> AdminResponse {
        var data: [JSONValue] = []
        for entity in registry.orderedEntityNames {
            for row in readableRows(entity) {
                guard let id = row["id"]?.stringValue else { continue }
                let tags = row["tags"]?.arrayValue?.compactMap(\.stringValue) ?? []
                for (position, tag) in tags.enumerated() where only == nil || tag == only {
                    data.append(["tag": .string(tag), "entity_name": .string(entity), "entity_id": .string(id),
                                 "ordinality": .number(Double(position + 1))])
                }
            }
        }
        // Kong's order: by entity id, then (all tags) by the tag's position in the entity's list;
        // the position is the offset's second part and is not shown.
        return paged(data, request: request, path: only.map { "/tags/\($0)" } ?? "/tags",
                     sortKey: { row in only == nil ? [row["entity_id"] ?? .null, row["ordinality"] ?? .null]
                                                   : [row["entity_id"] ?? .null] },
                     shown: { row in
                         guard case .object(var fields) = row else { return row }
                         fields["ordinality"] = nil
                         return .object(fields)
                     })
    }
}

extension AdminAPI {
    /// DB mode: `POST` adds members (`consumer` / `group`, may repeat) → 201 with the owner and
    /// the added entities; `DELETE` removes one membership or all of the owner's → 204.
    func writeMembership(_ segments: [String], method: String, request: AdminRequest, owner: JSONValue,
                         database: EntityDatabase) async -> AdminResponse {
        let fromGroup = segments[0] == "consumer_groups"
        let ownerField = fromGroup ? "consumer_group" : "consumer"
        let otherField = fromGroup ? "consumer" : "consumer_group"
        let otherEntity = fromGroup ? "consumers" : "consumer_groups"
        let entity = "consumer_group_consumers"
        let ownerID = owner["id"] ?? .null

        if method == "DELETE" {
            // One membership (`/.../{member}`), or all of the owner's.
            let other = segments.count == 4 ? find(otherEntity, key: segments[3])?["id"] : nil
            if segments.count == 4 && other == nil { return .notFound }
            let result: Result<Void, KongError> = await database.write { dao, current in
                var changes: [EntityChange] = []
                guard let schema = dao.registry[entity] else { return .success(((), [])) }
                for row in current.rows(entity) where row[ownerField]?["id"] == ownerID {
                    guard other == nil || row[otherField]?["id"] == other, let key = RowKey.of(row, schema: schema) else { continue }
                    changes.append(.delete(entity: entity, key: key))
                }
                return .success(((), changes))
            }
            if case .failure(let error) = result { return .error(error) }
            return .noContent
        }

        // POST
        let bodyField = fromGroup ? "consumer" : "group"
        let fields: [String: JSONValue]
        do { fields = try RequestBodyDecoder.decode(request, schema: nil) } catch { return bodyFailure(error) }
        let given: [String]
        switch fields[bodyField] {
        case .string(let one)?: given = [one]
        case .array(let many)?: given = many.compactMap(\.stringValue)
        default: given = []
        }
        guard !given.isEmpty else { return .message(400, "must provide \(bodyField)") }
        var others: [JSONValue] = []
        for key in given {
            guard let found = find(otherEntity, key: key) else {
                return .message(404, "\(fromGroup ? "consumer" : "consumer group") '\(key)' not found")
            }
            others.append(found)
        }
        let added = others
        let result: Result<Void, KongError> = await database.write { dao, current in
            var state = current
            var changes: [EntityChange] = []
            for other in added {
                let input: [String: JSONValue] = [ownerField: ["id": ownerID], otherField: ["id": other["id"] ?? .null]]
                switch dao.insert(entity, input, in: state) {
                case .failure(let error): return .failure(error)
                case .success(let write):
                    changes += write.changes
                    state = state.applying(write.changes, registry: dao.registry)
                }
            }
            return .success(((), changes))
        }
        if case .failure(let error) = result { return .error(error) }
        return .json(201, fromGroup
            ? ["consumer_group": output(owner), "consumers": .array(others.map(output))]
            : ["consumer": output(owner), "consumer_groups": .array(others.map(output))])
    }
}
