import NIOConcurrencyHelpers

/// Everything the proxy derives from one configuration, built once and immutable: the router,
/// the plugin scope index, compiled plugin handlers, consumer groups per consumer and the
/// directory plugins look things up in. A request keeps the instance it started with.
public final class GatewayConfiguration: Sendable {
    /// The validated configuration this was built from (Admin API reads and `/config` export).
    public let config: DeclarativeConfig
    public let snapshot: ConfigSnapshot
    public let router: Router
    public let plugins: PluginScopeIndex
    public let directory: GatewayDirectory
    /// Plugin names that have a handler and at least one configuration, in execution order
    /// (PRIORITY descending; ties by name descending, as Kong sorts them).
    let pluginOrder: [String]
    /// Compiled handler per plugin instance id.
    let handlers: [String: any PluginHandler]
    /// Consumer id → ids of its groups, ordered by group name (the tie-break between groups).
    let groupsByConsumer: [String: [String]]
    /// Handlers of the global configurations, in execution order (rewrite phase, no-route responses).
    let globalHandlers: [any PluginHandler]
    /// Per route (by identity), the handler each plugin of `pluginOrder` resolves to while no
    /// consumer is known — what every request asks before authentication and most ask
    /// throughout. Resolved once per configuration: per request, the scope precedence walk
    /// hashed a scope key of entity ids several times per plugin.
    let handlersWithoutConsumer: [ObjectIdentifier: [(any PluginHandler)?]]
    /// [EE] Per route whose plugins carry `ordering`: the access phase's order, as positions in
    /// `pluginOrder`. Routes without are absent (priority order).
    let accessOrders: [ObjectIdentifier: [Int]]

