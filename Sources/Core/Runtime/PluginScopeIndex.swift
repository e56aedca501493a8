/// Picks the one configuration of a plugin that applies to a request (spec §7.3, with Kong
/// Enterprise's consumer-group levels). Built once per snapshot; lookups are dictionary hits.
public struct PluginScopeIndex: Sendable {
    struct Scope: Hashable, Sendable {
        var route: String?
        var service: String?
        var consumer: String?
        var consumerGroup: String?
    }

    /// plugin name → scope → configuration.
    let byName: [String: [Scope: PluginInstance]]

    /// Enabled instances whose protocols include an HTTP-subsystem protocol.
    public init(plugins: [PluginInstance]) {
        var byName: [String: [Scope: PluginInstance]] = [:]
        let http: Set<String> = ["http", "https", "grpc", "grpcs"]
        for plugin in plugins where plugin.enabled && plugin.protocols.contains(where: http.contains) {
            let scope = Scope(route: plugin.routeID, service: plugin.serviceID, consumer: plugin.consumerID,
                              consumerGroup: plugin.consumerGroupID)
            byName[plugin.name, default: [:]][scope] = plugin
        }
        self.byName = byName
    }

    public var pluginNames: Set<String> { Set(byName.keys) }

    /// The global configuration of `name` (no route, service, consumer or group), if any.
    public func global(_ name: String) -> PluginInstance? { byName[name]?[Scope()] }

    /// Kong EE's 12-level order. `consumerGroups` are the authenticated consumer's groups, in the
    /// order that breaks ties between them (Silverback: by group name; see docs/decisions.md).
    public func resolve(_ name: String, routeID: String?, serviceID: String?, consumerID: String?,
                        consumerGroups: [String]) -> PluginInstance? {
        guard let scopes = byName[name] else { return nil }
        let r = routeID, s = serviceID, c = consumerID
        func find(route: String? = nil, service: String? = nil, consumer: String? = nil) -> PluginInstance? {
            scopes[Scope(route: route, service: service, consumer: consumer)]
        }
        func findGroup(route: String? = nil, service: String? = nil) -> PluginInstance? {
            for group in consumerGroups {
                if let hit = scopes[Scope(route: route, service: service, consumerGroup: group)] { return hit }
            }
            return nil
        }
        if let c, let r, let s, let hit = find(route: r, service: s, consumer: c) { return hit }
        if let r, let s, let hit = findGroup(route: r, service: s) { return hit }
        if let c, let r, let hit = find(route: r, consumer: c) { return hit }
        if let c, let s, let hit = find(service: s, consumer: c) { return hit }
        if let r, let hit = findGroup(route: r) { return hit }
        if let s, let hit = findGroup(service: s) { return hit }
        if let r, let s, let hit = find(route: r, service: s) { return hit }
        if let c, let hit = find(consumer: c) { return hit }
        if let hit = findGroup() { return hit }
        if let r, let hit = find(route: r) { return hit }
        if let s, let hit = find(service: s) { return hit }
        return find()
    }
}
