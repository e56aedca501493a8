import Core
import Foundation

/// `/tags` and the consumer-group membership endpoints [EE] (spec §3.2, §3.4), DB-less reads.
extension AdminAPI {
    static func isMembership(_ segments: [String]) -> Bool {
        segments.count == 3 && ((segments[0] == "consumer_groups" && segments[2] == "consumers")
            || (segments[0] == "consumers" && segments[2] == "consumer_groups"))
    }

    func membership(_ segments: [String], method: String, request: AdminRequest) -> AdminResponse {
        let fromGroup = segments[0] == "consumer_groups"
        let ownerEntity = fromGroup ? "consumer_groups" : "consumers"
        guard let owner = find(ownerEntity, key: segments[1]), let ownerID = owner["id"] else { return .notFound }
        let memberships = currentConfig.rows("consumer_group_consumers")
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

    /// Every tagged entity as `{tag, entity_name, entity_id}`, optionally for one tag.
    func tags(_ request: AdminRequest, only: String?) -> AdminResponse {
        var data: [JSONValue] = []
        for entity in registry.orderedEntityNames {
            for row in currentConfig.rows(entity) {
                guard let id = row["id"]?.stringValue else { continue }
                for tag in row["tags"]?.arrayValue?.compactMap(\.stringValue) ?? [] where only == nil || tag == only {
                    data.append(["tag": .string(tag), "entity_name": .string(entity), "entity_id": .string(id)])
                }
            }
        }
        return .json(200, ["data": .array(data), "next": .null])
    }
}