    public init(_ config: DeclarativeConfig, factories: [PluginFactory]) throws(ConfigurationBuildError) {
        self.config = config
        let snapshot = ConfigSnapshot(config)
        self.snapshot = snapshot
        router = Router(snapshot: snapshot)
        let plugins = PluginScopeIndex(plugins: snapshot.plugins)
        self.plugins = plugins
        let directory = GatewayDirectory(snapshot: snapshot)
        self.directory = directory

        let byName = Dictionary(factories.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var handlers: [String: any PluginHandler] = [:]
        for instance in snapshot.plugins where instance.enabled {
            guard let factory = byName[instance.name] else { continue }
            do {
                handlers[instance.id] = try factory.make(instance, directory)
            } catch {
                throw ConfigurationBuildError(message: "plugin '\(instance.name)' (\(instance.id)): \(error)")
            }
        }
        self.handlers = handlers
        pluginOrder = factories
            .filter { plugins.pluginNames.contains($0.name) }
            .sorted { $0.priority != $1.priority ? $0.priority > $1.priority : $0.name > $1.name }
            .map(\.name)

        globalHandlers = pluginOrder.compactMap { plugins.global($0).flatMap { handlers[$0.id] } }
        var withoutConsumer: [ObjectIdentifier: [(any PluginHandler)?]] = [:]
        var accessOrders: [ObjectIdentifier: [Int]] = [:]
        withoutConsumer.reserveCapacity(snapshot.routes.count)
        for route in snapshot.routes {
            let instances = pluginOrder.map { name in
                plugins.resolve(name, routeID: route.id, serviceID: route.serviceID, consumerID: nil, consumerGroups: [])
                    .flatMap { handlers[$0.id] != nil ? $0 : nil }
            }
            withoutConsumer[ObjectIdentifier(route)] = instances.map { $0.flatMap { handlers[$0.id] } }
            switch AccessOrdering.order(pluginOrder, instances: instances) {
            case .priority: break
            case .reordered(let order): accessOrders[ObjectIdentifier(route)] = order
            case .cycle(let names):
                ErrorLog.report("[ordering] the plugins of route \(route.name ?? route.id) order each other in a cycle "
                                + "(\(names.joined(separator: ", "))): their access phase runs in priority order", level: .warn)
            }
        }
        handlersWithoutConsumer = withoutConsumer
        self.accessOrders = accessOrders

        let groupNames = Dictionary(snapshot.consumerGroups.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        var groups: [String: [String]] = [:]
        for membership in snapshot.memberships {
            groups[membership.consumerID, default: []].append(membership.consumerGroupID)
        }
        groupsByConsumer = groups.mapValues { ids in ids.sorted { (groupNames[$0] ?? $0) < (groupNames[$1] ?? $1) } }
    }

    /// The empty configuration a node starts with when it has none.
    public static func empty(factories: [PluginFactory]) -> GatewayConfiguration {
        // An empty document always validates; a failure here would be a programming error.
        let config = DeclarativeConfig(formatVersion: "3.0", transform: true, entities: [:])
        return try! GatewayConfiguration(config, factories: factories)
    }

    /// A directory without entities, for handlers built only to check that they can be.
    static let emptyDirectory = GatewayDirectory(snapshot: ConfigSnapshot(
        DeclarativeConfig(formatVersion: "3.0", transform: true, entities: [:])))

    /// The handler of `pluginOrder[position]` that applies now, given what is known of the
    /// request so far. (A match's service is always its route's, looked up by `serviceID` as
    /// the resolution of `handlersWithoutConsumer` did.)
    func handler(at position: Int, match: RouteMatch, consumerID: String?) -> (any PluginHandler)? {
        if consumerID == nil, let resolved = handlersWithoutConsumer[ObjectIdentifier(match.route)] {
            return resolved[position]
        }
        return handler(pluginOrder[position], match: match, consumerID: consumerID)
    }

    /// The handler of `name` that applies now, given what is known of the request so far.
    func handler(_ name: String, match: RouteMatch?, consumerID: String?) -> (any PluginHandler)? {
        let instance: PluginInstance?
        if let match {
            instance = plugins.resolve(name, routeID: match.route.id, serviceID: match.service?.id,
                                       consumerID: consumerID,
                                       consumerGroups: consumerID.flatMap { groupsByConsumer[$0] } ?? [])
        } else {
            instance = plugins.global(name)
        }
        return instance.flatMap { handlers[$0.id] }
    }
}

public struct ConfigurationBuildError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The running configuration, replaced atomically. Readers take a reference and keep it for the
/// whole request; a replacement never disturbs requests in flight.
public final class ConfigurationHolder: Sendable {
    private let box: NIOLockedValueBox<GatewayConfiguration>

    public init(_ initial: GatewayConfiguration) { box = NIOLockedValueBox(initial) }

    public var current: GatewayConfiguration { box.withLockedValue { $0 } }

    public func replace(with configuration: GatewayConfiguration) { box.withLockedValue { $0 = configuration } }
}

/// [EE] Dynamic plugin ordering (`ordering.before/after.access`): the access phase's order on one
/// route, from the orderings of the plugin configurations that apply to it before any consumer is
/// known; rules naming other plugins (of other routes, or consumer-scoped) are ignored. Other
/// phases keep priority order.
///
/// Kong's default (`legacy`) algorithm: `A before B` and `B after A` both make B depend on A; the
/// plugins are visited from the highest priority down, and a plugin is placed only after every
/// plugin it depends on was placed (recursively, however low their priority). So a rule pulls the
/// whole chain it names forward, next to the plugin that needs it.
enum AccessOrdering {
    enum Outcome: Equatable {
        case priority
        case reordered([Int])
        case cycle([String])
    }

    /// Positions of `names` (priority order) in the order the access phase runs them.
    /// `instances[i]` is the configuration of `names[i]` on the route (nil: none applies there);
    /// rules naming plugins that are not configured on the route are ignored.
    static func order(_ names: [String], instances: [PluginInstance?]) -> Outcome {
        guard instances.contains(where: { ($0?.accessBefore.isEmpty == false) || ($0?.accessAfter.isEmpty == false) }) else {
            return .priority
        }
        let position = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        // dependencies[i]: the plugins that must run before plugin i, highest priority first.
        var dependencies = Array(repeating: [Int](), count: names.count)
        // A rule counts only between plugins that both apply to the route (`pluginOrder` lists
        // every plugin configured anywhere): one naming a plugin of another route, or one only
        // known after authentication, must not move the plugins of this one.
        func depend(_ plugin: Int, on other: Int) {
            guard plugin != other, instances[plugin] != nil, instances[other] != nil,
                  !dependencies[plugin].contains(other) else { return }
            dependencies[plugin].append(other)
        }
        for (index, instance) in instances.enumerated() {
            guard let instance else { continue }
            for name in instance.accessBefore { if let later = position[name] { depend(later, on: index) } }
            for name in instance.accessAfter { if let earlier = position[name] { depend(index, on: earlier) } }
        }
        for index in dependencies.indices { dependencies[index].sort() }

        enum Mark { case unvisited, visiting, placed }
        var marks = Array(repeating: Mark.unvisited, count: names.count)
        var order: [Int] = []
        order.reserveCapacity(names.count)
        // Depth-first; false when a plugin is reached again while its own dependencies are placed.
        func visit(_ plugin: Int) -> Bool {
            switch marks[plugin] {
            case .placed: return true
            case .visiting: return false
            case .unvisited: break
            }
            marks[plugin] = .visiting
            for dependency in dependencies[plugin] where !visit(dependency) { return false }
            marks[plugin] = .placed
            order.append(plugin)
            return true
        }
        for plugin in names.indices where !visit(plugin) {
            return .cycle(names.indices.filter { marks[$0] == .visiting }.map { names[$0] })
        }
        return order == Array(names.indices) ? .priority : .reordered(order)
    }
}
